"""Render a family's Jinja templates into a project folder, rewriting only files whose content changed
(so make/ninja rebuild only what a new model really changes)."""
from __future__ import annotations

import os
from pathlib import Path

import jinja2

from .paths import resource_dir


def environment(template_dir: str) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates") / template_dir)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render_all(template_dir: str, context: dict) -> dict[str, str]:
    env = environment(template_dir)
    return {name[:-3]: env.get_template(name).render(**context) for name in env.list_templates() if name.endswith(".j2")}


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
