"""fwtool record host side (fwtool.audio.record, fwtool.commands.record) against a fake recorder app."""
import math
from datetime import datetime, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from fwtool.audio import framing, record, wav
from fwtool.commands import record as record_cmd
from fwtool.core import protocol
from fwtool.core.errors import BadInput, Exit, FwtoolError, NoDevice


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class FakeRecorder:
    """Streams `signal` as FWR frames of `chunk` samples after FWRS; drops frames listed in `drop` (by index),
    corrupts those in `corrupt`, interleaves a text line, and stops on FWRX."""

    def __init__(self, signal, chunk=256, drop=(), corrupt=(), silent=False, clock=None, per_read=2):
        self.signal, self.chunk, self.drop, self.corrupt = signal, chunk, set(drop), set(corrupt)
        self.silent, self.clock, self.per_read = silent, clock, per_read
        self.out = bytearray(b"boot text\r\n" + framing.rec_frame(999, np.zeros(4, np.int16)))  # stale
        self.on = False
        self.k = 0
        self.timeout = None
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data))
        if data == framing.REC_START and not self.silent:
            self.on, self.k = True, 0
            self.out += (protocol.c_formats()["rec"] % (16000, 16, self.chunk) + "\r\n").encode()
        elif data == framing.REC_STOP:
            self.on = False

    @property
    def in_waiting(self):
        return len(self.out)

    def read(self, n=1):
        if self.clock:
            self.clock.t += 0.01
        for _ in range(self.per_read):
            if self.on and self.k * self.chunk < len(self.signal):
                k = self.k
                frame = framing.rec_frame(k * self.chunk, self.signal[k * self.chunk:(k + 1) * self.chunk])
                if k in self.corrupt:
                    frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
                if k not in self.drop:
                    self.out += frame
                if k == 3:
                    self.out += b"FWT:INFO level ok\r\n"
                self.k += 1
        data, self.out = bytes(self.out[:max(n, 1)]), self.out[max(n, 1):]
        return data

    def close(self):
        pass


def sig(n, seed=0):
    return np.random.default_rng(seed).integers(-20000, 20000, n).astype(np.int16)


def test_clip_is_the_streamed_samples():
    x = sig(16000)
    lines, meters = [], []
    c = record.record_clip(FakeRecorder(x), 1.0, on_meter=lambda r, p: meters.append((r, p)),
                           on_line=lines.append)
    assert np.array_equal(c.pcm, x) and c.dropped == 0 and c.gaps == [] and c.bad_frames == 0
    assert "FWT:INFO level ok" in lines and len(meters) >= 8


def test_dropped_and_corrupt_frames_are_gaps():
    x = sig(16000, 1)
    c = record.record_clip(FakeRecorder(x, drop=[2], corrupt=[5]), 1.0)
    assert c.dropped == 512 and c.gaps == [(512, 256), (1280, 256)] and c.bad_frames == 1
    assert not c.pcm[512:768].any() and np.array_equal(c.pcm[768:1280], x[768:1280])
    e = record.dropped_error(c)
    assert "512 samples were dropped" in e.cause and "0.032 s" in e.cause and "--keep-dropped" in e.fix


def test_no_recorder_and_stalled_stream_time_out():
    clk = Clock()
    with pytest.raises(FwtoolError) as ei:
        record.record_clip(FakeRecorder(sig(10), silent=True, clock=clk), 1.0, clock=clk)
    assert ei.value.code == Exit.TIMEOUT and "FWT:REC" in ei.value.cause
    clk = Clock()
    dev = FakeRecorder(sig(3000), clock=clk)
    with pytest.raises(FwtoolError) as ei:
        record.record_clip(dev, 1.0, clock=clk)
    assert ei.value.code == Exit.TIMEOUT and "audio stopped" in ei.value.cause
    assert dev.writes[-1] == framing.REC_STOP


def test_names_levels_and_out_dir(tmp_path):
    when = datetime(2026, 8, 21, 10, 15, 2, 123456, tzinfo=timezone.utc)
    assert record.clip_name("yes", when) == "yes_20260821T101502.123Z.wav"
    for bad in ("../x", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(BadInput):
            record.out_path(tmp_path, bad)
    x = sig(1600)
    p1 = record.save_clip(tmp_path, "yes", x, when)
    p2 = record.save_clip(tmp_path, "yes", x, when)
    assert p1.parent == tmp_path.resolve() and p1 != p2 and np.array_equal(wav.read_wav(p2), x)
    assert record.level_dbfs(np.zeros(10, np.int16)) == (-math.inf, -math.inf)
    rms, peak = record.level_dbfs(np.full(10, 16384, np.int16))
    assert abs(rms + 6.02) < 0.01 and abs(peak + 6.02) < 0.01
    assert "CLIP" in record.meter_text(-3, 0.0) and record.meter_text(-math.inf, -math.inf).startswith("[   ")


def test_record_command(tmp_path, monkeypatch):
    x = sig(8000, 2)
    monkeypatch.setattr(record_cmd, "open_port", lambda port, board=None: FakeRecorder(x))
    r = CliRunner().invoke(record_cmd.record, ["--port", "fake", "--label", "yes", "--seconds", "0.5",
                                               "--count", "2", "--pause", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "o").glob("yes_*.wav"))
    assert len(files) == 2 and all(np.array_equal(wav.read_wav(f), x) for f in files)


def test_record_command_dropped_and_no_port(tmp_path, monkeypatch):
    monkeypatch.setattr(record_cmd, "open_port", lambda port, board=None: FakeRecorder(sig(8000), drop=[1]))
    r = CliRunner().invoke(record_cmd.record, ["-p", "x", "-l", "no", "-s", "0.5", "-o", str(tmp_path), "--json"])
    assert isinstance(r.exception, FwtoolError) and "dropped samples" in r.exception.cause
    assert not list(tmp_path.glob("*.wav"))
    r = CliRunner().invoke(record_cmd.record, ["-p", "x", "-l", "no", "-s", "0.5", "-o", str(tmp_path),
                                               "--keep-dropped"])
    assert r.exit_code == 0 and len(list(tmp_path.glob("no_*.wav"))) == 1


def test_no_port_is_no_device():
    with pytest.raises(NoDevice):
        record_cmd.open_port(None)
    with pytest.raises(NoDevice):
        record_cmd.open_port("/dev/does-not-exist-fwtool")
