"""fwtool.lab pieces that need neither labgrid nor a lab: the exporter command, fwtool's exit codes from the
exporter, tag parsing, the command-line request, the fleet report."""
from __future__ import annotations

import json

import pytest

from fwtool.commands.lab_options import request_from
from fwtool.core.errors import Exit, FwtoolError
from fwtool.lab.driver import flash_command, result_of
from fwtool.lab.fleet import aggregate
from fwtool.lab.places import parse_tags, port_url


def test_flash_command_per_image_kind_and_virtual_boards():
    assert flash_command("/c/fw.uf2", board="pico") == ["fwtool", "flash", "--json", "--board", "pico", "--uf2",
                                                        "/c/fw.uf2"]
    assert flash_command("/c/fw.hex", board="cy8cproto_062_4343w", serial="1-1.2", fwtool="/opt/venv/bin/fwtool") \
        == ["/opt/venv/bin/fwtool", "flash", "--json", "--board", "cy8cproto_062_4343w", "--serial", "1-1.2",
            "--hex", "/c/fw.hex"]
    assert flash_command("/c/x.uf2", board="pico", virtual=True, port=4000, fwtool="python3 -m fwtool") == \
        ["python3", "-m", "fwtool", "lab", "reflash", "--port", "4000", "--json", "/c/x.uf2"]


def test_exporter_results_and_exit_codes():
    ok = {"method": "picoboot", "verified": True}
    assert result_of(0, json.dumps(ok, indent=2) + "\n", "", "h") == ok
    err = {"error": "no RP2040 board found", "fix": "plug it in", "exit_code": 6}
    with pytest.raises(FwtoolError) as e:
        result_of(6, json.dumps(err, indent=2), "error: no RP2040 board found\n", "rack1")
    assert e.value.code == Exit.NO_DEVICE and e.value.cause == "on rack1: no RP2040 board found"
    assert e.value.fix == "plug it in"
    with pytest.raises(FwtoolError) as e:
        result_of(3, "", "error: bad image\n", "h")
    assert e.value.code == Exit.BAD_INPUT and "bad image" in e.value.cause
    with pytest.raises(FwtoolError) as e:
        result_of(255, "", "ssh: connect to host rack1 port 22: Connection refused\n", "rack1")
    assert e.value.code == Exit.NO_DEVICE and "ssh" in e.value.cause
    with pytest.raises(FwtoolError) as e:
        result_of(127, "", "sh: 1: fwtool: not found\n", "rack1")
    assert e.value.code == Exit.MISSING_TOOL
    with pytest.raises(FwtoolError) as e:
        result_of(42, "garbage", "", "h")
    assert e.value.code == Exit.FAILED


def test_tags_and_urls():
    assert parse_tags(["board=pico", "site=b1,rack=3"]) == {"board": "pico", "site": "b1", "rack": "3"}
    with pytest.raises(FwtoolError) as e:
        parse_tags(["pico"])
    assert e.value.code == Exit.BAD_INPUT
    assert port_url("NetworkSerialPort", {"host": "h", "port": 5, "protocol": "raw"}) == "socket://h:5"
    assert port_url("NetworkSerialPort", {"host": "h", "port": 5, "protocol": "rfc2217"}) == "rfc2217://h:5"


def test_request_from_options():
    assert request_from((), (), 10, None, fleet=True) is None
    r = request_from(("a,b", "c"), (), 10, None, fleet=True)
    assert r.places == ["a", "b", "c"] and not r.tags
    r = request_from((), ("board=pico",), 5, 4, fleet=True)
    assert r.tags == {"board": "pico"} and r.boards == 4 and r.wait_s == 5
    for args in [((), (), 10, 3, True), (("a",), ("board=pico",), 10, None, True), (("a", "b"), (), 10, None, False)]:
        with pytest.raises(FwtoolError) as e:
            request_from(*args[:4], fleet=args[4])
        assert e.value.code == Exit.USAGE


def _report(ok, diff, p95, code=0):
    return {"ok": ok, "exit_code": code, "outputs": [{"max_abs_diff": diff}], "latency": {"p95_ms": p95},
            "target": {"port": "socket://x:1"}, "problems": [] if ok else ["output 0: max |Δ| 3 > 1"]}


def test_fleet_report_rows_and_exit_code():
    r = aggregate("m", [("p0", _report(True, 0, 22.1)), ("p1", _report(False, 3, 22.2, 8)),
                        ("p2", {"ok": False, "error": "board gone", "fix": None, "exit_code": 9})])
    assert [b["ok"] for b in r["boards"]] == [True, False, False]
    assert r["boards"][1]["max_abs_diff"] == 3 and r["boards"][0]["p95_ms"] == 22.1
    assert r["boards"][2]["error"] == "board gone" and r["boards"][2]["exit_code"] == 9
    assert (r["ok"], r["exit_code"], r["passed"], r["failed"]) == (False, 8, 1, 2)
    assert aggregate("m", [("p0", _report(True, 1, 1.0))])["exit_code"] == 0


def test_the_port_is_looked_up_again_after_a_flash():
    """ser2net comes back on a new TCP port after the board re-enumerates: follow it; an unchanged port is taken
    after the settle time; a port that never comes back is exit 9."""
    import time

    from fwtool.lab.places import Lab, PlacePort

    old = PlacePort("p", "rfc2217://h:4001", "h", 4001, "rfc2217", "NetworkSerialPort")
    new = PlacePort("p", "rfc2217://h:4002", "h", 4002, "rfc2217", "NetworkSerialPort")
    lab = Lab.__new__(Lab)  # no coordinator: serial_port() is replaced below
    seq = iter([old, None, None, new])
    lab.serial_port = lambda name: next(seq)
    assert lab.wait_port("p", 5.0, before=old, settle_s=2.0) is new
    lab.serial_port = lambda name: old
    t0 = time.monotonic()
    assert lab.wait_port("p", 5.0, before=old, settle_s=0.3) is old and time.monotonic() - t0 >= 0.3
    lab.serial_port = lambda name: None
    with pytest.raises(FwtoolError) as e:
        lab.wait_port("p", 0.5, before=old)
    assert e.value.code == Exit.LOST_DEVICE
