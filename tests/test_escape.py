"""core/escape: one helper per output language, checked by the real tools (cc, cmake, make) where present:
the escaped text must mean exactly the original, and nothing in it may change the surrounding code."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from fwtool.core import escape

HOSTILE = [
    "plain", "new\nline", "cr\rlf", 'quote"d', "back\\slash", "trail\\", "end */ comment", "/* open",
    "${HOME}", "$(rm -rf x)", "$<CONFIG>x", "semi;colon", "#hash", "nul\0byte", "tab\tx", "esc\x1b[2J",
    "??/ trigraph", "ünïcödé ラベル", "digits\0001", os.fsdecode(b"bad\xff\xfeutf8"), "#warning injected\nint x;",
]


def _needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def test_c_string_is_plain_ascii_and_never_ends_a_literal():
    for text in HOSTILE:
        out = escape.c_string(text)
        assert out.isascii() and "\n" not in out and "\r" not in out
        assert '"' not in out.replace('\\042', "")
        assert "??" not in out


@pytest.mark.parametrize("text", HOSTILE)
def test_c_comment_is_one_safe_line(text):
    out = escape.c_comment(text)
    assert out.isascii() and "\n" not in out and "\r" not in out and "\0" not in out
    assert "*/" not in out and "/*" not in out and not out.endswith("\\") and "?" not in out


def test_c_string_and_comment_compile_to_exactly_the_bytes(tmp_path):
    _needs("cc")
    lines = ["#include <stdio.h>", "#include <string.h>"]
    for i, text in enumerate(HOSTILE):
        lines.append(f"// label {escape.c_comment(text)}")
        lines.append(f"/* label {escape.c_comment(text)} */")
        lines.append(f'static const char s{i}[] = "{escape.c_string(text)}";')
    lines.append("int main(void) {")
    for i, _ in enumerate(HOSTILE):
        lines.append(f"  fwrite(s{i}, 1, sizeof s{i} - 1, stdout); putchar(0x1e);")
    lines.append("  return 0; }")
    src = tmp_path / "t.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "t"
    proc = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-trigraphs", "-o", str(exe), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # a #warning or stray symbol would fail -Werror or the link
    out = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    assert out.split(b"\x1e")[:-1] == [escape.to_bytes(t) for t in HOSTILE]
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True).stdout if shutil.which("nm") else ""
    assert " x\n" not in symbols


def test_cmake_quoted_means_exactly_the_text(tmp_path):
    _needs("cmake")
    ok = [t for t in HOSTILE if "\0" not in t and "$<" not in t and escape.to_bytes(t).decode("utf-8", "replace")
          == t]
    script = [f'file(WRITE "{tmp_path}/out{i}" "{escape.cmake_quoted(t)}")' for i, t in enumerate(ok)]
    (tmp_path / "t.cmake").write_text("\n".join(script) + "\n", encoding="utf-8")
    proc = subprocess.run(["cmake", "-P", str(tmp_path / "t.cmake")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for i, t in enumerate(ok):
        got = (tmp_path / f"out{i}").read_bytes()
        # CMake keeps the escape of ';' (\;) in a quoted argument so a list is not split on it
        assert got.replace(b"\\;", b";") == t.encode(), t


@pytest.mark.parametrize("text", ["nul\0byte", os.fsdecode(b"bad\xffx"), "$<TARGET_FILE:x>"])
def test_cmake_refuses_what_it_cannot_mean(text):
    with pytest.raises(escape.Unrepresentable):
        escape.cmake_quoted(text)


def test_make_value_means_exactly_the_text(tmp_path):
    _needs("make")
    ok = [t for t in HOSTILE if not any(c in t for c in "\0\n\r") and not t.endswith("\\")
          and escape.to_bytes(t).decode("utf-8", "replace") == t]
    rules = [f"V{i} := {escape.make_value(t)}" for i, t in enumerate(ok)]
    rules.append("all:")
    rules += [f"\t$(file >{tmp_path}/out{i},$(V{i}))" for i in range(len(ok))]
    (tmp_path / "Makefile").write_text("\n".join(rules) + "\n", encoding="utf-8")
    proc = subprocess.run(["make", "-s", "-f", str(tmp_path / "Makefile")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for i, t in enumerate(ok):
        assert (tmp_path / f"out{i}").read_text(encoding="utf-8") == t + "\n", t


@pytest.mark.parametrize("text", ["a\nb", "nul\0", "trail\\"])
def test_make_refuses_line_breaks(text):
    with pytest.raises(escape.Unrepresentable):
        escape.make_value(text)


@pytest.mark.parametrize("text,shown", [
    ("\x1b[2Jname", "\\x1b[2Jname"), ("a\nb", "a\\x0ab"), ("bell\x07", "bell\\x07"), ("c1\x9b", "c1\\x9b"),
    ("rtl\u202eevil", "rtl\\u202eevil"), (os.fsdecode(b"x\xff"), "x\\xff"), (b"raw\x1b\xff", "raw\\x1b\\xff"),
    ("ünïcödé ラベル", "ünïcödé ラベル"),
])
def test_terminal_shows_controls_escaped(text, shown):
    assert escape.terminal(text) == shown
