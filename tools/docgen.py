"""Generated documentation: the board table (from ``fwtool boards --json``, i.e. boards/*.toml) and the exit-code
table (from fwtool/core/errors.py's one definition). The mkdocs hook (tools/mkdocs_hooks.py) puts them into the
pages at build time; tests/test_docs.py checks README.md's board table is this one.

    python3 tools/docgen.py boards        # the Markdown board table (paste into README.md after adding a board)
    python3 tools/docgen.py exit-codes
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % (size // 4 if unit == "MiB" else 1) == 0:
            v = n / size
            return f"{v:g} {unit}" if v == int(v) or unit == "KiB" else f"{v:.2f} {unit}"
    return f"{n:,} B"


def boards() -> list[dict]:
    """What ``fwtool boards --json`` reports (the board files, as fwtool reads them)."""
    proc = subprocess.run([sys.executable, "-m", "fwtool", "boards", "--json"], capture_output=True, text=True,
                          cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(proc.stdout)


def board_table(rows: list[dict] | None = None) -> str:
    rows = boards() if rows is None else rows
    lines = ["| board | name | family | MCU (CPU, clock) | flash | SRAM | image | flash runners |",
             "|---|---|---|---|---|---|---|---|"]
    for b in sorted(rows, key=lambda b: (b["family"], b["name"])):
        cpu = f"{b['mcu']} ({b['cpu']}, {b['clock_hz'] / 1e6:g} MHz)"
        lines.append(f"| `{b['name']}` | {b['title']} | {b['family']} | {cpu} | {_size(b['flash_bytes'])} | "
                     f"{_size(b['sram_bytes'])} | {b.get('image_kind', '')} | {', '.join(b.get('runners', []))} |")
    return "\n".join(lines)


def exit_code_table() -> str:
    sys.path.insert(0, str(ROOT))
    from fwtool.core.errors import MEANING, Exit

    lines = ["| code | name | meaning |", "|---|---|---|"]
    for code in Exit:
        short, long = MEANING[code]
        long = long.replace("<", "&lt;").replace(">", "&gt;")
        lines.append(f"| {int(code)} | `{code.name}` ({short}) | {long} |")
    return "\n".join(lines)


GENERATORS = {"boards": board_table, "exit-codes": exit_code_table}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in GENERATORS:
        sys.exit(f"usage: python3 tools/docgen.py {{{'|'.join(GENERATORS)}}}")
    print(GENERATORS[sys.argv[1]]())
