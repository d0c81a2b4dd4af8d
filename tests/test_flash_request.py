"""The typed flash request and result (fwtool/flash/request.py): one request object, one result with a common core
and the runner's details in a typed field, the --json object unchanged, one USB scan per flash."""
from __future__ import annotations

from pathlib import Path

import pytest

from fakes_picoboot import FakeBoard, install, make_firmware
from fwtool import flash as flash_api
from fwtool.core.errors import BadInput
from fwtool.devices import usb as usbdevices
from fwtool.flash.base import Image
from fwtool.flash.request import (DriveDetails, FlashRequest, FlashResult, PicobootDetails, ProbeDetails,
                                  WriteOptions, Written)

FW = make_firmware(5000, seed=3)
# the keys of `fwtool flash --json` before the typed result (users' scripts read them): only additions allowed
PICOBOOT_KEYS = {"ok", "method", "board", "serial", "location", "drive", "image", "bytes_total", "bytes_written",
                 "bytes_skipped", "sectors_total", "sectors_written", "sectors_skipped", "verified", "write_seconds",
                 "rebooted", "reset", "started", "port", "seconds", "bytes_per_second", "notes"}
DRIVE_KEYS = PICOBOOT_KEYS - {"sectors_total", "write_seconds"} | {"uf2_bytes", "confirmed_by"}
PROBE_KEYS = PICOBOOT_KEYS - {"sectors_total"} | {"segments", "probe"}


def _image() -> Image:
    return Image(0x10000000, FW + b"\0" * (-len(FW) % 256), "test", "bin")


def _result(details) -> FlashResult:
    w = Written(bytes_total=4096, bytes_written=4096, bytes_skipped=0, sectors_written=1, sectors_skipped=0,
                verified=True, rebooted=True, write_seconds=0.5, details=details)
    return FlashResult(method="x", board="pico", serial="S", location="1-1", drive=None, image={"kind": "bin"},
                       written=w, seconds=1.23456)


def test_drive_implies_the_drive_method_and_excludes_any_other():
    assert FlashRequest(image="a.uf2", drive=Path("/m")).checked().method == "drive"
    assert FlashRequest(image="a.uf2", drive=Path("/m"), method="drive").checked().method == "drive"
    with pytest.raises(BadInput, match="exclude each other"):
        FlashRequest(image="a.uf2", drive=Path("/m"), method="picoboot").checked()
    assert FlashRequest(image="a.uf2").checked().method == "auto"


def test_the_request_hands_every_runner_one_options_object():
    seen = []
    req = FlashRequest(image="a.uf2", verify=False, skip_same=False, reboot=False, timeout=3.0,
                       progress=lambda *a: seen.append(a))
    o = req.write_options(app_seen=lambda: True)
    assert (o.verify, o.skip_same, o.reboot, o.timeout, o.app_seen()) == (False, False, False, 3.0, True)
    o.progress("writing", 1, 2)
    assert seen == [("writing", 1, 2)]
    assert WriteOptions().app_seen() is False


@pytest.mark.parametrize("details, keys", [(PicobootDetails(sectors_total=1), PICOBOOT_KEYS),
                                           (DriveDetails(uf2_bytes=8192, confirmed_by="drive gone"), DRIVE_KEYS),
                                           (ProbeDetails("UID", ["0x10000000+4096"], {"target": "cy8c6xx7"}),
                                            PROBE_KEYS | {"target"})])
def test_json_keeps_every_key_users_rely_on(details, keys):
    d = _result(details).to_dict()
    assert keys <= set(d), f"missing: {keys - set(d)}"
    assert d["seconds"] == 1.235 and d["bytes_per_second"] == 8192 and d["verified"] is True


def test_the_result_reads_as_the_json_mapping_too():
    r = _result(DriveDetails(uf2_bytes=8192, confirmed_by="drive gone"))
    assert r["confirmed_by"] == "drive gone" and r.get("port") is None and r.get("missing", 7) == 7
    assert dict(r) == r.to_dict() and "uf2_bytes" in r
    assert r.verified and r.bytes_written == 4096 and isinstance(r.details, DriveDetails)


def test_flash_image_takes_a_request_and_scans_usb_once(monkeypatch):
    board = FakeBoard("bootsel")
    install(monkeypatch, board)
    scans = []
    real = usbdevices.scan
    monkeypatch.setattr(usbdevices, "scan", lambda boards: scans.append(1) or real(boards))
    from fwtool import devices
    monkeypatch.setattr(devices, "scan", usbdevices.scan)
    r = flash_api.flash_image(request=FlashRequest(image=_image(), board="pico", wait_app=0))
    assert isinstance(r, FlashResult) and isinstance(r.details, PicobootDetails)
    assert r.method == "picoboot" and r.verified and r.written.rebooted
    assert bytes(board.flash[:len(FW)]) == FW
    assert len(scans) == 1, f"{len(scans)} USB scans for one flash"
    again = flash_api.flash_image(_image(), "pico", wait_app=0)  # the keyword form builds the same request
    assert again.bytes_written == 0 and again.written.sectors_skipped == again.details.sectors_total
