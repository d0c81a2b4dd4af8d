"""fwtool monitor against a fake board on a pty: reconnects, no lost or doubled lines, banner capture, exit codes,
input to the board, reboot keys. The fake board (tests/fakes_serial.py) writes the real FWT: line format."""
from __future__ import annotations

import io
import json
import random
import threading
import time

import pytest

from fwtool.core.errors import Exit
from fwtool.monitor import MonitorOptions, Session
from fwtool.devices.ports import Discovery
from fwtool.core.lines import MAX_LINE, decode_line
from fakes_serial import FakePorts, PtyBoard, banner_line, infer_line, run_firmware

LABELS = ("fire_alarm", "no_fire")


def monitor(ports: FakePorts, firmware, stdin=None, reboot=None, **opts):
    """Run the fake firmware on a thread and the monitor here; returns (result, json records, stderr text)."""
    base = dict(view="json", send_input=stdin is not None, poll_s=0.02, wait=2.0, last_flash_file="/nonexistent")
    base.update(opts)
    out, err = io.StringIO(), io.StringIO()
    errors = []

    def fw():
        try:
            firmware()
        except Exception as e:  # surfaced by the test
            errors.append(e)

    t = threading.Thread(target=fw, daemon=True)
    t.start()
    res = Session(MonitorOptions(**base), discovery=Discovery(ports.comports), out=out, err=err, stdin=stdin,
                  reboot=reboot).run()
    t.join(timeout=10)
    assert not errors, errors
    if base["view"] != "json":
        return res, out.getvalue(), err.getvalue()
    return res, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def board_lines(recs):
    return [r for r in recs if r["type"] in ("banner", "inference", "error", "other")]


def text_of(r):
    if r["type"] == "other":
        return r["text"]
    return None


def test_every_complete_line_exactly_once_across_25_reconnects():
    ports = FakePorts()
    board = PtyBoard(ports)
    board.appear()
    cycles = 25
    res, recs, err = monitor(ports, lambda: run_firmware(board, cycles, labels=LABELS), expect=("^END$",),
                             timeout=60)
    assert res.exit_code == 0, err
    assert board.lost_in_transit == 0 and board.dropped == 0
    assert res.stats["bytes_read"] == board.bytes_delivered  # transport: every byte the board sent was read
    assert res.stats["reconnects"] == cycles
    assert sum(r["type"] == "disconnected" for r in recs) == cycles
    got = board_lines(recs)
    complete = [r for r in got if not r.get("partial")]
    sent = [decode_line(b) for b in board.delivered]
    assert len(complete) == len(sent) == cycles * 6 + 2
    for r, s in zip(complete, sent):  # same lines, same order, each once
        if r["type"] == "other":
            assert r["text"] == s
        else:
            assert s.startswith({"banner": "FWT:BOOT", "inference": "FWT:INFER"}[r["type"]])
    assert sum(r["type"] == "inference" for r in complete) == cycles * 3
    # partial lines cut by each reset: reported once each, marked, never parsed, never glued to the next boot
    partial = [r for r in got if r.get("partial")]
    assert [r["text"] for r in partial] == [p.decode() for p in board.partials]
    assert all(r["type"] == "other" for r in partial)
    # garbage bytes shown escaped
    assert any(r.get("text") == "garbage \\xff\\xfe\\x80 \\x1b[31m end" for r in got)


def test_boot_banner_caught_when_the_board_prints_right_after_appearing():
    # The fake, like the firmware, waits at most connect_wait for the host and then prints; output with no host
    # open is dropped. With the default 50 ms poll every boot's banner must get through.
    ports = FakePorts()
    board = PtyBoard(ports)
    board.appear()
    cycles = 10
    res, recs, err = monitor(ports, lambda: run_firmware(board, cycles, labels=LABELS, connect_wait=0.3,
                                                          partial=False), expect=("^END$",), timeout=30,
                             poll_s=0.05)
    assert res.exit_code == 0, err
    assert board.dropped == 0, "the fake had to drop output: the monitor opened the port too late"
    assert sum(r["type"] == "banner" for r in recs) == cycles + 1


def test_json_scores_match_what_the_board_sent():
    ports = FakePorts()
    board = PtyBoard(ports)
    labels = ("cat", "dog", "bird")
    rng = random.Random(7)
    sent = []

    def fw():
        board.appear()
        board.wait_host(2)
        board.write_line(banner_line(labels=labels, out="int8:1x3"))
        for n in range(1, 9):
            s = [round(rng.random(), 4) for _ in labels]
            sent.append((n, s))
            board.write_line(infer_line(n, 1000 + n, labels, s))
            time.sleep(0.002)

    res, recs, err = monitor(ports, fw, count=8, timeout=10)
    assert res.exit_code == 0, err
    infs = [r for r in recs if r["type"] == "inference"]
    assert [(r["n"], r["scores"]) for r in infs] == sent
    for r, (_, s) in zip(infs, sent):
        assert r["top"] == labels[s.index(max(s))] and r["score"] == max(s)
    assert recs[-1]["type"] == "result" and recs[-1]["inferences"] == 8 and recs[-1]["exit_code"] == 0


def test_long_line_is_delivered_in_pieces():
    ports = FakePorts()
    board = PtyBoard(ports)
    long = "x" * (MAX_LINE * 2 + 123)

    def fw():
        board.appear()
        board.wait_host(2)
        board.write_line(long)
        board.write_line("END")

    res, recs, err = monitor(ports, fw, expect=("^END$",), timeout=10)
    assert res.exit_code == 0, err
    pieces = [r for r in board_lines(recs) if r["text"] != "END"]
    assert "".join(r["text"] for r in pieces) == long
    assert [bool(r.get("split")) for r in pieces] == [True, True, False]


def test_lost_board_exits_9_after_the_reconnect_timeout():
    ports = FakePorts()
    board = PtyBoard(ports)

    def fw():
        board.appear()
        board.wait_host(2)
        board.write_line(banner_line(labels=LABELS))
        board.vanish()  # and never comes back

    t0 = time.monotonic()
    res, recs, err = monitor(ports, fw, count=5, timeout=20, reconnect_timeout=0.4)
    assert res.exit_code == Exit.LOST_DEVICE == 9
    assert time.monotonic() - t0 < 5
    assert "did not come back within 0.4 s" in err


def test_no_reconnect_exits_9_at_the_disconnect():
    ports = FakePorts()
    board = PtyBoard(ports)

    def fw():
        board.appear()
        board.wait_host(2)
        board.write_line("hello")
        board.reset()

    res, recs, err = monitor(ports, fw, reconnect=False, timeout=20)
    assert res.exit_code == 9 and "--no-reconnect" in res.reason
    assert any(r.get("text") == "hello" for r in recs)


def test_timeout_exit_7_and_firmware_error_exit_8():
    ports = FakePorts()
    board = PtyBoard(ports)

    def quiet():
        board.appear()
        board.wait_host(2)
        board.write_line(banner_line(labels=LABELS))

    t0 = time.monotonic()
    res, recs, err = monitor(ports, quiet, count=3, timeout=0.5)
    assert res.exit_code == Exit.TIMEOUT == 7 and 0.5 <= time.monotonic() - t0 < 3
    assert "3 inferences (got 0)" in res.reason
    board.vanish()

    ports = FakePorts()
    board = PtyBoard(ports)

    def broken():
        board.appear()
        board.wait_host(2)
        board.write_line("FWT:ERROR AllocateTensors failed: arena too small (rebuild with a larger --arena)")

    res, recs, err = monitor(ports, broken, expect_label="fire_alarm", timeout=10)
    assert res.exit_code == Exit.FIRMWARE_ERROR == 10 and "arena too small" in res.reason
    assert any(r["type"] == "error" for r in recs)
    board.vanish()


def test_typed_lines_go_to_the_board_and_reboot_keys_call_the_reset_function():
    ports = FakePorts()
    board = PtyBoard(ports)
    calls = []
    done = threading.Event()

    def reboot(kind, port, reader):
        calls.append((kind, port.serial_number))
        return f"rebooting ({kind})"

    class SlowStdin(io.StringIO):  # lines arrive once the port is open
        def readline(self, *a):
            board.wait_host(2)
            return super().readline(*a)

    def fw():
        board.appear()
        board.wait_host(2)
        board.write_line(banner_line(labels=LABELS))
        got = board.read_input(timeout=3, until=b"ping 2\r\n")
        board.write_line("ECHO " + got.decode().replace("\r\n", "|"))
        done.set()

    stdin = SlowStdin("ping 1\n~r\n~b\nping 2\n")
    res, recs, err = monitor(ports, fw, stdin=stdin, reboot=reboot, expect=("^ECHO ",), timeout=10)
    assert res.exit_code == 0, err
    assert any(r.get("text") == "ECHO ping 1|ping 2|" for r in recs)
    assert calls == [("app", board.serial_number), ("bootsel", board.serial_number)]
    assert [r["type"] for r in recs if r["type"] in ("sent", "reboot")] == ["sent", "reboot", "reboot", "sent"]
    board.vanish()


def test_port_named_by_path_that_pyserial_does_not_list():
    ports = FakePorts()
    board = PtyBoard(ports, listed=False)
    path = board.appear()

    def fw():
        board.wait_host(2)
        board.write_line(banner_line(labels=LABELS))
        for n in range(1, 4):
            board.write_line(infer_line(n, 100, LABELS, [0.1, 0.9]))

    res, recs, err = monitor(ports, fw, port=path, expect_label="no_fire", min_score=0.8, timeout=10)
    assert res.exit_code == 0, err
    assert res.port == path
    board.vanish()


def test_live_view_and_log_file(tmp_path):
    ports = FakePorts()
    board = PtyBoard(ports)
    board.appear()
    log = tmp_path / "monitor.log"
    res, out, err = monitor(ports, lambda: run_firmware(board, 3, labels=LABELS), view="live", log=log,
                            expect=("^END$",), timeout=20)
    assert res.exit_code == 0, err
    # not a terminal here, so rich prints the passing lines and the final panel once
    assert "free text 2: hello" in out and "fwtool monitor" in out and "p95" in out and "fire_alarm" in out
    assert "FWT:INFER n=1 " not in out  # inferences go to the panel, not the scroll-back
    text = log.read_text()
    assert text.count("FWT:INFER n=1 ") == 3 and text.count("-- disconnected") == 3
    assert "line cut off: board disconnected" in text and "END" in text
    board.vanish()


@pytest.mark.parametrize("view", ["plain", "raw"])
def test_plain_and_raw_views_pass_lines_through(view):
    ports = FakePorts()
    board = PtyBoard(ports)
    board.appear()
    out, err = io.StringIO(), io.StringIO()

    def fw():
        run_firmware(board, 2, labels=LABELS)

    t = threading.Thread(target=fw, daemon=True)
    t.start()
    res = Session(MonitorOptions(view=view, send_input=False, poll_s=0.02, expect=("^END$",), timeout=20,
                                 last_flash_file="/nonexistent", timestamps=True),
                  discovery=Discovery(ports.comports), out=out, err=err).run()
    t.join(5)
    assert res.exit_code == 0
    o = out.getvalue()
    assert o.count("FWT:INFER n=3 ") == 2 and "free text 1: hello" in o
    if view == "raw":
        assert "\r\n" in o and "-- disconnected" in err.getvalue()  # bytes as they came; events on stderr
    else:
        assert "-- disconnected" in o and "\\xff" in o
    board.vanish()


@pytest.mark.parametrize("count,code", [(None, 0), (1000, 130)])
def test_quitting_is_0_unless_a_stop_condition_is_pending(count, code):
    ports = FakePorts()
    board = PtyBoard(ports)
    board.appear()

    class QuitLater(io.StringIO):
        def readline(self, *a):
            board.wait_host(2)
            time.sleep(0.1)
            return super().readline(*a)

    def fw():
        board.wait_host(2)
        for n in range(1, 4):
            board.write_line(infer_line(n, 100, LABELS, [0.1, 0.9]))

    res, recs, err = monitor(ports, fw, stdin=QuitLater("~.\n"), count=count, timeout=10)
    assert res.exit_code == code, err
    board.vanish()
