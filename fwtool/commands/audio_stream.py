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


def emulate_audio(image: Path, report: dict | None, clip: Path, as_json: bool, features: bool = False,
                  target: Target | None = None) -> int:
    """``fwtool emulate --audio`` / ``fwtool run --emulator --audio``: stream ``clip`` into the virtual ``target``
    (default: the virtual RP2040) through its live link."""
    pcm = wav.read_wav(clip)
    fe = front_end_of_build(report)
    title = target.info.title if target is not None else "the virtual board (rp2040js)"
    ui.info(f"{title}: streaming {clip} into {image} (faster than real time)")
    cap = stream_clip(image, pcm, fe, features=features, on_line=_echo(as_json), target=target)
    native = target is not None and target.info.name == "linux-native"  # this machine's own times
    return summary(cap, fe, "real" if native else "emulated", as_json, target)


def board_audio(port: str, report: dict | None, clip: Path, as_json: bool, realtime: bool = True) -> int:
    """``fwtool run --audio``: stream ``clip`` over a real board's serial port (at the sample rate)."""
    pcm = wav.read_wav(clip)
    fe = front_end_of_build(report)
    link = open_port(port, timeout=0.02, fix="check the board is attached and no other program holds the port")
    try:
        ui.info(f"streaming {clip} to the board on {port} (real time)")
        cap = capture_mod.capture(link, pcm, fe, realtime=realtime, on_line=_echo(as_json), settle_s=5.0)
    except PORT_ERRORS as e:
        raise FwtoolError(f"the board's port failed while streaming: {e}", "re-run; check the cable",
                          Exit.LOST_DEVICE) from e
    finally:
        link.close()
    return summary(cap, fe, "board", as_json)
