"""``fwtool record`` host side: 16 kHz 16-bit PCM from the recorder app over the serial link, into labelled WAVs.

Protocol (recorder app, version 1):

1. Host: ``FWRS`` (start a session). Device: ``FWT:REC rate=16000 bits=16 chunk=<samples per frame>``.
2. Device: binary frames ``FWR`` + u32 seq + u16 count + count x int16 LE + crc16 (CRC-16/CCITT-FALSE over
   seq..samples). ``seq`` is the stream position of the frame's first sample, counting every sample the microphone
   produced since the session started, including any the device had to drop (buffer overrun) - so a gap in seq is
   exactly the number of samples lost, on the device or on the link. Text lines may come between frames.
3. Host: ``FWRX`` (stop). The device stops after the frame it is sending.

The samples are exactly what the audio apps' front ends see (same PDM library, filter and gain).
"""
from __future__ import annotations

import io
import math
import re
import time
import wave
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.core import protocol
from fwtool.core.errors import BadInput, Exit, FwtoolError
from fwtool.core.files import atomic_write
from fwtool.core.lines import read_available

from .framing import REC_START, REC_STOP, SplitReader

SAMPLE_RATE = 16000
METER_S = 0.1  # level meter update period
READ_LIMIT = 2048  # bytes per read at most (64 ms of 16 kHz audio), so the level meter keeps moving
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass
class Clip:
    pcm: np.ndarray
    dropped: int  # samples missing (sequence gaps), filled with zeros in pcm
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (stream position, samples missing)
    bad_frames: int = 0  # frames with a bad CRC (their samples show up as gaps)
    peak_dbfs: float = -math.inf


def level_dbfs(pcm: np.ndarray) -> tuple[float, float]:
    """(RMS, peak) in dBFS of int16 samples (-inf for silence)."""
    if len(pcm) == 0:
        return -math.inf, -math.inf
    x = pcm.astype(np.float64) / 32768.0
    rms, peak = math.sqrt(float(np.mean(x * x))), float(np.max(np.abs(x)))
    return (20 * math.log10(rms) if rms > 0 else -math.inf), (20 * math.log10(peak) if peak > 0 else -math.inf)


def meter_text(rms_db: float, peak_db: float, width: int = 30) -> str:
    """A plain-text level meter, -60..0 dBFS: ``[#########       ] -23.1 dBFS (peak -12.0)``."""
    frac = 0.0 if rms_db == -math.inf else min(max((rms_db + 60) / 60, 0.0), 1.0)
    n = int(round(frac * width))
    clip = " CLIP" if peak_db >= -0.1 else ""
    def fmt(v: float) -> str:
        return "-inf" if v == -math.inf else f"{v:5.1f}"
    return f"[{'#' * n}{' ' * (width - n)}] {fmt(rms_db)} dBFS (peak {fmt(peak_db)}){clip}"


def clip_name(label: str, when: datetime | None = None) -> str:
    """``<label>_<UTC timestamp>.wav``, e.g. ``yes_20260821T101502.123Z.wav``."""
    t = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{label}_{t.strftime('%Y%m%dT%H%M%S')}.{t.microsecond // 1000:03d}Z.wav"


def check_label(label: str) -> str:
    if not _LABEL.fullmatch(label or ""):
        raise BadInput(f"label '{label}' is not a plain name (letters, digits, _ and -, up to 64)",
                       "use e.g. --label yes, --label fire_alarm, --label background-noise")
    return label


def out_path(out_dir: Path, label: str, when: datetime | None = None) -> Path:
    """Where a clip goes: inside out_dir, always (a name that resolves elsewhere is refused)."""
    base = Path(out_dir).resolve()
    p = (base / clip_name(check_label(label), when)).resolve()
    if p.parent != base:
        raise BadInput(f"clip path {p} is outside the output folder {base}", "use a plain --label")
    return p


def wav_bytes(pcm: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()


def save_clip(out_dir: Path, label: str, pcm: np.ndarray, when: datetime | None = None,
              rate: int = SAMPLE_RATE) -> Path:
    """Write one clip atomically as ``<out_dir>/<label>_<UTC timestamp>.wav`` (never overwrites: ms suffix)."""
    p = out_path(out_dir, label, when)
    k = 1
    while p.exists():
        p = p.with_name(f"{p.stem}-{k}.wav")
        k += 1
    atomic_write(p, wav_bytes(pcm, rate))
    return p


def _timeout(cause: str) -> FwtoolError:
    return FwtoolError(cause, "flash the recorder app (it prints 'FWT:REC' when asked to record) and check --port",
                       Exit.TIMEOUT)


def record_clip(port, seconds: float, on_meter: Callable[[float, float], None] | None = None,
                on_line: Callable[[str], None] | None = None, start_timeout: float = 5.0,
                frame_timeout: float = 2.0, clock: Callable[[], float] = time.monotonic) -> Clip:
    """One session of ``seconds`` of audio: start, collect frames (gaps zero-filled and counted), stop."""
    want = int(round(seconds * SAMPLE_RATE))
    if want <= 0:
        raise BadInput(f"--seconds {seconds} is not positive", "record e.g. --seconds 1")
    if hasattr(port, "timeout"):
        port.timeout = 0.02
    reader = SplitReader()
    pcm = np.zeros(want, dtype=np.int16)
    clip = Clip(pcm, 0)
    started = False
    pos = 0  # next expected stream position
    last_meter = 0
    port.write(REC_START)
    t0 = last = clock()
    while pos < want:
        items = reader.feed(read_available(port, READ_LIMIT))
        now = clock()
        for it in items:
            if isinstance(it, str):
                rec = protocol.parse_audio_line(it)
                if isinstance(rec, protocol.RecStart):
                    if (rec.rate, rec.bits) != (SAMPLE_RATE, 16):
                        raise BadInput(f"the recorder streams {rec.rate} Hz {rec.bits}-bit; fwtool record takes "
                                       "16 kHz 16-bit", "flash fwtool's recorder app (16 kHz, 16-bit)")
                    started = True
                elif on_line:
                    on_line(it)
                continue
            if not started:
                continue  # frames from before our start request
            seq, samples = it
            if seq < pos:
                continue  # duplicate or stale
            if seq > pos:
                clip.gaps.append((pos, seq - pos))
                pos = seq
            take = samples[: max(0, want - pos)]
            pcm[pos: pos + len(take)] = take
            pos += len(samples)
            last = now
        if on_meter and pos - last_meter >= METER_S * SAMPLE_RATE:
            on_meter(*level_dbfs(pcm[last_meter:min(pos, want)]))
            last_meter = min(pos, want)
        if not started and now - t0 > start_timeout:
            port.write(REC_STOP)
            raise _timeout(f"the board did not start recording within {start_timeout:g} s (no 'FWT:REC' line)")
        if started and now - last > frame_timeout:
            port.write(REC_STOP)
            raise _timeout(f"audio stopped after {pos / SAMPLE_RATE:.2f} s: no frame for {frame_timeout:g} s")
    port.write(REC_STOP)
    clip.dropped = sum(n for p, n in clip.gaps if p < want)
    clip.bad_frames = reader.bad_frames
    clip.peak_dbfs = level_dbfs(pcm)[1]
    return clip


def dropped_error(clip: Clip) -> FwtoolError:
    where = ", ".join(f"{n} at {p / SAMPLE_RATE:.3f} s" for p, n in clip.gaps[:3])
    more = f" and {len(clip.gaps) - 3} more gaps" if len(clip.gaps) > 3 else ""
    crc = f"; {clip.bad_frames} frames failed their CRC" if clip.bad_frames else ""
    return FwtoolError(f"{clip.dropped} samples were dropped ({where}{more}{crc}); the clip was not saved",
                       "close other programs using the USB port, use a direct USB port (no hub), or keep the clip "
                       "with its gaps zero-filled: --keep-dropped")
