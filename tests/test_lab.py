"""End to end on a virtual labgrid lab: `fwtool lab --virtual 2` (coordinator + exporter + two virtual boards on
free ports), fleet validation of fire_alarm on both places in parallel through the labgrid flash driver, the
driver itself over an `ssh` stand-in, and teardown with nothing left running (processes, acquisitions,
reservations).

Needs labgrid (`pip install -e '.[labgrid,test]'` in its own venv: labgrid replaces pyserial's `serial` package),
Node.js + rp2040js, and the SDK trees for the validation build (~10 min cold at -j2;
FWTOOL_TEST_LAB_OUT=<a build/pico-validate-emu folder of an earlier `fwtool validate -m fire_alarm.tflite`>
reuses one, since it is the same firmware).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import labgrid  # noqa: F401
except ImportError as e:  # the default install: fwtool[labgrid] is an extra
    pytest.skip(f"labgrid not installed ({e}); pip install -e '.[labgrid,test]' in a venv", allow_module_level=True)

from fwtool.lab.places import Lab  # noqa: E402

SSH_STANDIN = r'''#!/usr/bin/env python3
"""ssh stand-in: logs its arguments, answers control-socket requests (-O) with success and runs the remote
command here with sh -c, as ssh does on the exporter."""
import os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_SSH_LOG"], "a") as f:
    f.write(repr(args) + "\n")
i = 0
while i < len(args):
    a = args[i]
    if a == "-O":
        sys.exit(0)
    if a in ("-o", "-p", "-l", "-i", "-F", "-L", "-R", "-E"):
        i += 2
        continue
    if a.startswith("-"):
        i += 1
        continue
    break
cmd = args[i + 1:]
if cmd[:1] == ["--"]:
    cmd = cmd[1:]
if not cmd:
    sys.exit(0)
os.execvp("sh", ["sh", "-c", " ".join(cmd)])
'''


def descendants(pid: int) -> set[int]:
    """All processes below ``pid`` (from /proc), whatever their process group."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pids) -> list[int]:
    left = []
    for p in pids:
        try:
            os.kill(p, 0)
        except ProcessLookupError:
            continue
        stat = Path(f"/proc/{p}/stat")
        if stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            continue
        left.append(p)
    return left


@pytest.fixture(scope="module")
def vlab(tmp_path_factory):
    from conftest import virtual_board_reason

    reason = virtual_board_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("lab")
    proc = subprocess.Popen([sys.executable, "-m", "fwtool", "lab", "--virtual", "2", "--json",
                             "--name", "fwt-test", "--duration", "900"], cwd=work, stdout=subprocess.PIPE,
                            stderr=open(work / "lab.err", "wb"), text=True)
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        pytest.fail(f"fwtool lab exited ({proc.returncode}): {(work / 'lab.err').read_text()[-2000:]}")
    info = json.loads(line)
    info.update(proc=proc, work=work, env={**os.environ, "LG_COORDINATOR": info["coordinator"]})
    info["daemons"] = descendants(proc.pid)
    yield info
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_the_lab_exports_two_tagged_places(vlab):
    assert vlab["places"] == ["fwt-test-0", "fwt-test-1"] and len(set(vlab["ports"])) == 2
    assert len(vlab["daemons"]) >= 2  # coordinator + exporter (boards start when flashed)
    with Lab(vlab["coordinator"]) as lab:
        assert lab.places_with({"board": "pico", "virtual": "1"}) == vlab["places"]


@pytest.fixture(scope="module")
def fleet(vlab, fire_alarm_model, real_build_reason):
    if real_build_reason:
        pytest.skip(real_build_reason)
    out = os.environ.get("FWTOOL_TEST_LAB_OUT") or str(vlab["work"] / "build")
    p = subprocess.run([sys.executable, "-m", "fwtool", "validate", "-m", str(fire_alarm_model), "--labgrid-tags",
                        "board=pico", "--boards", "2", "--json", "--out", out, "--labgrid-wait", "60"],
                       cwd=vlab["work"], env=vlab["env"], capture_output=True, text=True, timeout=1800)
    return p, out


@pytest.fixture(scope="module")
def fire_alarm_model():
    from modelgen import FIRE_ALARM

    if not FIRE_ALARM.is_file():
        pytest.skip("shared fire_alarm model not found")
    return FIRE_ALARM


def test_fleet_validation_on_both_places_in_parallel(vlab, fleet):
    p, _ = fleet
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["ok"] and r["exit_code"] == 0 and (r["passed"], r["failed"]) == (2, 0)
    assert sorted(b["place"] for b in r["boards"]) == vlab["places"]
    for b in r["boards"]:
        assert b["ok"] and b["max_abs_diff"] is not None and b["max_abs_diff"] <= 1
        assert 15 < b["p95_ms"] < 40  # fire_alarm's invoke on the emulated 125 MHz clock: ~22 ms
        assert b["virtual"] and b["port"] == f"socket://127.0.0.1:{vlab['ports'][vlab['places'].index(b['place'])]}"
    for place, rep in r["reports"].items():
        assert rep["target"]["labgrid_place"] == place and rep["target"]["flash_method"] == "virtual"
        assert rep["inputs"]["count"] == 20 and rep["firmware"]["tflm_cores"] == 2
    with Lab(vlab["coordinator"]) as lab:  # released and cancelled on the way out
        lab.sync()
        assert all(not lab.session.places[n].acquired for n in vlab["places"])
        assert not lab.reservations()


def test_the_driver_flashes_over_ssh_and_the_board_runs_it(vlab, fleet, tmp_path, monkeypatch):
    from labgrid.util.ssh import sshmanager

    from fwtool.lab.target import make_driver
    from fwtool.targets.physical import read_port_until_done

    p, out = fleet
    assert p.returncode == 0, p.stderr[-2000:]
    image = Path(out) / "firmware.uf2"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(SSH_STANDIN)
    (bindir / "ssh").chmod(0o755)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    place = vlab["places"][1]
    with Lab(vlab["coordinator"]) as lab:
        lab.acquire(place)
        pp = lab.serial_port(place)
        tgt, drv = make_driver(pp, ssh=True, fwtool=f"{sys.executable} -m fwtool")
        try:
            result = tgt.get_driver("BootstrapProtocol").load(str(image))
        finally:
            tgt.deactivate_all_drivers()
            sshmanager.close_all()
    assert result["method"] == "virtual" and result["port"] == pp.url
    calls = log.read_text()
    assert "'reflash'" in calls and str(image) in calls  # the command went through "ssh", the image path as is
    lines = read_port_until_done(pp.url, 60, lambda s: None)
    assert lines[0].startswith("FWT:BOOT model=fire_alarm") and lines[-1].startswith("FWT:DONE n=20")
    again = read_port_until_done(pp.url, 60, lambda s: None)  # the board takes a new client after one left
    assert again and again[-1].startswith("FWT:DONE n=20")


def test_driver_errors_are_labgrid_errors_with_fwtool_exit_codes(vlab, tmp_path):
    from labgrid.exceptions import InvalidConfigError

    from fwtool.lab.target import make_driver

    bad = tmp_path / "bad.uf2"
    bad.write_bytes(b"not a uf2")
    with Lab(vlab["coordinator"]) as lab:
        place = vlab["places"][0]
        lab.acquire(place)
        pp = lab.serial_port(place)
    tgt, drv = make_driver(pp, ssh=False, fwtool=f"{sys.executable} -m fwtool")
    drv.virtual = False  # a real `fwtool flash` of a corrupt image: exit 3 on the exporter
    with pytest.raises(InvalidConfigError) as e:
        drv.load(str(bad))
    assert e.value.fwtool_code == 3 and "uf2" in e.value.cause.lower()


def test_ctrl_c_while_waiting_for_a_place_cancels_the_reservation(vlab):
    with Lab(vlab["coordinator"]) as holder:
        for place in vlab["places"]:  # every place busy: the monitor has to reserve and wait
            holder.acquire(place)
        proc = subprocess.Popen([sys.executable, "-m", "fwtool", "monitor", "--labgrid-tags", "board=pico",
                                 "--timeout", "5", "--no-input"], env=vlab["env"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not holder.reservations() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(holder.reservations()) == 1
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "waiting up to" in err and "interrupted" in err
        assert not holder.reservations()


def test_teardown_leaves_nothing_running(vlab):
    proc = vlab["proc"]
    below = descendants(proc.pid) | vlab["daemons"]
    assert len(below) >= 2
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    deadline = time.monotonic() + 5
    while alive(below) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(below), f"left running: {alive(below)}"
    with pytest.raises(Exception):  # the coordinator is gone too
        Lab(vlab["coordinator"])
