"""fwtool.audio.wav: 16 kHz mono 16-bit PCM in, everything else refused with the cause and a sox/ffmpeg fix."""
import struct
import wave

import numpy as np
import pytest

from fwtool.audio import wav
from fwtool.core.errors import BadInput, Exit


def riff(tag=1, channels=1, rate=16000, bits=16, data=b"", declared=None, extensible_sub=None, fmt_len=None,
         extra_chunks=b""):
    """A RIFF/WAVE file built by hand (the wave module cannot write float or extensible headers)."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible_sub else tag, channels, rate, rate * align, align, bits)
    if extensible_sub:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", extensible_sub) + guid_tail
    if fmt_len is not None:
        fmt = fmt[:fmt_len]
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    body += b"data" + struct.pack("<I", len(data) if declared is None else declared) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_with_wave(path, rate=16000, channels=1, width=2, frames=1600):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01" * (frames * channels * width))
    return path


PCM = np.arange(-800, 800, dtype=np.int16) * 40

REFUSALS = [
    # name, builder(path) -> None, words the cause must contain
    ("float32.wav", lambda p: p.write_bytes(riff(tag=3, bits=32, data=np.zeros(1600, "<f4").tobytes())),
     ["16000 Hz mono 32-bit float"]),
    ("ext_float.wav", lambda p: p.write_bytes(riff(bits=32, extensible_sub=3, data=np.zeros(1600, "<f4").tobytes())),
     ["32-bit float", "EXTENSIBLE"]),
    ("cd.wav", lambda p: write_with_wave(p, rate=44100, channels=2), ["44100 Hz stereo 16-bit"]),
    ("stereo.wav", lambda p: write_with_wave(p, channels=2), ["16000 Hz stereo 16-bit"]),
    ("rate8k.wav", lambda p: write_with_wave(p, rate=8000), ["8000 Hz mono 16-bit"]),
    ("u8.wav", lambda p: write_with_wave(p, width=1), ["16000 Hz mono 8-bit"]),
    ("s24.wav", lambda p: write_with_wave(p, width=3), ["16000 Hz mono 24-bit"]),
    ("mulaw.wav", lambda p: p.write_bytes(riff(tag=7, bits=8, data=b"\x00" * 100)), ["mu-law"]),
    ("truncated.wav", lambda p: p.write_bytes(riff(data=PCM.tobytes(), declared=32000)), ["truncated", "16000"]),
    ("odd.wav", lambda p: p.write_bytes(riff(data=b"\x00" * 301)), ["not a whole number"]),
    ("nodata.wav", lambda p: p.write_bytes(riff(data=b"")[:-8]), ["no data chunk"]),
    ("emptydata.wav", lambda p: p.write_bytes(riff(data=b"")), ["no samples"]),
    ("shortfmt.wav", lambda p: p.write_bytes(riff(fmt_len=10)), ["truncated fmt"]),
    ("notes.wav", lambda p: p.write_text("hello, not audio\n" * 10), ["not a WAV file"]),
    ("song.mp3", lambda p: p.write_bytes(b"ID3\x04\x00" + b"\x00" * 200), ["not a WAV file"]),
    ("empty.wav", lambda p: p.write_bytes(b""), ["empty"]),
    ("header_only.wav", lambda p: p.write_bytes(b"RIFF"), ["not a WAV file"]),
]


@pytest.mark.parametrize("name,build,words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_file_and_give_a_fix(tmp_path, name, build, words):
    path = tmp_path / name
    build(path)
    with pytest.raises(BadInput) as ei:
        wav.read_wav(path)
    err = ei.value
    assert err.code == Exit.BAD_INPUT
    assert name in err.cause
    for w in words:
        assert w in err.cause, err.cause
    assert err.fix
    assert "\n" not in err.cause


@pytest.mark.parametrize("name", ["cd.wav", "float32.wav", "u8.wav"])
def test_format_refusals_give_the_exact_conversion_command(tmp_path, name):
    build = {r[0]: r[1] for r in REFUSALS}[name]
    build(tmp_path / name)
    with pytest.raises(BadInput) as ei:
        wav.read_wav(tmp_path / name)
    assert "16 kHz mono 16-bit PCM" in ei.value.cause
    assert "sox" in ei.value.fix and "-r 16000 -c 1 -b 16" in ei.value.fix
    assert "ffmpeg" in ei.value.fix and "-ar 16000 -ac 1 -c:a pcm_s16le" in ei.value.fix


def test_missing_file(tmp_path):
    with pytest.raises(BadInput) as ei:
        wav.read_wav(tmp_path / "nope.wav")
    assert "nope.wav" in ei.value.cause


def test_round_trip(tmp_path):
    p = wav.write_wav(tmp_path / "a.wav", PCM)
    back = wav.read_wav(p)
    assert back.dtype == np.int16 and np.array_equal(back, PCM)
    with wave.open(str(p)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)


def test_extremes_round_trip(tmp_path):
    x = np.array([-32768, -1, 0, 1, 32767] * 100, dtype=np.int16)
    assert np.array_equal(wav.read_wav(wav.write_wav(tmp_path / "x.wav", x)), x)


def test_extensible_pcm_16k_mono_16bit_is_accepted(tmp_path):
    p = tmp_path / "ext.wav"
    p.write_bytes(riff(extensible_sub=1, data=PCM.astype("<i2").tobytes()))
    assert np.array_equal(wav.read_wav(p), PCM)


def test_extra_chunks_before_data_are_skipped(tmp_path):
    p = tmp_path / "list.wav"
    p.write_bytes(riff(data=PCM.astype("<i2").tobytes(), extra_chunks=b"LIST" + struct.pack("<I", 5) + b"abcde\x00"))
    assert np.array_equal(wav.read_wav(p), PCM)


def test_streamed_wav_with_unset_size(tmp_path):
    p = tmp_path / "stream.wav"
    p.write_bytes(riff(data=PCM.astype("<i2").tobytes(), declared=0xFFFFFFFF))
    assert np.array_equal(wav.read_wav(p), PCM)


def test_size_bound_is_checked_before_reading(tmp_path):
    p = wav.write_wav(tmp_path / "long.wav", np.zeros(16000 * 3, np.int16))
    with pytest.raises(BadInput) as ei:
        wav.read_wav(p, max_seconds=2)
    assert "3 s" in ei.value.cause and "limit is 2 s" in ei.value.cause
    assert len(wav.read_wav(p, max_seconds=3)) == 48000


def test_huge_declared_size_refused_without_reading(tmp_path):
    p = tmp_path / "liar.wav"
    p.write_bytes(riff(data=PCM.tobytes(), declared=0x7FFFFFF0))
    with pytest.raises(BadInput) as ei:
        wav.read_wav(p)
    assert "limit" in ei.value.cause


def test_write_refuses_float(tmp_path):
    with pytest.raises(BadInput):
        wav.write_wav(tmp_path / "f.wav", np.zeros(10, np.float32))
