"""Detect, then act: after ``FWT:DETECT label=L`` the audio that follows (the recorder app's CRC-checked ``FWR``
frames) is collected into a WAV, spooled atomically, and handed to ``--exec`` / ``--post`` / ``--wyoming`` handlers
in a worker thread, so a slow endpoint never stalls the serial reader. See docs/detect-then-act.md.

Capture protocol on the console (device -> host, after the detection line; firmware: templates/common/
fwt_capture.h.j2, built with ``fwtool build --capture``)::

    FWT:DETECT n=12 label=yes score=0.9100
    FWT:CAPTURE n=12 label=yes rate=16000 pre=4800 samples=52800 frame=256   (a --capture build announces it)
    FWR frames: u32 seq = position in the capture (0 = first pre-roll sample) + u16 count + int16 LE + crc16
    FWT:CAPEND n=12 sent=52800 lost=0 overrun=0
    FWR frame with count 0 (the end marker)

The host keeps the announced ``pre`` samples plus ``--record`` seconds (at most what was announced; a firmware that
announces nothing: ``--record`` seconds). The capture is complete at the end marker, when that many samples arrived,
when ``--until-silence`` finds its silence, or when no frame came for ``frame_timeout`` seconds. Sequence gaps (the
link, a failed CRC, the device's ``overrun``) are zero-filled and counted in ``dropped``, with the device's ``lost``.

Silence rule (``--until-silence DURATION``): once at least ``MIN_SPEECH_S`` after the pre-roll has arrived, the
capture ends as soon as its last DURATION of audio is quieter than ``SILENCE_DBFS`` RMS (so "yes ... turn on the
lights" ends soon after the speaker stops, and at ``--record`` at the latest).
"""
from __future__ import annotations

import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.audio.framing import REC_MAGIC, SplitReader
from fwtool.audio.record import SAMPLE_RATE, check_label, save_clip
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.files import atomic_write
from fwtool.core.protocol import Detection, parse_audio_line
from fwtool.core.protocol_capture import CaptureLine, parse_capture_line
from fwtool.monitor import handlers as H

DEFAULT_SPOOL = "fwtool-captures"
SILENCE_DBFS = -40.0  # --until-silence: RMS below this is silence
MIN_SPEECH_S = 0.5  # --until-silence: never end before this much audio after the pre-roll


def parse_duration(text: str, what: str = "--record") -> float:
    """``3``, ``3s``, ``1500ms``, ``0.5m`` -> seconds (0 < s <= 60)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", str(text))
    if not m:
        raise FwtoolError(f"{what} '{text}' is not a duration", f"use e.g. {what} 3s or {what} 1500ms",
                          code=Exit.USAGE)
    v = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    if not 0 < v <= 60:
        raise FwtoolError(f"{what} {text}: must be more than 0 and at most 60 s", f"use e.g. {what} 3s",
                          code=Exit.USAGE)
    return v


@dataclass
class HandoffOptions:
    labels: tuple[str, ...] = ()
    record_s: float = 3.0
    exec_cmd: str | None = None
    post_url: str | None = None
    post_format: str = "openai"  # openai (multipart file+model) | wav (raw audio/wav body) | azure (JSON floats)
    post_model: str = "whisper-1"
    wyoming: str | None = None  # tcp://host:port
    spool: Path = field(default_factory=lambda: Path(DEFAULT_SPOOL))
    keep: bool = False  # keep captures whose handlers all succeeded (failed ones are always kept)
    retries: int = 3  # network handlers: attempts after the first
    backoff_s: float = 0.5  # first retry delay; doubles
    handler_timeout: float = 30.0  # per request / per command
    frame_timeout: float = 2.0
    expect_transcript: str | None = None
    verbose: bool = False
    until_silence_s: float | None = None  # end a capture at this much trailing silence (see the module doc)

    def check(self) -> None:
        for lab in self.labels:
            check_label(lab)
        if not self.labels:
            raise FwtoolError("--on-detect needs at least one label", "e.g. --on-detect yes", code=Exit.USAGE)
        if not (self.exec_cmd or self.post_url or self.wyoming):
            raise FwtoolError("--on-detect needs a handler", "add --exec CMD, --post URL or --wyoming tcp://HOST:PORT",
                              code=Exit.USAGE)
        if self.post_format not in H.POST_FORMATS:
            raise FwtoolError(f"--post-format must be one of {', '.join(H.POST_FORMATS)}", "pick one",
                              code=Exit.USAGE)
        if self.post_url:
            H.check_http_url(self.post_url)
        if self.wyoming:
            H.parse_tcp(self.wyoming)
        if self.expect_transcript is not None:
            try:
                re.compile(self.expect_transcript)
            except re.error as e:
                raise FwtoolError(f"--expect-transcript: invalid regular expression ({e})",
                                  "fix the pattern (Python re syntax)", code=Exit.USAGE) from e


@dataclass
class Capture:
    label: str
    score: float
    n: int
    want: int
    started: float  # host clock
    pcm: np.ndarray = None  # type: ignore[assignment]
    pos: int = 0
    gaps: list = field(default_factory=list)
    last_frame: float = 0.0
    ended_early: bool = False
    announced: int | None = None  # samples the device said it sends (FWT:CAPTURE), None: not announced
    pre: int = 0  # of which before the detection
    device_lost: int = 0  # FWT:CAPEND lost: samples the device never had (zeros in the capture)
    silence: int = 0  # --until-silence window in samples (0: off)
    cut: str | None = None  # why the capture ended before `want`: "silence" | "end marker" | None

    def __post_init__(self):
        self.pcm = np.zeros(self.want, dtype=np.int16)
        self.last_frame = self.started

    def announce(self, pre: int, samples: int) -> None:
        """The device's FWT:CAPTURE: keep its pre-roll plus the wanted seconds, at most what it sends."""
        self.announced, self.pre = samples, pre
        want = min(samples, pre + self.want)
        self.pcm = np.concatenate([self.pcm, np.zeros(max(0, want - len(self.pcm)), np.int16)])[:want]
        self.want = want

    def add(self, seq: int, samples: np.ndarray, now: float) -> bool:
        """Add one frame; True when the capture is complete."""
        self.last_frame = now
        if len(samples) == 0:
            self.ended_early = self.pos < self.want
            self.cut = "end marker" if self.ended_early else self.cut
            return True
        if seq < self.pos or self.pos >= self.want:
            return False
        if seq > self.pos:
            self.gaps.append((self.pos, seq - self.pos))
            self.pos = seq
        take = samples[: max(0, self.want - self.pos)]
        self.pcm[self.pos:self.pos + len(take)] = take
        self.pos += len(samples)
        if self.silence and self._silent():
            self.want, self.cut = self.pos, "silence"
            return True
        # a device that announced its capture ends it with an end marker (after FWT:CAPEND and its counts)
        return self.pos >= self.want and (self.announced is None or self.want < self.announced)

    def _silent(self) -> bool:
        if self.pos < self.pre + int(MIN_SPEECH_S * SAMPLE_RATE) + self.silence or self.pos > self.want:
            return False
        tail = self.pcm[self.pos - self.silence:self.pos].astype(np.float64) / 32768.0
        rms = float(np.sqrt(np.mean(tail * tail)))
        return rms == 0.0 or 20 * np.log10(rms) < SILENCE_DBFS

    @property
    def dropped(self) -> int:
        return sum(n for p, n in self.gaps if p < self.want) + self.device_lost

    def samples(self) -> np.ndarray:
        return self.pcm[:min(self.pos, self.want)]


class Handoff:
    """The monitor's side: ``feed(bytes)`` -> text bytes for the line splitter (frames are taken out here),
    ``on_detection(det)`` starts a capture, ``poll()`` -> finished handoff events (dicts), ``close()``."""

    def __init__(self, opts: HandoffOptions, *, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None):
        opts.check()
        self.opts = opts
        self.clock = clock
        self.log = log or (lambda s: None)
        self.split = SplitReader(REC_MAGIC)
        self.capture: Capture | None = None
        self.draining = False  # a capture ended before the device's end marker: its last frames are not stray
        self.stray_frames = 0
        self.transcript_rx = re.compile(opts.expect_transcript) if opts.expect_transcript is not None else None
        self._jobs: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self.in_flight = 0
        self.handoffs = 0
        self._worker = threading.Thread(target=self._work, name="fwtool-handoff", daemon=True)
        self._worker.start()

    # ---- the reader's side (never blocks) ------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Bytes from the port -> the text in them (lines end in \\n); FWR frames go to the current capture."""
        if REC_MAGIC[:1] not in data and not self.split.buf:
            return data  # the common case: no frame can start here
        text = bytearray()
        now = self.clock()
        for it in self.split.feed(data):
            if isinstance(it, str):
                text += it.encode("utf-8") + b"\n"
                rec = parse_audio_line(it) or parse_capture_line(it)
                if isinstance(rec, Detection):
                    self.on_detection(rec)
                elif isinstance(rec, CaptureLine):
                    self.on_capture_line(rec)
            elif self.capture is None:
                if self.draining:
                    self.draining = len(it[1]) > 0  # until the end marker
                else:
                    self.stray_frames += 1
            elif self.capture.add(it[0], it[1], now):
                self.draining = len(it[1]) > 0 and self.capture.announced is not None
                self._finish()
        return bytes(text)

    def on_capture_line(self, rec: CaptureLine) -> None:
        c = self.capture
        if c is None or rec.fields.get("n") != c.n:
            return
        if rec.kind == "start":
            c.announce(int(rec.fields["pre"]), int(rec.fields["samples"]))
        elif rec.kind == "end":
            c.device_lost = int(rec.fields["lost"])

    def on_detection(self, det: Detection) -> None:
        if det.label not in self.opts.labels or self.capture is not None:
            return
        self.draining = False
        self.capture = Capture(det.label, det.score, det.n, int(round(self.opts.record_s * SAMPLE_RATE)),
                               self.clock(),
                               silence=int(round((self.opts.until_silence_s or 0) * SAMPLE_RATE)))

    def tick(self) -> None:
        c = self.capture
        if c is not None and self.clock() - c.last_frame > self.opts.frame_timeout:
            self._finish()

    def _finish(self) -> None:
        c, self.capture = self.capture, None
        self.in_flight += 1
        self.handoffs += 1
        self._jobs.put(c)

    def poll(self) -> list[dict]:
        out = []
        while True:
            try:
                ev = self._done.get_nowait()
            except queue.Empty:
                return out
            self.in_flight -= 1
            out.append(ev)

    def transcript_matches(self, ev: dict) -> bool:
        t = ev.get("transcript")
        return self.transcript_rx is not None and isinstance(t, str) and bool(self.transcript_rx.search(t))

    def close(self, grace_s: float = 2.0) -> list[dict]:
        """Finish a capture in progress, wait up to grace_s for handlers in flight, return their events."""
        if self.capture is not None:
            self._finish()
        deadline = time.monotonic() + grace_s
        out = []
        while self.in_flight and time.monotonic() < deadline:
            out += self.poll()
            time.sleep(0.02)
        out += self.poll()
        self._jobs.put(None)
        return out

    # ---- the worker ----------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            c = self._jobs.get()
            if c is None:
                return
            try:
                ev = self._handle(c)
            except Exception as e:  # noqa: BLE001 - a handler bug must not kill the worker (the capture is spooled)
                ev = {"ok": False, "label": c.label, "error": f"{type(e).__name__}: {e}", "handlers": []}
            self._done.put(ev)

    def _handle(self, c: Capture) -> dict:
        o = self.opts
        pcm = c.samples()
        desc = {"label": c.label, "score": c.score, "n": c.n, "rate": SAMPLE_RATE, "samples": int(len(pcm)),
                "seconds": round(len(pcm) / SAMPLE_RATE, 3), "wanted_samples": c.want, "dropped": c.dropped,
                "ended_early": c.ended_early, "pre_roll_samples": c.pre, "cut": c.cut}
        ev: dict = {"label": c.label, "score": c.score, "n": c.n, "samples": int(len(pcm)), "dropped": c.dropped,
                    "pre_roll_samples": c.pre}
        if c.cut:
            ev["cut"] = c.cut
        if len(pcm) == 0:
            ev.update(ok=False, handlers=[], error="no audio frames came after the detection (is the firmware "
                                                   "built with capture? see docs/detect-then-act.md)")
            return ev
        wav = save_clip(o.spool, c.label, pcm)
        desc["wav"] = str(wav)
        ev["wav"] = str(wav)
        results = []
        if o.exec_cmd:
            results.append(H.run_exec(o.exec_cmd, wav, desc, o.handler_timeout))
        if o.post_url:
            results.append(H.retrying(lambda: H.post(o.post_url, wav, pcm, o.post_format, o.post_model,
                                                     o.handler_timeout, self.log if o.verbose else None),
                                      "post", o.retries, o.backoff_s))
        if o.wyoming:
            results.append(H.retrying(lambda: H.wyoming(o.wyoming, pcm, o.handler_timeout), "wyoming",
                                      o.retries, o.backoff_s))
        ev["handlers"] = results
        ev["ok"] = all(r["ok"] for r in results)
        for r in results:
            if r.get("transcript") is not None:
                ev["transcript"] = r["transcript"]
                break
        desc["handlers"] = results
        if ev["ok"] and not o.keep:
            wav.unlink(missing_ok=True)
            ev["kept"] = False
        else:
            atomic_write(wav.with_suffix(".json"), json.dumps(desc, indent=1))
            ev["kept"] = True
        return ev


def describe(ev: dict) -> str:
    """One line for the monitor's view."""
    head = f"handoff {ev.get('label')} ({ev.get('samples', 0) / SAMPLE_RATE:.2f} s"
    head += f", {ev['dropped']} samples dropped)" if ev.get("dropped") else ")"
    if ev.get("error"):
        return f"{head}: failed: {ev['error']}"
    bits = []
    for r in ev.get("handlers", []):
        if r["ok"]:
            s = f"{r['handler']} ok"
            if r.get("exit_code") is not None:
                s += f" (exit {r['exit_code']})"
        else:
            s = f"{r['handler']} failed: {r.get('error')}"
        if r.get("attempts", 1) > 1:
            s += f" after {r['attempts']} attempts"
        bits.append(s)
    tail = f"; transcript: {ev['transcript']!r}" if ev.get("transcript") is not None else ""
    kept = f"; kept {ev['wav']}" if ev.get("kept") else ""
    return f"{head}: {', '.join(bits)}{tail}{kept}"


