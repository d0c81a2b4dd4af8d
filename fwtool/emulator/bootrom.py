"""The RP2040 B1 bootrom for the virtual board, parsed from the pinned rp2040js repository's ``demo/bootrom.ts``.

The npm package ships no bootrom, and Node cannot import a .ts file, so fwtool reads the numbers itself:
``export const bootromB1 = new Uint32Array([0x20041f00, ...]);`` (4096 words = 16 KiB) becomes little-endian
bytes, cached as ``<cache>/emulator/bootrom-b1-<sha12 of the .ts>.bin``.
"""
from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

from fwtool.core import vendor
from fwtool.core.errors import FwtoolError, MissingTool
from fwtool.core.files import atomic_write
from fwtool.core.paths import cache_dir

WORDS = 4096  # 16 KiB
# The B1 bootrom's first two vector-table words: initial SP (top of SRAM minus the bootrom's stack) and reset.
_ARRAY = re.compile(r"\bbootromB1\s*=\s*new\s+Uint32Array\s*\(\s*\[(.*?)\]\s*\)", re.S)
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]+|\d+)$")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


class BootromError(FwtoolError):
    pass


def parse_bootrom_ts(text: str, source: str = "bootrom.ts") -> bytes:
    """The bootrom image (16,384 bytes) from the text of rp2040js's ``demo/bootrom.ts``."""
    fix = "re-sync it with 'fwtool vendor sync rp2040js --force', or unset FWTOOL_RP2040JS_PATH"
    m = _ARRAY.search(_COMMENTS.sub("", text))
    if not m:
        raise BootromError(f"{source} has no 'bootromB1 = new Uint32Array([...])' array", fix)
    items = [x.strip() for x in m.group(1).split(",")]
    if items and items[-1] == "":
        items.pop()  # trailing comma
    words = []
    for item in items:
        if not _NUMBER.match(item):
            raise BootromError(f"{source}: '{item[:20]}' in the bootrom array is not a number", fix)
        value = int(item, 0)
        if value > 0xFFFFFFFF:
            raise BootromError(f"{source}: {item} does not fit in 32 bits", fix)
        words.append(value)
    if len(words) != WORDS:
        raise BootromError(f"{source} holds {len(words)} bootrom words, expected {WORDS} (16 KiB)", fix)
    if not 0x20000000 <= words[0] <= 0x20042000 or words[1] >= 0x4000:
        raise BootromError(f"{source} does not start with an RP2040 vector table "
                           f"(SP 0x{words[0]:08x}, reset 0x{words[1]:08x})", fix)
    return struct.pack(f"<{WORDS}I", *words)


def bootrom_ts_path() -> Path:
    """``demo/bootrom.ts`` in the rp2040js tree (cache, FWTOOL_RP2040JS_PATH or the config file)."""
    root = vendor.require(vendor.manifest()["rp2040js"])
    path = root / "demo" / "bootrom.ts"
    if not path.is_file():
        raise MissingTool(f"{root} has no demo/bootrom.ts (the RP2040 bootrom the virtual board needs)",
                           "point FWTOOL_RP2040JS_PATH at a full rp2040js checkout, or run 'fwtool vendor sync rp2040js'")
    return path


def bootrom_file(ts_path: Path | None = None) -> Path:
    """A cached binary copy of the bootrom (parsed once per distinct bootrom.ts)."""
    ts_path = ts_path or bootrom_ts_path()
    text = ts_path.read_text(errors="replace")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    out = cache_dir() / "emulator" / f"bootrom-b1-{digest}.bin"
    data = parse_bootrom_ts(text, str(ts_path))  # ~30 ms: the cached copy is checked against it, never trusted
    try:
        if out.is_file() and out.read_bytes() == data:
            return out
    except OSError:
        pass
    atomic_write(out, data)  # a damaged or half-written copy is replaced whole
    return out
