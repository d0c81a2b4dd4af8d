"""Deploying a linux-family program over SSH with OpenSSH's own client (``ssh``; Debian openssh-client).

Why OpenSSH and not asyncssh/paramiko: it is what the user's ``~/.ssh/config`` (aliases, ports, keys,
ProxyJump, known-hosts files), agent and hardware keys already work with, it is installed wherever a Pi is
reached from, and its host-key checking is the reference one. fwtool never weakens it: every call runs with
``BatchMode=yes`` (never a password or passphrase prompt; keys and the agent only) and
``StrictHostKeyChecking=yes`` (an unknown or changed host key is refused, never added). File transfer is a
``cat > tmp && mv`` over the same connection (no scp/sftp subsystem needed; the rename makes it atomic).

Everything goes into the board's deploy folder (``[sdk] deploy_dir``, relative to the login's home): a remote path
outside it is refused before anything is sent.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fwtool.core import runner
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, Exit, FwtoolError, MissingTool, NoDevice
from fwtool.firmware.apps import get_app
from fwtool.firmware.families.linux import board_arch, check_executable
from fwtool.flash import ssh_checks, ssh_service
from fwtool.flash.ssh_checks import check_device_name
from fwtool.flash.ssh_service import check_unit_name

SAFE_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
_HOST = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+)(?::(?P<port>\d{1,5}))?$")
CAPTURE_SUFFIX = ".capture"  # beside the program: the ALSA device an audio app's deploy checked (for monitor --host)
_FINGERPRINT = re.compile(r"(SHA256:[A-Za-z0-9+/=]+)")


@dataclass(frozen=True)
class SshHost:
    """Where to deploy: an ``[user@]host[:port]`` (a host may be a ``~/.ssh/config`` alias) and the config file."""

    spec: str
    config: Path | None = None  # ssh -F (default: ~/.ssh/config, as ssh itself)

    @property
    def parts(self) -> tuple[str | None, str, int | None]:
        m = _HOST.match(self.spec or "")
        if not m:
            raise BadInput(f"--host {self.spec!r} is not [user@]host[:port]",
                           "give e.g. --host pi@raspberrypi.local or an alias from ~/.ssh/config")
        return m.group("user"), m.group("host"), int(m.group("port")) if m.group("port") else None

    def command(self, remote: str | None = None, *extra: str) -> list[str]:
        user, host, port = self.parts
        cmd = ["ssh", *(["-F", str(self.config)] if self.config else []), *SAFE_OPTIONS, *extra]
        if port:
            cmd += ["-p", str(port)]
        cmd += [f"{user}@{host}" if user else host]
        return cmd + ([remote] if remote is not None else [])


def check_ssh() -> str:
    path = runner.which("ssh")
    if path is None:
        raise MissingTool("ssh (OpenSSH's client) was not found", "sudo apt-get install openssh-client")
    return path


def _keyscan_fingerprint(host: SshHost) -> str | None:
    """The server's host key fingerprint as ssh-keyscan sees it (for the unknown-host message), or None."""
    _, name, port = host.parts
    resolved = name
    try:  # an alias: ask ssh what it resolves to
        out = subprocess.run(["ssh", *(["-F", str(host.config)] if host.config else []), "-G", name],
                             capture_output=True, text=True, timeout=10).stdout
        conf = dict(ln.split(" ", 1) for ln in out.splitlines() if " " in ln)
        resolved, port = conf.get("hostname", name), port or int(conf.get("port", "22"))
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    try:
        scan = subprocess.run(["ssh-keyscan", "-p", str(port or 22), "-t", "ed25519", resolved],
                              capture_output=True, text=True, timeout=10).stdout
        fp = subprocess.run(["ssh-keygen", "-lf", "-"], input=scan, capture_output=True, text=True, timeout=10)
        m = _FINGERPRINT.search(fp.stdout)
        return m.group(1) if m else None
    except (OSError, subprocess.SubprocessError):
        return None


def ssh_error(host: SshHost, stderr: str, rc: int) -> FwtoolError:
    """One FwtoolError (cause + fix) for a failed ssh call, from OpenSSH's own messages."""
    text = stderr.strip()
    name = host.spec
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        fp = _FINGERPRINT.search(text)
        return BadInput(f"the host key of {name} has CHANGED (now {fp.group(1) if fp else 'unknown'}): refused "
                        "(it may be a reinstalled board, or someone in between)",
                        "if the board was reinstalled, check that fingerprint on it ('ssh-keygen -lf "
                        "/etc/ssh/ssh_host_ed25519_key.pub') and remove the old key: ssh-keygen -R <host>")
    if "host key is known" in text or "Host key verification failed" in text:
        fp = _keyscan_fingerprint(host)
        return BadInput(f"the host key of {name} is not known ({fp or 'fingerprint unavailable'}): refused, never "
                        "accepted automatically",
                        "check that fingerprint on the board, then connect once with 'ssh <host>' and accept it "
                        "(or add it to your known_hosts file)")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return BadInput(f"SSH authentication to {name} failed (keys and agent only; fwtool never asks for a "
                        "password)", f"add your public key to the board: ssh-copy-id {name}, or load it into "
                        "the agent (ssh-add)")
    if "Could not resolve hostname" in text or "Connection refused" in text or "timed out" in text or \
            "No route to host" in text:
        last = text.splitlines()[-1] if text else f"ssh exit {rc}"
        return NoDevice(f"cannot reach {name}: {last}", "check the name/port (ssh -G <host>) and that the board "
                                                          "is on and runs sshd")
    last = text.splitlines()[-1] if text else f"exit {rc}"
    return FwtoolError(f"ssh {name} failed: {last}", f"try 'ssh {name}' by hand")


def run_remote(host: SshHost, remote: str, data: bytes | None = None, timeout: float = 60.0,
               log=lambda s: None) -> str:
    """Run ``remote`` (a shell command line) on ``host``; its stdout. A failed connection: ssh_error."""
    check_ssh()
    cmd = host.command(remote)
    log(runner.command_line(cmd))
    try:
        p = subprocess.run(cmd, input=data if data is not None else b"", capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FwtoolError(f"ssh {host.spec} did not finish in {timeout:g} s", "check the connection",
                          Exit.TIMEOUT) from None
    if p.returncode == 255:  # ssh's own failure (connection, host key, authentication)
        raise ssh_error(host, p.stderr.decode(errors="replace"), p.returncode)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise FwtoolError(f"on {host.spec}: '{remote[:60]}' failed: {err[-1] if err else p.returncode}",
                          "see the message; nothing else was changed there")
    return p.stdout.decode(errors="replace")


def remote_path(deploy_dir: str, name: str) -> str:
    """``deploy_dir/name`` (relative to the login's home); BadInput for anything that leaves ``deploy_dir``."""
    base = PurePosixPath(deploy_dir)
    rel = PurePosixPath(name)
    if base.is_absolute() or ".." in base.parts or rel.is_absolute() or ".." in rel.parts or not rel.parts \
            or not base.parts or len(rel.parts) != 1:
        raise BadInput(f"remote path {deploy_dir}/{name} is outside the deploy folder ~/{deploy_dir}",
                       "give a plain file name inside it (no '/', '..' or absolute paths) and a relative "
                       "[sdk] deploy_dir")
    return str(base / rel)


def audio_app(image: Path) -> str | None:
    """The app of the build that made ``image`` (its report.json beside it) when it reads a microphone."""
    report = Path(image).parent / "report.json"
    try:
        app = json.loads(report.read_text()).get("build", {}).get("app")
        return app if app and any(n.endswith("mic") for n in get_app(app).needs) else None
    except (OSError, ValueError, AttributeError, FwtoolError):
        return None


def deploy(image: Path, host: SshHost, board, arch: str, service: str | None = None, name: str | None = None,
           capture: str | None = None, audio: bool = False, log=lambda s: None) -> dict:
    """Copy ``image`` to ``~/<deploy_dir>/<name>`` on ``host`` after the checks of ssh_checks (architecture,
    space, the capture device for an audio program, a systemd user manager for ``service``) all pass — a failed
    check changes nothing there; with ``service``, install and (re)start a systemd user unit running it."""
    deploy_dir = board.sdk.deploy_dir
    unit = check_unit_name(service) if service else None
    named = check_device_name(capture) if capture else board.sdk.capture_device
    audio = audio or capture is not None
    target = remote_path(deploy_dir, name or f"{board.name}.elf")
    data = Path(image).read_bytes()
    t0 = time.monotonic()
    probe = ssh_checks.script(deploy_dir, [named] if named else [], audio, unit)
    facts = ssh_checks.parse(run_remote(host, probe, timeout=60, log=log))
    checked = ssh_checks.check(facts, host=host.spec, arch=arch, board=board.name, size=len(data),
                               deploy_dir=deploy_dir, audio=audio, device=named, unit=unit)
    sha = hashlib.sha256(data).hexdigest()
    q = shlex.quote
    tmp = f"{target}.tmp"
    device = checked["capture_device"]
    record = (f"printf '%s\\n' {q(device)} > {q(target + CAPTURE_SUFFIX)}" if device
              else f"rm -f {q(target + CAPTURE_SUFFIX)}")
    script = (f"mkdir -p {q(deploy_dir)} && cat > {q(tmp)} && chmod 755 {q(tmp)} && "
              f"[ \"$(sha256sum {q(tmp)} | cut -d' ' -f1)\" = {sha} ] && mv -f {q(tmp)} {q(target)} && {record}")
    run_remote(host, script, data=data, timeout=300, log=log)
    out = {"method": "ssh", "host": host.spec, "remote_arch": facts.arch, "remote_path": f"~/{target}",
           "bytes": len(data), "sha256": sha, "verified": True, "free_bytes": (facts.free_kb or 0) * 1024,
           "capture_device": checked["capture_device"], "notes": checked["notes"]}
    if unit:
        text = ssh_service.unit_text(target, f"fwtool {board.name} program", checked["capture_device"])
        said = run_remote(host, ssh_service.install_script(unit, target), data=text.encode(), log=log)
        out["service"] = unit
        out["unit_file"] = f"~/{ssh_service.UNIT_DIR}/{unit}"
        hint = ssh_service.linger_hint(said, host.spec)
        if hint:
            out["notes"].append(hint)
    out["seconds"] = round(time.monotonic() - t0, 2)
    return out


def remove_service(board_name: str, host: str, config: Path | None = None, log=lambda s: None) -> dict:
    """``fwtool flash --host … --service remove``: stop, disable and delete fwtool's units for the board's
    program (the program itself stays)."""
    board = _linux_board(board_name)
    target = remote_path(board.sdk.deploy_dir, f"{board.name}.elf")
    said = run_remote(SshHost(host, config), ssh_service.remove_script(target), log=log)
    units = [ln.split("=", 1)[1] for ln in said.splitlines() if ln.startswith("removed=")]
    return {"method": "ssh", "host": host, "removed": units, "program": f"~/{target}"}


def _linux_board(board_name: str):
    board = get_board(board_name)
    if board.family != "linux":
        raise BadInput(f"--host deploys a Linux board's program; {board.name} is a {board.family} board",
                       "use --board rpi4 or --board linux-host (or drop --host to flash over USB)")
    return board


def flash_over_ssh(image: Path, board_name: str, host: str, config: Path | None = None,
                   service: str | None = None, capture: str | None = None, log=lambda s: None) -> dict:
    """``fwtool flash --host``: the linux board's program ``image`` to ``host`` (checked first: a static ELF for
    the board's architecture; then the remote checks of :func:`deploy`). An audio app (its build's report.json
    says so) or a ``capture`` device gets the capture check and, with ``service``, the arecord pipe."""
    board = _linux_board(board_name)
    if service == ssh_service.REMOVE:
        return remove_service(board_name, host, config, log)
    arch = board_arch(board)
    if not Path(image).is_file():
        raise BadInput(f"no program {image}", f"build it first: fwtool build --board {board.name}")
    check_executable(Path(image).read_bytes(), arch, str(image))
    return deploy(Path(image), SshHost(host, config), board, arch, service=service, capture=capture,
                  audio=audio_app(Path(image)) is not None, log=log)


def program_path(board_name: str, name: str | None = None) -> str:
    """The deployed program's path relative to the remote home (what ``flash --host`` wrote)."""
    board = get_board(board_name)
    return remote_path(board.sdk.deploy_dir, name or f"{board.name}.elf")
