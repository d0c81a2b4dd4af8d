"""``--audio clip.wav`` for ``fwtool emulate`` and ``fwtool run``: stream a WAV into an audio app (virtual board or a
real board's serial port), print its lines and a summary (not a command itself)."""
from __future__ import annotations

from pathlib import Path

import click

from fwtool.audio import capture as capture_mod
from fwtool.audio import wav
from fwtool.core import ui
from fwtool.core.errors import Exit, FwtoolError
from fwtool.devices.serial import PORT_ERRORS, open_port
from fwtool.emulator import TIMING_NOTE, latency_stats
from fwtool.emulator.audio import front_end_of_build, stream_clip
from fwtool.monitor.frameport import FramePort
from fwtool.monitor.handoff import Handoff, HandoffOptions, describe as describe_handoff
from fwtool.targets.base import Target


def _echo(as_json: bool):
    def on_line(line: str) -> None:
        if as_json:
            return
        if not line.startswith("FWT:FEAT"):
            click.echo(line)
    return on_line


def summary(cap: capture_mod.AudioCapture, fe, source: str, as_json: bool, target: Target | None = None) -> int:
    """Print the capture's summary; return the exit code (8 when the p95 hop time exceeds the budget)."""
    hops = [i.us for i in cap.inferences]
    budget = fe.inference_period_ms
    stats = latency_stats(hops, budget, source)
    out = {"type": "audio_run", "inferences": len(cap.inferences), "detections": [d.to_dict() for d in cap.detections],
           "stream": cap.stream.to_dict() if cap.stream else None, "complete": cap.complete,
           "records": [i.to_dict() for i in cap.inferences],
           "dsp_us": [i.dsp_us for i in cap.inferences], "invoke_us": [i.invoke_us for i in cap.inferences],
           "hop": stats.to_dict() if stats else None, "budget_ms": budget}
    if as_json:
        ui.emit_json(out)
    else:
        st = cap.stream
        if st:
            ui.info(f"streamed  {st.samples} samples ({st.samples / fe.sample_rate:.2f} s) in {st.seconds:.1f} s wall, "
                    f"{st.chunks} chunks, {st.resent} resent")
        ui.info(f"audio     {len(cap.inferences)} inferences, {len(cap.detections)} detections"
                + (f": {', '.join(f'#{d.n} {d.label} {d.score:.2f}' for d in cap.detections[:8])}" if cap.detections
                   else ""))
        if stats:
            dsp = sorted(i.dsp_us for i in cap.inferences)[len(hops) // 2] / 1000
            inv = sorted(i.invoke_us for i in cap.inferences)[len(hops) // 2] / 1000
            ui.info(f"per hop   DSP {dsp:.2f} ms + invoke {inv:.2f} ms (p50); p95 {stats.p95_ms:.2f} ms of the "
                    f"{budget:g} ms budget ({stats.p95_ms / budget:.0%}) {'met' if stats.within_budget else 'EXCEEDED'}")
            note = target.info.timing_note if target is not None else TIMING_NOTE
            if source != "board" and note:
                ui.info(f"note: {note}")
    if not cap.complete:
        ui.info("warning: the device went quiet before every inference of the clip was printed")
    return int(Exit.MISMATCH) if stats and stats.within_budget is False else int(Exit.OK)


class _Handoffs:
    """``--on-detect`` on the audio stream path: the port is read through a FramePort, each handoff is printed as
    an event (one JSON line with --json) as it finishes; ``code()`` applies --expect-transcript."""

    def __init__(self, opts: HandoffOptions | None, report: dict | None, as_json: bool):
        self.opts, self.as_json, self.events = opts, as_json, []
        self.handoff = Handoff(opts) if opts is not None else None
        if opts is not None and not (report or {}).get("capture"):
            ui.info("warning: this firmware was built without --capture, so no audio follows a detection "
                    "(fwtool build ... --capture 3s)")

    def event(self, ev: dict) -> None:
        self.events.append(ev)
        if self.as_json:
            ui.emit_json_line({"type": "handoff", "message": describe_handoff(ev), **ev})
        else:
            click.echo(f"-- {describe_handoff(ev)} --")

    def wrap(self, port):
        return FramePort(port, self.handoff, self.event) if self.handoff is not None else port

    def after(self, port) -> None:
        if isinstance(port, FramePort):
            o = self.opts
            port.drain(o.frame_timeout + (o.retries + 1) * (o.handler_timeout + 4.0))
            if self.handoff.in_flight:
                ui.info(f"warning: {self.handoff.in_flight} handoff(s) still in flight at the end; their captures "
                        f"stay in {o.spool}")

    def code(self, code: int) -> int:
        if code or self.handoff is None or self.opts.expect_transcript is None:
            return code
        if any(self.handoff.transcript_matches(ev) for ev in self.events):
            return int(Exit.OK)
        ui.info(f"error: no handoff transcript matched --expect-transcript {self.opts.expect_transcript!r} "
                f"({len(self.events)} handoff(s))")
        return int(Exit.MISMATCH)


def emulate_audio(image: Path, report: dict | None, clip: Path, as_json: bool, features: bool = False,
                  handoff: HandoffOptions | None = None, target: Target | None = None) -> int:
    """``fwtool emulate --audio`` / ``fwtool run --emulator --audio``: stream ``clip`` into the virtual ``target``
    (default: the virtual RP2040) through its live link (``handoff``: --on-detect, the capture after a detection
    goes to its handlers)."""
    pcm = wav.read_wav(clip)
    fe = front_end_of_build(report)
    hs = _Handoffs(handoff, report, as_json)
    title = target.info.title if target is not None else "the virtual board (rp2040js)"
    ui.info(f"{title}: streaming {clip} into {image} (faster than real time)")
    cap = stream_clip(image, pcm, fe, features=features, on_line=_echo(as_json), target=target, wrap=hs.wrap,
                      after=hs.after)
    native = target is not None and target.info.name == "linux-native"  # this machine's own times
    return hs.code(summary(cap, fe, "real" if native else "emulated", as_json, target))


def board_audio(port: str, report: dict | None, clip: Path, as_json: bool, realtime: bool = True,
                handoff: HandoffOptions | None = None) -> int:
    """``fwtool run --audio``: stream ``clip`` over a real board's serial port (at the sample rate)."""
    pcm = wav.read_wav(clip)
    fe = front_end_of_build(report)
    hs = _Handoffs(handoff, report, as_json)
    link = open_port(port, timeout=0.02, fix="check the board is attached and no other program holds the port")
    try:
        ui.info(f"streaming {clip} to the board on {port} (real time)")
        link = hs.wrap(link)
        cap = capture_mod.capture(link, pcm, fe, realtime=realtime, on_line=_echo(as_json), settle_s=5.0)
        hs.after(link)
    except PORT_ERRORS as e:
        raise FwtoolError(f"the board's port failed while streaming: {e}", "re-run; check the cable",
                          Exit.LOST_DEVICE) from e
    finally:
        link.close()
    return hs.code(summary(cap, fe, "board", as_json))
