"""Issue 29 item 4: one device, one user (fwtool/devices/board_lock.py). Real processes against the protocol fakes
(tests/fakes_picoboot.py: a Pico on a fake USB bus; tests/fakes_serial.py: its CDC port on a pty), bounded in time,
synchronised on the processes' own lines (a flash paused inside its N-th page program, the monitor's JSON events,
"Blocking: waiting ...") — never on sleeps.

Each child process has its own fake board object; what makes them "one board" to fwtool is what the real board
shows every process: its USB location (1-1.3) and serial number."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from fakes_picoboot import FakeBoard, make_firmware, make_uf2
from fwtool.core import locks
from fwtool.core.errors import Busy, Exit
from fwtool.devices import board_lock

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SERIAL = "E6614103E7452D2F"  # FakeBoard's serial; its location is 1-1.3
FW = make_firmware(120_516, seed=3)

# A real `fwtool flash` (fwtool.cli.main) on a fake Pico whose flash persists in a file between processes (like the
# board on the desk). With PAUSE_AT=N it stops inside its N-th page program, after saving the half-written flash,
# prints PAUSED and waits for a line on stdin: a flash that is known to be in progress.
FLASH = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import pytest
    import fakes_picoboot as fp
    from fwtool.cli import main
    from fwtool.core.files import atomic_write
    state = Path(os.environ["BOARD_STATE"])
    data = state.read_bytes() if state.exists() else None
    board = fp.FakeBoard(os.environ.get("BOARD_MODE", "app"), firmware=data)
    mp = pytest.MonkeyPatch()
    fp.install(mp, board)
    pause_at = int(os.environ.get("PAUSE_AT", "0"))
    original = fp.FakePicoboot._program_page
    def program_page(self, addr, page):
        original(self, addr, page)
        if self.n_pages == pause_at:
            atomic_write(state, bytes(board.flash))
            print("PAUSED", flush=True)
            sys.stdin.readline()
    mp.setattr(fp.FakePicoboot, "_program_page", program_page)
    sys.argv = ["fwtool", *sys.argv[1:]]
    try:
        main(sys.argv[1:])
    finally:
        atomic_write(state, bytes(board.flash))
""")

# `fwtool monitor` (the Session) on the fake board's CDC port (a pty listed at 1-1.3 with the board's serial), JSON
# events on stdout; ends on SIGINT ("ended by the user").
MONITOR = textwrap.dedent("""
    import sys
    serial = sys.argv[1]
    sys.argv = ["fwtool", "monitor"]
    from fakes_serial import FakeListPortInfo, FakePorts, PtyBoard
    from fwtool.devices.ports import Discovery
    from fwtool.monitor import MonitorOptions, Session
    ports = FakePorts()
    board = PtyBoard(ports, serial_number=serial)
    path = board.appear()
    ports.add(board, FakeListPortInfo(path, board.vid, board.pid, board.serial_number, location="1-1.3:1.0"))
    from fwtool.core.errors import FwtoolError
    try:
        res = Session(MonitorOptions(view="json", send_input=False, poll_s=0.02, wait=2.0,
                                     last_flash_file="/nonexistent", serial=serial),
                      discovery=Discovery(ports.comports)).run()
    except FwtoolError as e:
        print(f"error: {e.cause}", file=sys.stderr)
        sys.exit(int(e.code))
    sys.exit(res.exit_code)
""")


@pytest.fixture
def env(tmp_path):
    """The children's environment: this run's board locks, a project whose last build is firmware.uf2 of FW."""
    project = tmp_path / "project"
    out = project / "build" / "pico"
    out.mkdir(parents=True)
    (out / "firmware.uf2").write_bytes(make_uf2(FW))
    (out / "report.json").write_text(json.dumps({"board": {"name": "pico"}, "files": {"uf2": str(out / "firmware.uf2")}}))
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", "FWTOOL_BOARD_LOCKS": str(tmp_path / "locks"),
            "BOARD_STATE": str(tmp_path / "board.bin"), "PYTHONUNBUFFERED": "1"}


def start(script, *args, env, cwd, **extra):
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**env, **extra}, cwd=cwd)


_queues: dict[int, queue.Queue] = {}


def _lines(stream) -> queue.Queue:
    """The stream's lines, read by a thread (a select() on a buffered text stream misses buffered lines)."""
    q = _queues.get(id(stream))
    if q is None:
        q = _queues[id(stream)] = queue.Queue()

        def pump():
            for line in iter(stream.readline, ""):
                q.put(line)
            q.put(None)
        threading.Thread(target=pump, daemon=True).start()
    return q


def until(stream, pred, limit: int = 500, timeout: float = 60.0) -> str:
    """Read lines until ``pred(line)`` (the process's own event); bounded in lines and time."""
    q = _lines(stream)
    seen = []
    for _ in range(limit):
        try:
            line = q.get(timeout=timeout)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if pred(line):
            return line
    raise AssertionError(f"the expected line never came; saw {seen[-5:]}")


def has(word):
    return lambda line: word in line


def event(kind):
    def pred(line):
        try:
            return json.loads(line).get("type") == kind
        except ValueError:
            return False
    return pred


def finish(p, timeout=60):
    """Wait for the process; its stdout and stderr (what a reader thread has not taken yet, or all of it)."""
    p.wait(timeout)
    parts = []
    for stream in (p.stdout, p.stderr):
        if id(stream) in _queues:
            q, text = _queues.pop(id(stream)), []
            while True:
                line = q.get(timeout=timeout)
                if line is None:
                    break
                text.append(line)
            parts.append("".join(text))
        else:
            parts.append(stream.read())
    return p.returncode, parts[0], parts[1]


def flash_args(*extra):
    return ("flash", *extra)


# ---- identities ---------------------------------------------------------------------------------------------------
def test_a_board_is_known_by_its_usb_location_and_serial_in_every_mode():
    assert board_lock.identities(SERIAL, "1-1.3:1.0", "/dev/ttyACM0") == ["usb 1-1.3", f"serial {SERIAL}"]
    assert board_lock.identities(None, "1-1.3") == ["usb 1-1.3"]  # BOOTSEL: the bootrom's serial is everyone's
    assert board_lock.identities(port="socket://127.0.0.1:4000") == ["port socket://127.0.0.1:4000"]
    assert board_lock.identities(port="ssh://pi@raspberrypi.local") == []  # every reader has its own stream
    app, bootsel = FakeBoard("app"), FakeBoard("bootsel")
    from fwtool.devices.device import Device
    dev_app = Device("app", location=app.location, serial=app.serial, port="/dev/ttyACM0")
    dev_boot = Device("bootsel", location=bootsel.location)
    assert set(board_lock.of_device(dev_app)) & set(board_lock.of_device(dev_boot)) == {"usb 1-1.3"}
    drive = Device("drive", drive=Path("/media/u/RPI-RP2"))  # flash --drive: the mounted drive is the board
    assert board_lock.of_device(drive) == [f"port {os.path.realpath('/media/u/RPI-RP2')}"]


# ---- two flashes of one board -------------------------------------------------------------------------------------
def test_a_second_flash_waits_naming_the_first_then_both_succeed(env, tmp_path):
    cwd = tmp_path / "project"
    first = start(FLASH, *flash_args("--json"), env=env, cwd=cwd, PAUSE_AT="40")
    try:
        until(first.stdout, has("PAUSED"))
        second = start(FLASH, *flash_args("--json"), env=env, cwd=cwd, BOARD_STATE=str(tmp_path / "other.bin"))
        line = until(second.stderr, has("Blocking"))
        assert f"fwtool flash pid {first.pid}" in line and f"serial {SERIAL}" in line and "usb 1-1.3" in line
        first.stdin.write("\n")
        first.stdin.flush()
        rc1, out1, err1 = finish(first)
        rc2, out2, err2 = finish(second)
    finally:
        first.kill()
    assert rc1 == 0 and json.loads(out1)["verified"] is True, err1
    assert rc2 == 0 and json.loads(out2)["verified"] is True, err2


def test_no_wait_refuses_a_second_flash_with_exit_11_naming_the_holder(env, tmp_path):
    cwd = tmp_path / "project"
    first = start(FLASH, *flash_args(), env=env, cwd=cwd, PAUSE_AT="40")
    try:
        until(first.stdout, has("PAUSED"))
        rc, out, err = finish(start(FLASH, "--no-wait", *flash_args(), env=env, cwd=cwd,
                                    BOARD_STATE=str(tmp_path / "other.bin")))
        assert rc == int(Exit.BUSY) == 11, err
        lines = err.strip().splitlines()
        assert lines[-2].startswith("error: board ") and f"is in use by fwtool flash pid {first.pid}" in lines[-2]
        assert lines[-1].startswith("  fix: ") and "Traceback" not in err
        assert not any("writing" in ln for ln in lines)  # refused before touching the board
        first.stdin.write("\n")
        first.stdin.flush()
        assert finish(first)[0] == 0
    finally:
        first.kill()


# ---- a flash while a monitor holds the board's port ---------------------------------------------------------------
def test_the_monitor_lets_go_for_a_flash_it_did_not_start_and_takes_the_board_back(env, tmp_path):
    cwd = tmp_path / "project"
    mon = start(MONITOR, SERIAL, env=env, cwd=cwd)
    try:
        until(mon.stdout, event("connected"))
        assert "(yields the board to a flash)" in (locks.holder(_lock_file(env, f"serial {SERIAL}")) or "")
        flash = start(FLASH, *flash_args("--json"), env=env, cwd=cwd)
        yielded = json.loads(until(mon.stdout, event("yielded")))
        assert yielded["to"].startswith(f"fwtool flash pid {flash.pid}")
        rc, out, err = finish(flash)
        assert rc == 0 and json.loads(out)["verified"] is True, err
        assert f"asking fwtool monitor pid {mon.pid} to let go of board" in err
        until(mon.stdout, event("reclaimed"))
        again = json.loads(until(mon.stdout, event("connected")))
        assert again["reconnect"] is True
        assert "(yields the board to a flash)" in (locks.holder(_lock_file(env, f"serial {SERIAL}")) or "")
        mon.send_signal(signal.SIGINT)
        rc, out, err = finish(mon)
        assert rc == 0 and "ended by the user" in err
    finally:
        mon.kill()


def test_a_monitor_started_during_a_flash_waits_for_it(env, tmp_path):
    cwd = tmp_path / "project"
    flash = start(FLASH, *flash_args(), env=env, cwd=cwd, PAUSE_AT="40")
    mon = None
    try:
        until(flash.stdout, has("PAUSED"))
        mon = start(MONITOR, SERIAL, env=env, cwd=cwd)
        line = until(mon.stderr, has("Blocking"))
        assert f"fwtool flash pid {flash.pid}" in line
        flash.stdin.write("\n")
        flash.stdin.flush()
        assert finish(flash)[0] == 0
        until(mon.stdout, event("connected"))
        mon.send_signal(signal.SIGINT)
        assert finish(mon)[0] == 0
    finally:
        flash.kill()
        if mon is not None:
            mon.kill()


def _lock_file(env, identity):
    old = os.environ.get("FWTOOL_BOARD_LOCKS")
    os.environ["FWTOOL_BOARD_LOCKS"] = env["FWTOOL_BOARD_LOCKS"]
    try:
        return board_lock.lock_file(identity)
    finally:
        if old is None:
            del os.environ["FWTOOL_BOARD_LOCKS"]
        else:
            os.environ["FWTOOL_BOARD_LOCKS"] = old


# ---- validate --device: one user from the flash to the last result line -------------------------------------------
VALIDATE_HOLD = textwrap.dedent("""
    import sys
    image = sys.argv[1]
    sys.argv = ["fwtool", "validate"]
    import pytest
    import fakes_picoboot as fp
    from fwtool.targets.base import TargetConfig
    from fwtool.targets.physical import BoardTarget
    board = fp.FakeBoard("app")
    fp.install(pytest.MonkeyPatch(), board)
    t = BoardTarget(TargetConfig(board="pico"))
    t.load(image)
    print("FLASHED", flush=True)
    sys.stdin.readline()
    t.stop()
    print("STOPPED", flush=True)
""")


def test_validate_on_a_board_keeps_it_from_its_flash_until_it_stops(env, tmp_path):
    cwd = tmp_path / "project"
    val = start(VALIDATE_HOLD, str(cwd / "build" / "pico" / "firmware.uf2"), env=env, cwd=cwd)
    try:
        until(val.stdout, has("FLASHED"))
        rc, out, err = finish(start(FLASH, "--no-wait", *flash_args(), env=env, cwd=cwd))
        assert rc == 11 and f"is in use by fwtool validate pid {val.pid}" in err, err
        second = start(FLASH, *flash_args(), env=env, cwd=cwd)
        assert f"fwtool validate pid {val.pid}" in until(second.stderr, has("Blocking"))
        val.stdin.write("\n")
        val.stdin.flush()
        assert finish(val)[0] == 0
        assert finish(second)[0] == 0
    finally:
        val.kill()


def test_a_failed_flash_inside_validate_lets_go_of_the_board(tmp_path, monkeypatch):
    from fakes_picoboot import install
    from fwtool.targets.base import TargetConfig
    from fwtool.targets.physical import BoardTarget

    monkeypatch.setenv("FWTOOL_BOARD_LOCKS", str(tmp_path / "locks"))
    install(monkeypatch)  # no board at all: the flash fails
    image = tmp_path / "firmware.uf2"
    image.write_bytes(make_uf2(FW))
    with pytest.raises(Exception):
        BoardTarget(TargetConfig(board="pico")).load(image)
    with board_lock.claim(["serial X"], wait=False):  # no keep() session left open: released at the block's end
        pass
    assert locks.holder(board_lock.lock_file("serial X")) is None


# ---- an interrupted flash -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_flash_is_reported_failed_and_the_next_flash_works(sig, env, tmp_path):
    """Stopped in its 40th page program (half of the image written): no success is reported (no JSON result, no
    last-flash record), the board lock is free at once, and the next flash of the half-written board (left in
    BOOTSEL, as the bootrom stays there) writes and verifies the whole image."""
    cwd = tmp_path / "project"
    p = start(FLASH, *flash_args("--json"), env=env, cwd=cwd, PAUSE_AT="40")
    try:
        until(p.stdout, has("PAUSED"))
        p.send_signal(sig)
        rc, out, err = finish(p)
    finally:
        p.kill()
    assert rc == (int(Exit.INTERRUPTED) if sig == signal.SIGINT else -signal.SIGTERM)
    assert '"ok": true' not in out and not (cwd / "build" / ".fwtool-last-flash.json").exists()
    half = Path(env["BOARD_STATE"]).read_bytes()
    assert half[:len(FW)] != FW  # the board really is half-written
    rc, out, err = finish(start(FLASH, *flash_args("--json"), env=env, cwd=cwd, BOARD_MODE="bootsel"))
    assert rc == 0, err
    r = json.loads(out)
    assert r["verified"] is True and r["bytes_written"] > 0
    assert Path(env["BOARD_STATE"]).read_bytes()[:len(FW)] == FW
    assert json.loads((cwd / "build" / ".fwtool-last-flash.json").read_text())["board"] == "pico"


def test_in_one_process_a_claim_inside_a_claim_re_enters(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_BOARD_LOCKS", str(tmp_path))
    with board_lock.claim(["usb 1-1.3", "serial X"], wait=False):
        with board_lock.claim(["serial X"], wait=False):
            assert locks.holder(board_lock.lock_file("serial X")) is not None
    assert locks.holder(board_lock.lock_file("serial X")) is None and not list(tmp_path.iterdir())


def test_fwtool_run_monitors_the_board_it_keeps_without_yielding_to_itself(tmp_path, monkeypatch):
    """'fwtool run': its flash's claim is kept (BoardTarget) while its own monitor reads: that monitor takes the
    board (re-entering the lock) and never sees its own process's claim as a flash asking for the board."""
    monkeypatch.setenv("FWTOOL_BOARD_LOCKS", str(tmp_path))
    ids = ["usb 1-1.3", f"serial {SERIAL}"]
    with board_lock.keep():
        with board_lock.claim(ids, wait=False):
            pass  # the flash
        gate = board_lock.Yieldable(ids)
        gate.acquire(wait=False)
        assert gate.held and gate.wanted() is None
        gate.release()
        assert gate.try_reacquire()
        gate.release()
        assert locks.holder(board_lock.lock_file(f"serial {SERIAL}")) is not None  # still the run's
    assert locks.holder(board_lock.lock_file(f"serial {SERIAL}")) is None


def test_a_second_monitor_of_one_board_is_refused_at_once_naming_the_first(env, tmp_path, monkeypatch):
    cwd = tmp_path / "project"
    mon = start(MONITOR, SERIAL, env=env, cwd=cwd)
    try:
        until(mon.stdout, event("connected"))
        monkeypatch.setenv("FWTOOL_BOARD_LOCKS", env["FWTOOL_BOARD_LOCKS"])
        with pytest.raises(Busy) as e:  # even waiting: another monitor would never end by itself
            board_lock.Yieldable(["usb 1-1.3", f"serial {SERIAL}"]).acquire(wait=True)
        assert e.value.code == 11 and f"fwtool monitor pid {mon.pid}" in e.value.cause and "yields" not in e.value.cause
        mon.send_signal(signal.SIGINT)
        assert finish(mon)[0] == 0
    finally:
        mon.kill()


def test_a_monitor_started_during_a_flash_with_no_wait_exits_11(env, tmp_path):
    cwd = tmp_path / "project"
    flash = start(FLASH, *flash_args(), env=env, cwd=cwd, PAUSE_AT="40")
    try:
        until(flash.stdout, has("PAUSED"))
        rc, out, err = finish(start(MONITOR, SERIAL, env=env, cwd=cwd, FWTOOL_NO_WAIT="1"))
        assert rc == 11 and f"is in use by fwtool flash pid {flash.pid}" in err, err
        flash.stdin.write("\n")
        flash.stdin.flush()
        assert finish(flash)[0] == 0
    finally:
        flash.kill()


def test_a_monitor_that_does_not_let_go_fails_the_flash_naming_it(env, tmp_path, monkeypatch):
    """A suspended monitor (SIGSTOP) never polls: the flash gives up after the limit (here 1 s), exit 11."""
    cwd = tmp_path / "project"
    mon = start(MONITOR, SERIAL, env=env, cwd=cwd)
    try:
        until(mon.stdout, event("connected"))
        mon.send_signal(signal.SIGSTOP)
        script = "import fwtool.devices.board_lock as b; b.YIELD_LIMIT_S = 1.0\n" + FLASH
        rc, out, err = finish(start(script, *flash_args(), env=env, cwd=cwd))
        assert rc == 11 and f"fwtool monitor pid {mon.pid} did not let go of board" in err, err
        mon.send_signal(signal.SIGCONT)
        mon.send_signal(signal.SIGINT)
        finish(mon)
    finally:
        mon.kill()


def test_the_lock_folder_is_one_per_user_whatever_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("FWTOOL_BOARD_LOCKS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "some-private-cache"))  # a test's or a CI job's cache
    assert board_lock.lock_dir() == tmp_path / "fwtool" / "boards"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    run = Path(f"/run/user/{os.getuid()}")
    import tempfile
    expected = run / "fwtool" / "boards" if run.is_dir() and os.access(run, os.W_OK) else \
        Path(tempfile.gettempdir()) / f"fwtool-{os.getuid()}" / "boards"
    assert board_lock.lock_dir() == expected
