"""A model handed out as a C array header (``xxd -i model.tflite``, a tutorial's ``model.h``) read back as bytes.

Accepted: one byte array (``unsigned char``, ``uint8_t``, ``char``, ``signed char``, ``int8_t``; with any of
``const`` / ``static`` / ``constexpr`` / ``alignas(N)`` / ``__attribute__((...))`` / an alignment macro) whose
initializer is a list of integer literals (hex, decimal, octal; negative values for the signed types). Comments
and preprocessor lines are ignored. Refused, each with one error and its fix: no byte array, more than one (the
error names them all), an initializer that does not end (a truncated file), a value that is not a byte, and a length
that disagrees with the element count: the ``[N]`` in the declaration, or a ``NAME_len`` / ``NAME_length`` /
``NAME_size`` variable or ``#define`` (what ``xxd -i`` and the TFLM examples write beside the array).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fwtool.core import userfile
from fwtool.core.errors import BadInput
from fwtool.core.escape import terminal

# Suffixes read as C source rather than as a .tflite flatbuffer.
SUFFIXES = (".h", ".hpp", ".hh", ".c", ".cc", ".cpp", ".inc")
MAX_HEADER_BYTES = 64 * 1024 * 1024  # ~6 characters per byte: a 10 MB model is a ~60 MB header

_BYTE_TYPES = r"unsigned\s+char|signed\s+char|char|uint8_t|int8_t|std::uint8_t|std::int8_t"
_DECL = re.compile(
    r"(?P<type>\b(?:" + _BYTE_TYPES + r"))\s+(?:const\s+)?(?P<name>[A-Za-z_]\w*)\s*\[\s*(?P<size>[^\]]*?)\s*\]"
    r"(?P<attrs>[^=;{}]*)=\s*\{")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)
_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[uUlL]*")


@dataclass(frozen=True)
class CArray:
    name: str
    data: bytes


def _strip_comments(text: str) -> str:
    """Comments become spaces (string and character literals are kept as they are)."""
    def repl(m: re.Match) -> str:
        s = m.group(0)
        if s.startswith("/"):
            return re.sub(r"[^\n]", " ", s)
        return s
    text = _COMMENTS.sub(repl, text)
    if "/*" in text:  # an unterminated block comment: the rest of the file is comment
        text = text[:text.index("/*")]
    return "\n".join("" if ln.lstrip().startswith("#") and not ln.lstrip().startswith("#define") else ln
                     for ln in text.splitlines())


def _int(token: str) -> int | None:
    if not _INT.fullmatch(token):
        return None
    t = token.rstrip("uUlL")
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("+-")
    if t.lower().startswith("0x"):
        return sign * int(t, 16)
    if len(t) > 1 and t.startswith("0"):
        return sign * int(t, 8)
    return sign * int(t)


def _declared_lengths(text: str, name: str) -> dict[str, int]:
    """Every length the header states for ``name``: ``unsigned int name_len = N;`` or ``#define NAME_LEN N``."""
    found = {}
    for m in re.finditer(r"\b(" + re.escape(name) + r"_(?:len|length|size))\b\s*=\s*([0-9xXa-fA-F]+)[uUlL]*\s*;",
                         text, re.I):
        value = _int(m.group(2))
        if value is not None:
            found[m.group(1)] = value
    for m in re.finditer(r"^\s*#define\s+(" + re.escape(name) + r"_(?:len|length|size))\s+\(?([0-9xXa-fA-F]+)"
                         r"[uUlL]*\)?\s*$", text, re.I | re.M):
        value = _int(m.group(2))
        if value is not None:
            found[m.group(1)] = value
    return found


def _body(text: str, start: int, path: Path, name: str) -> tuple[str, int]:
    end = text.find("}", start)
    if end < 0:
        raise BadInput(f"{terminal(path)}: the initializer of '{terminal(name)}' does not end (no closing '}}'): "
                       "the header is truncated",
                       "re-create the header (e.g. xxd -i model.tflite > model.h) or pass the .tflite itself")
    return text[start:end], end


def parse_header(text: str, path: Path | str = "model.h") -> CArray:
    """The one byte array in C source ``text``; BadInput (exit 3) naming the problem otherwise."""
    path = Path(path)
    clean = _strip_comments(text)
    decls = list(_DECL.finditer(clean))
    if not decls:
        raise BadInput(f"{terminal(path)} holds no byte array (looked for e.g. 'unsigned char NAME[] = {{ 0x.., ... }}')",
                       "pass the model as a .tflite file, or a header made by: xxd -i model.tflite > model.h")
    if len(decls) > 1:
        names = ", ".join(f"'{terminal(d.group('name'))}'" for d in decls)
        raise BadInput(f"{terminal(path)} holds {len(decls)} byte arrays ({names}); which one is the model is not "
                       "clear", "keep only the model's array in the header (or pass the .tflite file itself)")
    d = decls[0]
    name = d.group("name")
    body, _ = _body(clean, d.end(), path, name)
    signed = d.group("type").replace("std::", "") in ("char", "signed char", "int8_t")
    values = bytearray()
    tokens = [t.strip() for t in body.split(",")]
    if tokens and tokens[-1] == "":
        tokens.pop()  # a trailing comma
    for i, tok in enumerate(tokens):
        v = _int(tok)
        if v is None or not (-128 if signed else 0) <= v <= 255:
            shown = terminal(tok[:20]) or "(empty)"
            raise BadInput(f"{terminal(path)}: element {i} of '{terminal(name)}' is {shown}, not a byte value",
                           "the array must list integer byte values (xxd -i output); re-create the header")
        values.append(v & 0xFF)
    lengths = _declared_lengths(clean, name)
    size = d.group("size")
    if size:
        n = _int(size)
        if n is None:  # [MODEL_LEN]: a #define or a constant elsewhere in the header
            m = re.search(r"(?:^\s*#define\s+" + re.escape(size) + r"\s+\(?|\b" + re.escape(size) + r"\s*=\s*)"
                          r"([0-9xXa-fA-F]+)", clean, re.M)
            n = _int(m.group(1).rstrip("uUlL")) if m else None
        if n is not None:
            lengths[f"{name}[{size}]"] = n
    for what, n in lengths.items():
        if n != len(values):
            raise BadInput(f"{terminal(path)}: '{terminal(what)}' says {n} bytes but the array '{terminal(name)}' "
                           f"holds {len(values)}: the header is truncated or was edited",
                           "re-create the header (e.g. xxd -i model.tflite > model.h) or pass the .tflite itself")
    if not values:
        raise BadInput(f"{terminal(path)}: the array '{terminal(name)}' is empty",
                       "re-create the header (e.g. xxd -i model.tflite > model.h) or pass the .tflite itself")
    return CArray(name, bytes(values))


def is_header(path: Path | str) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def read_header(path: Path | str) -> CArray:
    """:func:`parse_header` of a file on disk (size-limited, one error for unreadable or non-text files)."""
    path = Path(path)
    raw = userfile.read_bytes(path, "model header", MAX_HEADER_BYTES,
                              "check the --model path (a .tflite file, or a C array header such as xxd -i writes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_header(text, path)
