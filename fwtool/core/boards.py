"""Boards are data: one TOML file each, checked against the schema in board_schema.py.

Built-in boards are the package's ``boards/*.toml``. User boards work the same way: a board file in the user's
project (a ``boards/`` folder beside their model) or in a folder the config file names (``[boards] dirs``). A
board file may ``extends = "pico"`` (any known board): its tables merge over the base's, its keys override the
base's (PlatformIO's board override idea), so a custom RP2040 PCB is a few lines. See docs/boards.md.

A command resolves its board once (:func:`get_board` with the model path); a user board found that way is then
known by name for the rest of the command (flash, monitor and validate look it up again by name).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Union

from fwtool.core import config, userfile
from fwtool.core.board_schema import (BoardFile, Clock, Debug, Led, Memory, Nrf52Sdk, PdmMic, PicoSdk, PSoC6Sdk,
                                      RgbLed, Rp2350Sdk, Uart, Usb, build_board_file, usb_id)
from fwtool.core.errors import BadInput
from fwtool.core.escape import terminal
from fwtool.core.paths import resource_dir
from fwtool.core.tomlcompat import tomllib

MAX_BOARD_FILE_BYTES = 256 * 1024
PROJECT_DIR = "boards"  # the folder beside a model that holds the user's board files
Sdk = Union[PicoSdk, Rp2350Sdk, PSoC6Sdk, Nrf52Sdk]


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    family: str
    mcu: str
    cpu: str
    clock_hz: int
    flash_bytes: int
    sram_bytes: int
    led_pin: int  # -1: no GPIO LED the app can drive
    usb_app: tuple[int, int] | None
    usb_bootsel: tuple[int, int] | None
    uf2_family_id: int | None
    flash_base: int  # from the memory table: where the image lives (0x10000000 on RP2040 and PSoC 6)
    stdio: str  # "usb" | "uart"
    uart_baud: int
    sram_base: int = 0x20000000
    image_kind: str = "uf2"  # the file runners flash: "uf2" | "hex" | "bin" | "elf"
    boot_check: str | None = None  # a check the chip's boot ROM applies to an image ("rp2040-boot2")
    runners: tuple[str, ...] = ()  # flash runners in order of preference (fwtool/flash/runners/)
    runner_settings: dict = field(default_factory=dict)  # [flash.<runner>] tables, as plain dicts
    sdk: Sdk | None = None  # the family's [sdk] table (board_schema.SDK_TABLES)
    memory: Memory | None = None  # the whole [memory] table (PSoC 6: the CM4 application's region too)
    led: Led | None = None
    usb: Usb = Usb()  # the [usb] table (probe / wrong_mode ids too)
    uart: Uart | None = None
    pdm_mic: PdmMic | None = None
    rgb_led: RgbLed | None = None
    clock: Clock = Clock()
    debug: Debug = Debug()  # [debug]: on_fault = "halt" | "reset" (what a fault handler does after FWT:FAULT)
    source: Path | None = None  # the board file (the extending one for a user board)
    extends: str | None = None  # the board it extends

    @property
    def has_led(self) -> bool:
        return self.led_pin >= 0

    @property
    def features(self) -> frozenset[str]:
        """The optional tables its board file has (an app ``needs`` some, e.g. ``pdm_mic``)."""
        return frozenset(name for name, table in (("led", self.led), ("uart", self.uart),
                                                  ("pdm_mic", self.pdm_mic)) if table is not None)

    @property
    def app_flash_base(self) -> int:
        """Where the application's vector table is (PSoC 6: after the CM0+ image; else the image start)."""
        if self.memory is not None and self.memory.app_flash_base is not None:
            return self.memory.app_flash_base
        return self.flash_base

    def to_dict(self) -> dict:
        def hexid(v):
            return None if v is None else f"{v[0]:04X}:{v[1]:04X}"

        return {
            "name": self.name, "title": self.title, "family": self.family, "mcu": self.mcu, "cpu": self.cpu,
            "clock_hz": self.clock_hz, "flash_bytes": self.flash_bytes, "sram_bytes": self.sram_bytes,
            "led_pin": self.led_pin, "usb_app": hexid(self.usb_app), "usb_bootsel": hexid(self.usb_bootsel),
            "uf2_family_id": None if self.uf2_family_id is None else f"0x{self.uf2_family_id:08X}",
            "stdio": self.stdio, "sdk": dict(vars(self.sdk)) if self.sdk else {},
            "flash_base": f"0x{self.flash_base:08X}", "image_kind": self.image_kind, "runners": list(self.runners),
            **({"extends": self.extends, "file": str(self.source)} if self.extends or self.is_user_board else {}),
        }

    @property
    def is_user_board(self) -> bool:
        return self.source is not None and self.source.parent.resolve() != resource_dir("boards").resolve()


def from_file(f: BoardFile, source: Path | None = None) -> Board:
    """The Board of a checked board file."""
    return Board(
        name=f.name, title=f.title or f.name, family=f.family, mcu=f.mcu, cpu=f.cpu, clock_hz=f.clock_hz,
        flash_bytes=f.memory.flash_bytes, sram_bytes=f.memory.sram_bytes,
        led_pin=f.led.pin if f.led else -1,
        usb_app=usb_id(f.usb.app) if f.usb.app else None,
        usb_bootsel=usb_id(f.usb.bootsel) if f.usb.bootsel else None,
        uf2_family_id=f.uf2.family_id if f.uf2 else None, flash_base=f.memory.flash_base,
        sram_base=f.memory.sram_base, stdio=f.stdio.default, uart_baud=f.stdio.uart_baud,
        image_kind=f.image.kind, boot_check=f.image.boot_check, runners=f.flash.runners,
        runner_settings=f.flash.settings(), sdk=f.sdk, memory=f.memory, led=f.led, usb=f.usb, uart=f.uart,
        pdm_mic=f.pdm_mic, rgb_led=f.rgb_led, clock=f.clock, debug=f.debug, source=source, extends=f.extends)


def _read(path: Path) -> dict:
    fix = "fix or remove that board file (docs/boards.md)"
    userfile.check(path, "board file", MAX_BOARD_FILE_BYTES, fix)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise BadInput(f"board file {terminal(path)} is not UTF-8 text (byte {e.start})", fix) from e
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"board file {terminal(path)} is not valid TOML ({terminal(e)})", fix) from e


def merge(base: dict, over: dict) -> dict:
    """``over`` on ``base``: tables merge (recursively), every other key of ``over`` replaces the base's."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _extended(path: Path, data: dict, boards: dict[str, Board], pending: dict[str, Path],
              chain: tuple[str, ...]) -> dict:
    """``data`` (read from ``path``) merged over the board it ``extends`` (a known board, or one of the
    ``pending`` files of the same folders), recursively; the data itself when it extends nothing."""
    base_name = data.get("extends")
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise BadInput(f"board file {terminal(path)}: extends must be a board name (a string), not "
                       f"{type(base_name).__name__}", 'write e.g. extends = "pico"')
    names = {**boards, **pending}
    if base_name not in names or base_name in chain:
        close = difflib.get_close_matches(base_name, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close and base_name not in chain else ""
        what = f"extends '{terminal(base_name)}', which extends it back" if base_name in chain else \
            f"extends unknown board '{terminal(base_name)}'"
        raise BadInput(f"board file {terminal(path)}: {what}",
                       f"{hint}extend one of: {', '.join(sorted(names))} ('fwtool boards')")
    base_path = boards[base_name].source if base_name in boards else pending[base_name]
    base = _extended(base_path, _read(base_path), boards, pending, (*chain, base_name))
    # the new board has its own name (else its file's) and title; everything else comes from the base
    merged = merge({k: v for k, v in base.items() if k not in ("name", "title", "extends")}, data)
    merged.setdefault("name", path.stem)
    return merged


def load_file(path: Path, boards: dict[str, Board] | None = None,
              pending: dict[str, Path] | None = None) -> Board:
    """The board of one file; what it ``extends`` is one of ``boards`` (default: the built-ins) or ``pending``."""
    data = _read(path)
    boards = builtin_boards() if boards is None else boards
    merged = _extended(path, data, boards, pending or {}, (str(data.get("name", path.stem)),))
    return from_file(build_board_file(merged, path), path)


def _load_all(files: list[Path], boards: dict[str, Board]) -> dict[str, Board]:
    """``boards`` plus the boards of ``files`` (which may extend each other, in any order)."""
    pending: dict[str, Path] = {}
    for path in files:
        name = _read(path).get("name", path.stem)
        name = name if isinstance(name, str) else path.stem  # a wrong type: the schema says so below
        clash = boards[name].source if name in boards else pending.get(name)
        if clash is not None and clash != path:
            raise BadInput(f"board file {terminal(path)} is named '{name}', like the board in {terminal(clash)}",
                           f'give it another name (name = "my_{name}") and extends = "{name}"')
        pending[name] = path
    out = dict(boards)
    for path in files:
        b = load_file(path, boards, pending)
        out[b.name] = b
    return out


@lru_cache(maxsize=None)
def builtin_boards() -> dict[str, Board]:
    return _load_all(sorted(resource_dir("boards").glob("*.toml")), {})


def board_dirs(model: Path | str | None = None) -> list[Path]:
    """Where user board files are looked for: the config file's ``[boards] dirs``, then ``boards/`` beside the
    model (the built-in folder itself is never a user folder)."""
    dirs = [Path(d) for d in config.board_dirs()]
    if model is not None:
        dirs.append(Path(model).resolve().parent / PROJECT_DIR)
    builtin = resource_dir("boards").resolve()
    return [d for d in dict.fromkeys(dirs) if d.is_dir() and d.resolve() != builtin]


_found: dict[str, Board] = {}  # user boards resolved by this command (get_board with a model)


def _available(dirs: tuple[Path, ...]) -> dict[str, Board]:
    """Built-in boards, the user boards already resolved, and every board file in ``dirs``."""
    return _load_all([p for d in dirs for p in sorted(d.glob("*.toml"))], {**builtin_boards(), **_found})


def all_boards(model: Path | str | None = None) -> dict[str, Board]:
    """Every board this command knows: built-ins, user boards of the config's folders and beside ``model``."""
    return _available(tuple(board_dirs(model)))


def get_board(name: str, model: Path | str | None = None) -> Board:
    """The board called ``name`` (built-in, or a user board file, see :func:`board_dirs`)."""
    if name in builtin_boards():
        return builtin_boards()[name]
    if name in _found:
        return _found[name]
    boards = all_boards(model)
    if name in boards:
        _found[name] = boards[name]
        return boards[name]
    close = difflib.get_close_matches(name, boards, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise BadInput(
        f"unknown board '{name}'; valid boards: {', '.join(boards)}",
        f"{hint}run 'fwtool boards' to list them, or add a board file (docs/boards.md)",
    )


def remember(path: Path) -> Board:
    """Load the user board file ``path`` (e.g. the one a build report names) and know it by name from now on."""
    b = load_file(Path(path), {**builtin_boards(), **_found})
    if b.name not in builtin_boards():
        _found[b.name] = b
    return b


def forget_user_boards() -> None:
    """Drop the user boards resolved so far (a new command; tests)."""
    _found.clear()
