"""nRF52840 build data: which nrfx / TinyUSB / CMSIS 5 files a build compiles and includes (the list TinyUSB
0.18.0's hw/bsp/nrf/family.cmake uses for its nRF examples, minus the drivers fwtool's platform layer does not
call, plus nrfx_pdm for the microphone), the board layer's defines, and the image check.
"""
from __future__ import annotations

from pathlib import Path

from fwtool.core import escape, vendor
from fwtool.core.boards import Board
from fwtool.core.errors import BadInput
from fwtool.image import firmware
from fwtool.image.check import check_for_board

ARCH_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]  # Cortex-M4F (FPv4-SP)
# pico-tflmicro files that include pico-sdk headers; replaced by templates/nrf52/fwt_tflm_platform.cpp.j2
PICO_ONLY_SOURCES = ("src/tensorflow/lite/micro/system_setup.cpp", "src/tensorflow/lite/micro/micro_time.cpp")
STACK_BYTES = 8192  # gcc_startup_nrf52840.S __STACK_SIZE (its default is 16 KiB)
HEAP_BYTES = 4096  # __HEAP_SIZE: newlib's stdio buffers (fwtool's firmware allocates nothing itself)
# nrfx (TinyUSB family.cmake: system file, start-up; the POWER driver for USB power events; PDM for the mic)
NRFX_SOURCES = ["mdk/system_{mcu}.c", "mdk/gcc_startup_{mcu}.S", "drivers/src/nrfx_power.c"]
NRFX_PDM_SOURCES = ["drivers/src/nrfx_pdm.c"]
NRFX_INCLUDES = ["", "mdk", "hal", "drivers/include", "drivers/src"]
# TinyUSB device stack with CDC and the nRF5x USBD port (family.cmake: family_add_tinyusb + dcd_nrf5x.c)
TINYUSB_SOURCES = ["src/tusb.c", "src/common/tusb_fifo.c", "src/device/usbd.c", "src/device/usbd_control.c",
                   "src/class/cdc/cdc_device.c", "src/portable/nordic/nrf5x/dcd_nrf5x.c"]
VIRTUAL_CLOCK_HZ = 25_000_000  # QEMU mps2-an386 SYSCLK (the virtual target's own clock, not the nRF's)


def pin(n: int) -> str:
    return f"P{n // 32}.{n % 32:02d}"


def board_defines(board: Board, pdm: bool) -> list[str]:
    led, mic = board.led, board.pdm_mic
    out = [board.sdk.device_define, "__STARTUP_CLEAR_BSS", "CONFIG_GPIO_AS_PINRESET",
           f"__STACK_SIZE={STACK_BYTES}", f"__HEAP_SIZE={HEAP_BYTES}",
           f"FWT_LED_PIN={led.pin if led else -1}", f"FWT_LED_ON={led.on_level if led else 1}u"]
    if pdm and mic is not None:
        out += [f"FWT_PDM_CLK_PIN={mic.clk_pin}u", f"FWT_PDM_DIN_PIN={mic.data_pin}u",
                f"FWT_PDM_PWR_PIN={-1 if mic.power_pin is None else mic.power_pin}"]
    return out


def off_pins(board: Board) -> list[dict]:
    """The RGB LED's pins, driven to 'off' at start-up (they float otherwise and glow faintly)."""
    rgb = board.rgb_led
    if rgb is None:
        return []
    return [{"number": getattr(rgb, c), "off_level": rgb.on_level ^ 1, "what": f"RGB {c} {pin(getattr(rgb, c))}"}
            for c in ("red", "green", "blue")]


KEYWORD_COLOURS = (("green", "yes"), ("red", "no"), ("blue", "other"))  # the TinyML book's micro_speech


def keyword_pins(board: Board) -> list[dict]:
    """The RGB LED's pins for fwt_led_keyword: which keyword lights which colour ([] without an RGB LED)."""
    rgb = board.rgb_led
    if rgb is None:
        return []
    return [{"number": getattr(rgb, colour), "when": word, "on": rgb.on_level, "off": rgb.on_level ^ 1,
             "what": f"{colour} {pin(getattr(rgb, colour))} on {'another keyword' if word == 'other' else word}"}
            for colour, word in KEYWORD_COLOURS]


def board_values(board: Board, paths: dict[str, Path], pdm: bool) -> dict:
    """Template values for the board side of the CMake project (absolute paths, CMake-quoted)."""
    nrfx, tusb, cmsis = paths["nrfx"], paths["tinyusb"], paths["cmsis-5"]
    mcu = board.sdk.mcu_variant
    def q(p):
        return escape.cmake_quoted(Path(p).as_posix())

    srcs = [q(nrfx / s.format(mcu=mcu)) for s in NRFX_SOURCES + (NRFX_PDM_SOURCES if pdm else [])]
    srcs += [q(tusb / s) for s in TINYUSB_SOURCES]
    bsp = tusb / "hw/bsp/nrf"
    usb_vid, usb_pid = board.usb_app or (0x2341, 0x805A)
    manifest = vendor.manifest()
    return {
        "board_sources": srcs,
        "board_includes": [q(nrfx / i) if i else q(nrfx) for i in NRFX_INCLUDES] +
                          [q(cmsis / "CMSIS/Core/Include"), q(tusb / "src"), q(bsp)],
        "board_defines": board_defines(board, pdm),
        "board_app_sources": ["fwt_mic.cpp"] if pdm and board.pdm_mic is not None else [],
        "linker_script": q(bsp / "boards" / board.sdk.tinyusb_board / f"{board.sdk.tinyusb_board}.ld"),
        "nrf52": {"app_base": board.flash_base, "nrfx_version": manifest["nrfx"].version,
                  "tinyusb_version": manifest["tinyusb"].version, "tinyusb_board": board.sdk.tinyusb_board,
                  "mdk_dir": q(nrfx / "mdk"), "usb_vid": f"0x{usb_vid:04X}", "usb_pid": f"0x{usb_pid:04X}",
                  "usb_app": f"{usb_vid:04X}:{usb_pid:04X}", "product": escape.c_string(board.title),
                  "clock_hz": board.clock_hz, "virtual_clock_hz": VIRTUAL_CLOCK_HZ, "pdm_enabled": int(pdm),
                  "off_pins": off_pins(board), "keyword_pins": keyword_pins(board)},
    }


def validate_image(text: bytes, board: Board):
    """The .hex ``board`` would run: every range inside the application region (fwtool.image.check: nothing
    below the bootloader's end), and a vector table at the application start (stack in RAM, Thumb reset handler
    inside the application region)."""
    img = check_for_board(firmware.parse(text, "firmware.hex", kind="hex"), board)
    lo, hi = board.flash_base, board.flash_base + board.flash_bytes
    raw = img.bytes_at(lo, 8)
    sp, pc = int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:], "little")
    if not (board.sram_base <= sp <= board.sram_base + board.sram_bytes and pc & 1 and lo <= pc & ~1 < hi):
        raise BadInput(f"firmware.hex has no valid vector table at 0x{lo:08X} (stack 0x{sp:08X}, reset 0x{pc:08X})",
                       f"rebuild for {board.name} ('fwtool build --board {board.name}')")
    return img
