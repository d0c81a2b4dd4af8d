"""Input vectors sent to the inference app over its console: how ``fwtool validate`` runs the very image
``fwtool build`` makes (no separate validation build). Part of fwtool/core/protocol.py's line set.

Between inferences the inference app reads its console (USB CDC or UART). The host asks for one vector at a time::

    host:   FWT:VEC v=3 n=15996          then nothing until the device is ready
    device: FWT:READY v=3 n=15996 sha256=4d5f2cd1842e    n = the bytes of every input tensor back to back (the
                                         image's own figure); sha256 = the model it runs (as in its FWT:BOOT banner)
    host:   <n raw bytes>                only when the two n agree
    device: FWT:GOT v=3 n=15996 fnv=3056271601
    device: FWT:OUT v=3 t=0 us=22101 q=-128      one per output tensor (the validate app's line)

``fnv`` is the 32-bit FNV-1a of the bytes the device received (the host compares it with its own); ``n`` in
FWT:GOT is how many arrived (fewer: the device gave up waiting). After a vector the device listens for the next
one before resuming its free-running loop, so a validation session runs its vectors back to back. A host that
never sends FWT:VEC sees the inference app unchanged (FWT:INFER lines). READY names the model because a board
that was not reset for this session (``validate --no-flash``) printed its banner long ago.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX_VEC = "FWT:VEC"
PREFIX_READY = "FWT:READY"
PREFIX_GOT = "FWT:GOT"
VEC_FIELDS = [("v", "%lu"), ("n", "%lu")]
READY_FIELDS = VEC_FIELDS + [("sha256", "%s")]
GOT_FIELDS = [("v", "%lu"), ("n", "%lu"), ("fnv", "%lu")]  # fnv in decimal (the firmware's integer-only printf)
_PAIR = re.compile(r"(\w+)=(\S*)")


def _fmt(prefix: str, fields) -> str:
    return prefix + "".join(f" {n}={c}" for n, c in fields)


def vectors_c_formats() -> dict:
    """printf formats of the device's replies, and the command prefix it looks for."""
    return {"vec_prefix": PREFIX_VEC + " ", "ready": _fmt(PREFIX_READY, READY_FIELDS), "got": _fmt(PREFIX_GOT, GOT_FIELDS)}


def vec_command(v: int, n: int) -> bytes:
    """The host's request for vector ``v`` of ``n`` bytes."""
    return f"{PREFIX_VEC} v={int(v)} n={int(n)}\n".encode()


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


@dataclass
class VectorReply:
    """FWT:READY (``fnv`` None) or FWT:GOT from the device."""

    kind: str  # "ready" | "got"
    v: int
    n: int
    fnv: int | None = None
    raw: str = ""
    sha256: str | None = None  # READY: the model the image runs (its banner's sha256 prefix)

    def to_dict(self) -> dict:
        return {"type": f"vector_{self.kind}", "v": self.v, "n": self.n, "fnv": self.fnv, "sha256": self.sha256}


def parse_vectors_line(line: str) -> VectorReply | None:
    """Parse one FWT:READY / FWT:GOT line; None for anything else or a malformed record."""
    line = line.strip()
    for prefix, kind in ((PREFIX_READY, "ready"), (PREFIX_GOT, "got")):
        i = line.find(prefix + " ")
        if i < 0:
            continue
        p = dict(_PAIR.findall(line[i + len(prefix):]))
        try:
            fnv = int(p["fnv"]) if kind == "got" else None
            return VectorReply(kind, int(p["v"]), int(p["n"]), fnv, raw=line, sha256=p.get("sha256") or None)
        except (KeyError, ValueError):
            return None
    return None
