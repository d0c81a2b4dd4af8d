"""Render a family's Jinja templates into a project folder, rewriting only files whose content changed
(so make/ninja rebuild only what a new model really changes)."""
from __future__ import annotations

import os
from pathlib import Path

import jinja2

from fwtool.core.paths import resource_dir


def _render_dir(folder: Path, context: dict) -> dict[str, str]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    return {Path(name).name[:-3]: env.get_template(name).render(**context)
            for name in env.list_templates() if name.endswith(".j2") and "/" not in name}


def render_all(template_dir: str, context: dict, app: str = "inference") -> dict[str, str]:
    """The family's shared templates plus those of ``app`` (an app file overrides a shared one of that name)."""
    root = resource_dir("templates") / template_dir
    files = _render_dir(root, context)
    files.update(_render_dir(root / "apps" / app, context))
    return files


def write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def write_project(files: dict[str, str], project_dir: Path) -> list[str]:
    """Write rendered files; return the names that changed."""
    return [name for name, text in files.items() if write_if_changed(project_dir / name, text)]
