"""One escaping helper per output language, for user-supplied text (file names, labels, tensor names, paths).

Nothing a user controls reaches generated C/C++, CMake, a Makefile or the terminal except through these:

- :func:`c_string` — the inside of a C/C++ string literal (``"..."``): printable ASCII kept, everything else
  (quotes, backslashes, control bytes, NUL, non-ASCII UTF-8, non-UTF-8 bytes) as 3-digit octal escapes, so the
  literal holds exactly the original bytes.
- :func:`c_comment` — text that is safe inside a ``//`` or ``/* */`` comment: one line, no ``*/`` or ``/*``, never ends in
  a backslash (line splice), no trigraphs; not byte-exact (it is only read by people).
- :func:`cmake_quoted` — the inside of a CMake quoted argument (``"..."``): ``\\ " $ ;`` and line breaks escaped.
- :func:`make_value` — a Makefile variable value: ``$`` doubled, ``#`` escaped; line breaks refused.
- :func:`terminal` — untrusted text shown on a terminal: ESC and every other control character shown as ``\\xNN``.

``str`` input that came from ``os.fsdecode`` (surrogate escapes for non-UTF-8 bytes) is handled as its original
bytes; ``bytes`` input is taken as is.
"""
from __future__ import annotations

import re

__all__ = ["c_string", "c_comment", "cmake_quoted", "make_value", "terminal", "to_bytes", "Unrepresentable"]


class Unrepresentable(ValueError):
    """The text cannot be written in that language without changing its meaning (e.g. NUL in CMake)."""


def to_bytes(text: str | bytes) -> bytes:
    """The bytes ``text`` stands for (UTF-8; surrogate escapes give back the original non-UTF-8 bytes)."""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    return str(text).encode("utf-8", "surrogateescape")


def _printable_ascii(b: int) -> bool:
    return 0x20 <= b < 0x7F


def c_string(text: str | bytes) -> str:
    """The inside of a C/C++ string literal holding exactly ``text``'s bytes (UTF-8 for ``str``)."""
    out = []
    for b in to_bytes(text):
        if _printable_ascii(b) and b not in (0x22, 0x5C, 0x3F):  # '"', '\\', '?' (trigraphs)
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")  # octal: at most 3 digits, so a following digit is never swallowed
    return "".join(out)


def c_comment(text: str | bytes) -> str:
    """``text`` on one line, safe in a ``//`` or ``/* */`` comment: non-printable bytes, backslash and ``?`` as
    ``\\xNN`` (never a trailing backslash, no trigraph), ``*/`` and ``/*`` broken up."""
    out = []
    for b in to_bytes(text):
        if _printable_ascii(b) and b not in (0x5C, 0x3F):
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out).replace("*/", "*\\x2f").replace("/*", "/\\x2a")


def cmake_quoted(text: str | bytes) -> str:
    """The inside of a CMake quoted argument (``"..."``) meaning exactly ``text``.

    Raises :class:`Unrepresentable` for NUL or non-UTF-8 bytes (CMake files are UTF-8 text) and for ``$<`` (a
    generator expression would be evaluated in target properties)."""
    raw = to_bytes(text)
    if b"\0" in raw:
        raise Unrepresentable("contains a NUL byte")
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unrepresentable("is not valid UTF-8") from e
    if "$<" in s:
        raise Unrepresentable("contains '$<' (a CMake generator expression)")
    table = {"\\": "\\\\", '"': '\\"', "$": "\\$", ";": "\\;", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(table.get(c, c) for c in s)


def make_value(text: str | bytes) -> str:
    """A Makefile variable value meaning exactly ``text``: ``$`` -> ``$$``, ``#`` -> ``\\#``.

    Raises :class:`Unrepresentable` for line breaks, NUL, a trailing backslash or non-UTF-8 bytes."""
    raw = to_bytes(text)
    if b"\0" in raw or b"\n" in raw or b"\r" in raw:
        raise Unrepresentable("contains a line break or NUL byte")
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unrepresentable("is not valid UTF-8") from e
    if s.endswith("\\"):
        raise Unrepresentable("ends in a backslash (it would join the next line)")
    return s.replace("$", "$$").replace("#", "\\#")


# C0 controls (ESC included), DEL, C1 controls, bidi overrides/isolates, and lone surrogates (non-UTF-8 bytes).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _show(m: re.Match) -> str:
    c = m.group(0)
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # surrogateescape: an undecodable byte
        return f"\\x{o - 0xDC00:02x}"
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def terminal(text: object) -> str:
    """``text`` made harmless to show on a terminal: no escape sequences, no control characters, no bidi tricks.
    ``bytes`` are decoded as UTF-8 with invalid bytes shown as ``\\xNN``."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    return _UNSAFE.sub(_show, str(text))


def c_array_lines(data: bytes, per_line: int = 16) -> list[str]:
    """``data`` as lines of a C byte-array initialiser (``0x1c, 0x00, ...,``); never empty (an empty array is not C)."""
    if not data:
        return ["0x00,"]
    return [", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + "," for i in range(0, len(data), per_line)]
