"""Doubles for PSoC 6 kits at fwtool's boundary (tests only; product code never imports this).

* ``FakeKit``: one kit's KitProg3 - a composite USB device (CMSIS-DAP + CDC-ACM USB-UART, one VID:PID, one
  serial number = the probe UID) - and the PSoC 6 flash behind it (a file, so the fake tools can write it).
* ``ProbeBackend``: what fwtool.devices.usb.SystemBackend is on a real machine (USB list, serial ports, clock).
* ``fake_tools``: ``pyocd``, ``openocd`` and ``make`` executables on PATH (and a ModusToolbox tools folder) that
  parse the command lines fwtool gives them and print the real tools' messages (pyOCD 0.46: core/helpers.py,
  board/board.py, probe/pydapaccess; OpenOCD 0.12: cmsis_dap.c and the 'program' proc). Each call is logged.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

from fwtool.devices import usb as usbdevices
from fwtool.flash import probe as probe_helpers

FLASH_BASE = 0x10000000
KITPROG3_BULK = (0x04B4, 0xF155)

# The fake tools share this code: a kit registry (JSON), an Intel HEX reader, the flash file.
COMMON = r'''
import json, os, sys
STATE = os.environ["FWTOOL_FAKE_KITS"]
def state():
    with open(STATE) as f:
        return json.load(f)
def log(tool, argv):
    with open(state()["log"], "a") as f:
        f.write(json.dumps([tool] + argv) + "\n")
def read_hex(path):
    segs, upper = [], 0
    for line in open(path):
        line = line.strip()
        if not line.startswith(":"):
            continue
        b = bytes.fromhex(line[1:])
        n, addr, typ = b[0], (b[1] << 8) | b[2], b[3]
        assert sum(b) & 0xFF == 0, "bad checksum"
        data = b[4:4 + n]
        if typ == 0:
            segs.append((upper + addr, data))
        elif typ == 4:
            upper = int.from_bytes(data, "big") << 16
        elif typ == 2:
            upper = int.from_bytes(data, "big") << 4
        elif typ == 1:
            break
    return segs
def write_flash(kit, segs):
    with open(kit["flash"], "r+b") as f:
        for addr, data in segs:
            f.seek(addr - kit["base"])
            f.write(data)
        if kit.get("corrupt_at") is not None:
            f.seek(kit["corrupt_at"] - kit["base"])
            old = f.read(1)
            f.seek(kit["corrupt_at"] - kit["base"])
            f.write(bytes([old[0] ^ 0x5A]))
def read_flash(kit, addr, n):
    with open(kit["flash"], "rb") as f:
        f.seek(addr - kit["base"])
        return f.read(n)
def set_kit(uid, **kw):
    s = state()
    for k in s["kits"]:
        if k["uid"] == uid:
            k.update(kw)
    with open(STATE, "w") as f:
        json.dump(s, f)
'''

PYOCD = COMMON + r'''
argv = sys.argv[1:]
log("pyocd", argv)
if argv and argv[0] == "--version":
    print("0.46.0"); sys.exit(0)
sub, args = argv[0], argv[1:]
opts, cmds, files = {}, [], []
i = 0
while i < len(args):
    a = args[i]
    if a in ("-t", "-u", "--format", "-e"):
        opts[a] = args[i + 1]; i += 2; continue
    if a == "-c":
        cmds.append(args[i + 1]); i += 2; continue
    if a.startswith("-"):
        opts[a] = True; i += 1; continue
    files.append(a); i += 1
if "-W" not in opts:
    print("Waiting for a debug probe to be connected...")
    sys.exit(99)  # the real pyOCD would wait forever
uid = opts.get("-u")
kits = [k for k in state()["kits"] if k["mode"] == "cmsis-dap"]
match = [k for k in kits if uid is None or uid.lower() in k["uid"].lower()]
def no_target(code):
    where = "load_cmd" if sub == "flash" else "commander"
    print("0000624 E No target device available [%s]" % where, file=sys.stderr)
    sys.exit(code)
if not match:
    print("No connected debug probes" if uid is None else "No connected debug probe matches unique ID '%s'" % uid)
    no_target(1 if sub == "flash" else 3)
if len(match) > 1:
    print("More than one debug probe matches unique ID '%s':" % uid)
    no_target(1)
kit = match[0]
if opts.get("-t") not in ("cy8c6xxa", "cy8c6xx7", "cy8c6xx5"):
    print("0000300 C Target type %s not recognized. Use 'pyocd list --targets' to see currently available target "
          "types. See <https://pyocd.io/docs/target_support.html> for how to install additional target support. "
          "[__main__]" % opts.get("-t"), file=sys.stderr)
    sys.exit(1)
if kit.get("fault") == "noack":
    print("0000850 C SWD/JTAG communication failure (No ACK) [__main__]", file=sys.stderr)
    sys.exit(1)
if sub == "flash":
    assert opts.get("--format") == "hex" and len(files) == 1, (opts, files)
    write_flash(kit, read_hex(files[0]))
    set_kit(kit["uid"], running="--no-reset" not in opts, flashes=kit.get("flashes", 0) + 1)
    sys.exit(0)
if sub in ("cmd", "commander"):
    for c in cmds:
        words = c.split()
        if words[0] == "savemem":
            addr, n, path = int(words[1], 0), int(words[2], 0), words[3]
            with open(path, "wb") as f:
                f.write(read_flash(kit, addr, n))
    sys.exit(0)
sys.exit(2)
'''

OPENOCD = COMMON + r'''
argv = sys.argv[1:]
log("openocd", argv)
script = " ; ".join(argv[i + 1] for i, a in enumerate(argv) if a == "-c")
words = [w.strip() for w in script.replace(";", "\n").splitlines() if w.strip()]
print("Open On-Chip Debugger 0.12.0", file=sys.stderr)
serial = next((w.split()[2] for w in words if w.startswith("adapter serial")), None)
kits = [k for k in state()["kits"] if k["mode"] == "cmsis-dap" and (serial is None or k["uid"] == serial)]
if not kits:
    print("Error: unable to find a matching CMSIS-DAP device", file=sys.stderr)
    print("** OpenOCD init failed **", file=sys.stderr)
    print("shutdown command invoked", file=sys.stderr)
    sys.exit(1)
kit = kits[0]
prog = next(w for w in words if w.startswith("program "))
parts = prog.split()
write_flash(kit, read_hex(parts[1]))
print("** Programming Started **", file=sys.stderr)
print("** Programming Finished **", file=sys.stderr)
if "verify" in parts:
    print("** Verify Started **", file=sys.stderr)
    for addr, data in read_hex(parts[1]):
        if read_flash(kit, addr, len(data)) != data:
            print("Error: checksum mismatch - attempting binary compare", file=sys.stderr)
            print("** Verify Failed **", file=sys.stderr)
            print("shutdown command invoked", file=sys.stderr)
            sys.exit(1)
    print("** Verified OK **", file=sys.stderr)
if "reset" in parts:
    print("** Resetting Target **", file=sys.stderr)
set_kit(kit["uid"], running="reset" in parts, flashes=kit.get("flashes", 0) + 1)
print("shutdown command invoked", file=sys.stderr)
sys.exit(0)
'''

# ModusToolbox's 'make qprogram': runs the tools folder's OpenOCD with the recipe's command line on the build hex.
MAKE = COMMON + r'''
import glob, subprocess
argv = sys.argv[1:]
log("make", argv)
proj = argv[argv.index("-C") + 1]
var = dict(a.split("=", 1) for a in argv if "=" in a)
hexes = sorted(glob.glob(os.path.join(proj, "build", "**", "*.hex"), recursive=True))
tools = var["CY_TOOLS_PATHS"]
cmd = [os.path.join(tools, "openocd", "bin", "openocd"), "-s", os.path.join(tools, "openocd", "scripts"), "-c",
       "source [find interface/kitprog3.cfg]; adapter serial %s; transport select swd; source [find "
       "target/infineon/cy8cxxa.cfg]; psoc6 allow_efuse_program off; psoc6 sflash_restrictions 1; program %s "
       "verify reset exit;" % (var.get("MTB_PROBE_SERIAL", ""), hexes[-1])]
sys.exit(subprocess.call(cmd))
'''


class FakeKit:
    """One PSoC 6 kit on USB: its KitProg3 (mode "cmsis-dap" with ``pid``, or a wrong-mode ``pid``) + flash."""

    def __init__(self, uid="0B1C0D5E01234567", pid=0xF155, location=(1, (4,)), usb_access=True, has_port=True,
                 flash_bytes=0x200000, **faults):
        self.uid, self.pid, self.bus, self.port_numbers = uid, pid, location[0], location[1]
        self.usb_access, self.has_port, self.flash_bytes, self.faults = usb_access, has_port, flash_bytes, faults
        self.flash_path: Path | None = None
        self.ports = 2 if pid == 0xF166 else 1

    @property
    def location(self) -> str:
        return f"{self.bus}-{'.'.join(map(str, self.port_numbers))}"

    @property
    def mode(self) -> str:
        return "cmsis-dap" if self.pid in (0xF155, 0xF154, 0xF166, 0xF151, 0xF152) else "other"

    @property
    def flash(self) -> bytes:
        return self.flash_path.read_bytes()

    def usb_device(self):
        kit = self

        class Dev(SimpleNamespace):
            @property
            def serial_number(self):
                if not kit.usb_access:
                    raise ValueError("The device has no langid (permission issue, no string descriptors supported "
                                     "or device error)")
                return kit.uid
        return Dev(idVendor=0x04B4, idProduct=self.pid, bus=self.bus, port_numbers=self.port_numbers, kit=self)


class ProbeBackend:
    """The OS as fwtool.devices.usb sees it, with only PSoC 6 kits (and fake time) on it."""

    def __init__(self, *kits, no_usb=False):
        self.kits, self.no_usb, self.now, self.opened = list(kits), no_usb, 1000.0, []

    def usb_devices(self):
        if self.no_usb:
            from fwtool.core.errors import NoUsbBackend
            raise NoUsbBackend("pyusb found no libusb backend", "sudo apt-get install libusb-1.0-0")
        return [k.usb_device() for k in self.kits]

    def serial_ports(self):
        out, n = [], 0
        for k in self.kits:
            if k.mode != "cmsis-dap" or not k.has_port:
                continue
            for itf in range(k.ports):
                out.append(SimpleNamespace(device=f"/dev/ttyACM{n}", vid=0x04B4, pid=k.pid, serial_number=k.uid,
                                           location=f"{k.location}:1.{2 + 2 * itf}",
                                           description="KitProg3 USB-UART"))
                n += 1
        return out

    def mounts(self):
        return [("/dev/sda1", "/", "ext4")]

    def block_location(self, device):
        return None

    def sleep(self, seconds):
        self.now += seconds

    def monotonic(self):
        return self.now


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class Tools:
    """The fake tools' state: the kits' flash files, the call log."""

    def __init__(self, root: Path, kits, base=FLASH_BASE):
        self.root, self.kits, self.base = root, list(kits), base
        self.state = root / "kits.json"
        self.logfile = root / "calls.jsonl"
        self.logfile.write_text("")
        for i, k in enumerate(self.kits):
            k.flash_path = root / f"flash{i}.bin"
            k.flash_path.write_bytes(b"\x00" * k.flash_bytes)
        self.save()

    def save(self) -> None:
        self.state.write_text(json.dumps({"log": str(self.logfile), "kits": [
            {"uid": k.uid, "mode": k.mode, "flash": str(k.flash_path), "base": self.base,
             "corrupt_at": k.faults.get("corrupt_at"), "fault": k.faults.get("fault")} for k in self.kits]}))

    def calls(self, tool: str | None = None) -> list[list[str]]:
        rows = [json.loads(ln) for ln in self.logfile.read_text().splitlines() if ln.strip()]
        return [r[1:] for r in rows if tool is None or r[0] == tool]

    def kit_state(self, uid: str) -> dict:
        return next(k for k in json.loads(self.state.read_text())["kits"] if k["uid"] == uid)


def fake_tools(monkeypatch, tmp_path: Path, kits, pyocd=True, openocd=None, mtb=False, base=FLASH_BASE) -> Tools:
    """Put fake tools first on PATH (``openocd``: None, "infineon" in a ModusToolbox tools folder, or "debian" on
    PATH), keep the real ones out of reach, and return the state."""
    root = tmp_path / "fake-tools"
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    tools = Tools(root, kits, base)
    if pyocd:
        _script(bindir / "pyocd", PYOCD)
    if openocd == "debian":
        _script(bindir / "openocd", OPENOCD)
        scripts = root / "share" / "openocd" / "scripts"
        for cfg in ("interface/cmsis-dap.cfg", "target/psoc6.cfg"):
            (scripts / cfg).parent.mkdir(parents=True, exist_ok=True)
            (scripts / cfg).write_text("# fake\n")
    mtb_tools = root / "ModusToolbox" / "tools_3.6"
    if openocd == "infineon" or mtb:
        _script(_mk(mtb_tools / "openocd" / "bin" / "openocd"), OPENOCD)
        for cfg in ("interface/kitprog3.cfg", "target/infineon/cy8cxxa.cfg", "target/psoc6.cfg"):
            _mk(mtb_tools / "openocd" / "scripts" / cfg).write_text("# fake\n")
        monkeypatch.setenv("CY_TOOLS_PATHS", str(mtb_tools))
    else:
        monkeypatch.delenv("CY_TOOLS_PATHS", raising=False)
    if mtb:
        _mk(mtb_tools / "make" / "start.mk").write_text("# fake\n")
        _script(bindir / "make", MAKE)
    # PATH: the fakes, plus only what the fakes' shebang needs (no real pyocd/openocd/make)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("FWTOOL_FAKE_KITS", str(tools.state))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(probe_helpers, "tool_dirs", lambda: [])
    return tools


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def install(monkeypatch, *kits, **kw) -> ProbeBackend:
    """Route the device layer's OS backend through a ProbeBackend for a test."""
    be = ProbeBackend(*kits, **kw)
    monkeypatch.setattr(usbdevices, "_backend", be)
    return be


def write_hex(path: Path, segments) -> Path:
    from fwtool.image import ihex

    path.write_text(ihex.write(segments))
    return path


def env_has_real(tool: str) -> bool:
    return any((Path(d) / tool).is_file() for d in os.environ.get("PATH", "").split(os.pathsep))
