"""What the firmware programmed, checked against the board file and against the kit.

Two questions, each with its own message: did the board layer do what the board file says (a regression in
templates/psoc6/fwt_platform.cpp.j2 fails here), and does the board file match the kit (the BSP's design.modus:
a wrong pin or clock in a board file fails here, because the virtual kit is wired as the real one is).

Checked: the FLL is enabled and locked and its output (IMO / REF_DIV x MULT) is the board's ``clock_hz`` and the
kit's FLL frequency; CLK_HF0 = ``clock_hz``; the board's SCB is enabled in UART mode, clocked by a 16-bit PERI
divider whose baud (CLK_PERI / (INT16_DIV + 1) / oversampling) is within 1.5 % of ``uart_baud``; the board's TX/RX
pins are muxed (HSIOM) to that SCB's UART and TX drives (strong); those pins are the kit's KitProg3 bridge pins;
the LED pin is a strong output and the kit's user LED. When the firmware streams from the PDM-PCM block (an audio
app on the microphone): CLK_HF1 is enabled, the sample rate its clocks and dividers give is within 1 % of 16 kHz,
the board file's [pdm_mic] pins are muxed to the AUDIOSS PDM_CLK / PDM_DATA functions (CLK a strong output) and
are the kit's CYBSP_PDM_CLK / CYBSP_PDM_DATA.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fwtool.core.boards import Board
from fwtool.emulator.psoc6.gpio import DM_STRONG_IN_OFF

if TYPE_CHECKING:
    from fwtool.emulator.psoc6.machine import Machine

BAUD_TOLERANCE = 0.015
MIC_RATE_HZ, MIC_RATE_TOLERANCE = 16_000, 0.01  # the audio apps' rate (fwtool/audio/params.py)


def _pin(p) -> str:
    return f"P{p[0]}_{p[1]}"


def uart_baud(m: Machine, scb: int) -> tuple[float | None, str]:
    """The baud rate the firmware set up on SCB ``scb`` and how (None when no divider is assigned)."""
    dev, bus = m.dev, m.bus
    pclk = dev.defines.get(f"PCLK_SCB{scb}_CLOCK")
    if pclk is None:
        return None, f"the device has no SCB{scb}"
    ctl = bus.get(dev.reg("PERI", f"CLOCK_CTL[{pclk}]"))
    sel_pos, sel_m = dev.field("PERI_CLOCK_CTL", "DIV_SEL")
    type_pos, type_m = dev.field("PERI_CLOCK_CTL", "TYPE_SEL")
    kind, num = (ctl & type_m) >> type_pos, (ctl & sel_m) >> sel_pos
    if kind != 1:
        return None, f"SCB{scb}'s clock is not a 16-bit divider (TYPE_SEL {kind})"
    div = bus.get(dev.reg("PERI", f"DIV_16_CTL[{num}]"))
    if not div & 1:
        return None, f"16-bit divider {num} (SCB{scb}'s clock) is not enabled"
    pos, mask = dev.field("PERI_DIV_16_CTL", "INT16_DIV")
    int_div = ((div & mask) >> pos) + 1
    ovs = m.scbs[scb].oversample()
    peri = m.state()["peri_hz"]
    return peri / int_div / ovs, f"CLK_PERI {peri:,} Hz / {int_div} / oversampling {ovs}"


def problems(m: Machine, board: Board) -> list[str]:
    """Every mismatch, one sentence each (empty: the firmware set the chip up as the board file and kit say)."""
    out: list[str] = []
    st, kit = m.state(), m.kit
    if not st["fll_enabled"]:
        out.append("the firmware never enabled the FLL (CLK_FLL_CONFIG.FLL_ENABLE)")
    elif not st["fll_locked"]:
        out.append("the FLL did not lock")
    if st["fll_target_hz"] != board.clock_hz:
        out.append(f"the FLL is programmed for {st['fll_target_hz']:,} Hz, the board file's clock_hz is "
                   f"{board.clock_hz:,}")
    if kit.fll_hz is not None and board.clock_hz != kit.fll_hz:
        out.append(f"the board file's clock_hz {board.clock_hz:,} is not the kit's FLL frequency {kit.fll_hz:,} Hz "
                   f"({kit.source})")
    if st["fll_locked"] and st["hf0_hz"] != board.clock_hz:
        out.append(f"CLK_HF0 runs at {st['hf0_hz']:,} Hz, not the board file's clock_hz {board.clock_hz:,}")
    uart = board.uart
    if uart is None:
        return out + ["the board file has no [uart] table"]
    scb = m.scbs.get(uart.scb)
    if scb is None or not scb.enabled():
        out.append(f"SCB{uart.scb} (the board file's [uart] scb) is not enabled in UART mode")
    else:
        baud, how = uart_baud(m, uart.scb)
        if baud is None:
            out.append(how)
        elif abs(baud - board.uart_baud) > BAUD_TOLERANCE * board.uart_baud:
            out.append(f"SCB{uart.scb} runs at {baud:,.0f} baud ({how}), not the board file's {board.uart_baud:,}")
    for sig, pin, kit_pin in (("TX", (uart.tx_port, uart.tx_pin), kit.uart_tx),
                              ("RX", (uart.rx_port, uart.rx_pin), kit.uart_rx)):
        want = m.dev.defines.get(f"P{pin[0]}_{pin[1]}_SCB{uart.scb}_UART_{sig}")
        got = m.gpio.function(*pin)
        if want is None:
            out.append(f"{_pin(pin)} has no SCB{uart.scb} UART {sig} function on this device")
        elif got != want:
            out.append(f"{_pin(pin)} is muxed to HSIOM function {got}, not SCB{uart.scb} UART {sig} ({want})")
        if sig == "TX" and m.gpio.drive_mode(*pin) != DM_STRONG_IN_OFF:
            out.append(f"{_pin(pin)} (UART TX) has drive mode {m.gpio.drive_mode(*pin)}, not strong ({DM_STRONG_IN_OFF})")
        if pin != kit_pin:
            out.append(f"the board file's UART {sig} pin {_pin(pin)} is not the kit's KitProg3 bridge pin "
                       f"{_pin(kit_pin)} ({kit.source})")
    out += mic_problems(m, board)
    led = board.led
    if led is not None and led.port is not None:
        pin = (led.port, led.pin)
        if m.gpio.drive_mode(*pin) != DM_STRONG_IN_OFF:
            out.append(f"the LED pin {_pin(pin)} is not a strong output (drive mode {m.gpio.drive_mode(*pin)})")
        if kit.led is not None and pin != kit.led:
            out.append(f"the board file's LED {_pin(pin)} is not the kit's user LED {_pin(kit.led)} ({kit.source})")
    return out


def mic_problems(m: Machine, board: Board) -> list[str]:
    """The microphone's clock, rate and pins (nothing when the firmware never started the PDM-PCM stream)."""
    pdm, mic, kit, out = m.pdm, board.pdm_mic, m.kit, []
    if pdm is None or not pdm.streaming():
        return out
    if not m.srss.hf_enabled(1):
        out.append("the PDM-PCM block streams but CLK_HF1 (its clock) is not enabled")
    rate = pdm.sample_rate()
    if abs(rate - MIC_RATE_HZ) > MIC_RATE_TOLERANCE * MIC_RATE_HZ:
        out.append(f"the PDM-PCM block samples at {rate:,.0f} Hz (CLK_HF1 {m.srss.hf_hz(1):,} Hz and its dividers), "
                   f"not {MIC_RATE_HZ:,}")
    if mic is None or mic.clk_port is None or mic.data_port is None:
        return out + ["the firmware streams from the PDM-PCM block but the board file has no [pdm_mic] pins"]
    for sig, pin, kit_pin in (("CLK", (mic.clk_port, mic.clk_pin), kit.pdm_clk),
                              ("DATA", (mic.data_port, mic.data_pin), kit.pdm_data)):
        want = next((m.dev.defines[n] for n in (f"P{pin[0]}_{pin[1]}_AUDIOSS0_PDM_{sig}",
                                                f"P{pin[0]}_{pin[1]}_AUDIOSS_PDM_{sig}") if n in m.dev.defines), None)
        got = m.gpio.function(*pin)
        if want is None:
            out.append(f"{_pin(pin)} has no PDM {sig} function on this device")
        elif got != want:
            out.append(f"{_pin(pin)} is muxed to HSIOM function {got}, not PDM {sig} ({want})")
        if sig == "CLK" and m.gpio.drive_mode(*pin) != DM_STRONG_IN_OFF:
            out.append(f"{_pin(pin)} (PDM CLK) has drive mode {m.gpio.drive_mode(*pin)}, not strong")
        if kit_pin is not None and pin != kit_pin:
            out.append(f"the board file's PDM {sig} pin {_pin(pin)} is not the kit's CYBSP_PDM_{sig} {_pin(kit_pin)} "
                       f"({kit.source})")
    return out
