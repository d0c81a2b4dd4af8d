"""Stream a clip to an audio app and collect what it answers: the device side of ``fwtool run --audio``,
``fwtool emulate --audio`` and ``fwtool validate --app ... --audio`` (any app that speaks the FWT:AUDIO / FEAT /
AINF / DETECT lines of fwtool/core/protocol.py: the spectrogram classifier, kws).

``capture(port, pcm, fe, features=True)`` streams with :func:`fwtool.audio.stream.stream_wav`, then keeps reading
until the device has printed every inference the clip makes (``expected_counts``) or goes quiet.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fwtool.core import protocol
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.lines import PortLines

from . import params
from .framing import START_HOST, START_HOST_FEATURES
from .stream import StreamResult, stream_wav

QUIET_S = 0.5  # once every inference is in: the lines that follow it (FWT:DETECT) come within this


@dataclass
class AudioCapture:
    """What an audio app printed for one streamed clip."""

    banner: protocol.AudioBanner | None = None
    rows: dict[int, list[int]] = field(default_factory=dict)  # FWT:FEAT n -> values
    inferences: list[protocol.AudioInference] = field(default_factory=list)
    detections: list[protocol.Detection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # FWT:ERROR lines
    lines: list[str] = field(default_factory=list)
    stream: StreamResult | None = None
    complete: bool = False  # every expected inference (and row) arrived

    def add(self, line: str) -> None:
        self.lines.append(line)
        rec = protocol.parse_audio_line(line)
        if isinstance(rec, protocol.AudioBanner):
            self.banner = rec
        elif isinstance(rec, protocol.FeatureRow):
            self.rows[rec.n] = rec.q
        elif isinstance(rec, protocol.AudioInference):
            self.inferences.append(rec)
        elif isinstance(rec, protocol.Detection):
            self.detections.append(rec)
        elif rec is None and "FWT:ERROR" in line:
            self.errors.append(line[line.index("FWT:ERROR"):])

    def feature_rows(self, count: int, bins: int) -> np.ndarray:
        """int8 [count, bins] from rows 0..count-1 (a missing row is all zeros and listed by ``missing_rows``)."""
        out = np.zeros((count, bins), np.int8)
        for n, q in self.rows.items():
            if 0 <= n < count and len(q) == bins:
                out[n] = q
        return out

    def missing_rows(self, count: int, bins: int) -> list[int]:
        return [n for n in range(count) if len(self.rows.get(n, ())) != bins]


def expected_counts(n_samples: int, fe: params.FrontEnd) -> tuple[int, int]:
    """(frames, inferences) an audio app computes for a stream of n samples (history zeroed at start)."""
    frames = n_samples // fe.hop
    infs = sum(1 for e in range(fe.columns_per_inference, frames + 1, fe.columns_per_inference) if e >= fe.frames)
    return frames, infs


def capture(port, pcm: np.ndarray, fe: params.FrontEnd, *, features: bool = False, realtime: bool = False,
            on_line: Callable[[str], None] | None = None, start_timeout: float = 30.0, ack_timeout: float = 60.0,
            settle_s: float = 60.0, resend_s: float = 0.3) -> AudioCapture:
    """Stream ``pcm`` (int16, fe.sample_rate) to the app on ``port`` and collect its lines until it has printed
    every inference (and, with ``features``, every row) the clip makes, or nothing came for ``settle_s``.
    ``resend_s``: go-back-N resend after that long without an ack (a lossless link such as the virtual board's
    socket wants a long one: resending to a slow device only slows it further)."""
    cap = AudioCapture()

    def line(text: str) -> None:
        cap.add(text)
        if on_line:
            on_line(text)

    frames, infs = expected_counts(len(pcm), fe)
    cap.stream = stream_wav(port, pcm, fe.sample_rate, realtime=realtime, on_line=line, start_timeout=start_timeout,
                            ack_timeout=ack_timeout, resend_s=resend_s,
                            start=START_HOST_FEATURES if features else START_HOST)
    if cap.banner is None:
        cap.banner = cap.stream.banner

    def done() -> bool:
        return len(cap.inferences) >= infs and (not features or len(cap.rows) >= frames)

    reader = PortLines(port)
    last = time.monotonic()
    while not cap.errors:
        pieces = reader.poll()
        now = time.monotonic()
        if pieces:
            last = now
            for piece in pieces:
                if not isinstance(protocol.parse_audio_line(piece.text), protocol.Ack):
                    line(piece.text)
        elif now - last > (QUIET_S if done() else settle_s):
            break  # done and then quiet (a FWT:DETECT follows its FWT:AINF), or nothing for settle_s
    cap.complete = done()
    return cap


def require_complete(cap: AudioCapture, fe: params.FrontEnd, n_samples: int, what: str) -> None:
    """Raise (exit 7) when the device stopped before printing every inference of the clip."""
    frames, infs = expected_counts(n_samples, fe)
    if cap.errors:
        raise FwtoolError(f"{what}: the firmware reported {cap.errors[0]}", "see the lines above; rebuild the app",
                          Exit.FAILED)
    if not cap.complete:
        raise FwtoolError(f"{what}: the device printed {len(cap.inferences)} of {infs} inferences "
                          f"({len(cap.rows)} of {frames} feature rows) and then went quiet",
                          "check that the firmware is the audio app built for this model; re-run", Exit.TIMEOUT)
