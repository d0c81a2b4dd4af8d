"""Binary framing shared by the host -> device PCM stream (``FWP``) and the recorder stream (``FWR``).

Both frames are ``magic(3) + header + count int16 LE samples + crc16 LE``; the CRC is CRC-16/CCITT-FALSE
(poly 0x1021, init 0xFFFF, no reflection, no final xor) over everything after the magic. The device prints text
lines on the same link, so a reader separates frames from lines: ``SplitReader`` does that for the recorder stream.
"""
from __future__ import annotations

import binascii
import struct

import numpy as np

PCM_MAGIC = b"FWP"  # host -> device: + u16 seq + u16 count + samples + crc16
REC_MAGIC = b"FWR"  # device -> host: + u32 seq (stream position of the first sample) + u16 count + samples + crc16
START_HOST = b"FWH\x01"  # host -> device: "take your audio from me" (protocol version 1)
START_HOST_FEATURES = b"FWH\x03"  # the same, and print every feature row (FWT:FEAT; flag bit 1)
REC_START = b"FWRS"  # host -> recorder app: start a recording session
REC_STOP = b"FWRX"  # host -> recorder app: stop it
MAX_SAMPLES = 1024  # per frame, both directions

def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (check value of b"123456789" is 0x29B1): the standard library's ``binascii.crc_hqx``."""
    return binascii.crc_hqx(data, crc)


def _samples(pcm) -> bytes:
    a = np.asarray(pcm)
    if a.dtype != np.int16 or a.ndim != 1 or len(a) > MAX_SAMPLES:
        raise ValueError(f"a frame holds 0..{MAX_SAMPLES} int16 samples, got {a.dtype} {a.shape}")
    return a.astype("<i2").tobytes()


def pcm_chunk(seq: int, pcm) -> bytes:
    """One host -> device chunk: ``FWP`` + u16 seq + u16 count + samples + crc16 (count 0 = end of stream)."""
    body = struct.pack("<HH", seq & 0xFFFF, len(pcm)) + _samples(pcm)
    return PCM_MAGIC + body + struct.pack("<H", crc16(body))


def rec_frame(seq: int, pcm) -> bytes:
    """One recorder frame: ``FWR`` + u32 seq + u16 count + samples + crc16."""
    body = struct.pack("<IH", seq & 0xFFFFFFFF, len(pcm)) + _samples(pcm)
    return REC_MAGIC + body + struct.pack("<H", crc16(body))


class SplitReader:
    """Feed bytes, get text lines and ``(seq, int16 samples)`` frames of one magic, in order, plus bad-frame counts.

    Outside a frame, bytes up to a newline are a line. A frame whose CRC fails is dropped and the reader resyncs
    on the next magic (the lost samples then show as a sequence gap).
    """

    def __init__(self, magic: bytes = REC_MAGIC, seq_fmt: str = "<I"):
        self.magic = magic
        self.head = struct.Struct(seq_fmt + "H")
        self.buf = bytearray()
        self.bad_frames = 0

    def feed(self, data: bytes) -> list:
        self.buf += data
        out = []
        while self.buf:
            i = self.buf.find(self.magic)
            nl = self.buf.find(b"\n")
            if i != 0:
                if nl >= 0 and (i < 0 or nl < i):  # a text line comes first
                    out.append(self.buf[:nl].decode("utf-8", "replace").rstrip("\r"))
                    del self.buf[: nl + 1]
                    continue
                if i < 0:
                    # keep a possible partial magic at the end, and text without newline yet
                    if len(self.buf) > 4096:
                        del self.buf[: len(self.buf) - 2]
                    break
                junk = self.buf[:i]  # text without newline before a frame: still a line
                if junk.strip():
                    out.append(junk.decode("utf-8", "replace").strip())
                del self.buf[:i]
            m, h = len(self.magic), self.head.size
            if len(self.buf) < m + h:
                break
            seq, count = self.head.unpack_from(self.buf, m)
            if count > MAX_SAMPLES:
                self.bad_frames += 1
                del self.buf[:1]
                continue
            end = m + h + 2 * count + 2
            if len(self.buf) < end:
                break
            body = bytes(self.buf[m:end - 2])
            if struct.unpack_from("<H", self.buf, end - 2)[0] != crc16(body):
                self.bad_frames += 1
                del self.buf[:1]
                continue
            out.append((seq, np.frombuffer(body[h:], dtype="<i2").astype(np.int16)))
            del self.buf[:end]
        return out
