"""The code reserve of the fit check, measured by real builds: flash that is not the model or its embedded inputs.

After every successful build, :func:`record` stores the linked image's non-model flash (the ELF's stored bytes,
``elfsize.Sizes.flash``, minus the model, the embedded input vectors and a preprocessor model) under a key made of
what decides the code: family, board, app, the kernel files compiled (the op set), stdio, TFLM cores, the pinned
revisions of the vendor trees and the fwtool version. The fit check before compiling (fit.py) then uses that
figure plus :data:`MARGIN_BYTES` instead of the family's default (an upper bound), via :func:`reserve_for`.

One JSON file in the user cache (``<cache>/code_size.json``), written atomically; every entry is validated on
read and a corrupt or implausible one (not an int, negative, below :data:`MIN_BYTES`, above :data:`MAX_BYTES`, a
key that does not match its fields) is ignored, so the family default applies. A cache that is wrong anyway cannot
produce a broken image: the linked size is checked again (flow.check_linked_size) and a linker overflow is
reported as "does not fit" too.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fwtool import __version__
from fwtool.core import vendor
from fwtool.core import locks
from fwtool.core.errors import FwtoolError
from fwtool.core.files import read_json, write_json
from fwtool.core.paths import cache_dir
from fwtool.model.tflite import resolver_calls

CACHE_NAME = "code_size.json"
MARGIN_BYTES = 4 * 1024  # over the measured code: labels/strings and alignment that differ between models
MIN_BYTES = 16 * 1024  # no TFLM firmware is smaller: a smaller entry is poisoned
MAX_BYTES = 16 << 20  # no supported board has more flash
MAX_ENTRIES = 256
VERSION = 1


def cache_file() -> Path:
    return cache_dir() / CACHE_NAME


def key_fields(family: str, board: str, app: str, kernel_files: list[str], stdio: str, tflm_cores: int,
               vendor_names: list[str]) -> dict:
    """What decides the non-model code of an image (the pinned revisions of the trees it is compiled from)."""
    pinned = vendor.manifest()
    revs = {n: pinned[n].rev for n in sorted(set(vendor_names)) if n in pinned}
    return {"family": family, "board": board, "app": app, "kernels": sorted(kernel_files), "stdio": stdio,
            "tflm_cores": int(tflm_cores), "revisions": revs, "fwtool": __version__}


def key_of(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def _plausible(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_BYTES <= value <= MAX_BYTES


def _load(path: Path) -> dict[str, dict]:
    """The valid entries of the cache file ({} when missing, unreadable or corrupt; bad entries dropped)."""
    data = read_json(path)
    entries = data.get("entries") if isinstance(data, dict) and data.get("version") == VERSION else None
    if not isinstance(entries, dict):
        return {}
    good = {}
    for k, e in entries.items():
        if (isinstance(e, dict) and _plausible(e.get("bytes")) and isinstance(e.get("fields"), dict)
                and key_of(e["fields"]) == k):
            good[k] = e
    return good


def lookup(fields: dict, path: Path | None = None) -> int | None:
    """The measured non-model flash for ``fields``, or None (no valid entry)."""
    entry = _load(path or cache_file()).get(key_of(fields))
    return entry["bytes"] if entry else None


def record(fields: dict, measured: int, path: Path | None = None) -> bool:
    """Store ``measured`` bytes for ``fields``; False (nothing written) when implausible or the cache is unwritable."""
    if not _plausible(measured):
        return False
    path = path or cache_file()
    try:  # read-modify-write of one shared file: locked, so two builds never drop each other's entry
        with locks.hold(locks.sibling_lock(path), "the code-size cache", wait=True):
            entries = _load(path)
            entries[key_of(fields)] = {"bytes": int(measured), "fields": fields}
            keep = dict(list(entries.items())[-MAX_ENTRIES:])
            return write_json(path, {"version": VERSION, "entries": keep}, indent=1)
    except FwtoolError:  # the cache folder is not writable: a cache only costs time
        return False


def plan_fields(board, family, app, kernel_files: list[str], stdio: str, tflm_cores: int) -> dict:
    """:func:`key_fields` for a build of ``app`` on ``board`` (the family's and the app's vendor trees)."""
    names = [d.name for d in vendor.deps_for(family.name, "build")] + list(app.vendor)
    return key_fields(family.name, board.name, app.name, kernel_files, stdio, tflm_cores, names)


def reserve_for(fields: dict, default: int, path: Path | None = None) -> tuple[int, str]:
    """(code reserve, where it came from) for the fit check: measured + margin when cached, else ``default``."""
    measured = lookup(fields, path)
    if measured is None:
        return default, "family default"
    return measured + MARGIN_BYTES, f"measured {measured:,} B + {MARGIN_BYTES:,} B margin"


def non_model_flash(linked_flash: int, model_bytes: int, embedded_bytes: int) -> int:
    """What a build measured for the cache: linked flash minus the model and everything embedded with it."""
    return linked_flash - model_bytes - embedded_bytes


def kernel_files(model, preprocessor=None) -> list[str]:
    """The kernel files a build of ``model`` (and an app's preprocessor model) compiles."""
    pre = preprocessor.ops if preprocessor else []
    return sorted({op["kernel"] for op in [*resolver_calls(model), *pre]})
