"""The linux family end to end: static executables (host and aarch64), validate natively and under qemu-aarch64,
and deploy/monitor over SSH against a throw-away OpenSSH server on 127.0.0.1 (Debian openssh-server; a test
instrument: its own config, host key, authorized_keys and a forced command that runs every session in a temporary
home, named through a throw-away ssh_config alias with port, key and known-hosts file)."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fwtool.core import vendor
from fwtool.core.errors import MissingTool
from fakes_sshd import keygen as _keygen
from fakes_sshd import start_sshd

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, timeout=900, env=None):
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fwtool", *args], capture_output=True, text=True, timeout=timeout,
                          env=e, cwd=ROOT)


def _build_reason(cross: bool) -> str | None:
    for tool in ("cmake", "g++", *(["aarch64-linux-gnu-g++"] if cross else [])):
        if not shutil.which(tool):
            return f"{tool} not installed (apt-get install cmake g++ g++-aarch64-linux-gnu)"
    for dep in vendor.deps_for("linux", "build"):
        try:
            vendor.require(dep)
        except MissingTool as e:
            return f"vendor tree {dep.name} not available: {e.cause}"
    return None


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """fire_alarm for linux-host and rpi4 (built once for the module)."""
    out = {}
    for board in ("linux-host", "rpi4"):
        reason = _build_reason(board == "rpi4")
        if reason:
            out[board] = reason
            continue
        d = tmp_path_factory.mktemp(board)
        p = _cli("build", "--board", board, "-m", "example:fire_alarm", "--out", str(d))
        assert p.returncode == 0, p.stdout + p.stderr
        out[board] = d / "firmware.elf"
    return out


def _need(builds, board) -> Path:
    if isinstance(builds[board], str):
        pytest.skip(builds[board])
    return builds[board]


def test_rpi4_build_is_a_static_aarch64_elf(builds):
    elf = _need(builds, "rpi4").read_bytes()
    assert elf[:4] == b"\x7fELF" and elf[4] == 2  # ELFCLASS64
    assert int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
    from fwtool.firmware.families.linux import elf_facts

    assert elf_facts(elf)["static"]
    assert os.access(_need(builds, "rpi4"), os.X_OK)


def test_linux_host_program_runs_natively(builds):
    elf = _need(builds, "linux-host")
    p = subprocess.run(["timeout", "3", str(elf)], capture_output=True, text=True)
    assert p.stdout.startswith("FWT:BOOT model=fire_alarm") and "FWT:INFER n=2" in p.stdout


@pytest.mark.parametrize("board", ["linux-host", "rpi4"])
def test_validate_passes(builds, board):
    _need(builds, board)
    if board == "rpi4" and not shutil.which("qemu-aarch64-static"):
        pytest.skip("qemu-aarch64-static not installed (apt-get install qemu-user-static)")
    p = _cli("validate", "--board", board, "-m", "example:fire_alarm", "--count", "5")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS" in p.stdout and ("qemu-aarch64" in p.stdout) == (board == "rpi4")


# ---- SSH ------------------------------------------------------------------------------------------------------

@pytest.fixture
def sshd(tmp_path):
    server = start_sshd(tmp_path)
    yield server
    server.stop()
    assert not _leftovers(server), "a process of the test was left running"


def _leftovers(server) -> list[str]:
    return server.leftovers()


def _ssh_args(server, *more):
    return ["--host", "pitest", "--ssh-config", str(server.config), *more]


def test_deploy_monitor_and_refusals(builds, sshd):
    elf = _need(builds, "linux-host")
    p = _cli("flash", "--board", "linux-host", "--elf", str(elf), *_ssh_args(sshd), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    deployed = sshd.home / "fwtool" / "linux-host.elf"
    assert deployed.read_bytes() == elf.read_bytes() and os.access(deployed, os.X_OK)
    assert f'"remote_arch": "{platform.machine()}"' in p.stdout

    p = _cli("monitor", "--board", "linux-host", *_ssh_args(sshd), "--count", "3", "--plain", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    infers = [ln for ln in p.stdout.splitlines() if "FWT:INFER" in ln or "n=" in ln]
    assert len([ln for ln in p.stdout.splitlines() if "class_0" in ln]) >= 3, p.stdout
    time.sleep(0.5)
    assert not _leftovers(sshd), "the monitored program is still running"
    del infers

    # an rpi4 program to this x86-64 host: refused naming its architecture, nothing copied
    rpi4 = builds["rpi4"]
    if not isinstance(rpi4, str) and platform.machine() != "aarch64":
        p = _cli("flash", "--board", "rpi4", "--elf", str(rpi4), *_ssh_args(sshd))
        assert p.returncode == 3 and f"is {platform.machine()}, not aarch64" in p.stderr, p.stderr
        assert not (sshd.home / "fwtool" / "rpi4.elf").exists()


def _one_error(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("error:") and lines[1].strip().startswith("fix:") and len(lines) == 2, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def test_changed_and_unknown_host_keys_are_refused(builds, sshd):
    elf = _need(builds, "linux-host")
    kh = sshd.d / "known_hosts"
    other = sshd.d / "other_key"
    _keygen(other)
    pub = other.with_suffix(".pub").read_text().split()
    kh.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    p = _cli("flash", "--board", "linux-host", "--elf", str(elf), *_ssh_args(sshd))
    assert p.returncode == 3 and "CHANGED" in _one_error(p) and "SHA256:" in p.stderr
    kh.write_text("")
    p = _cli("flash", "--board", "linux-host", "--elf", str(elf), *_ssh_args(sshd))
    assert p.returncode == 3 and "not known" in _one_error(p) and "SHA256:" in p.stderr
    assert kh.read_text() == ""  # never accepted
    assert not (sshd.home / "fwtool").exists()


def test_auth_failure_never_prompts(builds, sshd):
    elf = _need(builds, "linux-host")
    wrong = sshd.d / "wrong_key"
    _keygen(wrong)
    cfg = sshd.config.read_text().replace(str(sshd.d / "client_key"), str(wrong))
    sshd.config.write_text(cfg)
    p = _cli("flash", "--board", "linux-host", "--elf", str(elf), *_ssh_args(sshd), timeout=60)
    assert p.returncode == 3 and "authentication" in _one_error(p)
    assert not (sshd.home / "fwtool").exists()


def test_bad_unit_name_and_paths_refused_before_connecting(builds, tmp_path):
    elf = _need(builds, "linux-host")
    p = _cli("flash", "--board", "linux-host", "--elf", str(elf), "--host", "nosuchhost.invalid",
             "--service", "bad name;rm")
    assert p.returncode == 3 and "systemd" in _one_error(p)
    p = _cli("flash", "--board", "linux-host", "--elf", str(elf))  # no --host: refused, not looked for on USB
    assert p.returncode == 3 and "over SSH" in _one_error(p)
    p = _cli("flash", "--board", "linux-host", "--elf", str(elf), "--host", "bad host!")
    assert p.returncode == 3 and "[user@]host[:port]" in _one_error(p)
    from fwtool.core.errors import BadInput
    from fwtool.flash.ssh import remote_path
    from fwtool.flash.ssh_service import check_unit_name

    assert check_unit_name("fwtool-kws") == "fwtool-kws.service"
    for bad in ("../x", "/etc/passwd", "a/../../b"):
        with pytest.raises(BadInput):
            remote_path("fwtool", bad)
    with pytest.raises(BadInput):
        remote_path("../outside", "x")


def test_run_builds_deploys_and_monitors(builds, sshd, tmp_path):
    _need(builds, "linux-host")
    p = _cli("run", "--board", "linux-host", "-m", "example:fire_alarm", "--out", str(tmp_path / "run"),
             *_ssh_args(sshd), "--count", "2", "--plain", timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "deployed" in p.stderr and len([ln for ln in p.stdout.splitlines() if "class_0" in ln]) >= 2, p.stdout
