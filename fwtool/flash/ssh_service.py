"""``fwtool flash --host … --service NAME``: a systemd **user** unit on the board that runs the deployed program
at boot (``~/.config/systemd/user/NAME.service``, ``WantedBy=default.target``, ``Restart=always``: an audio
app ends when arecord's stream does, e.g. a USB microphone unplugged, and starts again 2 s later), and
``--service remove`` to take fwtool's units for that program away again.

An audio app's unit runs it behind ALSA's recorder, so ALSA resamples a device that cannot capture 16 kHz:
``arecord -q -D plughw:… -f S16_LE -r 16000 -c 1 -t raw | program`` (through ``/bin/sh -c``: a unit's ExecStart
has no pipes). The same command line is what ``monitor --host`` runs for an audio app (:func:`program_command`).

A user unit starts at boot only when the user "lingers" (``loginctl enable-linger USER``): the install says so
when ``loginctl show-user`` reports ``Linger=no``. Every unit fwtool writes carries ``X-Fwtool-Program=`` (systemd
ignores ``X-`` keys) so ``remove`` finds fwtool's own units and never another one.
"""
from __future__ import annotations

import re
import shlex

from fwtool.core.errors import BadInput

UNIT_DIR = ".config/systemd/user"  # relative to the login's home, as systemd --user reads it
REMOVE = "remove"
_UNIT = re.compile(r"^[A-Za-z0-9:_.\-]{1,200}$")  # systemd.unit(5): ASCII letters, digits, ':', '-', '_', '.'
MARK = "X-Fwtool-Program"


def check_unit_name(name: str) -> str:
    """A systemd user unit name fwtool may write (``NAME`` or ``NAME.service``); BadInput otherwise."""
    base = name[:-len(".service")] if name.endswith(".service") else name
    if not _UNIT.match(base) or base.startswith(("-", ".")) or base == REMOVE:
        raise BadInput(f"--service {name!r} is not a unit name fwtool installs (systemd accepts letters, digits "
                       "and : _ . - only; 'remove' removes)",
                       "use e.g. --service fwtool-kws (or --service remove to take fwtool's units away)")
    return base + ".service"


def arecord_command(device: str) -> str:
    """ALSA's recorder as the audio apps read it: raw S16LE, 16 kHz, mono, on stdout."""
    return f"arecord -q -D {shlex.quote(device)} -f S16_LE -r 16000 -c 1 -t raw"


def program_command(program: str, capture: str | None) -> str:
    """The shell command line that runs ``program`` (a path the shell resolves), behind arecord for audio."""
    return f"{arecord_command(capture)} | exec {program}" if capture else f"exec {program}"


def unit_text(program: str, description: str, capture: str | None) -> str:
    """The unit file: ``program`` is relative to the home (``%h``)."""
    if capture:
        exec_start = f"/bin/sh -c '{program_command('%h/' + program, capture)}'"
    else:
        exec_start = f"%h/{program}"
    return (f"[Unit]\nDescription={description}\n{MARK}={program}\n\n"
            f"[Service]\nExecStart={exec_start}\nRestart=always\nRestartSec=2\n\n"
            f"[Install]\nWantedBy=default.target\n")


def install_script(unit: str, program: str) -> str:
    """Write the unit (its text on stdin) atomically, reload, enable it and (re)start it on the new program;
    then print the linger state (``Linger=yes|no``) for the at-boot hint."""
    q = shlex.quote
    path = f"{UNIT_DIR}/{unit}"
    return (f"mkdir -p {UNIT_DIR} && cat > {q(path + '.tmp')} && mv -f {q(path + '.tmp')} {q(path)} && "
            f"systemctl --user daemon-reload && systemctl --user enable {q(unit)} && "
            f"systemctl --user restart {q(unit)} && "
            "(loginctl show-user \"$(id -un)\" -p Linger 2>/dev/null || echo Linger=unknown)")


def remove_script(program: str) -> str:
    """Stop, disable and delete every unit fwtool wrote for ``program``; prints each unit's name."""
    q = shlex.quote
    return (f"found=''; for f in {UNIT_DIR}/*.service; do [ -f \"$f\" ] || continue; "
            f"grep -qxF {q(f'{MARK}={program}')} \"$f\" || continue; u=$(basename \"$f\"); "
            "systemctl --user disable --now \"$u\" >/dev/null 2>&1; rm -f \"$f\"; echo \"removed=$u\"; found=1; done; "
            "[ -z \"$found\" ] || systemctl --user daemon-reload")


def linger_hint(output: str, user_host: str) -> str | None:
    """The at-boot hint when the user does not linger (None when it does)."""
    if "Linger=yes" in output:
        return None
    return ("the unit starts at boot only if your user lingers: run 'sudo loginctl enable-linger $USER' on "
            f"{user_host} (once)")
