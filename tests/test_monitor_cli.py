"""`fwtool monitor` end to end: the real command line against a fake board behind a socket:// URL."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest

from fwtool.cli import main
from fakes_serial import SocketBoard, banner_line, infer_line

LABELS = ("fire_alarm", "no_fire")


def start(fn):
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


class Run:
    def __init__(self, code, out, err):
        self.exit_code, self.stdout, self.stderr = code, out, err
        self.output = (out if isinstance(out, str) else "") + err


def invoke(capsys, args):
    """In-process run through fwtool's real entry point (FwtoolError -> exit code, as in the shell)."""
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
        main(["monitor", "--no-input", *args])
    out, err = capsys.readouterr()
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    return Run(e.value.code, out, err), time.monotonic() - t0


def test_json_count_5_subprocess_prints_5_inferences_with_the_sent_scores():
    board = SocketBoard()
    rng = random.Random(3)
    sent = []

    def fw():
        if not board.wait_host(15):
            return
        board.write_line(banner_line(labels=LABELS, out="int8:1x2"))
        for n in range(1, 11):
            s = [round(rng.random(), 4), round(rng.random(), 4)]
            sent.append(s)
            board.write_line(infer_line(n, 24000 + n, LABELS, s))
            time.sleep(0.01)

    start(fw)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    p = subprocess.run([sys.executable, "-c", "from fwtool.cli import main; main()", "monitor", "--json", "--count",
                        "5", "--timeout", "20", "--port", board.url], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=env)
    board.close()
    assert p.returncode == 0, p.stderr
    recs = [json.loads(x) for x in p.stdout.splitlines()]  # every stdout line is one JSON object
    infs = [r for r in recs if r["type"] == "inference"]
    assert len(infs) == 5
    assert [r["scores"] for r in infs] == sent[:5]
    assert [r["n"] for r in infs] == [1, 2, 3, 4, 5]
    assert [r["type"] for r in recs][:2] == ["connected", "banner"] and recs[-1]["type"] == "result"
    assert recs[-1]["ok"] is True and recs[-1]["exit_code"] == 0


def _steady(board, label_scores=(0.9961, 0.0039), n=50, delay=0.05):
    def fw():
        if not board.wait_host(10):
            return
        board.write_line(banner_line(labels=LABELS, out="int8:1x2"))
        for i in range(1, n + 1):
            try:
                board.write_line(infer_line(i, 24000, LABELS, list(label_scores)))
            except OSError:
                return
            time.sleep(delay)
    return fw


def test_expect_label_right_exits_0_and_wrong_exits_8_well_within_the_timeout(capsys):
    board = SocketBoard()
    start(_steady(board))
    r, secs = invoke(capsys, ["--port", board.url, "--expect-label", "fire_alarm", "--min-score", "0.9",
                              "--timeout", "10"])
    board.close()
    assert r.exit_code == 0, r.output
    assert "expectations met" in r.output and secs < 5

    board = SocketBoard()
    start(_steady(board))
    r, secs = invoke(capsys, ["--port", board.url, "--expect-label", "no_fire", "--timeout", "10"])
    board.close()
    assert r.exit_code == 8, r.output
    assert "got fire_alarm 0.9961 (no_fire 0.0039)" in r.output and secs < 5


def test_timeout_exits_7(capsys):
    board = SocketBoard()
    start(_steady(board, n=0))  # banner only, no inferences
    r, secs = invoke(capsys, ["--port", board.url, "--count", "3", "--timeout", "0.5"])
    board.close()
    assert r.exit_code == 7, r.output
    assert "timed out after 0.5 s" in r.output and 0.5 <= secs < 4


def test_lost_board_exits_9(capsys):
    board = SocketBoard()

    def fw():
        board.wait_host(10)
        board.write_line(banner_line(labels=LABELS))
        board.close()  # the board goes away and its URL stops answering

    start(fw)
    r, secs = invoke(capsys, ["--port", board.url, "--count", "3", "--timeout", "20", "--reconnect-timeout", "0.5"])
    assert r.exit_code == 9, r.output
    assert "did not come back" in r.output and secs < 5


def test_socket_board_reset_is_followed_on_the_same_url(capsys):
    board = SocketBoard()

    def fw():
        for boot in range(3):
            board.wait_host(10)
            board.write_line(banner_line(labels=LABELS))
            board.write_line(f"boot {boot}")
            time.sleep(0.05)
            board.reset(down_s=0.1)
        board.wait_host(10)
        board.write_line("END")

    start(fw)
    r, _ = invoke(capsys, ["--port", board.url, "--expect", "^END$", "--timeout", "20", "--plain"])
    board.close()
    assert r.exit_code == 0, r.output
    assert all(f"boot {i}" in r.output for i in range(3))
    assert r.output.count("-- reconnected: socket://") == 3


def test_raw_passes_bytes_unchanged_and_log_tees(tmp_path, capsysbinary):
    board = SocketBoard()
    payload = b"hello \xff\xfe raw\r\nEND\r\n"

    def fw():
        board.wait_host(10)
        board.write(payload)

    start(fw)
    log = tmp_path / "m.log"
    r, _ = invoke(capsysbinary, ["--port", board.url, "--raw", "--expect", "^END$", "--timeout", "10",
                                 "--log", str(log)])
    board.close()
    assert r.exit_code == 0, r.output
    assert payload in r.stdout
    assert "hello \\xff\\xfe raw" in log.read_text()


def test_no_board_exits_6_and_options_are_checked(capsys):
    r, _ = invoke(capsys, ["--serial", "NO-SUCH-BOARD", "--wait", "0"])
    assert r.exit_code == 6 and "no board found (USB serial NO-SUCH-BOARD)" in r.stderr
    r, _ = invoke(capsys, ["--port", "loop://", "--min-score", "0.5"])
    assert r.exit_code == 2 and "--min-score needs --expect-label" in r.stderr
    r, _ = invoke(capsys, ["--json", "--raw", "--port", "loop://"])
    assert r.exit_code == 2
    r, _ = invoke(capsys, ["--port", "socket://127.0.0.1:1", "--timeout", "1"])
    assert r.exit_code == 6 and "cannot open socket://127.0.0.1:1" in r.stderr
    r, _ = invoke(capsys, ["--help"])
    assert r.exit_code == 0 and "fwtool monitor --json --count 5" in r.stdout
