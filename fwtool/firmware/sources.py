"""Which pico-tflmicro library sources a build compiles: only those its kernels and the runtime reference.

Derived from the pinned tree, not from a hand-kept list (pico-tflmicro's CMakeLists names 190 library sources
besides the kernels; a CONV/POOL/FC model needs about a third of them):

* TFLM runtime (C++): an include closure. Starting from the roots (the compiled kernel files and the headers the
  firmware sources include), every ``#include "…"`` found in the tree is followed; a library source that
  implements a reached header is compiled and its includes followed in turn. A source implements a header in its
  own folder whose stem is its own or a prefix of it followed by ``_`` (``conv.h`` <- ``conv_common.cpp``,
  ``micro_allocator.h`` <- ``micro_allocator.cpp``).
* CMSIS-NN (C, one public function per file, named after it): a symbol closure. Every identifier a compiled
  source mentions that a CMSIS-NN library source defines (a function, or a table such as
  ``sigmoid_table_uint16``) pulls that source in, and its own mentions.

Headers reached only through the op resolver's header (``micro_mutable_op_resolver.h`` declares every kernel's
registration) are not followed: the kernels a build registers are its kernel files, which are roots themselves.
The result is cached per tree revision and root set (in memory and in ``<cache>/tflm_sources/``).
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

from fwtool.core.files import read_json, write_json
from fwtool.core.paths import cache_dir

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
_NAME = re.compile(r"\b[A-Za-z_]\w*\b")
# A definition at file scope: a line starting (column 0) with a type, then the name and "(" with a "{" before the
# next ";" (a function), or "[" / "=" (a table or variable, e.g. arm_nntables.c's sigmoid_table_uint16).
_DEF = re.compile(r"^(?!extern\b|static\b|typedef\b|return\b|else\b)[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*([(\[=])",
                  re.M)
CMSIS_NN_DIR = "src/third_party/cmsis_nn/Source/"
# The TFLM entry points every firmware references (templates/common/fwt_runtime.*); the tree files a build's
# templates #include are added to them (:func:`template_roots`).
RUNTIME_ROOTS = ("src/tensorflow/lite/micro/micro_interpreter.h", "src/tensorflow/lite/micro/system_setup.h",
                 "src/tensorflow/lite/schema/schema_generated.h", "src/tensorflow/lite/micro/micro_op_resolver.h")
# Included by the firmware for the resolver class only; the kernels it declares come from the kernel files.
NOT_FOLLOWED = ("src/tensorflow/lite/micro/micro_mutable_op_resolver.h",
                "src/tensorflow/lite/micro/kernels/micro_ops.h")
VERSION = 2  # bump when the closure rules change (cached results are keyed by it)


def _read(root: str, rel: str) -> str:
    try:
        return (Path(root) / rel).read_text(errors="replace")
    except OSError:
        return ""


@lru_cache(maxsize=4096)
def _includes(root: str, rel: str, include_dirs: tuple[str, ...]) -> tuple[str, ...]:
    """The tree files ``rel`` #includes, resolved like the compiler (own folder, then the include path)."""
    here = Path(rel).parent
    found = []
    for inc in _INCLUDE.findall(_read(root, rel)):
        for base in (here, *map(Path, include_dirs)):
            cand = (base / inc).as_posix()
            if (Path(root) / cand).is_file():
                found.append(cand)
                break
    return tuple(found)


def _implementers(library: tuple[str, ...]) -> dict[str, list[str]]:
    """{folder/stem-prefix: sources} for the C++ library sources (outside CMSIS-NN)."""
    table: dict[str, list[str]] = {}
    for src in library:
        if src.startswith(CMSIS_NN_DIR):
            continue
        p = Path(src)
        parts = p.stem.split("_")
        for i in range(1, len(parts) + 1):
            table.setdefault(f"{p.parent.as_posix()}/{'_'.join(parts[:i])}", []).append(src)
    return table


def _cmsis_definitions(root: str, library: tuple[str, ...]) -> dict[str, str]:
    """{CMSIS-NN function or table name: the library source that defines it}."""
    defs: dict[str, str] = {}
    for src in library:
        if not src.startswith(CMSIS_NN_DIR):
            continue
        text = _read(root, src)
        defs.setdefault(Path(src).stem, src)
        for m in _DEF.finditer(text):
            if m.group(2) == "(":
                rest = text[m.end():]
                brace, semi = rest.find("{"), rest.find(";")
                if brace < 0 or (0 <= semi < brace):
                    continue  # a declaration
            defs.setdefault(m.group(1), src)
    return defs


def closure(root: str, library: tuple[str, ...], roots: tuple[str, ...],
            include_dirs: tuple[str, ...]) -> list[str]:
    """The library sources (subset of ``library``, tree-relative) that ``roots`` need, in library order."""
    implementers = _implementers(library)
    defs = _cmsis_definitions(root, library)
    selected: set[str] = set()
    seen: set[str] = set()
    names_seen: set[str] = set()
    todo = list(roots)
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        if rel.startswith(CMSIS_NN_DIR) or rel.endswith((".c", ".cc", ".cpp")):
            for name in set(_NAME.findall(_read(root, rel))) - names_seen:
                names_seen.add(name)
                src = defs.get(name)
                if src and src not in seen:
                    selected.add(src)
                    todo.append(src)
        if rel.endswith((".h", ".hpp")) and not rel.startswith("src/third_party/cmsis_nn/"):
            for src in implementers.get(f"{Path(rel).parent.as_posix()}/{Path(rel).stem}", []):
                if src not in seen:
                    selected.add(src)
                    todo.append(src)
        if rel in NOT_FOLLOWED:
            continue
        todo.extend(inc for inc in _includes(root, rel, include_dirs) if inc not in seen)
    return [s for s in library if s in selected]


def template_roots(folders: list[Path], root: Path) -> tuple[str, ...]:
    """The tree headers (``src/…``) that the ``*.j2`` templates in ``folders`` #include: what the firmware's own
    sources reference besides the kernels."""
    found = set()
    for folder in folders:
        for t in sorted(Path(folder).glob("*.j2")) if Path(folder).is_dir() else []:
            for inc in _INCLUDE.findall(t.read_text(errors="replace")):
                if (Path(root) / "src" / inc).is_file():
                    found.add(f"src/{inc}")
    return tuple(sorted(found))


def needed_sources(root: Path, library: tuple[str, ...], kernels: list[str], include_dirs: list[str],
                   revision: str, extra_roots: tuple[str, ...] = ()) -> list[str]:
    """:func:`closure` for ``kernels`` + the runtime roots + ``extra_roots`` (:func:`template_roots`), cached per
    tree ``revision``, kernel set and roots."""
    if not all((Path(root) / r).is_file() for r in RUNTIME_ROOTS):  # not a TFLM tree fwtool knows: compile all
        return list(library)
    roots = tuple(sorted(set(kernels))) + tuple(sorted(set(RUNTIME_ROOTS) | set(extra_roots)))
    key = hashlib.sha256(json.dumps([VERSION, revision, str(root), list(roots), list(library),
                                     list(include_dirs)]).encode()).hexdigest()[:32]
    path = cache_dir() / "tflm_sources" / f"{key}.json"
    cached = read_json(path)
    if isinstance(cached, list) and all(isinstance(s, str) and s in library for s in cached):
        return cached
    result = closure(str(root), tuple(library), roots, tuple(include_dirs))
    write_json(path, result)
    return result
