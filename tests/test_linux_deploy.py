"""Deploy-time checks, --service and the SSH monitor's reconnects for the linux family, against the throw-away sshd
of tests/fakes_sshd.py. What a Raspberry Pi has and this machine does not run (systemd's user manager, loginctl,
an ALSA microphone, a persistent journal, a full SD card) are stand-ins on the test server's PATH that record or
answer only the command lines fwtool sends (test instruments, not product code)."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes_sshd import sshd_reason, start_sshd
from fwtool.core import vendor
from fwtool.core.errors import BadInput, MissingTool, NoDevice
from fwtool.flash import ssh_checks, ssh_service

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "fwtool", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def _one_error(p) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[0].startswith("error:") and lines[1].strip().startswith("fix:"), p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    """fire_alarm for linux-host (the host g++), built once."""
    for tool in ("cmake", "g++"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (apt-get install cmake g++)")
    for dep in vendor.deps_for("linux", "build"):
        try:
            vendor.require(dep)
        except MissingTool as e:
            pytest.skip(f"vendor tree {dep.name} not available: {e.cause}")
    d = tmp_path_factory.mktemp("linux-host")
    p = _cli("build", "--board", "linux-host", "-m", "example:fire_alarm", "--out", str(d), timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    return d / "firmware.elf"


@pytest.fixture
def sshd(tmp_path):
    server = start_sshd(tmp_path)
    yield server
    server.stop()
    time.sleep(0.3)
    assert not server.leftovers(), "a process of the test was left running"


SYSTEMCTL = """
with open(os.path.join(STATE, "systemctl.log"), "a") as f:
    f.write(" ".join(argv) + "\\n")
if "is-active" in argv:
    sys.exit(0 if os.path.exists(os.path.join(STATE, "active")) else 3)
"""
LOGINCTL = "print('Linger=no')\n"
# a USB microphone that captures 48 kHz only (hw:1,0); ALSA's plug layer (plughw:1,0) takes any rate
ARECORD = """
if "-l" in argv:
    print("**** List of CAPTURE Hardware Devices ****")
    print("card 1: Mic [USB PnP Sound Device], device 0: USB Audio [USB Audio]")
    print("  Subdevices: 1/1")
    sys.exit(0)
dev = argv[argv.index("-D") + 1]
if "--dump-hw-params" not in argv and dev == "plughw:1,0":  # capture: silence on stdout at 16 kHz until the pipe breaks
    import signal
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    with open(os.path.join(STATE, "arecord.log"), "a") as f:
        f.write(" ".join(argv) + "\\n")
    while True:
        sys.stdout.buffer.write(bytes(3200))
        sys.stdout.buffer.flush()
        time.sleep(0.1)
if dev not in ("hw:1,0", "plughw:1,0"):
    print(f'arecord: main:831: audio open error: No such file or directory', file=sys.stderr)
    sys.exit(1)
print(f'HW Params of device "{dev}":', file=sys.stderr)
print("--------------------", file=sys.stderr)
print("ACCESS:  MMAP_INTERLEAVED RW_INTERLEAVED", file=sys.stderr)
print("FORMAT:  S16_LE", file=sys.stderr)
print("CHANNELS: 1", file=sys.stderr)
print("RATE: 48000" if dev.startswith("hw:") else "RATE: [4000 4294967295]", file=sys.stderr)
print("--------------------", file=sys.stderr)
if dev.startswith("hw:"):
    print("arecord: set_params:1343: Warning: rate is not accurate (requested = 16000Hz, got = 48000Hz)",
          file=sys.stderr)
"""


def _systemctl_calls(server) -> list[str]:
    log = server.d / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


# ---- without a server -------------------------------------------------------------------------------------------

def test_unit_names_systemd_would_not_accept_are_refused():
    assert ssh_service.check_unit_name("fwtool-kws") == "fwtool-kws.service"
    assert ssh_service.check_unit_name("kws_2.service") == "kws_2.service"
    for bad in ("bad name", "a;rm -rf ~", "a/b", "-x", ".hidden", "x" * 201, "ünï", "", "remove", "a$b", "a@b"):
        with pytest.raises(BadInput):
            ssh_service.check_unit_name(bad)


def test_unit_text_runs_an_audio_app_behind_arecord():
    plain = ssh_service.unit_text("fwtool/rpi4.elf", "fwtool rpi4 program", None)
    assert "ExecStart=%h/fwtool/rpi4.elf\n" in plain and "WantedBy=default.target" in plain
    assert "X-Fwtool-Program=fwtool/rpi4.elf" in plain
    audio = ssh_service.unit_text("fwtool/rpi4.elf", "fwtool rpi4 program", "plughw:CARD=Mic,DEV=0")
    assert ("ExecStart=/bin/sh -c 'arecord -q -D plughw:CARD=Mic,DEV=0 -f S16_LE -r 16000 -c 1 -t raw | "
            "exec %h/fwtool/rpi4.elf'\n") in audio


def test_capture_checks_from_probe_output():
    out = ("arch=aarch64\ndir=.\nfree_kb=900000\nalsa=yes\n"
           "card=card 2: Device [USB Audio Device], device 0: USB Audio [USB Audio]\n"
           "rate=plughw:2,0 [4000 4294967295]\n")
    f = ssh_checks.parse(out)
    assert f.cards == [("2", "Device", "0")] and ssh_checks.pick_device(f, None) == "plughw:2,0"
    kw = dict(host="pi", arch="aarch64", board="rpi4", size=700_000, deploy_dir="fwtool", audio=True, unit=None)
    assert ssh_checks.check(f, device=None, **kw)["capture_device"] == "plughw:2,0"
    assert ssh_checks.takes_rate("[8000 48000]") and ssh_checks.takes_rate("16000")
    assert not ssh_checks.takes_rate("48000") and not ssh_checks.takes_rate("(44099 44101]")
    with pytest.raises(NoDevice, match="lists none"):  # no capture device at all
        ssh_checks.check(ssh_checks.parse("arch=aarch64\nfree_kb=900000\nalsa=yes\n"), device=None, **kw)
    with pytest.raises(MissingTool, match=r"no ALSA tools.*lists 1 capture PCM"):
        ssh_checks.check(ssh_checks.parse("arch=aarch64\nfree_kb=900000\nalsa=no\nproc=/proc/asound/card1/pcm0c\n"),
                         device=None, **kw)
    with pytest.raises(BadInput, match="no space"):
        ssh_checks.check(ssh_checks.parse("arch=aarch64\nfree_kb=1000\n"), device=None,
                         **{**kw, "audio": False})
    with pytest.raises(BadInput, match="is x86_64, not aarch64"):
        ssh_checks.check(ssh_checks.parse("arch=x86_64\nfree_kb=900000\n"), device=None, **kw)
    for bad in ("x;rm -rf ~", "a b", "'q'", ""):
        with pytest.raises(BadInput):
            ssh_checks.check_device_name(bad)


def test_remote_paths_outside_the_deploy_folder_are_refused_before_connecting(program, monkeypatch):
    from fwtool.core.boards import get_board
    from fwtool.flash import ssh

    monkeypatch.setattr(ssh, "run_remote", lambda *a, **k: pytest.fail("connected before refusing"))
    board = get_board("linux-host")
    for deploy_dir in ("../elsewhere", "/etc", "fwtool/../.."):
        bad = dataclasses.replace(board, sdk=dataclasses.replace(board.sdk, deploy_dir=deploy_dir))
        with pytest.raises(BadInput, match="outside the deploy folder"):
            ssh.deploy(program, ssh.SshHost("pitest"), bad, "x86_64")
    for name in ("../x", "/etc/passwd", "a/b", ".."):
        with pytest.raises(BadInput):
            ssh.deploy(program, ssh.SshHost("pitest"), board, "x86_64", name=name)


def test_an_audio_app_is_told_by_its_build_report(tmp_path):
    from fwtool.flash.ssh import audio_app

    for app, audio in (("kws", True), ("audio_classifier", True), ("inference", False)):
        (tmp_path / "report.json").write_text(json.dumps({"build": {"app": app}}))
        assert (audio_app(tmp_path / "firmware.elf") == app) is audio
    (tmp_path / "report.json").write_text("{not json")
    assert audio_app(tmp_path / "firmware.elf") is None


# ---- against the throw-away sshd ------------------------------------------------------------------------------

def test_service_install_and_remove(program, sshd):
    sshd.fake_tool("systemctl", SYSTEMCTL)
    sshd.fake_tool("loginctl", LOGINCTL)
    p = _cli("flash", "--board", "linux-host", "--elf", str(program), *sshd.args("--service", "fwtool-test"), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["service"] == "fwtool-test.service" and any("enable-linger" in n for n in out["notes"])
    unit = sshd.home / ".config/systemd/user/fwtool-test.service"
    assert unit.read_text() == ssh_service.unit_text("fwtool/linux-host.elf", "fwtool linux-host program", None)
    calls = _systemctl_calls(sshd)
    assert calls[-3:] == ["--user daemon-reload", "--user enable fwtool-test.service",
                          "--user restart fwtool-test.service"], calls
    assert "--user show-environment" in calls  # the user manager was asked before anything was copied

    p = _cli("flash", "--board", "linux-host", *sshd.args("--service", "remove"))
    assert p.returncode == 0 and "removed   fwtool-test.service" in p.stderr, p.stdout + p.stderr
    assert not unit.exists() and (sshd.home / "fwtool/linux-host.elf").exists()
    assert _systemctl_calls(sshd)[-2:] == ["--user disable --now fwtool-test.service", "--user daemon-reload"]
    p = _cli("flash", "--board", "linux-host", *sshd.args("--service", "remove"))
    assert p.returncode == 0 and "nothing removed" in p.stderr


def test_service_refused_without_a_user_manager(program, sshd):
    sshd.fake_tool("systemctl", "print('Failed to connect to bus: No medium found', file=sys.stderr)\n"
                                "sys.exit(1)\n")
    p = _cli("flash", "--board", "linux-host", "--elf", str(program), *sshd.args("--service", "fwtool-test"))
    assert p.returncode == 4 and "no systemd user manager" in _one_error(p) and "No medium found" in p.stderr
    assert not (sshd.home / "fwtool").exists() and not (sshd.home / ".config").exists()


def test_capture_device_is_checked_for_16khz(program, sshd):
    sshd.fake_tool("arecord", ARECORD)
    sshd.fake_tool("systemctl", SYSTEMCTL)
    sshd.fake_tool("loginctl", LOGINCTL)
    base = ["flash", "--board", "linux-host", "--elf", str(program)]
    p = _cli(*base, *sshd.args("--capture-device", "hw:1,0"))
    assert p.returncode == 3, p.stderr
    assert "hw:1,0 on pitest cannot capture at 16000 Hz (its rates: 48000)" in _one_error(p)
    assert "--capture-device plughw:1,0" in p.stderr
    p = _cli(*base, *sshd.args("--capture-device", "plughw:7,0"))
    assert p.returncode == 6 and "audio open error: No such file or directory" in _one_error(p)
    assert "plughw:1,0 (Mic)" in p.stderr
    assert not (sshd.home / "fwtool").exists()  # nothing changed on the remote by a failed check
    p = _cli(*base, *sshd.args("--capture-device", "a;touch x"))
    assert p.returncode == 3 and "not an ALSA device name" in _one_error(p)

    p = _cli(*base, *sshd.args("--capture-device", "plughw:1,0", "--service", "fwtool-kws", "--json"))
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["capture_device"] == "plughw:1,0" and any("resamples" in n for n in out["notes"])
    unit = (sshd.home / ".config/systemd/user/fwtool-kws.service").read_text()
    assert ("ExecStart=/bin/sh -c 'arecord -q -D plughw:1,0 -f S16_LE -r 16000 -c 1 -t raw | "
            "exec %h/fwtool/linux-host.elf'") in unit
    assert (sshd.home / "fwtool/linux-host.elf.capture").read_text() == "plughw:1,0\n"

    # monitor --host runs it behind arecord on the device the deploy recorded; both end with the monitor
    p = _cli("monitor", "--board", "linux-host", *sshd.args("--count", "3", "--plain"), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (sshd.d / "arecord.log").read_text().split("\n")[0] == "-q -D plughw:1,0 -f S16_LE -r 16000 -c 1 -t raw"
    time.sleep(0.5)
    assert not sshd.leftovers(), sshd.leftovers()
    # a deploy without a capture device forgets it
    p = _cli("flash", "--board", "linux-host", "--elf", str(program), *sshd.args())
    assert p.returncode == 0 and not (sshd.home / "fwtool/linux-host.elf.capture").exists()


def test_no_alsa_tools_said_so(program, sshd):
    if shutil.which("arecord"):
        pytest.skip("this machine has arecord (alsa-utils): the test server would find it")
    p = _cli("flash", "--board", "linux-host", "--elf", str(program), *sshd.args("--capture-device", "plughw:1,0"))
    assert p.returncode == 4 and "no ALSA tools on pitest: 'arecord' was not found" in _one_error(p)
    assert "apt-get install alsa-utils" in p.stderr and not (sshd.home / "fwtool").exists()


def test_no_space_refused(program, sshd):
    sshd.fake_tool("df", "print('Filesystem 1024-blocks Used Available Capacity Mounted on')\n"
                         "print('/dev/mmcblk0p2 30000000 29999900 100 100% /')\n")
    p = _cli("flash", "--board", "linux-host", "--elf", str(program), *sshd.args())
    assert p.returncode == 3 and "no space on pitest: 102,400 B free" in _one_error(p), p.stderr
    assert not (sshd.home / "fwtool").exists()


def test_monitor_auth_failure_is_one_line(program, sshd):
    wrong = sshd.d / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    sshd.config.write_text(sshd.config.read_text().replace(str(sshd.d / "client_key"), str(wrong)))
    p = _cli("monitor", "--board", "linux-host", *sshd.args("--count", "1", "--plain"), timeout=60)
    assert p.returncode == 3 and "authentication" in _one_error(p), p.stderr


# ---- monitor over SSH: reconnects -------------------------------------------------------------------------------

# journalctl --user -f -o json -u UNIT (-n 0 | --after-cursor=C --no-tail): follows STATE/journal.jsonl
JOURNALCTL = """
with open(os.path.join(STATE, "journalctl.pids"), "a") as f:
    f.write(f"{os.getpid()}\\n")
path = os.path.join(STATE, "journal.jsonl")
after = next((a.split("=", 1)[1] for a in argv if a.startswith("--after-cursor=")), None)
lines = open(path).read().splitlines() if os.path.exists(path) else []
if after is None:
    pos = len(lines)
else:
    cursors = [json.loads(x)["__CURSOR"] for x in lines]
    pos = cursors.index(after) + 1 if after in cursors else 0
while True:
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    for x in lines[pos:]:
        sys.stdout.write(x + "\\n")
    sys.stdout.flush()
    pos = len(lines)
    time.sleep(0.05)
"""


def _journal(server, n: int) -> None:
    with open(server.d / "journal.jsonl", "a") as f:
        f.write(json.dumps({"__CURSOR": f"s=test;i={n:x}", "_SYSTEMD_USER_UNIT": "fwtool-test.service",
                            "MESSAGE": f"FWT:INFER n={n} us=300 top=class_0 score=0.0000 scores=0.0000 q=-128"})
                + "\n")


def _kill_remote(server, name: str | None = None) -> int:
    """SIGKILL this test's remote processes whose command line starts with ``name`` (a dead program), or with no name the
    test server's per-connection sshd processes and their children (the board going away: the connection drops and
    what ran on it dies; never the listener, never another's). Two passes: a child forked during the first."""
    killed = 0
    for _ in range(2):
        ps = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
        rows = [(int(ln.split()[0]), int(ln.split()[1]), ln) for ln in ps.splitlines()[1:]]
        if name is None:  # everything under the listener
            pids, grown = [], True
            while grown:
                more = [pid for pid, ppid, _ in rows if (ppid == server.proc.pid or ppid in pids) and pid not in pids]
                pids += more
                grown = bool(more)
        else:
            pids = [pid for pid, _, ln in rows if ln.split(None, 2)[2].startswith(name)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return killed


def test_service_monitor_reconnects_and_loses_no_line(sshd):
    if sshd_reason():
        pytest.skip(sshd_reason())
    sshd.fake_tool("journalctl", JOURNALCTL)
    mon = subprocess.Popen([sys.executable, "-m", "fwtool", "monitor", "--board", "linux-host",
                            *sshd.args("--service", "fwtool-test", "--count", "40", "--plain", "--timeout", "90")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    pids = sshd.d / "journalctl.pids"
    deadline = time.monotonic() + 30
    while not pids.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    kills = []
    for n in range(1, 41):
        _journal(sshd, n)
        time.sleep(0.05)
        if n in (12, 27):  # drop the connection: first the remote journalctl, then the session's sshd
            time.sleep(0.3)
            kills.append(_kill_remote(sshd, f"{sys.executable} {sshd.bin / 'journalctl'}" if n == 12 else None))
            # the lines after it are printed while the monitor is away
    out, err = mon.communicate(timeout=120)
    assert mon.returncode == 0, out + err
    got = [int(ln.split("n=")[1].split()[0]) for ln in out.splitlines() if "n=" in ln]
    assert got == list(range(1, 41)), (got, err)  # every line once, in order, across two reconnects
    assert min(kills) >= 1 and re.search(r"\b([2-9]|\d\d+) reconnects", out + err), (kills, out + err)
    assert len(pids.read_text().split()) >= 3, (pids.read_text(), out + err)
    assert "--after-cursor" not in err


def test_plain_monitor_reconnects_when_the_program_dies(program, sshd):
    p = _cli("flash", "--board", "linux-host", "--elf", str(program), *sshd.args())
    assert p.returncode == 0, p.stderr
    mon = subprocess.Popen([sys.executable, "-m", "fwtool", "monitor", "--board", "linux-host",
                            *sshd.args("--plain", "--timeout", "10")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    time.sleep(4)
    assert _kill_remote(sshd, "fwtool/linux-host.elf") >= 1  # the program dies: the channel ends
    out, err = mon.communicate(timeout=60)
    assert mon.returncode == 0, out + err
    assert re.search(r"\b[1-9]\d* reconnects", out + err), out + err
    assert (out + err).count("FWT:BOOT model=fire_alarm") >= 2, out + err  # the program started again


# ---- the LED: a file or a GPIO character-device line -------------------------------------------------------------

def test_led_forms():
    from fwtool.firmware.families.linux import led_parts

    assert led_parts("gpiochip0:17") == {"file": "", "chip": "/dev/gpiochip0", "line": 17}
    assert led_parts("/dev/gpiochip4:27")["chip"] == "/dev/gpiochip4"
    assert led_parts("/sys/class/leds/ACT/brightness")["file"] == "/sys/class/leds/ACT/brightness"
    assert led_parts(None) == {"file": "", "chip": "", "line": -1}
    for bad in ("gpiochip0", "gpiochip0:x", 'x"); system("rm', "relative/file", "/a/../b", "/a b"):
        with pytest.raises(BadInput):
            led_parts(bad)


@pytest.mark.parametrize("form", ["file", "gpio"])
def test_led_is_driven(tmp_path, form):
    from fwtool.model.sources import resolve

    for tool in ("cmake", "g++"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed")
    if form == "gpio" and not shutil.which("strace"):
        pytest.skip("strace not installed (apt-get install strace): it shows the GPIO line request")
    model = tmp_path / "fire_alarm.tflite"
    model.write_bytes(resolve("example:fire_alarm").read_bytes())
    led_file = tmp_path / "led"
    led_file.write_text("")
    led = str(led_file) if form == "file" else "gpiochip9:17"
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "ledhost.toml").write_text(
        'name = "ledhost"\ntitle = "linux-host with an LED"\nfamily = "linux"\nmcu = "host"\ncpu = "host"\n'
        f'clock_hz = 1_000_000_000\n[sdk]\narch = "host"\nled = "{led}"\n'
        "[memory]\nflash_base = 0\nflash_bytes = 0x4000000\nsram_base = 0\nsram_bytes = 0x10000000\n"
        '[image]\nkind = "elf"\n[flash]\nrunners = ["ssh"]\n')
    p = _cli("build", "--board", "ledhost", "-m", str(model), "--out", str(tmp_path / "out"), timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    elf = tmp_path / "out" / "firmware.elf"
    if form == "file":
        run = subprocess.run(["timeout", "2", str(elf)], capture_output=True, text=True)
        assert "FWT:INFER n=2" in run.stdout and led_file.read_text() in ("1\n", "0\n")
    else:  # no GPIO chip 9 here: the program asks for it, finds none and runs on (the LED a no-op)
        run = subprocess.run(["timeout", "2", "strace", "-f", "-e", "trace=openat", str(elf)], capture_output=True,
                             text=True)
        assert "FWT:INFER n=2" in run.stdout
        assert '"/dev/gpiochip9", O_RDWR|O_CLOEXEC) = -1 ENOENT' in run.stderr, run.stderr[-500:]


def test_monitor_of_an_unreachable_host_is_one_line(tmp_path):
    if sshd_reason():
        pytest.skip(sshd_reason())
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host deadpi\n  HostName 127.0.0.1\n  Port {port}\n  UserKnownHostsFile {tmp_path / 'kh'}\n")
    t0 = time.monotonic()
    p = _cli("monitor", "--board", "linux-host", "--host", "deadpi", "--ssh-config", str(cfg), "--count", "1",
             timeout=120)
    assert p.returncode == 6 and "cannot reach deadpi" in _one_error(p) and "Connection refused" in p.stderr
    assert time.monotonic() - t0 < 60
