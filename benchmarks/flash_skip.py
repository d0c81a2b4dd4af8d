"""How much of the flash a re-flash touches, measured against the fake RP2040 bootrom (tests/fakes_picoboot.py).

Prints, for one image, the bytes programmed and sectors erased relative to the image size, and the PICOBOOT
commands used, for: a blank board, the same image again, the image with one byte changed, and (optionally) a
second build of the same project. Counts only: the fake has no USB timing, so no speeds are claimed.

    python benchmarks/flash_skip.py build/pico/firmware.uf2 [other_build/firmware.uf2]
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes_picoboot import FakeBackend, FakeBoard, make_firmware, make_uf2  # noqa: E402

from fwtool.core.boards import get_board  # noqa: E402
from fwtool.devices import usb as usbdevices  # noqa: E402
from fwtool.flash import flash_image, load_image  # noqa: E402
from fwtool.flash.base import Image  # noqa: E402


def one(board: FakeBoard, img, label: str) -> None:
    dev_before = len(board.picoboot_sessions)
    r = flash_image(img, get_board("pico"), wait_app=0)
    sessions = board.picoboot_sessions[dev_before - 1:] if dev_before else board.picoboot_sessions
    cmds = Counter(name for s in sessions for name, _, _ in s.commands)
    erased = sum(s.erased_sectors for s in sessions)
    n = r["bytes_total"]
    print(f"{label:28} written {r['bytes_written']:>8,} B ({r['bytes_written'] / n:6.1%} of image)  "
          f"erased {erased:3} sectors  skipped {r['sectors_skipped']:3}/{r['sectors_total']}  verified "
          f"{r['verified']}  commands {dict(sorted(cmds.items()))}")
    assert r["verified"]


def main(argv: list[str]) -> None:
    pico = get_board("pico")
    if argv:
        img = load_image(Path(argv[0]), pico)
    else:
        data = make_firmware(120_516)
        img = Image(0x10000000, data + b"\0" * (-len(data) % 256), "synthetic 120,516 B", "bin")
        img.uf2 = make_uf2(data)
    print(f"image: {img.source}  {len(img.data):,} B")
    board = FakeBoard("bootsel")
    usbdevices._backend = FakeBackend(board)
    usbdevices._backend.sleep(0)
    one(board, img, "blank board")
    board._enter("bootsel")
    one(board, img, "same image again")
    changed = bytearray(img.data)
    changed[len(changed) // 2] ^= 0xFF
    board._enter("bootsel")
    one(board, Image(img.base, bytes(changed), "one byte changed", "bin"), "one byte changed")
    if len(argv) > 1:
        other = load_image(Path(argv[1]), pico)
        same = sum(1 for i in range(0, min(len(other.data), len(img.data)), 4096)
                   if other.data[i:i + 4096] == img.data[i:i + 4096])
        print(f"second build: {other.source}  {len(other.data):,} B, {same} identical 4 KiB sectors")
        board._enter("bootsel")
        one(board, other, "second build over first")


if __name__ == "__main__":
    main(sys.argv[1:])
