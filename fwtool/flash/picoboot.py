"""Flashing over PICOBOOT: write an image so that flash holds it, touching only the sectors that differ, then
read everything back (the protocol client: fwtool/devices/picoboot.py)."""
from __future__ import annotations

from fwtool.core.errors import FlashFailed
from fwtool.devices.picoboot import AFTER_FAILURE_FIX, PAGE, SECTOR, PicobootClient
from fwtool.flash.base import Image, Progress, no_progress
from fwtool.flash.request import PicobootDetails, Written


# ---- the flashing algorithm -------------------------------------------------------------------------------------

def program(client: PicobootClient, image: Image, flash: tuple[int, int], *, verify: bool = True,
            skip_same: bool = True, progress: Progress = no_progress) -> Written:
    """Write ``image`` so that flash holds it, touching only sectors that differ; read everything back.

    Bytes of a partly covered sector outside the image keep their old content. Returns the counters
(``rebooted`` False: the runner reboots):
    ``bytes_written`` = bytes actually programmed (pages of rewritten sectors that are not all 0xFF),
    ``bytes_skipped`` = image bytes in sectors that already held them (neither erased nor written).
    """
    lo, hi = flash
    if image.base % PAGE or image.base < lo or image.end > hi or not image.data:
        raise FlashFailed(f"image 0x{image.base:08X}-0x{image.end:08X} does not fit flash 0x{lo:08X}-0x{hi:08X} "
                          "at a 256-byte boundary", "build for this board, or pass the right --board")
    first = image.base - image.base % SECTOR
    last = image.end + (-image.end % SECTOR)
    sectors = list(range(first, last, SECTOR))
    total = last - first

    client.exit_xip()
    expected: dict[int, bytes] = {}
    changed: list[int] = []
    done = 0
    for addr in sectors:
        current = client.read(addr, SECTOR, flash)
        want = bytearray(current)
        a, b = max(addr, image.base), min(addr + SECTOR, image.end)
        want[a - addr:b - addr] = image.data[a - image.base:b - image.base]
        expected[addr] = bytes(want)
        if bytes(want) != current or not skip_same:
            changed.append(addr)
        done += SECTOR
        progress("checking", done, total)

    written = 0
    done = 0
    for addr in changed:
        client.exit_xip()
        client.erase(addr, SECTOR, flash)
        want = expected[addr]
        # after an erase the sector is all 0xFF: program only the runs of pages that are not
        pages = [p for p in range(0, SECTOR, PAGE) if want[p:p + PAGE] != b"\xff" * PAGE]
        for start, end in _runs(pages):
            client.write(addr + start, want[start:end], flash)
            written += end - start
        done += SECTOR
        progress("writing", done, len(changed) * SECTOR)

    verified = False
    if changed and verify:
        done = 0
        client.exit_xip()
        for addr in sectors:
            got = client.read(addr, SECTOR, flash)
            if got != expected[addr]:
                off = next(i for i in range(SECTOR) if got[i] != expected[addr][i])
                raise FlashFailed(f"verify failed: flash at 0x{addr + off:08X} reads 0x{got[off]:02X}, expected "
                                  f"0x{expected[addr][off]:02X} (read back after writing)", AFTER_FAILURE_FIX)
            done += SECTOR
            progress("verifying", done, total)
        verified = True
    elif not changed:
        verified = True  # every sector was just read and compared equal: that is the verification
    return Written(bytes_total=len(image.data), bytes_written=written,
                   bytes_skipped=sum(min(a + SECTOR, image.end) - max(a, image.base)
                                     for a in sectors if a not in set(changed)),
                   sectors_written=len(changed), sectors_skipped=len(sectors) - len(changed), verified=verified,
                   rebooted=False, details=PicobootDetails(sectors_total=len(sectors)))


def _runs(pages: list[int]):
    start = prev = None
    for p in pages:
        if start is None:
            start = prev = p
        elif p == prev + PAGE:
            prev = p
        else:
            yield start, prev + PAGE
            start = prev = p
    if start is not None:
        yield start, prev + PAGE
