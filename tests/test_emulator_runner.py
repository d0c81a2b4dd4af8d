"""The virtual board's runner (node + rp2040js) on tiny hand-assembled images: serial out and in, the TCP bridge,
every way a run ends, process cleanup, and the `fwtool emulate` command. Needs Node >= 18, the rp2040js package
(installed into the cache on first use) and the rp2040js tree's bootrom; skips with the reason otherwise."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

import fakes_emulator as fe
from fwtool import emulator
from fwtool.core import runner
from fwtool.core.errors import Exit


@pytest.fixture
def img(tmp_path, emulator_ready):
    def make(action="hang", message=fe.MESSAGE, name="fw.bin"):
        p = tmp_path / name
        p.write_bytes(fe.print_then(action, message) if action != "echo" else fe.echo())
        return p
    return make


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); reaped means gone
    try:
        return os.waitpid(pid, os.WNOHANG) != (0, 0)
    except ChildProcessError:
        return True


def test_uart_output_then_emulated_time_limit(img):
    r = emulator.run_capture(img("hang"), count=0, timeout=30, max_emulated_s=0.2)
    assert r.lines == [fe.MESSAGE.decode().rstrip("\n")]
    assert r.reason == "emulated-limit" and not r.ok
    assert 200_000 <= r.emulated_us < 210_000
    assert emulator.failure(r.reason, r.detail).code == Exit.TIMEOUT


def test_count_until_stops_right_after_the_matching_line(img):
    t0 = time.monotonic()
    r = emulator.run_capture(img("hang", b"FWT:INFER n=1 us=5 top=a score=0\nFWT:INFER n=2 us=6 top=a score=0\n"
                                         b"last\n"), count=2, until="FWT:INFER", timeout=30, max_emulated_s=5)
    assert r.ok and r.reason == "count"
    assert r.lines[:2] == ["FWT:INFER n=1 us=5 top=a score=0", "FWT:INFER n=2 us=6 top=a score=0"]
    assert r.emulated_us < 1000 and time.monotonic() - t0 < 10
    assert [x.us for x in r.records] == [5, 6]


@pytest.mark.parametrize("action, reason, words", [
    ("bkpt", "breakpoint", "bkpt #0"),
    ("watchdog", "watchdog", "forced"),
])
def test_firmware_faults_end_the_run_with_their_reason(img, action, reason, words):
    t0 = time.monotonic()
    r = emulator.run_capture(img(action), count=1, until="never", timeout=30, max_emulated_s=5)
    assert r.reason == reason and words in r.detail, r
    assert r.lines == [fe.MESSAGE.decode().rstrip("\n")]  # output before the fault is kept
    assert time.monotonic() - t0 < 10  # not spinning until a limit


def test_the_inter_core_fifo_is_modelled_now_not_a_fault(img):
    """core1.mjs: a write to SIO FIFO_WR goes to core 1's mailbox; the firmware keeps running (here: b .)."""
    r = emulator.run_capture(img("core1"), count=1, until="never", timeout=30, max_emulated_s=0.05)
    assert r.reason == "emulated-limit", r
    assert r.lines == [fe.MESSAGE.decode().rstrip("\n")]
    ev = next(e for e in r.events if e["event"] == "exit")
    assert ev["core_cycles"][0] > 1000 and ev["clk_sys_hz"] == 125_000_000


def test_sleeping_forever_ends_at_the_wall_limit_without_spinning(img):
    t0 = time.monotonic()
    r = emulator.run_capture(img("wfi"), count=1, until="never", timeout=1.0, max_emulated_s=5)
    assert r.reason == "wall-limit" and 0.9 < time.monotonic() - t0 < 8


def test_tcp_bridge_echoes_input_and_starts_on_connect(img):
    events = []
    board = emulator.Rp2040jsProcess(img("echo"), serial="tcp", start="on-connect", max_wall_s=30,
                                  on_event=events.append).start()
    try:
        assert board.url.startswith("socket://127.0.0.1:") and board.port > 0
        time.sleep(0.3)
        assert "started" not in [e["event"] for e in events]  # nothing runs before a client attaches
        with socket.create_connection(("127.0.0.1", board.port), timeout=5) as s:
            s.sendall(b"ping fwtool\n")
            got = b""
            deadline = time.monotonic() + 10
            while b"\n" not in got and time.monotonic() < deadline:
                got += s.recv(100)
            assert got == b"ping fwtool\n"
            with socket.create_connection(("127.0.0.1", board.port), timeout=5) as s2:  # a second host
                assert b"another client is attached" in s2.recv(200)
        assert "started" in [e["event"] for e in events]
    finally:
        ev = board.stop()
    assert ev["reason"] == "stopped" and _gone(board._proc.pid)


def test_output_before_the_first_client_is_kept_for_it(img):
    board = emulator.start(img("hang"), start_on_connect=False, max_wall_s=30)
    try:
        time.sleep(0.5)  # the image has printed and is spinning by now
        with socket.create_connection(("127.0.0.1", board.port), timeout=5) as s:
            s.settimeout(5)
            got = b""
            while not got.endswith(b"\n"):
                got += s.recv(200)
            assert got == fe.MESSAGE
    finally:
        board.stop()


def test_runner_exits_when_its_parent_goes_away(img, tmp_path):
    board = emulator.Rp2040jsProcess(img("hang"), serial="stdout", max_wall_s=60)
    cmd = board.prepare()
    proc = runner.spawn(cmd)
    try:
        time.sleep(0.5)
        proc.stdin.close()  # what the kernel does when fwtool dies
        proc.wait(timeout=10)
        last = [json.loads(x) for x in proc.stderr.read().decode().splitlines() if x.startswith("{")][-1]
        assert last["event"] == "exit" and last["reason"] == "parent-gone"
    finally:
        runner.kill_group(proc)


def test_stop_kills_a_runner_that_does_not_answer(img, monkeypatch):
    board = emulator.Rp2040jsProcess(img("hang"), serial="stdout", max_wall_s=60).start()
    os.kill(board._proc.pid, 19)  # SIGSTOP: it cannot react to SIGTERM
    t0 = time.monotonic()
    board.stop()
    assert _gone(board._proc.pid) and time.monotonic() - t0 < 10


def _fwtool(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "fwtool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_emulate_command_counts_lines_and_reports(img):
    fw = img("hang", b"boot\nFWT:INFER n=1 us=21000 top=a score=0.5 scores=0.5 q=0\n")
    p = _fwtool("emulate", fw, "--count", "1", "--timeout", "30")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["boot", "FWT:INFER n=1 us=21000 top=a score=0.5 scores=0.5 q=0"]
    assert "p50 21.00 ms" in p.stderr and "estimate" in p.stderr
    p = _fwtool("emulate", fw, "--count", "1", "--budget-ms", "20", "--json")
    out = json.loads(p.stdout)
    assert p.returncode == Exit.MISMATCH == out["exit_code"] and out["latency"]["within_budget"] is False
    assert out["records"][0]["type"] == "inference" and out["reason"] == "count"


def test_emulate_command_exit_codes_for_faults_and_timeouts(img):
    p = _fwtool("emulate", img("hang"), "--count", "1", "--max-emulated-s", "0.1")
    assert p.returncode == Exit.TIMEOUT, p.stderr
    p = _fwtool("emulate", img("hang"), "--max-emulated-s", "0.1")  # no --count: the limit is the planned end
    assert p.returncode == 0, p.stderr
    bad = img("hang", name="bad.bin")
    bad.write_bytes(b"\0" * 512)
    p = _fwtool("emulate", bad)
    assert p.returncode == Exit.BAD_INPUT and "boot2" in p.stderr
