"""mkdocs hook: replaces ``<!-- fwtool:NAME -->`` in a page with the table tools/docgen.py generates (boards,
exit-codes), so those tables come from the code and the board files at every docs build."""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docgen  # noqa: E402

_MARK = re.compile(r"<!-- fwtool:([a-z-]+) -->")
_cache: dict[str, str] = {}


def _table(name: str) -> str:
    if name not in docgen.GENERATORS:
        raise ValueError(f"unknown generated table '{name}' (known: {', '.join(docgen.GENERATORS)})")
    if name not in _cache:
        _cache[name] = docgen.GENERATORS[name]()
    return _cache[name]


def on_page_markdown(markdown: str, page, config, files) -> str:
    return _MARK.sub(lambda m: _table(m.group(1)), markdown)
