"""TCPWM, as far as the virtual PSoC 6 looks at it: the LED's PWM duty from what the firmware programmed.

The counters are not modelled (their registers read back what was written, bus.py): nothing counts, no line
toggles, no interrupt. ``led_duty`` answers one question the apps raise — how bright did the firmware ask the LED
to be — from the pin's HSIOM function (``P13_7_TCPWM0_LINE_COMPL3``: block 0, counter 3, the complementary line)
and the counter's CC / (PERIOD + 1)."""
from __future__ import annotations

import re

from fwtool.emulator.psoc6.bus import Bus
from fwtool.emulator.psoc6.gpio import Gpio
from fwtool.emulator.psoc6.regdefs import Device


def pwm_line(dev: Device, gpio: Gpio, port: int, pin: int) -> tuple[int, int, bool] | None:
    """(block, counter, complementary) of the TCPWM line the pin is muxed to, None when it is not one."""
    function = gpio.function(port, pin)
    for name, value in dev.defines.items():
        m = re.fullmatch(rf"P{port}_{pin}_TCPWM(\d+)_LINE(_COMPL)?(\d+)", name)
        if m and value == function:
            return int(m.group(1)), int(m.group(3)), bool(m.group(2))
    return None


def led_duty(bus: Bus, dev: Device, gpio: Gpio, port: int, pin: int) -> float | None:
    """The PWM duty (0..1) of the pin's line as programmed (CC / (PERIOD + 1)); None when the pin is no PWM."""
    line = pwm_line(dev, gpio, port, pin)
    if line is None:
        return None
    block, cnt, _ = line
    cc = bus.get(dev.reg(f"TCPWM{block}", f"CNT[{cnt}].CC", "TCPWM_Type"))
    period = bus.get(dev.reg(f"TCPWM{block}", f"CNT[{cnt}].PERIOD", "TCPWM_Type"))
    return min(1.0, cc / (period + 1)) if period else None
