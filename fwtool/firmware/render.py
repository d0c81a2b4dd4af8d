"""Render a firmware project from three template layers — ``templates/common/``, the family's folder, the app's
folder — rewriting only files whose content changed (so make/ninja rebuild only what a new model really changes).

A later layer's file overrides an earlier one of the same name (the family may replace a common file, the app a
common or family one). Templates only substitute and loop; anything computed is in the context.
"""
from __future__ import annotations

from pathlib import Path

import jinja2

from fwtool.firmware.apps import COMMON_DIR, App
from fwtool.core.files import write_if_changed
from fwtool.core.paths import resource_dir


def _templates(folder: Path) -> dict[str, Path]:
    """Rendered name -> template file, for the ``*.j2`` files directly in ``folder``."""
    return {p.name[:-3]: p for p in sorted(folder.glob("*.j2")) if p.is_file()} if folder.is_dir() else {}


def layers(family_template_dir: str, app: App) -> list[Path]:
    """The template folders of a project, earliest (most shared) first."""
    root = resource_dir("templates")
    return [root / COMMON_DIR, root / family_template_dir, app.path]


def render_all(family_template_dir: str, context: dict, app: App) -> dict[str, str]:
    """Rendered file name -> text: common, then the family's templates, then the app's (later ones override)."""
    chosen: dict[str, Path] = {}
    for folder in layers(family_template_dir, app):
        chosen.update(_templates(folder))
    envs = {folder: jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                                       keep_trailing_newline=True, autoescape=False)
            for folder in {t.parent for t in chosen.values()}}
    return {name: envs[t.parent].get_template(t.name).render(**context) for name, t in chosen.items()}


def write_project(files: dict[str, str], project_dir: Path) -> list[str]:
    """Write rendered files; return the names that changed."""
    return [name for name, text in files.items() if write_if_changed(project_dir / name, text)]
