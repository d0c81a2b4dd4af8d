"""The ``ssh`` runner: a linux-family board's static program copied over OpenSSH (fwtool/flash/ssh.py).

Capabilities: takes ``elf`` images only; no USB (``needs_usb`` False), no bootloader; "verified" means the remote
sha256 of the copy equals the image's before it is renamed into place; ``resets`` is False (a program, not a
chip: ``--service`` starts it under systemd). The device is the ``[user@]host[:port]`` (or ssh_config alias).
"""
from __future__ import annotations

from fwtool.core import runner
from fwtool.flash.base import Image, Runner
from fwtool.flash.request import WriteOptions, Written
from fwtool.flash.ssh import flash_over_ssh


class SshRunner(Runner):
    name = "ssh"
    label = "SSH"
    needs_usb = False
    image_kinds = frozenset({"elf"})

    def supports(self, board) -> tuple[bool, str]:
        if getattr(board, "family", None) != "linux":
            return False, "it deploys Linux programs (boards of the linux family)"
        return (True, "") if runner.which("ssh") else (False, "ssh (openssh-client) is not installed")

    def flash(self, image: Image, device, board, opts: WriteOptions) -> Written:
        """``device``: the SSH host. ``image.path``: the program file."""
        out = flash_over_ssh(image.path, board.name, str(device))
        n = int(out["bytes"])
        return Written(n, n, 0, None, None, verified=bool(out["verified"]), rebooted=False,
                       write_seconds=out.get("seconds"))
