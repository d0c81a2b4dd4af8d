"""PSoC 6 audio apps: the board's PDM microphone on the hardware PDM-to-PCM block and the LED on a TCPWM PWM.

Everything is derived from the board file and the pinned PDL, and refused with the reason when the part cannot do
it: the ``[pdm_mic]`` pins must be the device's AUDIOSS PDM_CLK / PDM_DATA pins, and the ``[led]`` pin must carry a
TCPWM line (its HSIOM function names in the device's ``gpio_*.h``, e.g. ``P10_4_AUDIOSS0_PDM_CLK`` and
``P13_7_TCPWM0_LINE_COMPL3``). The values become FWT_PDM_* / FWT_LED_PWM_* defines for
templates/psoc6/fwt_mic.cpp.j2; the template itself holds no board knowledge.
"""
from __future__ import annotations

import re
from pathlib import Path

from fwtool.core import escape
from fwtool.core.boards import Board
from fwtool.core.errors import BadInput, FwtoolError
from fwtool.firmware.families.rp2040_apps import RECIPES

MIC_SOURCE = "fwt_mic.cpp"  # the app source (app.toml) that asks for the microphone
# PDL drivers the microphone and the PWM LED call (the rest of the board layer is psoc6_sources.PDL_SOURCES)
PDL_SOURCES = ["drivers/source/cy_pdm_pcm.c", "drivers/source/cy_tcpwm_pwm.c"]
DEVICE_DIR = "devices/COMPONENT_CAT1A/include"
_GPIO_HEADER = re.compile(r'#include\s+"(gpio_psoc6_[^"]+\.h)"')


def wants_mic(plan_app_sources) -> bool:
    return MIC_SOURCE in plan_app_sources


def gpio_header(pdl: Path, device: str) -> str:
    """The text of the device's pin header (``gpio_psoc6_02_124_bga.h`` for CY8C624ABZI_S2D44)."""
    dev_header = pdl / DEVICE_DIR / f"{device.lower()}.h"
    try:
        found = _GPIO_HEADER.search(dev_header.read_text(errors="replace"))
        if found is None:
            raise FwtoolError(f"{dev_header.name} names no gpio_psoc6_*.h", "use the pinned mtb-pdl-cat1")
        return (pdl / DEVICE_DIR / found.group(1)).read_text(errors="replace")
    except OSError as e:
        raise FwtoolError(f"cannot read the PDL device header for {device}: {e}",
                          "run 'fwtool vendor sync' (mtb-pdl-cat1)") from e


def _functions(header: str, port: int, pin: int) -> list[str]:
    """The HSIOM function names of P<port>_<pin> (``P13_7_TCPWM0_LINE_COMPL3``, ...), in header order."""
    return re.findall(rf"\b(P{port}_{pin}_[A-Z0-9_]+)\s*=\s*\d+", header)


def _pin_name(port: int | None, pin: int) -> str:
    return f"P{port}_{pin}"


def pwm_line(header: str, port: int, pin: int) -> dict | None:
    """The first TCPWM line on the pin: {"block", "counter", "compl", "hsiom"} (None: the pin has none)."""
    for name in _functions(header, port, pin):
        m = re.fullmatch(rf"P{port}_{pin}_TCPWM(\d+)_LINE(_COMPL)?(\d+)", name)
        if m:
            return {"block": int(m.group(1)), "counter": int(m.group(3)), "compl": bool(m.group(2)), "hsiom": name}
    return None


def mic_defines(board: Board, pdl: Path) -> list[str]:
    """FWT_PDM_* and FWT_LED_PWM_* for fwt_mic.cpp (the board has a [pdm_mic]: app.check_board made sure)."""
    mic, led = board.pdm_mic, board.led
    where = f"board '{board.name}' ({board.source})"
    if mic is None or mic.clk_port is None or mic.data_port is None:
        raise BadInput(f"{where}: a PSoC 6 [pdm_mic] needs clk_port/clk_pin and data_port/data_pin",
                       "add them to the board file (the BSP's design.modus names CYBSP_PDM_CLK / CYBSP_PDM_DATA)")
    header = gpio_header(pdl, board.sdk.device)
    out = []
    for what, port, pin, signal in (("CLK", mic.clk_port, mic.clk_pin, "PDM_CLK"),
                                    ("DATA", mic.data_port, mic.data_pin, "PDM_DATA")):
        names = [n for n in _functions(header, port, pin) if n.endswith(f"_AUDIOSS0_{signal}")
                 or n.endswith(f"_AUDIOSS_{signal}")]
        if not names:
            raise BadInput(f"{where}: [pdm_mic] {what.lower()} pin {_pin_name(port, pin)} is not a {signal} pin of "
                           f"{board.sdk.device} (its PDL pin header has no {_pin_name(port, pin)}_AUDIOSS*_{signal})",
                           "use the pins the BSP's design.modus names CYBSP_PDM_CLK / CYBSP_PDM_DATA")
        out += [f"FWT_PDM_{what}_PORT=GPIO_PRT{port}", f"FWT_PDM_{what}_PIN={pin}U", f"FWT_PDM_{what}_HSIOM={names[0]}"]
    # the block's instance: PDM0 / audioss_0_interrupt_pdm_IRQn where the part has two AUDIOSS (PSoC6A2M), else PDM
    one = "_AUDIOSS_" in out[-1]
    out += [f"FWT_PDM_BASE={'PDM' if one else 'PDM0'}",
            f"FWT_PDM_IRQN={'audioss_interrupt_pdm_IRQn' if one else 'audioss_0_interrupt_pdm_IRQn'}"]
    if led is not None and led.port is not None:
        line = pwm_line(header, led.port, led.pin)
        if line is not None:  # the LED's brightness by PWM; without a TCPWM line it is on/off (fwt_led_level)
            b, c = line["block"], line["counter"]
            # the PWM's active level lights the LED: on the complementary line that is the inverse of line
            lit_high = (led.on_level == 1) != line["compl"]
            out += [f"FWT_LED_PWM_TCPWM=TCPWM{b}", f"FWT_LED_PWM_CNT={c}U", f"FWT_LED_PWM_HSIOM={line['hsiom']}",
                    f"FWT_LED_PWM_PCLK=PCLK_TCPWM{b}_CLOCKS{c}", f"FWT_LED_PWM_INVERT={0 if lit_high else 1}U"]
    return out


def dsp_libs(app_vendor, vendor_paths: dict[str, Path]) -> list[dict]:
    """``app_vendor_libs``: CMSIS-DSP for the audio classifier's q15 spectrogram (the same sources and options as
    the rp2040 family's recipe, rp2040_apps.RECIPES, so device and host twin agree bit for bit), with the PDL's
    CMSIS 5 Core headers first (pico-tflmicro's partial CMSIS 6 copy lacks m-profile/, which cmsis_gcc.h includes).
    The other app trees are pico-only (microphone-library-for-pico: this family has fwt_mic.cpp) or data
    (tflite-micro)."""
    if "cmsis-dsp" not in app_vendor:
        return []
    recipe, root = RECIPES["cmsis-dsp"], vendor_paths["cmsis-dsp"]
    q = lambda p: escape.cmake_quoted(Path(p).as_posix())  # noqa: E731
    # The Cortex-M4's DSP-extension code paths (ARM_MATH_DSP, from __ARM_FEATURE_DSP) of the q15 rfft round
    # differently from the portable C the host twin (the cmsisdsp wheel) and the RP2040 run: 59 of 187 feature rows
    # of a test clip differed. Compiled without them, the kit's rows equal the host's (tests/test_psoc6_mic.py).
    options = f"{recipe['options']} -U__ARM_FEATURE_DSP"
    return [{"name": "cmsis-dsp", "target": recipe["target"], "why": recipe["why"] + ", portable C paths",
             "options": options,
             "sources": [q(root / s) for s in recipe["sources"]], "includes": [q(vendor_paths["infineon-cmsis"] / "Core/Include"),
                                       *(q(root / i) for i in recipe["includes"])]}]
