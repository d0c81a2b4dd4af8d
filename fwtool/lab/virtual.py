"""A labgrid lab without hardware: coordinator + exporter on 127.0.0.1 and N virtual RP2040 boards.

Each virtual board is the emulator's TCP serial server (what ``fwtool emulate --serve`` runs: rp2040js, one client
at a time, a new client accepted after one leaves) on a fixed TCP port. The exporter declares it by hand as a
``NetworkSerialPort`` (host 127.0.0.1, that port, protocol raw): labgrid's exporter passes resources it has no
handler for straight through. Each board gets a place ``<name>-<i>`` tagged ``board=pico virtual=1 lab=<name>``.

"Flashing" a virtual board re-launches its emulator with the new image on the same TCP port: the flash driver
(``virtual: true``) runs ``fwtool lab reflash --port PORT IMAGE`` on the exporter, which hands the image to the
process that owns the boards (:meth:`VirtualLab.poll`, through a request file in the board's control folder) and
waits for the relaunch. A board started without ``--firmware`` listens nowhere until it is flashed.

Stopping: the exporter first (a coordinator that loses its exporter first waits ~5 s), then the coordinator, then
the emulators; nothing is left running. The coordinator keeps its state (places) in the lab's work folder, which
is removed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from fwtool.core import runner
from fwtool.core.errors import Exit, FwtoolError, MissingTool, NoDevice
from fwtool.core.files import atomic_write
from fwtool.emulator import Rp2040jsProcess
from fwtool.lab.places import Lab

WALL_LIMIT_S = 7 * 24 * 3600.0  # virtual boards run until the lab stops
REFLASH_WAIT_S = 60.0


def control_root() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"fwtool-vlab-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def control_dir(port: int) -> Path:
    return control_root() / f"port-{port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def labgrid_tool(name: str) -> str:
    """labgrid's console scripts: next to this Python first (a venv), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = runner.which(name)
    if not found:
        raise MissingTool(f"'{name}' was not found (labgrid is not installed)", "pip install 'fwtool[labgrid]'")
    return found


class Daemon:
    """A labgrid daemon in its own process group, its output drained into a log file."""

    def __init__(self, name: str, cmd: list[str], log: Path, cwd: Path):
        self.name, self.log = name, log
        self.proc = runner.spawn(cmd, cwd=cwd)
        self.proc.stdin.close()
        self._threads = [threading.Thread(target=self._drain, args=(s,), daemon=True)
                         for s in (self.proc.stdout, self.proc.stderr)]
        for t in self._threads:
            t.start()

    def _drain(self, stream) -> None:
        with open(self.log, "ab") as f:
            for chunk in iter(lambda: stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096), b""):
                f.write(chunk)
                f.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        try:
            return " / ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return ""

    def stop(self) -> None:
        runner.kill_group(self.proc, grace=5.0)
        for t in self._threads:
            t.join(2)


class VirtualLab:
    def __init__(self, count: int, *, name: str = "fwtool-virtual", firmware: Path | None = None,
                 coordinator_port: int = 0, workdir: Path | None = None, on_info=lambda s: None):
        if count < 1:
            raise FwtoolError("a virtual lab needs at least one board", "pass --virtual N with N >= 1", Exit.USAGE)
        # labgrid's daemons first: without them nothing is started (and no work folder made)
        self.tools = {t: labgrid_tool(t) for t in ("labgrid-coordinator", "labgrid-exporter")}
        self.count, self.name, self.firmware = count, name, firmware
        self.coordinator_port = coordinator_port or free_port()
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fwtool-lab-"))
        self.on_info = on_info
        self.ports = [free_port() for _ in range(count)]
        self.boards: dict[int, Rp2040jsProcess | None] = {p: None for p in self.ports}
        self.images: dict[int, str | None] = {p: None for p in self.ports}
        self.daemons: list[Daemon] = []
        self.places = [f"{name}-{i}" for i in range(count)]

    @property
    def coordinator(self) -> str:
        return f"127.0.0.1:{self.coordinator_port}"

    # ---- start ------------------------------------------------------------------------------------------------
    def exporter_config(self) -> str:
        out = []
        for i, port in enumerate(self.ports):
            out += [f"board-{i}:", "  NetworkSerialPort:", "    host: 127.0.0.1", f"    port: {port}",
                    "    protocol: raw", "    speed: 115200"]
        return "\n".join(out) + "\n"

    def start(self) -> "VirtualLab":
        try:
            for port in self.ports:
                d = control_dir(port)
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                if self.firmware is not None:
                    self._launch(port, Path(self.firmware))
            self.daemons.append(Daemon("coordinator", [self.tools["labgrid-coordinator"], "--listen",
                                                       self.coordinator], self.workdir / "coordinator.log",
                                       self.workdir))
            self._wait_listening(self.coordinator_port, self.daemons[0])
            cfg = self.workdir / "exporter.yaml"
            atomic_write(cfg, self.exporter_config())
            self.daemons.insert(0, Daemon("exporter", [self.tools["labgrid-exporter"], "--coordinator",
                                                       self.coordinator, "--name", self.name, str(cfg)],
                                          self.workdir / "exporter.log", self.workdir))
            self._make_places()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, port: int, daemon: Daemon, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not daemon.alive():
                raise FwtoolError(f"labgrid {daemon.name} exited: {daemon.tail()}", f"see {daemon.log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise FwtoolError(f"labgrid {daemon.name} did not listen on port {port} within {timeout:g} s",
                          f"see {daemon.log}", Exit.TIMEOUT)

    def _make_places(self, timeout: float = 20.0) -> None:
        with Lab(self.coordinator) as lab:
            deadline = time.monotonic() + timeout
            while True:  # the exporter's resources must be known before places can match them
                lab.sync()
                known = lab.session.resources.get(self.name, {})
                if len(known) >= self.count:
                    break
                exporter = self.daemons[0]
                if not exporter.alive() or time.monotonic() > deadline:
                    raise FwtoolError(f"the labgrid exporter did not register its {self.count} boards: "
                                      f"{exporter.tail()}", f"see {exporter.log}", Exit.TIMEOUT)
                time.sleep(0.2)
            for i, place in enumerate(self.places):
                lab.create_place(place, [f"{self.name}/board-{i}/NetworkSerialPort"],
                                 {"board": "pico", "virtual": "1", "lab": self.name})

    # ---- boards -----------------------------------------------------------------------------------------------
    def _launch(self, port: int, image: Path) -> None:
        old = self.boards.get(port)
        if old is not None:
            old.stop()
        board = Rp2040jsProcess(image, serial="tcp", start="on-connect", port=port, max_wall_s=WALL_LIMIT_S)
        self.boards[port] = board
        board.start()
        self.images[port] = str(image)

    def poll(self) -> None:
        """Serve reflash requests (from ``fwtool lab reflash``) and notice daemons that died."""
        for port in self.ports:
            for req in sorted(control_dir(port).glob("request-*.json")):
                self._serve_request(port, req)
        for d in self.daemons:
            if not d.alive():
                raise FwtoolError(f"labgrid {d.name} exited: {d.tail()}", f"see {d.log}")

    def _serve_request(self, port: int, req: Path) -> None:
        rid = req.stem.split("-", 1)[1]
        t0 = time.monotonic()
        try:
            data = json.loads(req.read_text())
            req.unlink()
            self.on_info(f"virtual board on port {port}: relaunching with {data['image']}")
            self._launch(port, Path(data["image"]))
            result = {"method": "virtual", "port": f"socket://127.0.0.1:{port}", "image": data["image"],
                      "seconds": round(time.monotonic() - t0, 3), "verified": False, "bytes_written": 0}
        except FwtoolError as e:
            result = e.to_dict()
        except (OSError, ValueError, KeyError) as e:
            result = {"error": f"bad reflash request: {e}", "fix": None, "exit_code": int(Exit.FAILED)}
        atomic_write(control_dir(port) / f"done-{rid}.json", json.dumps(result))

    def serve(self, duration: float | None = None) -> None:
        """Serve reflash requests until ``duration`` seconds have passed (None: until Ctrl-C / SIGTERM)."""
        t0 = time.monotonic()
        while duration is None or time.monotonic() - t0 < duration:
            self.poll()
            time.sleep(0.1)

    # ---- stop -------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Exporter, then coordinator, then the emulators; idempotent, also after a failed start."""
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if threading.current_thread() is threading.main_thread() \
            else None
        try:
            for d in self.daemons:  # exporter first (it was inserted at the front)
                d.stop()
            self.daemons = []
            for port, board in self.boards.items():
                if board is not None:
                    board.stop()
                self.boards[port] = None
                shutil.rmtree(control_dir(port), ignore_errors=True)
            if self.own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)

    def __enter__(self) -> "VirtualLab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def reflash(port: int, image: Path, wait_s: float = REFLASH_WAIT_S) -> dict:
    """Ask the virtual lab that owns the board on ``port`` to relaunch it with ``image`` (runs on the exporter)."""
    d = control_dir(port)
    if not d.is_dir():
        raise NoDevice(f"no virtual board on port {port} (no {d})", "start the lab: fwtool lab --virtual N")
    image = Path(image).resolve()
    if not image.is_file():
        raise FwtoolError(f"image {image} not found", "pass the .uf2/.elf to flash", Exit.BAD_INPUT)
    rid = uuid.uuid4().hex[:12]
    copy = d / f"image-{rid}{image.suffix}"
    shutil.copyfile(image, copy)  # the board keeps its own copy: the synced file may be replaced later
    atomic_write(d / f"request-{rid}.json", json.dumps({"image": str(copy)}))
    done = d / f"done-{rid}.json"
    deadline = time.monotonic() + wait_s
    while not done.is_file():
        if time.monotonic() > deadline:
            raise FwtoolError(f"the virtual lab did not relaunch the board on port {port} within {wait_s:g} s",
                              "is 'fwtool lab --virtual' still running?", Exit.TIMEOUT)
        time.sleep(0.05)
    result = json.loads(done.read_text())
    done.unlink()
    if "error" in result:
        raise FwtoolError(result["error"], result.get("fix"), Exit(result.get("exit_code", 1)))
    return result
