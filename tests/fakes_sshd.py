"""A throw-away OpenSSH server on 127.0.0.1 for the linux family's deploy and monitor tests (Debian openssh-server;
a test instrument: its own config, host key, authorized_keys and a forced command that runs every session in a
temporary home with ``bin/`` first on its PATH, named through a throw-away ssh_config alias ``pitest`` with port,
key and known-hosts file).

``bin/`` is where a test puts stand-ins for what a Raspberry Pi has and this machine does not run: a ``systemctl``
/ ``loginctl`` that record their arguments, an ``arecord`` that answers like a 48 kHz-only USB microphone, a
``journalctl`` that follows a JSON-lines file, a ``df`` that reports a full card (:func:`fake_tool`). They model
only the command lines fwtool sends, and say so in their own text.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


class Sshd:
    def __init__(self, d: Path):
        self.d, self.port = d, _free_port()
        self.home = d / "home"
        self.home.mkdir()
        self.bin = d / "bin"
        self.bin.mkdir()
        keygen(d / "host_key")
        keygen(d / "client_key")
        d.joinpath("authorized_keys").write_text(
            f'command="cd {self.home} && HOME={self.home} PATH={self.bin}:$PATH exec sh -c \\"$SSH_ORIGINAL_COMMAND\\"" '
            + (d / "client_key.pub").read_text())
        d.joinpath("sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\nUsePAM no\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            # bash run by sshd reads ~/.bashrc unless SHLVL says it is not the first shell: keep this machine's own
            # shell start-up (pyenv's rehash lock, prompts) out of every test login
            "SetEnv SHLVL=1\n")
        pub = (d / "host_key.pub").read_text().split()
        d.joinpath("known_hosts").write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        self.config = d / "ssh_config"
        self.config.write_text(
            f"Host pitest\n  HostName 127.0.0.1\n  Port {self.port}\n  User {os.environ.get('USER', 'root')}\n"
            f"  IdentityFile {d / 'client_key'}\n  IdentitiesOnly yes\n  UserKnownHostsFile {d / 'known_hosts'}\n"
            "  IdentityAgent none\n")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.proc.terminate()
        raise RuntimeError(f"sshd did not start: {self.proc.communicate(timeout=5)[1].decode()[-300:]}")

    def args(self, *more) -> list[str]:
        """fwtool's options for this server (the alias and its config file)."""
        return ["--host", "pitest", "--ssh-config", str(self.config), *more]

    def fake_tool(self, name: str, python_body: str) -> Path:
        """``bin/NAME``: a Python stand-in (``python_body`` runs with ``argv`` = its arguments, ``STATE`` = the
        server folder for its records)."""
        path = self.bin / name
        path.write_text(f"#!{sys.executable}\n# test stand-in for {name}: models only the calls fwtool makes\n"
                        "import os, sys, json, time\nargv = sys.argv[1:]\n"
                        f"STATE = {str(self.d)!r}\n" + python_body)
        path.chmod(0o755)
        return path

    def leftovers(self) -> list[str]:
        ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
        return [ln for ln in ps[1:] if (str(self.home) in ln or str(self.d) in ln)
                and int(ln.split()[0]) != self.proc.pid]  # anything of the test but the listener itself

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def sshd_reason() -> str | None:
    if not os.path.exists(SSHD) or not shutil.which("ssh"):
        return "openssh-server/client not installed (apt-get install openssh-server openssh-client)"
    if os.geteuid() != 0:
        return "the throw-away sshd runs as root here (it logs in as the current user with a forced command)"
    return None


def start_sshd(d: Path) -> Sshd:
    reason = sshd_reason()
    if reason:
        pytest.skip(reason)
    if not os.path.isdir("/run/sshd"):  # sshd's privilege-separation folder (Debian's unit makes it at start)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return Sshd(d)
