"""Validate the image ``fwtool build`` makes: its inference app takes the input vectors over its console, one at a
time (fwtool/core/protocol_vectors.py), so no validation build with embedded vectors is needed.

The session: start the image on the target (the virtual board served on a socket, or a flashed board's port),
read its FWT:BOOT banner, then per vector ``FWT:VEC`` -> ``FWT:READY`` (the image's own input size) -> the raw
bytes -> ``FWT:GOT`` (its FNV-1a of what arrived, checked here) -> one ``FWT:OUT`` per output tensor.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from fwtool.core import protocol
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.protocol_vectors import fnv1a32, vec_command
from fwtool.targets.base import Target
from fwtool.validate.compare import DeviceRun
from fwtool.validate.vectors import as_bytes, vectors_sha


BANNER_WAIT_S = 30.0  # wall seconds for the FWT:BOOT banner after the image starts (the virtual board: ~2 s)
RUNNING_BANNER_WAIT_S = 3.0  # a board validate did not flash (--no-flash) printed its banner long ago, if at all


def supports(target: Target | type[Target]) -> bool:
    """Targets a running image can be fed on (``"bytes"`` in TargetInfo.feeds) and that keep a serial stream."""
    return "bytes" in target.info.feeds and target.info.serves


def _start(tgt: Target, image) -> None:
    if tgt.info.virtual:
        tgt.serve(image)  # served on a socket; it starts when validate attaches
    else:
        tgt.load(image)  # a board: flashed (unless --no-flash), then its port opened
        tgt.start()


def _expect(tgt: Target, prefix: str, count: int, deadline: float, lines: list[str], on_line, what: str) -> list:
    got = tgt.read(prefix, count, max(0.1, deadline - time.monotonic()), on_line)
    lines.extend(got)
    errors = [r for r in map(protocol.parse_line, got) if isinstance(r, (protocol.FirmwareError,
                                                                        protocol.FirmwareFault))]
    if errors:
        raise FwtoolError(f"the firmware reported: {errors[-1].text}", "fix that, then re-run validate", Exit.FAILED)
    recs = [r for r in map(protocol.parse_line, got) if r is not None]
    if sum(1 for ln in got if ln.startswith(prefix)) < count:
        raise FwtoolError(f"the image did not answer in time ({what}; no {prefix} line)",
                          "raise --timeout; check that the image is fwtool's inference app ('fwtool monitor')",
                          Exit.TIMEOUT)
    return recs


def run(tgt: Target, image, vectors, n_outputs: int, timeout: float,
        on_line: Callable[[str], None] = lambda s: None,
        on_step: Callable[[str], None] = lambda s: None) -> tuple[DeviceRun, list[str], dict]:
    """Run every vector on ``image`` over the console; the outputs, every line read and the target's details."""
    data = as_bytes(vectors)
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    tgt.on_step = on_step
    _start(tgt, image)
    outputs, us = [], []
    try:
        # the banner names the model it runs; a UART board printed it at boot, before the port was opened: then
        # go on without it (validate refuses a board it did not flash and cannot identify)
        wait = BANNER_WAIT_S if tgt.info.virtual or getattr(tgt.config, "flash", True) else RUNNING_BANNER_WAIT_S
        got = tgt.read(protocol.PREFIX_BANNER, 1, min(wait, max(0.1, deadline - time.monotonic())), on_line)
        lines.extend(got)
        banners = [r for r in map(protocol.parse_line, got) if isinstance(r, protocol.Banner)]
        banner = dict(banners[-1].fields) if banners else {}
        for v, vec in enumerate(data):
            on_step(f"vector {v + 1}/{len(data)}")
            tgt.feed(vec_command(v, len(vec)))
            ready = [r for r in _expect(tgt, protocol.PREFIX_READY, 1, deadline, lines, on_line, f"vector {v}")
                     if isinstance(r, protocol.VectorReply)][-1]
            if not banner.get("sha256") and ready.sha256:  # no banner seen: the reply names the model
                banner.update(sha256=ready.sha256, source="FWT:READY")
            if ready.n != len(vec):
                raise FwtoolError(f"the image takes {ready.n} input bytes per inference, a vector of this model has "
                                  f"{len(vec)}", "validate the model the image was built from", Exit.MISMATCH)
            tgt.feed(vec)
            got = [r for r in _expect(tgt, protocol.PREFIX_GOT, 1, deadline, lines, on_line, f"vector {v}")
                   if isinstance(r, protocol.VectorReply)][-1]
            if got.v != v or got.n != len(vec) or got.fnv != fnv1a32(vec):
                raise FwtoolError(f"vector {v}: the image received {got.n} of {len(vec)} bytes (checksum "
                                  f"{got.fnv} != {fnv1a32(vec)})", "the serial link lost data; re-run", Exit.FAILED)
            outs = {r.t: r for r in _expect(tgt, protocol.PREFIX_OUT, n_outputs, deadline, lines, on_line,
                                            f"vector {v}'s outputs") if isinstance(r, protocol.Output) and r.v == v}
            if sorted(outs) != list(range(n_outputs)):
                raise FwtoolError(f"vector {v}: the image printed outputs {sorted(outs)} of {n_outputs}",
                                  "the serial link lost data; re-run", Exit.FAILED)
            outputs.append([np.asarray(outs[t].q, dtype=np.int64) for t in range(n_outputs)])
            us.append(outs[0].us)
    finally:
        tgt.stop()
    err = tgt.end_error()
    if err is not None:
        raise err
    return DeviceRun(outputs, us, banner, vectors_sha(vectors)), lines, tgt.details()
