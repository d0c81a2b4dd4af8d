"""The front page and the docs cannot drift: README's two code blocks, its board table and links, the one
exit-code definition, and CI running the README's test command unchanged."""
import re
from pathlib import Path

import pytest

from fwtool.core.errors import MEANING, Exit, exit_code_summary

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)]


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 200


def test_first_block_sets_up_and_builds_an_example_the_second_runs_the_tests():
    blocks = [b for b in code_blocks(README) if not b.startswith("model (")]  # the flow picture comes first
    first, second = blocks[0], blocks[1]
    assert "apt-get install" in first and "pip install -e '.[test]'" in first
    assert first.endswith("fwtool build --board pico --model example:fire_alarm")
    assert "shared/" not in first and "../" not in first  # nothing from outside the clone
    assert second == "python3 -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert second in ci  # CI runs the README's test command, unchanged


def test_readme_board_table_is_the_generated_one():
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import docgen

    assert docgen.board_table() in README, "README's board table is stale: paste `python3 tools/docgen.py boards`"


def test_readme_links_point_at_files():
    missing = []
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)", README):
        if not (ROOT / target).exists():
            missing.append(target)
    # docs/boards.md (writing a board file) is its own page, added with the board-file schema work
    assert [m for m in missing if m != "docs/boards.md"] == []


def test_every_exit_code_has_one_meaning():
    assert set(MEANING) == set(Exit)
    assert exit_code_summary().startswith("0 ok, 1 failed, 2 usage, 3 bad input")


def test_stale_statements_are_gone():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "PSoC 6 next" not in README and "PSoC 6 next" not in pyproject
    assert "PSoC 6" in README.splitlines()[2] + README.splitlines()[3]


def test_mkdocs_nav_pages_exist():
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert nav and all((ROOT / "docs" / p).is_file() for p in nav), nav


def test_no_code_comment_cites_notes_outside_the_repository():
    hits = [str(p.relative_to(ROOT)) for d in ("fwtool", "tests", "templates") for p in (ROOT / d).rglob("*")
            if p.is_file() and p.suffix in (".py", ".mjs", ".cpp", ".h", ".j2", ".txt", ".cmake")
            and "shared" + "/notes" in p.read_text(errors="replace")]
    assert hits == []


@pytest.mark.skipif(not (ROOT / "mkdocs.yml").is_file(), reason="no mkdocs.yml")
def test_docs_hook_fills_the_generated_tables():
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import mkdocs_hooks

    out = mkdocs_hooks.on_page_markdown("a\n<!-- fwtool:exit-codes -->\n<!-- fwtool:boards -->\n", None, None, None)
    assert "| 130 | `INTERRUPTED`" in out and "| `pico` |" in out and "<!--" not in out
