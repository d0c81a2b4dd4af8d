"""Host -> device PCM: feed an audio app the samples of a WAV in place of its microphone, over the serial link.

The link is whatever the firmware's text lines come over: USB CDC on a Pico, or the virtual board's socket
(rp2040js hands client bytes to the CDC OUT endpoint, or UART0 before USB is up). Protocol (version 1):

1. Host: ``FWH\\x01`` (repeated every 0.5 s until answered). An audio app checks for it for a while after boot
   (and always, when the board has no microphone); without it the app uses its microphone.
2. Device: ``FWT:AUDIO app=.. rate=16000 ... source=host want=<W>`` then ``FWT:ACK seq=0 credit=<C>``.
3. Host: chunks ``FWP`` + u16 seq + u16 count + count x int16 LE + crc16 (CRC-16/CCITT-FALSE over seq..samples),
   ``count <= W``, seq 0, 1, 2, ... (mod 65536). It may send chunk s only if ``s < ack.seq + ack.credit``.
4. Device: after each chunk it has *stored* (not processed), ``FWT:ACK seq=<next expected> credit=<free chunks>``:
   a cumulative ack and a credit window, so a device slower than real time just withholds credit and no sample is
   ever dropped. When processing frees room it sends the same seq with more credit. A chunk with a bad CRC or an
   unexpected seq is discarded and answered with the same ack; a duplicate (seq already stored) is discarded. The
   host resends everything from ``ack.seq`` when no new ack arrives for ``resend_s`` (go-back-N).
5. Host: a chunk with count 0 ends the stream; the device acks it (seq + 1) and finishes the frames it has.

``realtime=True`` paces chunks at the sample rate (``speed`` x), like a microphone; otherwise as fast as the
device grants credit. Every text line that is not an ACK goes to ``on_line``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fwtool.core import protocol
from fwtool.core.errors import BadInput, Exit, FwtoolError
from fwtool.core.lines import PortLines

from .framing import MAX_SAMPLES, START_HOST, pcm_chunk

START_RETRY_S = 0.5
READ_TIMEOUT_S = 0.02


@dataclass
class StreamResult:
    samples: int
    chunks: int
    resent: int  # chunks sent more than once
    seconds: float  # wall time from the first chunk to the final ack
    banner: protocol.AudioBanner | None = None
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"type": "stream", "samples": self.samples, "chunks": self.chunks, "resent": self.resent,
                "seconds": round(self.seconds, 3), "banner": self.banner.to_dict() if self.banner else None}


def _lost(cause: str) -> FwtoolError:
    return FwtoolError(cause, "check that the firmware is an audio app built with host audio input, and that no "
                       "other program holds the port; then run again", Exit.TIMEOUT)


def stream_wav(port, pcm: np.ndarray, rate: int = 16000, realtime: bool = False, speed: float = 1.0,
               on_line: Callable[[str], None] | None = None, start_timeout: float = 10.0,
               ack_timeout: float = 10.0, resend_s: float = 0.3, tail_s: float = 0.0,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
               start: bytes = START_HOST) -> StreamResult:
    """Stream int16 ``pcm`` to an audio app on ``port``; returns when the device has acked every sample.

    Raises BadInput for samples that are not 1-D int16 or a rate the device did not announce, and a TIMEOUT
    FwtoolError when the device never takes host audio or stops acking for ``ack_timeout`` seconds.
    ``tail_s``: keep reading lines that long after the final ack (the last inferences). ``start``: the
    stream-start magic (framing.START_HOST_FEATURES also asks for FWT:FEAT rows).
    """
    pcm = np.asarray(pcm)
    if pcm.ndim != 1 or pcm.dtype != np.int16:
        raise BadInput(f"PCM to stream must be 1-D int16, got {pcm.dtype} {pcm.shape}",
                       "read the clip with fwtool.audio.wav.read_wav")
    if hasattr(port, "timeout"):
        port.timeout = READ_TIMEOUT_S
    lines = PortLines(port)  # the one read loop (fwtool.core.lines)
    res = StreamResult(0, 0, 0, 0.0)

    def text(line: str) -> protocol.Ack | None:
        rec = protocol.parse_audio_line(line)
        if isinstance(rec, protocol.Ack):
            return rec
        if isinstance(rec, protocol.AudioBanner) and rec.source == "host":
            res.banner = rec
        res.lines.append(line)
        if on_line:
            on_line(line)
        return None

    # 1-2: ask for host audio until the banner and the first ack arrive
    ack = None
    t0 = clock()
    next_try = t0
    while ack is None:
        now = clock()
        if now - t0 > start_timeout:
            raise _lost(f"the device did not switch to host audio within {start_timeout:g} s (no 'FWT:AUDIO ... "
                        "source=host' and 'FWT:ACK' lines)")
        if res.banner is None and now >= next_try:
            port.write(start)
            next_try = now + START_RETRY_S
        for line in lines.texts():
            a = text(line)
            if a is not None and res.banner is not None:
                ack = a
    if res.banner.rate != rate:
        raise BadInput(f"the device's front end runs at {res.banner.rate} Hz; this audio is {rate} Hz",
                       "convert the clip to the device's rate (sox in.wav -r 16000 out.wav)")
    want = max(1, min(res.banner.want or MAX_SAMPLES, MAX_SAMPLES))
    n_chunks = (len(pcm) + want - 1) // want
    total = n_chunks + 1  # + the end-of-stream chunk

    def chunk(k: int) -> bytes:
        return pcm_chunk(k, pcm[k * want:(k + 1) * want] if k < n_chunks else pcm[:0])

    base = 0  # chunks [0, base) are acked; ack.seq is base mod 65536
    sent_upto = 0  # chunks [0, sent_upto) have been sent at least once
    highest_sent = 0
    credit = ack.credit
    start = clock()
    last_progress = start
    while base < total:
        now = clock()
        # send what the window and the pace allow
        while sent_upto < min(base + credit, total):
            if realtime and sent_upto < n_chunks:
                due = start + sent_upto * want / (rate * speed)
                if now < due:
                    break
            port.write(chunk(sent_upto))
            if sent_upto < highest_sent:
                res.resent += 1
            sent_upto += 1
            highest_sent = max(highest_sent, sent_upto)
        got = False
        for line in lines.texts():
            a = text(line)
            if a is None:
                continue
            acked = base + ((a.seq - base) & 0xFFFF)  # the cumulative ack, unwrapped
            if acked > highest_sent:
                continue  # stale or garbled
            if acked > base:
                base, last_progress, got = acked, clock(), True
            credit = a.credit  # a repeated seq is a credit update (or a discarded chunk: resend_s handles it)
        if base >= total:
            break
        now = clock()
        if now - last_progress > ack_timeout:
            raise _lost(f"the device stopped acknowledging host audio at chunk {base} of {total} "
                        f"({base * want / rate:.2f} s in) for {ack_timeout:g} s")
        if not got and sent_upto > base and now - last_progress > resend_s:
            sent_upto = base  # nothing acked for a while: resend the window
            last_progress = now
        if realtime and sent_upto < min(base + credit, n_chunks):
            sleep(max(0.0, min(0.01, start + sent_upto * want / (rate * speed) - clock())))
    res.samples, res.chunks, res.seconds = len(pcm), n_chunks, clock() - start
    end = clock() + tail_s
    while clock() < end:
        for line in lines.texts():
            text(line)
    return res
