"""What ``fwtool flash --host`` checks on the remote before it changes anything there, in ONE read-only SSH call
(:func:`probe`): its ``uname -m``, the free space where the program goes (``df -Pk``), for an audio app the ALSA
capture device (``arecord -l``; ``arecord --dump-hw-params -D DEV`` for the rates it takes; ``/proc/asound`` when
the ALSA tools are missing) and, with ``--service``, whether a systemd user manager answers. :func:`check` turns
the facts into one refusal (a FwtoolError: cause + fix) or the notes to print.

The capture device: ``--capture-device``, else the board file's ``[sdk] capture_device``, else the first one
``arecord -l`` lists, as ``plughw:CARD,DEV`` (ALSA's plug layer resamples a device that cannot capture 16 kHz
itself, e.g. a 48 kHz-only USB microphone). A ``hw:`` device is taken only if its own rates include 16000.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from fwtool.core.errors import BadInput, MissingTool, NoDevice

RATE = 16000
SPACE_MARGIN = 1024 * 1024  # the unit file, the filesystem's own overhead: never fill the card to the last byte
_DEVICE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9:_=,.\-]{0,120}$")  # ALSA PCM names fwtool passes (no shell, no space)
_CARD = re.compile(r"^card (\d+): (\S+) \[.*\], device (\d+): ")
_WHERE = re.compile(r"^\w+:\d+:\s*")  # aplay.c's error(): "<function>:<line>: "
_INTERVAL = re.compile(r"^[\[(]\s*(\d+)\s+(\d+)\s*[\])]$")


def check_device_name(name: str) -> str:
    """An ALSA PCM name (``plughw:1,0``, ``plughw:CARD=Mic,DEV=0``, ``default``); BadInput for anything else."""
    if not _DEVICE.match(name or ""):
        raise BadInput(f"--capture-device {name!r} is not an ALSA device name",
                       "give one like plughw:1,0 or plughw:CARD=Device,DEV=0 (see 'arecord -l' on the board)")
    return name


@dataclass
class Facts:
    """What the probe saw (each a raw value; ``None`` when not asked or not printed)."""

    arch: str = ""
    free_kb: int | None = None
    space_dir: str = ""
    alsa: bool | None = None  # arecord found (None: not an audio deploy)
    cards: list[tuple[str, str, str]] = field(default_factory=list)  # (card, id, device) from arecord -l
    rates: dict[str, str] = field(default_factory=dict)  # device -> its RATE line ("[8000 48000]", "48000")
    errors: dict[str, list[str]] = field(default_factory=dict)  # device -> arecord's error lines (no prefix)
    proc_capture: list[str] = field(default_factory=list)  # /proc/asound/cardN/pcmMc
    systemd: str | None = None  # "yes" / the failure (None: not asked)
    unit_active: bool = False


def script(deploy_dir: str, devices: list[str], audio: bool, unit: str | None) -> str:
    """The probe: a POSIX sh script that only reads (and records 1 s of audio into /dev/null)."""
    q = shlex.quote
    lines = ['echo "arch=$(uname -m)"',
             f"p={q(deploy_dir)}; while [ ! -d \"$p\" ]; do p=$(dirname \"$p\"); done; echo \"dir=$p\"",
             'echo "free_kb=$(df -Pk "$p" | awk \'NR==2{print $4}\')"']
    if audio:
        lines.append("if command -v arecord >/dev/null 2>&1; then echo alsa=yes; arecord -l 2>&1 | "
                     "sed -n 's/^card /card=card /p'")
        # pick the first listed capture device when none is named (the same rule as pick_device below)
        lines.append("  first=$(arecord -l 2>/dev/null | sed -n 's/^card \\([0-9]*\\): .*, device \\([0-9]*\\):.*/"
                     "plughw:\\1,\\2/p' | head -n 1)")
        for dev in devices or ["$first"]:
            d = q(dev) if dev != "$first" else '"$first"'
            lines.append(f"  [ -n {d} ] && timeout 8 arecord -D {d} --dump-hw-params -f S16_LE -c 1 -r {RATE} -d 1 "
                         f"-t raw /dev/null 2>&1 | sed -n \"s|^RATE: *|rate=\"{d}\" |p; s|^arecord: |err=\"{d}\" |p\"")
        lines.append("else echo alsa=no; fi")
        lines.append("for f in /proc/asound/card*/pcm*c; do [ -e \"$f\" ] && echo \"proc=$f\"; done")
    if unit:
        lines.append("if ! command -v systemctl >/dev/null 2>&1; then echo 'systemd=no systemctl'; "
                     "elif e=$(systemctl --user show-environment 2>&1 >/dev/null); then echo systemd=yes; "
                     "else echo \"systemd=$e\" | head -n 1; fi")
        lines.append(f"systemctl --user is-active --quiet {q(unit)} 2>/dev/null && echo unit_active=yes")
    return "\n".join(lines) + "\ntrue\n"


def parse(out: str) -> Facts:
    f = Facts()
    for ln in out.splitlines():
        key, _, value = ln.partition("=")
        if key == "arch":
            f.arch = value.strip()
        elif key == "dir":
            f.space_dir = value
        elif key == "free_kb":
            f.free_kb = int(value) if value.strip().isdigit() else None
        elif key == "alsa":
            f.alsa = value == "yes"
        elif key == "card":
            m = _CARD.match(value)
            if m:
                f.cards.append((m.group(1), m.group(2), m.group(3)))
        elif key == "rate":
            dev, _, text = value.partition(" ")
            f.rates.setdefault(dev, text.strip())
        elif key == "err":  # "arecord: main:831: audio open error: ..." without "arecord: main:831: "
            dev, _, text = value.partition(" ")
            f.errors.setdefault(dev, []).append(_WHERE.sub("", text.strip()))
        elif key == "proc":
            f.proc_capture.append(value)
        elif key == "systemd":
            f.systemd = value.strip()
        elif key == "unit_active":
            f.unit_active = True
    return f


def takes_rate(rate_line: str, rate: int = RATE) -> bool:
    """Whether an ALSA RATE dump (``48000``, ``[8000 48000]``, ``(44099 44101]``) includes ``rate``."""
    text = rate_line.strip()
    if text.isdigit():
        return int(text) == rate
    m = _INTERVAL.match(text)
    return bool(m) and int(m.group(1)) <= rate <= int(m.group(2))


def pick_device(facts: Facts, named: str | None) -> str | None:
    if named:
        return named
    return f"plughw:{facts.cards[0][0]},{facts.cards[0][2]}" if facts.cards else None


def check(facts: Facts, *, host: str, arch: str, board: str, size: int, deploy_dir: str, audio: bool,
          device: str | None, unit: str | None) -> dict:
    """Refuse (raise) on the first failed check; else {capture_device, notes}."""
    if facts.arch != arch:
        raise BadInput(f"{host} is {facts.arch or 'unknown'}, not {arch}: the {board} program cannot run there "
                       "(nothing was copied)",
                       f"deploy a build for that machine (e.g. --board linux-host for an {facts.arch} host)")
    if facts.free_kb is not None and facts.free_kb * 1024 < size + SPACE_MARGIN:
        raise BadInput(f"no space on {host}: {facts.free_kb * 1024:,} B free in {facts.space_dir or '~'} for the "
                       f"{size:,} B program (+1 MiB margin); nothing was copied",
                       f"free space on the board (df -h ~/{deploy_dir}), or build a smaller program")
    notes: list[str] = []
    chosen = None
    if audio:
        chosen = _check_capture(facts, host, device, unit, notes)
    if unit and facts.systemd != "yes":
        raise MissingTool(f"{host} has no systemd user manager for --service ({facts.systemd or 'no answer'}); "
                          "nothing was copied",
                          "log in through a PAM session that starts 'systemd --user' (Raspberry Pi OS does), "
                          "or drop --service and start the program yourself")
    return {"capture_device": chosen, "notes": notes}


def _check_capture(facts: Facts, host: str, named: str | None, unit: str | None, notes: list[str]) -> str:
    if not facts.alsa:
        seen = (f"/proc/asound lists {len(facts.proc_capture)} capture PCM(s)" if facts.proc_capture
                else "/proc/asound lists no capture PCM either")
        raise MissingTool(f"no ALSA tools on {host}: 'arecord' was not found ({seen}); the audio app reads "
                          "arecord's 16 kHz stream; nothing was copied",
                          "install them on the board: sudo apt-get install alsa-utils")
    dev = pick_device(facts, named)
    if dev is None:
        raise NoDevice(f"no capture device on {host} ('arecord -l' lists none); nothing was copied",
                       "plug a USB microphone (or a mic HAT) into the board, then check 'arecord -l' there")
    errs = facts.errors.get(dev, [])
    fatal = [e for e in errs if not e.startswith("Warning")]
    rate = facts.rates.get(dev)
    if any("busy" in e.lower() for e in fatal) and unit and facts.unit_active:
        notes.append(f"capture {dev}: in use by the running {unit} (not re-checked)")
        return dev
    if rate is None or fatal:
        listed = ", ".join(f"plughw:{c},{d} ({name})" for c, name, d in facts.cards) or "none"
        what = "cannot be opened" if rate is None else "cannot capture S16_LE mono at 16 kHz"
        raise NoDevice(f"capture device {dev} on {host} {what}: {(fatal or ['no answer from arecord'])[0]}; "
                       "nothing was copied",
                       f"name one that 'arecord -l' lists with --capture-device, as plughw:CARD,DEV (listed: "
                       f"{listed})")
    if not takes_rate(rate) or any("rate is not accurate" in e for e in errs):
        raise BadInput(f"capture device {dev} on {host} cannot capture at {RATE} Hz (its rates: {rate}); nothing "
                       "was copied",
                       f"use ALSA's resampling plug layer: --capture-device plug{dev}" if dev.startswith("hw:")
                       else "use a plughw: device (ALSA resamples), e.g. --capture-device plughw:1,0")
    notes.append(f"capture {dev}: takes {RATE} Hz" + (" (ALSA's plug layer resamples)" if dev.startswith("plug")
                                                         else ""))
    return dev
