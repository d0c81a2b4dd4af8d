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
import os
import re
import select
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fwtool.core import runner
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, Exit, FwtoolError, MissingTool, NoDevice
from fwtool.firmware.families.linux import board_arch, check_executable

SAFE_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
_HOST = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+)(?::(?P<port>\d{1,5}))?$")
# systemd unit names: [A-Za-z0-9:_.\-] plus '@' for instances (systemd.unit(5)); fwtool adds ".service"
_UNIT = re.compile(r"^[A-Za-z0-9:_.\\-]{1,200}$")
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


def check_unit_name(name: str) -> str:
    """A systemd user unit name fwtool may write (``NAME`` or ``NAME.service``); BadInput otherwise."""
    base = name[:-len(".service")] if name.endswith(".service") else name
    if not _UNIT.match(base) or base.startswith("-") or base in (".", ".."):
        raise BadInput(f"--service {name!r} is not a name systemd accepts",
                       "use letters, digits and :_.- only, e.g. --service fwtool-kws")
    return base + ".service"


def remote_path(deploy_dir: str, name: str) -> str:
    """``deploy_dir/name`` (relative to the login's home); BadInput for anything that leaves ``deploy_dir``."""
    base = PurePosixPath(deploy_dir)
    rel = PurePosixPath(name)
    if base.is_absolute() or ".." in base.parts or rel.is_absolute() or ".." in rel.parts or not rel.parts \
            or not base.parts:
        raise BadInput(f"remote path {deploy_dir}/{name} is outside the deploy folder ~/{deploy_dir}",
                       "give a plain file name inside it (no '/', '..' or absolute paths)")
    return str(base / rel)


def unit_text(program: str, description: str) -> str:
    return (f"[Unit]\nDescription={description}\n\n[Service]\nExecStart=%h/{program}\nRestart=on-failure\n"
            f"RestartSec=2\n\n[Install]\nWantedBy=default.target\n")


def deploy(image: Path, host: SshHost, board, arch: str, service: str | None = None, name: str | None = None,
           log=lambda s: None) -> dict:
    """Copy ``image`` to ``~/<deploy_dir>/<name>`` on ``host`` after checking its ``uname -m`` is ``arch``;
    with ``service``, install and start a systemd user unit running it. Returns what was done."""
    deploy_dir = board.sdk.deploy_dir
    unit = check_unit_name(service) if service else None
    target = remote_path(deploy_dir, name or f"{board.name}.elf")
    data = Path(image).read_bytes()
    t0 = time.monotonic()
    machine = run_remote(host, "uname -m", log=log).strip()
    if machine != arch:
        raise BadInput(f"{host.spec} is {machine or 'unknown'}, not {arch}: the {board.name} program cannot run "
                       "there (nothing was copied)",
                       f"deploy a build for that machine (e.g. --board linux-host for an {machine} host)")
    sha = hashlib.sha256(data).hexdigest()
    q = shlex.quote
    tmp = f"{target}.tmp"
    script = (f"mkdir -p {q(deploy_dir)} && cat > {q(tmp)} && chmod 755 {q(tmp)} && "
              f"[ \"$(sha256sum {q(tmp)} | cut -d' ' -f1)\" = {sha} ] && mv -f {q(tmp)} {q(target)}")
    run_remote(host, script, data=data, timeout=300, log=log)
    out = {"method": "ssh", "host": host.spec, "remote_arch": machine, "remote_path": f"~/{target}",
           "bytes": len(data), "sha256": sha, "verified": True}
    if unit:
        text = unit_text(target, f"fwtool {board.name} program")
        unit_path = f".config/systemd/user/{unit}"
        run_remote(host, f"mkdir -p .config/systemd/user && cat > {q(unit_path)} && systemctl --user "
                         f"daemon-reload && systemctl --user enable --now {q(unit)}", data=text.encode(), log=log)
        out["service"] = unit
    out["seconds"] = round(time.monotonic() - t0, 2)
    return out


class SshStream:
    """A serial-port-like reader of a program's stdout over SSH (for fwtool's monitor: ``opener``). It runs the
    deployed program (or, with ``service``, follows its journal); the remote side ends with the connection
    (the program runs under ``read`` of the ssh channel's stdin: EOF there kills it)."""

    def __init__(self, host: SshHost, program: str, service: str | None = None, timeout: float = 0.05):
        check_ssh()
        self.host, self.timeout = host, timeout
        q = shlex.quote
        if service:
            remote = f"exec journalctl --user -f -o cat -u {q(check_unit_name(service))}"
        else:
            remote = f"{q(program)} & p=$!; cat >/dev/null; kill $p 2>/dev/null; wait $p 2>/dev/null"
        self.proc = runner.spawn(host.command(remote))
        self.is_open = True
        self._buf = bytearray()
        os.set_blocking(self.proc.stdout.fileno(), False)

    @property
    def in_waiting(self) -> int:
        return len(self._buf)

    def _fill(self, wait: float) -> None:
        r, _, _ = select.select([self.proc.stdout], [], [], wait)
        if not r:
            return
        chunk = self.proc.stdout.read(65536)
        if chunk:
            self._buf += chunk
        elif chunk == b"":  # EOF: the connection ended
            err = self.proc.stderr.read() or b""
            self.close()
            msg = err.decode(errors="replace").strip()
            if self.proc.returncode == 255 and msg:
                e = ssh_error(self.host, msg, 255)
                raise OSError(f"{e.cause}")
            raise OSError(f"the SSH connection to {self.host.spec} ended")

    def read(self, n: int = 1) -> bytes:
        if not self.is_open:
            raise OSError("closed")
        if not self._buf:
            self._fill(self.timeout)
        out, self._buf = bytes(self._buf[:n]), self._buf[n:]
        return out

    def write(self, data: bytes) -> int:
        return len(data)  # the program's stdin is not forwarded by the monitor

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: the remote wrapper kills the program
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                runner.kill_group(self.proc)
        self.is_open = False


def flash_over_ssh(image: Path, board_name: str, host: str, config: Path | None = None,
                   service: str | None = None, log=lambda s: None) -> dict:
    """``fwtool flash --host``: the linux board's program ``image`` to ``host`` (checked first: a static ELF for
    the board's architecture, the remote ``uname -m`` the same)."""
    board = get_board(board_name)
    if board.family != "linux":
        raise BadInput(f"--host deploys a Linux board's program; {board.name} is a {board.family} board",
                       "use --board rpi4 or --board linux-host (or drop --host to flash over USB)")
    arch = board_arch(board)
    if not Path(image).is_file():
        raise BadInput(f"no program {image}", f"build it first: fwtool build --board {board.name}")
    check_executable(Path(image).read_bytes(), arch, str(image))
    return deploy(Path(image), SshHost(host, config), board, arch, service=service, log=log)


def program_path(board_name: str, name: str | None = None) -> str:
    """The deployed program's path relative to the remote home (what ``flash --host`` wrote)."""
    board = get_board(board_name)
    return remote_path(board.sdk.deploy_dir, name or f"{board.name}.elf")
