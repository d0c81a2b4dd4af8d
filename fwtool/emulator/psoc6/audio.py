"""Audio apps on the virtual PSoC 6: stream a clip's PCM into the kit's real ``firmware.hex`` over its debug UART
(the KitProg3 bridge's RX pin, scb_uart.py) with the same credit-flow protocol a kit gets over its USB-UART
bridge (fwtool/audio/stream.py), and collect its audio lines.

Why the UART and not the microphone: the host stream is how `validate --audio` compares the firmware with its host
twin on every platform (the app takes host audio when the host sends the stream-start magic within its first
2 s); the microphone path runs too (pdm.py plays a clip into the PDM-PCM block, target.run(mic_pcm=...)), but in
emulated real time. The image is the one a user flashes (BSP startup, SystemInit, the CM0+ image, the PDL board
layer, the app), not a relink.

Faster than real time: no baud timing, so the stream goes as fast as the firmware grants credit; the times the
firmware prints (dsp_us, invoke_us) are CM4 instructions at the board clock, a lower bound of a kit's time.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from fwtool.audio import capture as capture_mod
from fwtool.audio.params import FrontEnd
from fwtool.core.boards import Board
from fwtool.emulator.psoc6 import checks
from fwtool.emulator.psoc6.serial_port import MachinePort


def stream_clip(port: MachinePort, board: Board, pcm: np.ndarray, fe: FrontEnd, *, features: bool = False,
                on_line: Callable[[str], None] | None = None,
                settle_s: float = 60.0) -> tuple[capture_mod.AudioCapture, list[str]]:
    """Stream ``pcm`` over ``port`` (a fresh virtual PSoC 6 booting the kit's image from reset) and return what
    the firmware printed and the board check's problems (checks.py: clocks, UART, pins, LED — empty when the chip
    was set up as the board file and the kit say). ``capture.stream`` holds the stream figures; ``emulated_s``
    and ``uart_bytes`` are set on the capture."""
    try:
        # the link loses nothing: never resend (resent chunks only slow the emulated firmware down)
        cap = capture_mod.capture(port, pcm, fe, features=features, on_line=on_line, settle_s=settle_s,
                                  ack_timeout=settle_s, start_timeout=settle_s, resend_s=settle_s * 10)
        cap.emulated_s = port.emulated_s
        cap.uart_bytes = port.fed
        return cap, checks.problems(port.machine, board)
    finally:
        port.close()
