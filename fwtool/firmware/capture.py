"""``fwtool build --capture DURATION [--pre-roll DURATION]``: the audio apps' detect-then-capture (firmware side of
``fwtool monitor --on-detect``; the device code is templates/common/fwt_capture.h.j2, the host side
fwtool/monitor/handoff.py).

Decided here, before anything is written: which apps and families can capture, the ring size, and whether the
console link can carry the capture in real time. A link that cannot is refused with the numbers: the capture is the
recorder app's FWR frames (11 bytes of framing per 256 samples) plus the app's own status lines, all at the sample
rate, while inference continues.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from fwtool.core.errors import BadInput, FwtoolError, Exit

RATE = 16000
FRAME_SAMPLES = 256  # samples per FWR frame (the recorder app's chunk)
FRAME_OVERHEAD = 11  # "FWR" + u32 seq + u16 count + crc16
BURST_FRAMES = 3  # frames sent per stride at most (768 samples: > kws's 320 and the classifier's 512 per stride)
DEFAULT_PRE_S = 0.3
SLACK_S = 0.2  # ring room beyond the pre-roll: samples that may wait for the link between strides
MAX_CAPTURE_S = 30.0
MAX_PRE_S = 2.0
# USB full-speed CDC: pico-sdk's stdio_usb / TinyUSB flush a 256-byte FIFO every 1 ms task tick (<= 256 kB/s);
# fwtool budgets 64 kB/s, twice what a capture needs, so a busy host or hub still leaves room. The recorder app
# streams the same frames live over it.
USB_BUDGET_BPS = 64000
UART_BITS_PER_BYTE = 10  # 8N1
STANDARD_BAUDS = (230400, 460800, 921600, 1000000, 2000000, 3000000)
APPS = ("kws", "audio_classifier")
FAMILIES = ("rp2040", "rp2350", "nrf52", "psoc6")  # the ones whose audio apps stream over their console
# Text the app prints per inference while it captures (FWT:AINF with scores and q vectors), per label and fixed.
AINF_FIXED_BYTES, AINF_PER_LABEL_BYTES = 90, 12
# pico-sdk stdio translates "\n" to "\r\n" unless this is off; the frames are binary (the recorder app does the same)
PICO_BINARY_STDIO = "PICO_STDIO_ENABLE_CRLF_SUPPORT=0"


def parse_seconds(text: str, what: str, limit: float) -> float:
    """``3``, ``3s``, ``300ms`` -> seconds, in (0, limit]."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", str(text))
    if not m:
        raise FwtoolError(f"{what} '{text}' is not a duration", f"use e.g. {what} 3s or {what} 300ms", Exit.USAGE)
    v = float(m.group(1)) * (0.001 if m.group(2) == "ms" else 1.0)
    if not 0 < v <= limit:
        raise FwtoolError(f"{what} {text}: must be more than 0 and at most {limit:g} s", f"use e.g. {what} 3s",
                          Exit.USAGE)
    return v


@dataclass(frozen=True)
class CapturePlan:
    pre_samples: int
    post_samples: int
    ring_samples: int
    link: str  # e.g. "USB CDC" / "UART 115200 baud"
    link_bps: int  # bytes per second the link carries (USB: fwtool's budget)
    audio_bps: int  # the capture's frames
    text_bps: int  # the app's status lines meanwhile

    @property
    def need_bps(self) -> int:
        return self.audio_bps + self.text_bps

    @property
    def ram_bytes(self) -> int:
        return 2 * self.ring_samples + 2 * FRAME_SAMPLES + 16

    def summary(self) -> str:
        return (f"--capture {self.post_samples / RATE:g}s --pre-roll {self.pre_samples / RATE:g}s: "
                f"{(self.pre_samples + self.post_samples) / RATE:g} s per detection, {self.need_bps:,} B/s of "
                f"{self.link} {self.link_bps:,} B/s, ring {self.ring_samples} samples, inference continues")

    def to_dict(self) -> dict:
        return {"pre_samples": self.pre_samples, "post_samples": self.post_samples, "rate": RATE,
                "ring_samples": self.ring_samples, "frame_samples": FRAME_SAMPLES, "link": self.link,
                "link_bytes_per_s": self.link_bps, "need_bytes_per_s": self.need_bps,
                "audio_bytes_per_s": self.audio_bps, "text_bytes_per_s": self.text_bps,
                "inference": "continues", "ram_bytes": self.ram_bytes}


def audio_bytes_per_s(rate: int = RATE) -> int:
    return math.ceil(rate * 2 * (2 * FRAME_SAMPLES + FRAME_OVERHEAD) / (2 * FRAME_SAMPLES))


def plan_capture(post_s: float | None, pre_s: float | None, *, app: str, family: str, stdio: str, uart_baud: int,
                 inferences_per_s: float, labels: int) -> CapturePlan | None:
    """The capture a build makes (None without ``--capture``); refuses an app, family or link that cannot."""
    if post_s is None:
        if pre_s is not None:
            raise FwtoolError("--pre-roll needs --capture DURATION", "add e.g. --capture 3s", Exit.USAGE)
        return None
    if app not in APPS:
        raise BadInput(f"--capture is for the audio apps ({', '.join(APPS)}); this build is app '{app}'",
                       "build with --app kws or --app audio_classifier, or drop --capture")
    if family not in FAMILIES:
        raise BadInput(f"--capture is not built for the {family} family yet (a Linux program would write the "
                       "capture to disk itself; that is not done)",
                       "drop --capture, or use a microcontroller board (pico, pico2, nano33ble_sense)")
    pre = int(round((DEFAULT_PRE_S if pre_s is None else pre_s) * RATE))
    post = int(round(post_s * RATE))
    text = int(math.ceil(inferences_per_s * (AINF_FIXED_BYTES + AINF_PER_LABEL_BYTES * labels)))
    audio = audio_bytes_per_s()
    if stdio == "usb":
        link, link_bps = "USB CDC", USB_BUDGET_BPS
    else:
        link, link_bps = f"UART {uart_baud:,} baud", uart_baud // UART_BITS_PER_BYTE
    need = audio + text
    if need > link_bps:
        baud = next((b for b in STANDARD_BAUDS if b // UART_BITS_PER_BYTE >= need), None)
        raise FwtoolError(
            f"--capture cannot keep up on this console: {RATE} Hz 16-bit audio in FWR frames is {audio:,} B/s plus "
            f"~{text:,} B/s of status lines = {need:,} B/s, and the {link} carries {link_bps:,} B/s "
            f"({need / link_bps:.1f}x too slow)",
            "use the USB console (--stdio usb) where the board has one, or raise the UART rate where the bridge "
            f"allows it (board file [stdio] uart_baud = {baud or 'a faster rate'}; KitProg3 bridges above 115200)",
            Exit.BAD_INPUT)
    ring = pre + max(int(SLACK_S * RATE), 2 * FRAME_SAMPLES)
    return CapturePlan(pre, post, ring, link, link_bps, audio, text)


def template_values(cp: CapturePlan | None) -> dict:
    """``capture``: numbers for templates/common/fwt_capture.h.j2 (disabled: a one-sample ring, every hook a
    no-op), and ``capture_defines`` the build adds to the app's defines."""
    if cp is None:
        return {"capture": {"enabled": "false", "rate": RATE, "pre_samples": 0, "post_samples": 0, "ring_samples": 1,
                            "frame_samples": 1, "burst_frames": 1, "summary": "Not enabled in this build (fwtool build --capture)."},
                "capture_defines": []}
    return {"capture": {"enabled": "true", "rate": RATE, "pre_samples": cp.pre_samples,
                        "post_samples": cp.post_samples, "ring_samples": cp.ring_samples,
                        "frame_samples": FRAME_SAMPLES, "burst_frames": BURST_FRAMES, "summary": cp.summary()},
            "capture_defines": [PICO_BINARY_STDIO]}
