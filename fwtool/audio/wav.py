"""16 kHz mono 16-bit PCM WAV in and out: the only audio the audio apps take.

Reading uses the stdlib ``wave`` module plus a small RIFF header peek, so a refused file is described exactly
("clip.wav is 44100 Hz stereo 16-bit") and the fix is a ready-to-run sox/ffmpeg command. A 16-bit PCM file
written as WAVE_FORMAT_EXTENSIBLE (which ``wave`` in Python < 3.12 refuses) is read through the same header peek.
"""
from __future__ import annotations

import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fwtool.core.errors import BadInput

SAMPLE_RATE = 16000
MAX_SECONDS = 600  # refuse larger files before reading them (10 min = 19.2 MB of samples)

_TAG_PCM = 1
_TAG_FLOAT = 3
_TAG_ALAW = 6
_TAG_MULAW = 7
_TAG_EXTENSIBLE = 0xFFFE
_TAG_NAMES = {_TAG_PCM: "PCM", 2: "ADPCM", _TAG_FLOAT: "float", _TAG_ALAW: "A-law", _TAG_MULAW: "mu-law",
              0x11: "IMA ADPCM", 0x55: "MP3"}
_WANT = "the audio apps take 16 kHz mono 16-bit PCM"


@dataclass(frozen=True)
class WavInfo:
    """What a RIFF/WAVE header says (before any sample is read)."""

    format_tag: int  # 1 PCM, 3 float, ...; for WAVE_FORMAT_EXTENSIBLE the sub-format's tag
    extensible: bool
    channels: int
    sample_rate: int
    bits: int
    data_offset: int | None  # byte offset of the data chunk's payload
    data_size: int | None  # declared payload size in bytes

    def describe(self) -> str:
        chans = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels}-channel")
        rate = f"{self.sample_rate} Hz"
        if self.format_tag == _TAG_PCM:
            kind = f"{self.bits}-bit"
        elif self.format_tag == _TAG_FLOAT:
            kind = f"{self.bits}-bit float"
        else:
            kind = f"{_TAG_NAMES.get(self.format_tag, f'format tag {self.format_tag}')} {self.bits}-bit"
        return f"{rate} {chans} {kind}"


def fix_command(path: str | os.PathLike) -> str:
    """The conversion command to print as the fix for an unsupported WAV."""
    p = Path(path)
    out = p.with_name(p.stem + "_16k.wav")
    return (f"convert it: sox '{p}' -r 16000 -c 1 -b 16 -e signed-integer '{out}'"
            f"   (or: ffmpeg -i '{p}' -ar 16000 -ac 1 -c:a pcm_s16le '{out}')")


def _refuse(path, what: str) -> BadInput:
    return BadInput(f"{Path(path).name} {what}; {_WANT}", fix_command(path))


def peek(path: str | os.PathLike) -> WavInfo:
    """Parse the RIFF/WAVE header chunks (fmt, data) without reading samples. Raises BadInput."""
    name = Path(path).name
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror or e}", "check the path and its permissions") from e
    with f:
        head = f.read(12)
        if size == 0:
            raise BadInput(f"{name} is empty (0 bytes); {_WANT}", "record or export the clip again")
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            kind = "an RF64 file" if head[:4] == b"RF64" else "not a WAV file (no RIFF/WAVE header)"
            raise BadInput(f"{name} is {kind}; {_WANT}", fix_command(path))
        fmt = None
        data_offset = data_size = None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            ck = f.read(8)
            if len(ck) < 8:
                break
            cid, clen = ck[:4], struct.unpack("<I", ck[4:])[0]
            if cid == b"fmt ":
                body = f.read(min(clen, 64))
                if len(body) < 16:
                    raise BadInput(f"{name} has a truncated fmt chunk (corrupt WAV); {_WANT}", fix_command(path))
                tag, ch, rate, _byterate, _align, bits = struct.unpack("<HHIIHH", body[:16])
                ext = tag == _TAG_EXTENSIBLE
                if ext:
                    if len(body) < 40:
                        raise BadInput(f"{name} has a truncated WAVE_FORMAT_EXTENSIBLE header; {_WANT}",
                                       fix_command(path))
                    tag = struct.unpack("<H", body[24:26])[0]  # first 2 bytes of the sub-format GUID
                fmt = (tag, ext, ch, rate, bits)
            elif cid == b"data":
                data_offset, data_size = pos + 8, clen
                break
            pos += 8 + clen + (clen & 1)
        if fmt is None:
            raise BadInput(f"{name} has no fmt chunk (corrupt or truncated WAV); {_WANT}", fix_command(path))
        return WavInfo(*fmt, data_offset=data_offset, data_size=data_size)


def read_wav(path: str | os.PathLike, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """The samples of a 16 kHz mono 16-bit PCM WAV as int16 (= q15). Anything else raises BadInput(cause, fix)."""
    name = Path(path).name
    info = peek(path)
    if (info.format_tag, info.channels, info.sample_rate, info.bits) != (_TAG_PCM, 1, SAMPLE_RATE, 16):
        raise _refuse(path, f"is {info.describe()}" + (" (WAVE_FORMAT_EXTENSIBLE)" if info.extensible else ""))
    if info.data_offset is None:
        raise BadInput(f"{name} has no data chunk (corrupt or truncated WAV); {_WANT}", fix_command(path))
    file_size = os.path.getsize(path)
    limit = int(max_seconds * SAMPLE_RATE) * 2
    declared = info.data_size
    if declared in (0, 0xFFFFFFFF) and file_size > info.data_offset:  # streamed WAV: size never filled in
        declared = file_size - info.data_offset
    if declared > limit or file_size - info.data_offset > limit + 1024:
        secs = max(declared, file_size - info.data_offset) / 2 / SAMPLE_RATE
        raise BadInput(f"{name} holds {secs:.0f} s of audio; the limit is {max_seconds:.0f} s per file",
                       f"split it: sox '{path}' part.wav trim 0 {int(max_seconds)} : newfile : restart")
    if declared % 2:
        raise BadInput(f"{name}: data chunk of {declared} bytes is not a whole number of 16-bit samples "
                       "(corrupt WAV)", fix_command(path))
    available = file_size - info.data_offset
    if available < declared:
        raise BadInput(f"{name} is truncated: its data chunk declares {declared // 2} samples but the file holds "
                       f"{max(available, 0) // 2} (corrupt or partly copied WAV)",
                       "copy or export the file again; to keep what is there: " + fix_command(path).split(": ", 1)[1])
    if info.extensible or info.data_size in (0, 0xFFFFFFFF):  # wave cannot read these
        with open(path, "rb") as f:
            f.seek(info.data_offset)
            raw = f.read(declared)
    else:
        try:
            with wave.open(str(path), "rb") as w:
                raw = w.readframes(declared // 2)
        except (wave.Error, EOFError, struct.error) as e:
            raise BadInput(f"{name} is not a readable WAV ({e}); {_WANT}", fix_command(path)) from e
    if len(raw) != declared:
        raise BadInput(f"{name} is truncated: {len(raw) // 2} of {declared // 2} samples readable",
                       "copy or export the file again")
    if declared == 0:
        raise BadInput(f"{name} holds no samples (empty data chunk)", "record or export the clip again")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def write_wav(path: str | os.PathLike, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write int16 samples as a mono 16-bit PCM WAV (what read_wav takes back). Refuses other dtypes."""
    a = np.asarray(pcm)
    if a.dtype != np.int16 or a.ndim != 1:
        raise BadInput(f"write_wav takes a 1-D int16 array, got {a.dtype} with shape {a.shape}",
                       "convert first: np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)")
    p = Path(path)
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(a.astype("<i2").tobytes())
    return p
