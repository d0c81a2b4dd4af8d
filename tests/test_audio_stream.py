"""Host -> device PCM stream (fwtool.audio.stream) against a protocol-level fake audio app (no hardware).

FakeAudioApp is the firmware's PCM receiver (templates/common/fwt_audio.h.j2) restated in Python: it waits for FWH\\x01, announces
FWT:AUDIO ... source=host want=W and an initial credit, stores chunks in a ring of `slots` chunks, acks each stored
chunk (cumulative seq + free slots), discards bad-CRC / out-of-order chunks (re-acking), and "processes"
`consume` samples per read() call, sending a credit update when a slot frees.
"""
import struct

import numpy as np
import pytest

from fwtool.audio import framing, stream
from fwtool.core import protocol
from fwtool.core.errors import BadInput, Exit, FwtoolError


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += max(dt, 0.0)


class FakeAudioApp:
    def __init__(self, clock, want=320, slots=4, consume=10**9, corrupt=(), lose_acks=(), rate=16000,
                 answer=True):
        self.clock, self.want, self.slots, self.consume = clock, want, slots, consume
        self.corrupt, self.lose_acks, self.rate, self.answer = set(corrupt), set(lose_acks), rate, answer
        self.rx = bytearray()
        self.out = bytearray()
        self.host = False
        self.expect = 0  # next seq (unwrapped count of stored chunks)
        self.ring = []  # stored chunks not yet processed
        self.received = []  # processed samples, in order
        self.ended = False
        self.timeout = None
        self.acks_sent = 0

    # --- pyserial-like
    @property
    def in_waiting(self):
        self._step()
        return len(self.out)

    def read(self, n=1):
        self.clock.t += 0.001
        self._step()
        data, self.out = bytes(self.out[:n]), self.out[n:]
        return data

    def write(self, data):
        self.rx += data
        self._parse()
        return len(data)

    # --- device
    def _line(self, s):
        self.out += (s + "\r\n").encode()

    def _ack(self):
        self.acks_sent += 1
        if self.acks_sent in self.lose_acks:
            return
        self._line(protocol.c_formats()["ack"] % (self.expect & 0xFFFF, self.slots - len(self.ring)))

    def _parse(self):
        while True:
            if not self.host:
                i = self.rx.find(framing.START_HOST)
                if i < 0 or not self.answer:
                    return
                del self.rx[: i + 4]
                self.host = True
                self._line(protocol.c_formats()["audio"] % ("kws", self.rate, 480, 512, 320, 49, 40, 5, "host",
                                                            self.want))
                self._ack()
                continue
            i = self.rx.find(framing.PCM_MAGIC)
            if i < 0:
                return
            del self.rx[:i]
            if len(self.rx) < 7:
                return
            seq, count = struct.unpack_from("<HH", self.rx, 3)
            end = 7 + 2 * count + 2
            if count > self.want:
                del self.rx[:1]
                continue
            if len(self.rx) < end:
                return
            body = bytes(self.rx[3:end - 2])
            crc = struct.unpack_from("<H", self.rx, end - 2)[0]
            del self.rx[:end]
            key = (self.expect, "crc")
            if crc != framing.crc16(body) or key in self.corrupt:
                self.corrupt.discard(key)
                self._ack()  # discarded: same ack
                continue
            if seq != (self.expect & 0xFFFF) or len(self.ring) >= self.slots:
                self._ack()
                continue
            self.ring.append(np.frombuffer(body[4:], "<i2").copy())
            self.expect += 1
            if count == 0:
                self.ended = True
            self._ack()

    def _step(self):
        budget = self.consume
        while self.ring and budget > 0:
            c = self.ring[0]
            take = min(len(c), budget)
            self.received.append(c[:take])
            budget -= take
            if take == len(c):
                self.ring.pop(0)
                self._ack()  # credit update (same seq, one more free slot)
            else:
                self.ring[0] = c[take:]
                break
            if not len(c):
                break

    def samples(self):
        return np.concatenate(self.received) if self.received else np.zeros(0, np.int16)


def pcm(n, seed=0):
    return np.random.default_rng(seed).integers(-32768, 32767, n, endpoint=True).astype(np.int16)


def run(dev, x, clock, **kw):
    return stream.stream_wav(dev, x, clock=clock, sleep=clock.sleep, **kw)


def test_fast_device_gets_every_sample_in_order():
    c = Clock()
    dev = FakeAudioApp(c)
    x = pcm(16000)
    lines = []
    r = run(dev, x, c, on_line=lines.append)
    dev._step()
    assert dev.ended and np.array_equal(dev.samples(), x)
    assert (r.samples, r.chunks, r.resent) == (16000, 50, 0)
    assert r.banner.source == "host" and r.banner.want == 320 and any("FWT:AUDIO" in ln for ln in lines)
    assert not any("FWT:ACK" in ln for ln in lines)


def test_slow_device_loses_nothing():
    c = Clock()
    dev = FakeAudioApp(c, want=256, slots=2, consume=7)  # far slower than the host can send
    x = pcm(5000, 1)
    r = run(dev, x, c)
    while dev.ring:
        dev._step()
    assert np.array_equal(dev.samples(), x) and r.resent == 0


def test_corrupt_chunks_and_lost_acks_are_resent():
    c = Clock()
    dev = FakeAudioApp(c, corrupt=[(3, "crc"), (7, "crc")], lose_acks=[5, 6, 20])
    x = pcm(8000, 2)
    r = run(dev, x, c, resend_s=0.05)
    while dev.ring:
        dev._step()
    assert np.array_equal(dev.samples(), x)
    assert r.resent > 0


def test_garbage_on_the_link_is_skipped():
    c = Clock()
    dev = FakeAudioApp(c)
    real_write = dev.write
    dev.write = lambda data: real_write(b"\x00FW\xff" + data)  # noise before every write
    x = pcm(3000, 3)
    run(dev, x, c)
    while dev.ring:
        dev._step()
    assert np.array_equal(dev.samples(), x)


def test_sequence_numbers_wrap():
    c = Clock()
    dev = FakeAudioApp(c, want=1, slots=64)
    x = pcm(66000, 4)
    run(dev, x, c)
    while dev.ring:
        dev._step()
    assert np.array_equal(dev.samples(), x) and dev.expect == 66001


def test_realtime_pacing_takes_the_clip_duration():
    c = Clock()
    dev = FakeAudioApp(c, slots=64)
    x = pcm(16000, 5)
    r = run(dev, x, c, realtime=True)
    assert 0.97 <= r.seconds <= 1.1, r.seconds
    c2 = Clock()
    r2 = run(FakeAudioApp(c2, slots=64), x, c2, realtime=True, speed=4.0)
    assert 0.23 <= r2.seconds <= 0.3, r2.seconds
    c3 = Clock()
    assert run(FakeAudioApp(c3, slots=64), x, c3).seconds < 0.2


def test_device_that_never_takes_host_audio_times_out():
    c = Clock()
    with pytest.raises(FwtoolError) as ei:
        run(FakeAudioApp(c, answer=False), pcm(100), c, start_timeout=1.0)
    assert ei.value.code == Exit.TIMEOUT and "source=host" in ei.value.cause


def test_rate_mismatch_and_bad_samples_are_refused():
    c = Clock()
    with pytest.raises(BadInput) as ei:
        run(FakeAudioApp(c, rate=8000), pcm(100), c, rate=16000)
    assert "8000 Hz" in ei.value.cause
    with pytest.raises(BadInput):
        run(FakeAudioApp(c), np.zeros(10, np.float32), c)


def test_chunk_encoding():
    b = framing.pcm_chunk(0x1234, np.array([1, -2], np.int16))
    assert b[:3] == b"FWP" and b[3:7] == b"\x34\x12\x02\x00" and b[7:11] == b"\x01\x00\xfe\xff"
    assert struct.unpack("<H", b[11:])[0] == framing.crc16(b[3:11])
    assert framing.crc16(b"123456789") == 0x29B1
