"""Boards are data: one ``boards/<name>.toml`` each. This module loads and validates them."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from fwtool.core.errors import BadInput
from fwtool.core.paths import resource_dir
from fwtool.core.tomlcompat import tomllib


def _usb_id(text: str) -> tuple[int, int]:
    vid, pid = text.split(":")
    return int(vid, 16), int(pid, 16)


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
    runner_settings: dict = field(default_factory=dict)  # [flash.<runner>] tables
    sdk: dict = field(default_factory=dict)  # family-specific build settings (e.g. pico_board)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def has_led(self) -> bool:
        return self.led_pin >= 0

    def to_dict(self) -> dict:
        def hexid(v):
            return None if v is None else f"{v[0]:04X}:{v[1]:04X}"

        return {
            "name": self.name, "title": self.title, "family": self.family, "mcu": self.mcu, "cpu": self.cpu,
            "clock_hz": self.clock_hz, "flash_bytes": self.flash_bytes, "sram_bytes": self.sram_bytes,
            "led_pin": self.led_pin, "usb_app": hexid(self.usb_app), "usb_bootsel": hexid(self.usb_bootsel),
            "uf2_family_id": None if self.uf2_family_id is None else f"0x{self.uf2_family_id:08X}",
            "stdio": self.stdio, "sdk": dict(self.sdk), "flash_base": f"0x{self.flash_base:08X}",
            "image_kind": self.image_kind, "runners": list(self.runners),
        }


def _from_toml(path: Path) -> Board:
    d = tomllib.loads(path.read_text())
    try:
        usb = d.get("usb", {})
        uf2 = d.get("uf2", {})
        stdio = d.get("stdio", {})
        mem = d["memory"]
        image = d.get("image", {})
        flash = d.get("flash", {})
        return Board(
            name=d["name"], title=d.get("title", d["name"]), family=d["family"], mcu=d["mcu"], cpu=d["cpu"],
            clock_hz=int(d.get("clock_hz", 0)),
            flash_bytes=int(mem["flash_bytes"]), sram_bytes=int(mem["sram_bytes"]),
            led_pin=int(d.get("led", {}).get("pin", -1)),
            usb_app=_usb_id(usb["app"]) if "app" in usb else None,
            usb_bootsel=_usb_id(usb["bootsel"]) if "bootsel" in usb else None,
            uf2_family_id=uf2.get("family_id"), flash_base=int(mem["flash_base"]),
            sram_base=int(mem.get("sram_base", 0x20000000)),
            stdio=stdio.get("default", "usb"), uart_baud=int(stdio.get("uart_baud", 115200)),
            image_kind=str(image.get("kind", "uf2")), boot_check=image.get("boot_check"),
            runners=tuple(str(r) for r in flash.get("runners", [])),
            runner_settings={k: dict(v) for k, v in flash.items() if isinstance(v, dict)},
            sdk=dict(d.get("sdk", {})), raw=d,
        )
    except (KeyError, ValueError, TypeError) as e:  # a malformed data file is our bug, say where
        raise BadInput(f"board file {path.name} is malformed ({e!r})", "fix or remove that file") from e


@lru_cache(maxsize=None)
def all_boards() -> dict[str, Board]:
    boards = {}
    for path in sorted(resource_dir("boards").glob("*.toml")):
        b = _from_toml(path)
        boards[b.name] = b
    return boards


def get_board(name: str) -> Board:
    boards = all_boards()
    if name in boards:
        return boards[name]
    close = difflib.get_close_matches(name, boards, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise BadInput(
        f"unknown board '{name}'; valid boards: {', '.join(boards)}",
        f"{hint}run 'fwtool boards' to list them",
    )
