"""The schema of a board file (``boards/<name>.toml``): one frozen dataclass per table, checked by :func:`build`.

Every key of every table has a type here; a key the schema does not know, a value of the wrong type and a
missing required key are each refused with the file, the key (``[flash] runner``) and the nearest valid name —
so ``[flash] runner = [...]`` (for ``runners``) is an error, not "every runner". Plain dataclasses: the tables
are small and flat, the checks fit in one function below, and the errors read like every other fwtool error
(a validation library would add a dependency and its own message format for the same ~20 checks).

The family-specific ``[sdk]`` table has one dataclass per family (:data:`SDK_TABLES`); a new family adds its own.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from fwtool.core.errors import BadInput
from fwtool.core.escape import terminal

DEFAULT_SRAM_BASE = 0x20000000


def usb_id(text: str) -> tuple[int, int]:
    """``"2E8A:000A"`` -> (0x2E8A, 0x000A); ValueError for anything else."""
    vid, pid = text.split(":")
    if not (len(vid) == 4 and len(pid) == 4):
        raise ValueError(text)
    return int(vid, 16), int(pid, 16)


def _usb_ids(values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        usb_id(v)
    return values


# ---- the tables ---------------------------------------------------------------------------------------------------

# The platforms pico-sdk 2.2.0 knows (its cmake/preload/platforms/*.cmake, "rp2350" being its alias for
# rp2350-arm-s), and the one each fwtool family builds. A board file's pico_platform is checked against both.
PICO_PLATFORMS = ("rp2040", "rp2350", "rp2350-arm-s", "rp2350-riscv", "host")
FAMILY_PLATFORMS = {"rp2040": ("rp2040",), "rp2350": ("rp2350-arm-s", "rp2350")}
# [sdk] keys only an RP2350 board takes: asked of an RP2040 board they are refused by name (not as a typo).
RP2350_ONLY_KEYS = ("dsp",)


@dataclass(frozen=True)
class PicoSdk:
    """[sdk] of an ``rp2040`` board."""

    pico_board: str  # pico-sdk PICO_BOARD (src/boards/include/boards/<name>.h)
    pico_platform: str = field(default="rp2040", metadata={"choices": PICO_PLATFORMS,
                                                              "what": "a platform pico-sdk 2.2.0 knows"})


@dataclass(frozen=True)
class Rp2350Sdk:
    """[sdk] of an ``rp2350`` board (Pico 2): the board header, the platform, CMSIS-NN's DSP paths on or off."""

    pico_board: str
    pico_platform: str = field(default="rp2350-arm-s", metadata={"choices": PICO_PLATFORMS,
                                                                    "what": "a platform pico-sdk 2.2.0 knows"})
    dsp: bool = True  # compile TFLM/CMSIS-NN with the M33's DSP extension (false: the plain C paths, to compare)


@dataclass(frozen=True)
class PSoC6Sdk:
    """[sdk] of a ``psoc6`` board: the kit's BSP tree and the PDL device."""

    bsp: str  # "TARGET_CY8CKIT-062-BLE" (a vendor/manifest.toml tree)
    bsp_version: str
    device: str  # the PDL device define
    die: str  # "PSoC6ABLE2" | "PSoC6A2M" | ...
    cm0p_image: str  # the cat1cm0p component ("COMPONENT_CM0P_BLESS", "COMPONENT_CM0P_SLEEP")


@dataclass(frozen=True)
class Nrf52Sdk:
    """[sdk] of an ``nrf52`` board: its TinyUSB board folder (linker script) and the nrfx MDK variant."""

    tinyusb_board: str  # TinyUSB hw/bsp/nrf/boards/<name> ("arduino_nano33_ble")
    mcu_variant: str = "nrf52840"  # nrfx mdk/system_<variant>.c, gcc_startup_<variant>.S
    device_define: str = "NRF52840_XXAA"  # the MDK's device define


@dataclass(frozen=True)
class LinuxSdk:
    """[sdk] of a ``linux`` board: the static program's CPU, its compiler and what the board's Linux names."""

    arch: str = field(metadata={"choices": ("aarch64", "x86_64", "host")})  # `uname -m` ("host": this machine's)
    compiler_prefix: str = ""  # "aarch64-linux-gnu-" (Debian's cross g++); "" = the host's g++
    cpu_flags: tuple[str, ...] = ()  # e.g. ["-mcpu=cortex-a72"]
    led: str | None = None  # a sysfs LED (/sys/class/leds/ACT/brightness) or value file, or "gpiochipN:LINE"
    deploy_dir: str = "fwtool"  # the remote folder (under the login's home) every deploy writes into
    capture_device: str | None = None  # the ALSA capture PCM of an audio app (plughw:1,0); None: arecord -l's first


SDK_TABLES: dict[str, type] = {"rp2040": PicoSdk, "rp2350": Rp2350Sdk, "psoc6": PSoC6Sdk, "nrf52": Nrf52Sdk,
                              "linux": LinuxSdk}  # family name -> its [sdk] table


@dataclass(frozen=True)
class Memory:
    flash_base: int  # where the image starts
    flash_bytes: int
    sram_bytes: int
    sram_base: int = DEFAULT_SRAM_BASE
    app_flash_base: int | None = None  # PSoC 6: the CM4 application's start (after the CM0+ image)
    app_flash_bytes: int | None = None
    cm0p_flash_bytes: int | None = None  # PSoC 6: flash reserved for the CM0+ image
    chip_flash_bytes: int | None = None  # nRF52: the whole chip's flash (the app region is flash_base/_bytes)
    bootloader_base: int | None = None  # nRF52: the bootloader kept below the application (never written)
    bootloader_bytes: int | None = None


@dataclass(frozen=True)
class Led:
    pin: int  # -1: no LED the app can drive
    port: int | None = None  # PSoC 6 GPIO port (P1_5: port 1, pin 5)
    on_level: int = 1  # the output level that lights it (0: active low)


@dataclass(frozen=True)
class Usb:
    app: str | None = field(default=None, metadata={"check": usb_id})  # "VID:PID" of the running firmware
    bootsel: str | None = field(default=None, metadata={"check": usb_id})  # the boot ROM's mass storage/PICOBOOT
    probe: tuple[str, ...] = field(default=(), metadata={"check": _usb_ids})  # the onboard debug probe's ids
    wrong_mode: tuple[str, ...] = field(default=(), metadata={"check": _usb_ids})  # a probe mode runners cannot use
    # what the ``bootsel`` id speaks when it is not a boot ROM with PICOBOOT: "samba" (a CDC port, Arduino)
    bootloader: str | None = field(default=None, metadata={"choices": ("samba",)})


@dataclass(frozen=True)
class Image:
    kind: str = field(default="uf2", metadata={"choices": ("uf2", "hex", "bin", "elf")})
    boot_check: str | None = field(default=None, metadata={"choices": ("rp2040-boot2",
                                                                                   "rp2350-image-def")})


@dataclass(frozen=True)
class Uf2:
    family_id: int


@dataclass(frozen=True)
class PyocdSettings:
    target: str  # a pyOCD built-in target name


@dataclass(frozen=True)
class OpenocdSettings:
    interface: str
    targets: tuple[str, ...]  # target scripts, the first one the scripts dir has
    debian_interface: str | None = None  # for Debian's OpenOCD (no Infineon scripts)
    debian_target: str | None = None


@dataclass(frozen=True)
class ResetSettings:
    strategies: tuple[str, ...] = ()  # reset strategies in order (fwtool/devices/reset.py)
    manual: str | None = None  # how a user enters the bootloader by hand (messages after a failed reboot)


@dataclass(frozen=True)
class SambaSettings:
    chip: str = "nRF52840-QIAA"  # what the bootloader's I# answers (fwtool/flash/samba/chips.py)


@dataclass(frozen=True)
class Flash:
    runners: tuple[str, ...] = ()  # in order of preference (fwtool/flash/runners/); () = every runner
    pyocd: PyocdSettings | None = None
    openocd: OpenocdSettings | None = None
    reset: ResetSettings | None = None
    samba: SambaSettings | None = None

    def settings(self) -> dict[str, dict]:
        """The [flash.<runner>] tables as plain dicts, as written in the file (what a runner reads)."""
        def plain(table) -> dict:
            return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(table).items()
                    if v is not None}

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name != "runners" and getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Stdio:
    default: str = field(default="usb", metadata={"choices": ("usb", "uart")})
    uart_baud: int = 115200
    uart_tx_pin: int | None = None
    uart_rx_pin: int | None = None


@dataclass(frozen=True)
class Uart:
    """PSoC 6: the debug UART's SCB and pins."""

    scb: int
    tx_port: int
    tx_pin: int
    rx_port: int
    rx_pin: int


@dataclass(frozen=True)
class PdmMic:
    """A PDM microphone (audio apps need one): GPIOs and the PIO state machine that captures it."""

    data_pin: int
    clk_pin: int
    pio: int = 0
    sm: int = 0
    power_pin: int | None = None  # nRF52 boards: the GPIO that powers the microphone (driven high)
    mic: str | None = None  # the part ("MP34DT05"), for listings
    data_port: int | None = None  # PSoC 6: the GPIO ports of the pins (P10_5: data_port 10, data_pin 5), as [led]
    clk_port: int | None = None


@dataclass(frozen=True)
class RgbLed:
    """An RGB LED (three GPIOs); the kws app shows the keyword's colour on it."""

    red: int
    green: int
    blue: int
    on_level: int = 0  # common anode: active low


@dataclass(frozen=True)
class Clock:
    """The clk_sys values ``fwtool build --clock`` accepts (fwtool/firmware/speed.py)."""

    allowed_mhz: tuple[int, ...] = ()  # values the SDK has PLL settings for
    fastest_mhz: int | None = None  # --clock fastest (pico-sdk: PICO_USE_FASTEST_SUPPORTED_CLOCK)


FAULT_ACTIONS = ("halt", "reset")


@dataclass(frozen=True)
class Debug:
    """What the firmware does after it printed FWT:FAULT (any family's fault handler; PSoC 6: the PDL fault and
    assert hooks in fwt_platform.cpp): ``halt`` keeps the core stopped for a debugger (the default), ``reset``
    restarts the chip (NVIC_SystemReset), so an unattended board runs again."""

    on_fault: str = field(default="halt", metadata={"choices": FAULT_ACTIONS, "what": "a fault action"})


@dataclass(frozen=True)
class BoardFile:
    """A whole board file (after ``extends`` merged it over its base)."""

    name: str
    family: str
    mcu: str
    cpu: str
    clock_hz: int
    memory: Memory
    sdk: Any  # the family's SDK_TABLES entry (checked against it in build_board_file)
    title: str | None = None
    extends: str | None = None  # a board this file overrides (tables merge, keys override)
    led: Led | None = None
    usb: Usb = Usb()
    image: Image = Image()
    uf2: Uf2 | None = None
    flash: Flash = Flash()
    stdio: Stdio = Stdio()
    uart: Uart | None = None
    pdm_mic: PdmMic | None = None
    rgb_led: RgbLed | None = None
    clock: Clock = Clock()
    debug: Debug = Debug()


# ---- the checks ---------------------------------------------------------------------------------------------------

def _table_name(where: str) -> str:
    return f"[{where}]" if where else "the top level"


def _key_name(where: str, key: str) -> str:
    return f"[{where}] {key}" if where else key


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return f"a list of {({int: 'integers', str: 'strings'}).get(item, _type_name(item))}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {int: "an integer", str: "a string", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _what(value) -> str:
    return "a table" if isinstance(value, dict) else "a list" if isinstance(value, list) else \
        f"{type(value).__name__} {terminal(repr(value))[:40]}"


class _Refused(Exception):
    def __init__(self, key: str, cause: str, fix: str):
        super().__init__(cause)
        self.key, self.cause, self.fix = key, cause, fix


def _value(tp, value, where: str, key: str):
    """``value`` checked against the annotation ``tp`` (and converted: lists to tuples, tables to dataclasses)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _value(inner, value, where, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Refused(key, f"{_key_name(where, key)} must be a table, not {_what(value)}",
                           f"write it as a [{_dotted(where, key)}] table")
        return _table(tp, value, _dotted(where, key))
    if origin is tuple:
        if not isinstance(value, list):
            raise _Refused(key, f"{_key_name(where, key)} must be {_type_name(tp)}, not {_what(value)}",
                           f'write e.g. {key} = ["..."]')
        item = typing.get_args(tp)[0]
        return tuple(_value(item, v, where, key) for v in value)
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        raise _Refused(key, f"{_key_name(where, key)} must be {_type_name(tp)}, not {_what(value)}",
                       f"give {key} {_type_name(tp)}")
    return value


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _table(cls, data: dict, where: str):
    """``data`` (one TOML table) as an instance of the dataclass ``cls``; _Refused names the first bad key."""
    hints = typing.get_type_hints(cls)
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise _Refused(key, f"unknown key {_key_name(where, key)}",
                           f"{hint}{_table_name(where)} takes: {', '.join(fields)}")
    values = {}
    for key, f in fields.items():
        if key not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Refused(key, f"{_table_name(where)} lacks the required key {key}",
                               f"add {_key_name(where, key)} = <{_type_name(hints[f.name])}>")
            continue
        value = _value(hints[f.name], data[key], where, key)
        if "choices" in f.metadata and value is not None and value not in f.metadata["choices"]:
            close = difflib.get_close_matches(str(value), f.metadata["choices"], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise _Refused(key, f"{_key_name(where, key)} = {terminal(repr(value))} is not "
                                f"{f.metadata.get('what', 'one fwtool knows')}",
                           f"{hint}use one of: {', '.join(f.metadata['choices'])}")
        if "check" in f.metadata and value is not None:
            try:
                f.metadata["check"](value)
            except (ValueError, TypeError):
                raise _Refused(key, f"{_key_name(where, key)} = {terminal(repr(value))} is not a USB id",
                               'write it as "VID:PID" in hex, e.g. "2E8A:000A"') from None
        values[f.name] = value
    return cls(**values)


def build_board_file(data: dict, path: Path) -> BoardFile:
    """The checked board file; BadInput (exit 3) with the file, the key and the fix for the first fault."""
    try:
        checked = _table(BoardFile, data, "")  # [sdk] passes through: its schema depends on the family
        sdk_cls = SDK_TABLES.get(checked.family)
        if sdk_cls is None:
            close = difflib.get_close_matches(checked.family, SDK_TABLES, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise _Refused("family", f"family = {terminal(repr(checked.family))} is not a family fwtool knows",
                           f"{hint}use one of: {', '.join(SDK_TABLES)}")
        if not isinstance(checked.sdk, dict):
            raise _Refused("sdk", f"sdk must be a table, not {_what(checked.sdk)}", "write it as an [sdk] table")
        if sdk_cls is PicoSdk:
            for key in RP2350_ONLY_KEYS:
                if key in checked.sdk:
                    raise _Refused(key, f"[sdk] {key} is an RP2350 option, and {checked.name} is an "
                                        f"{checked.mcu} ({checked.family}) board",
                                   f"remove [sdk] {key}, or use an RP2350 board ('--board pico2', extends = \"pico2\")")
        sdk = _table(sdk_cls, checked.sdk, "sdk")
        platforms = FAMILY_PLATFORMS.get(checked.family)
        if platforms is not None and sdk.pico_platform not in platforms:
            raise _Refused("pico_platform", f"[sdk] pico_platform = {terminal(repr(sdk.pico_platform))} is not "
                                            f"built by fwtool's {checked.family} family",
                           f"use {' or '.join(repr(p) for p in platforms)}"
                           + (" (the Hazard3 RISC-V cores are not supported: docs/pico2.md)"
                              if sdk.pico_platform == "rp2350-riscv" else ""))
        return dataclasses.replace(checked, sdk=sdk)
    except _Refused as e:
        raise BadInput(f"board file {terminal(path)}: {e.cause}", e.fix) from None
