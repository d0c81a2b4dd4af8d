"""Where fwtool's own data files live, and its per-user cache and config directories."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

_PKG = Path(__file__).resolve().parent.parent  # the fwtool package


def resource_dir(name: str) -> Path:
    """A top-level data folder (templates, boards, vendor): inside the installed wheel, else the source tree."""
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"fwtool data folder '{name}' is missing from the installation")


def data_file(name: str) -> Path:
    """A file of fwtool's own data tables (``fwtool/data/<name>``)."""
    return _PKG / "data" / name


def cache_dir() -> Path:
    """Per-user cache (vendor trees, npm packages). ``FWTOOL_CACHE_DIR`` overrides."""
    env = os.environ.get("FWTOOL_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("fwtool"))


def config_file() -> Path:
    """Per-user config file. ``FWTOOL_CONFIG`` overrides."""
    env = os.environ.get("FWTOOL_CONFIG")
    return Path(env) if env else Path(platformdirs.user_config_dir("fwtool")) / "config.toml"
