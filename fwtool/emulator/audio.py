"""Audio apps on a virtual target: stream a clip's PCM into the firmware's console input through the target's live
link (``Target.open_link``: the virtual RP2040's USB CDC, QEMU's UART0 RX, a Linux program's stdin — the same bytes
a real board's serial port carries) and collect its audio lines.

Faster than real time: the host sends as fast as the firmware grants credit (fwtool/audio/stream.py), and the
times the firmware prints (dsp_us, invoke_us) are the target's own (emulated cycles, QEMU instructions / 1000, or
this machine's time natively), not wall time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.audio import capture as capture_mod
from fwtool.audio.device import front_end as device_front_end
from fwtool.audio.device import is_audio_app, model_input_of
from fwtool.audio.params import FrontEnd
from fwtool.core.errors import BadInput
from fwtool.devices.serial import open_serial
from fwtool.emulator.targets import Rp2040js
from fwtool.model.tflite import load_model
from fwtool.targets.base import Target, TargetConfig, Unsupported


def open_port(url: str):
    """A pyserial port on the virtual board's socket."""
    return open_serial(url, timeout=0.02)


def stream_clip(image: Path, pcm: np.ndarray, fe: FrontEnd, *, features: bool = False,
                on_line: Callable[[str], None] | None = None, max_wall_s: float = 900.0,
                settle_s: float = 60.0, target: Target | None = None, wrap: Callable | None = None,
                after: Callable | None = None) -> capture_mod.AudioCapture:
    """Boot ``image`` on a fresh virtual ``target`` (default: the virtual RP2040), stream ``pcm`` to it over its
    live link and return what it printed. The target is stopped afterwards (no process left).

    Raises the target's own failures (emulator missing, firmware fault) as FwtoolError, and Unsupported for a
    target that takes no bytes; an incomplete capture is returned with ``complete = False``
    (see capture.require_complete). ``wrap(port)``: the port the stream reads through (``--on-detect``:
    fwtool.monitor.frameport.FramePort); ``after(port)``: called with it before the target stops (the handoff
    reads the rest of a capture).
    """
    tgt = target if target is not None else Rp2040js(TargetConfig(max_wall_s=max_wall_s))
    if "bytes" not in tgt.info.feeds:
        raise Unsupported(f"{tgt.info.title} cannot be fed an audio stream",
                          "use a board whose virtual target takes one (docs/audio-validate.md)")
    try:
        port = tgt.open_link(Path(image))
        port = wrap(port) if wrap else port
        # the link loses nothing: never resend (a resend storm slows the emulated firmware); wall-clock waits are
        # long because an emulated inference takes ~0.5 s of wall time (more on a loaded machine)
        cap = capture_mod.capture(port, pcm, fe, features=features, on_line=on_line, settle_s=settle_s,
                                  ack_timeout=settle_s, start_timeout=settle_s, resend_s=max_wall_s)
        if after:
            after(port)
        return cap
    finally:
        tgt.stop()


def front_end_of_build(report: dict | None) -> FrontEnd:
    """The front end an audio app build runs (from its report.json: the app and the model's input)."""
    app = ((report or {}).get("build") or {}).get("app")
    model_path = ((report or {}).get("model") or {}).get("path")
    if not app or not is_audio_app(app) or not model_path:
        raise BadInput(f"this firmware is {'app ' + repr(app) if app else 'not a build fwtool knows'}, not an "
                       "audio app, so it takes no --audio stream",
                       "build one: fwtool build -b pico --app audio_classifier -m model.tflite")
    model = load_model(Path(model_path))
    return device_front_end(app, model_input_of(model.inputs[0]))
