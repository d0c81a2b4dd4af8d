"""Identity after a late monitor on a PSoC 6 kit (issue 22 item 2): once the monitor has the KitProg3 port open it
resets the target through the same probe (``pyocd reset -W -m hw``, monitor/attach_reset.py), so the boot banner
comes to the open port; when the reset fails, the firmware's periodic re-announce gives the identity. The kit is a
pty with the KitProg3's USB ids (tests/fakes_serial.py) and pyOCD a fake on PATH: protocol-level fakes."""
from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

from fakes_serial import FakePorts, PtyBoard, banner_line, infer_line
from fwtool.core.boards import get_board
from fwtool.core.errors import FwtoolError
from fwtool.devices.ports import Discovery, PortInfo
from fwtool.monitor import attach_reset
from fwtool.monitor.session import MonitorOptions, Session

KIT = "cy8ckit_062s2_43012"
KITPROG3 = (0x04B4, 0xF155)
UID = "0B0D1B0B01234567"


def kit_port(vid_pid=KITPROG3, sn=UID) -> PortInfo:
    return PortInfo("/dev/ttyACM0", vid_pid[0], vid_pid[1], sn, "KitProg3 USB-UART")


def test_the_reset_command_is_the_kits_probe_and_target():
    assert attach_reset.probe_reset_command(get_board(KIT), kit_port()) == \
        ["pyocd", "reset", "-W", "-m", "hw", "-t", "cy8c6xxa", "-u", UID]
    assert attach_reset.probe_reset_command(get_board("cy8ckit_062_ble"), kit_port())[6] == "cy8c6xx7"
    assert attach_reset.probe_reset_command(get_board("pico"), kit_port()) is None  # no probe reset on a Pico
    assert attach_reset.probe_reset_command(get_board(KIT), kit_port((0x0403, 0x6001))) is None  # not its probe
    assert attach_reset.probe_reset_command(get_board(KIT), kit_port(sn=None)) is None  # which probe? none
    assert attach_reset.probe_reset_command(None, kit_port()) is None


def fake_pyocd(tmp_path: Path, monkeypatch, rc: int) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pyocd.args"
    script = bin_dir / "pyocd"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n"
                      + ("echo '0000:ERROR:board:No connected debug probes' >&2\n" if rc else "") + f"exit {rc}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_reset_after_open_runs_pyocd_and_reports_its_failure(tmp_path, monkeypatch):
    log = fake_pyocd(tmp_path, monkeypatch, 0)
    msg = attach_reset.reset_after_open(get_board(KIT), kit_port())
    assert "KitProg3" in msg and log.read_text().split() == ["reset", "-W", "-m", "hw", "-t", "cy8c6xxa", "-u", UID]
    assert attach_reset.reset_after_open(get_board("pico"), kit_port()) is None
    (tmp_path / "b").mkdir()
    fake_pyocd(tmp_path / "b", monkeypatch, 1)  # first on PATH now
    try:
        attach_reset.reset_after_open(get_board(KIT), kit_port())
        raise AssertionError("a failing pyocd must raise")
    except FwtoolError as e:
        assert "No connected debug probes" in e.cause and "re-announce" in e.fix


def monitor(ports: FakePorts, firmware, attach, **opts) -> tuple[object, list[dict]]:
    base = dict(view="json", send_input=False, poll_s=0.02, wait=2.0, last_flash_file="/nonexistent", board=KIT,
                count=2, timeout=15)
    base.update(opts)
    out, err = io.StringIO(), io.StringIO()
    t = threading.Thread(target=firmware, daemon=True)
    t.start()
    res = Session(MonitorOptions(**base), discovery=Discovery(ports.comports), out=out, err=err,
                  attach_reset=attach).run()
    t.join(timeout=10)
    return res, [json.loads(x) for x in out.getvalue().splitlines()]


def kit_banner() -> str:
    return banner_line(board=KIT, labels=("fire_alarm",), cores=1, clock_mhz=100) + " core_hz=100000000 fll=locked"


def test_a_late_monitor_resets_the_kit_and_gets_the_boot_banner():
    """The kit booted before the port was opened (its banner is gone); the reset after opening makes it boot again
    into the open port: the banner with the model's identity comes first, then the inferences."""
    ports = FakePorts()
    board = PtyBoard(ports, serial_number=UID, vid=KITPROG3[0], pid=KITPROG3[1])
    board.appear()
    board.write_line(kit_banner())  # nobody listens yet: dropped, as on the kit
    reset = threading.Event()
    calls = []

    def attach(b, port):
        calls.append((b.name, port.serial_number, attach_reset.probe_reset_command(b, port)))
        reset.set()
        return "reset the target through the KitProg3"

    def firmware():
        board.wait_host(5)
        n = 1
        while not reset.is_set():  # the app runs on: inference lines without the identity
            board.write_line(infer_line(n, 24000, ["fire_alarm"], [0.1]))
            n += 1
            time.sleep(0.05)
        board.write_line(kit_banner())  # rebooted: the boot banner to an open port
        for i in (1, 2):
            board.write_line(infer_line(i, 24000, ["fire_alarm"], [0.1]))

    res, recs = monitor(ports, firmware, attach, count=None, expect=("fll=locked",))
    assert res.exit_code == 0, (res.reason, recs[-3:])
    assert calls == [(KIT, UID, ["pyocd", "reset", "-W", "-m", "hw", "-t", "cy8c6xxa", "-u", UID])]
    assert any(r["type"] == "reset" and "KitProg3" in r["message"] for r in recs)
    banner = next(r for r in recs if r["type"] == "banner")
    assert banner["model"] == "fire_alarm" and banner["core_hz"] == 100_000_000


def test_a_failed_reset_falls_back_to_the_reannounce():
    ports = FakePorts()
    board = PtyBoard(ports, serial_number=UID, vid=KITPROG3[0], pid=KITPROG3[1])
    board.appear()

    def attach(b, port):
        raise FwtoolError("'pyocd reset' failed: No connected debug probes", "the next re-announce (every 5 s)")

    def firmware():
        board.wait_host(5)
        board.write_line(infer_line(7, 24000, ["fire_alarm"], [0.1]))
        time.sleep(0.2)
        board.write_line(kit_banner())  # the periodic re-announce (FWT_REANNOUNCE_MS on the kit)
        board.write_line(infer_line(8, 24000, ["fire_alarm"], [0.1]))

    res, recs = monitor(ports, firmware, attach, count=None, expect=("fll=locked",))
    assert res.exit_code == 0, (res.reason, recs[-3:])
    failed = [r for r in recs if r["type"] == "reset_failed"]
    assert len(failed) == 1 and "No connected debug probes" in failed[0]["message"]
    assert "re-announce" in failed[0]["message"]
    assert next(r for r in recs if r["type"] == "banner")["sha256"]


def test_no_reset_without_a_board_or_when_turned_off():
    ports = FakePorts()
    board = PtyBoard(ports, serial_number=UID, vid=KITPROG3[0], pid=KITPROG3[1])
    board.appear()
    calls = []

    def firmware():
        board.wait_host(5)
        board.write_line(kit_banner())

    res, recs = monitor(ports, firmware, lambda b, p: calls.append(b) or "x", count=None, expect=("fll=locked",),
                        reset_on_open=False)
    assert res.exit_code == 0 and calls == []
