"""The serial layer (issue 21): every port is opened by fwtool/devices/serial.py, read by the one read loop
(fwtool/core/lines.py), and found by one "which board" rule (fwtool/devices/ports.resolve_port)."""
from __future__ import annotations

import ast
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fwtool
from fwtool.commands import audio_stream
from fwtool.commands import record as record_cmd
from fwtool.core import lines as lines_mod
from fwtool.devices import ports
from fwtool.devices import serial as serial_layer
from test_ports_rfc2217 import Server, Ser2netLikeManager

PKG = Path(fwtool.__file__).parent
OPENERS = {"Serial", "serial_for_url"}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        yield path.relative_to(PKG).as_posix(), ast.parse(path.read_text())


def test_only_the_serial_layer_opens_a_port():
    """No module but devices/serial.py calls serial.Serial(...) / serial.serial_for_url(...) or imports them."""
    offenders = []
    for rel, tree in _modules():
        if rel == "devices/serial.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
                if name in OPENERS:
                    offenders.append(f"{rel}:{node.lineno} calls {name}()")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "serial":
                offenders += [f"{rel}:{node.lineno} imports {a.name}" for a in node.names if a.name in OPENERS]
    assert not offenders, "open ports through fwtool.devices.serial: " + "; ".join(offenders)


def test_only_the_one_read_loop_asks_a_port_what_is_waiting():
    """Reading a port (``in_waiting``) happens in core/lines.py's read loop only: no hand-written loops."""
    offenders = [f"{rel}:{node.lineno}" for rel, tree in _modules() if rel != "core/lines.py"
                 for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "in_waiting"]
    assert not offenders, "read ports through fwtool.core.lines (PortLines / read_available): " + "; ".join(offenders)


class _Spy:
    """Records the URL the serial layer hands to pyserial."""

    def __init__(self, monkeypatch):
        self.urls = []
        real = serial_layer.serial.serial_for_url

        def spy(url, *a, **kw):
            if not url.startswith("loop://"):  # the test server's own 'board' is a loop:// port
                self.urls.append(url)
            return real(url, *a, **kw)

        monkeypatch.setattr(serial_layer.serial, "serial_for_url", spy)


@pytest.fixture
def ser2net():
    s = Server(Ser2netLikeManager, banner=b"FWT:BOOT app=recorder\r\n")
    yield s
    s.close()


def test_record_opens_an_rfc2217_port_with_ign_set_control(monkeypatch, ser2net):
    spy = _Spy(monkeypatch)
    t0 = time.monotonic()
    port = record_cmd.open_port(ser2net.url + "?timeout=1")  # without the fix this waits 1 s and fails
    try:
        assert time.monotonic() - t0 < 1.0 and port.is_open and port.dtr
        assert spy.urls == [ser2net.url + "?timeout=1&ign_set_control"]
        got = bytearray()
        deadline = time.monotonic() + 3
        while b"FWT:BOOT" not in got and time.monotonic() < deadline:
            got += lines_mod.read_available(port)
        assert b"FWT:BOOT app=recorder" in got  # the first bytes after DTR are kept
    finally:
        port.close()


def test_run_audio_opens_an_rfc2217_port_with_ign_set_control(monkeypatch, ser2net, tmp_path):
    spy = _Spy(monkeypatch)
    seen = {}

    class Stop(Exception):
        pass

    def capture(link, pcm, fe, **kw):
        seen.update(open=link.is_open, dtr=link.dtr)
        raise Stop

    monkeypatch.setattr(audio_stream.wav, "read_wav", lambda p: np.zeros(160, np.int16))
    monkeypatch.setattr(audio_stream, "front_end_of_build", lambda report: SimpleNamespace())
    monkeypatch.setattr(audio_stream.capture_mod, "capture", capture)
    with pytest.raises(Stop):
        audio_stream.board_audio(ser2net.url + "?timeout=1", None, tmp_path / "clip.wav", as_json=True)
    assert seen == {"open": True, "dtr": True}
    assert spy.urls == [ser2net.url + "?timeout=1&ign_set_control"]


def test_a_port_that_will_not_open_is_one_no_device_error(tmp_path):
    from fwtool.core.errors import Exit, NoDevice
    with pytest.raises(NoDevice) as e:
        serial_layer.open_port("socket://localhost:99999")
    assert e.value.code == Exit.NO_DEVICE and "PORT 1-65535" in e.value.cause and "--port" in e.value.fix
    with pytest.raises(NoDevice) as e:
        serial_layer.open_port(str(tmp_path / "no-such-tty"))
    assert "no-such-tty" in e.value.cause and "fwtool devices" in e.value.fix
    with pytest.raises(NoDevice) as e:
        serial_layer.open_port("rfc2217://127.0.0.1:1", fix="plug it in")  # nothing listens on port 1
    assert "127.0.0.1:1" in e.value.cause and e.value.fix == "plug it in"


class _Chunks:
    """A pyserial-like port handing out prepared chunks (in_waiting = the next chunk's size)."""

    def __init__(self, *chunks):
        self.chunks = [bytes(c) for c in chunks]
        self.asked = []

    @property
    def in_waiting(self):
        return len(self.chunks[0]) if self.chunks else 0

    def read(self, n=1):
        self.asked.append(n)
        if not self.chunks:
            return b""
        c = self.chunks.pop(0)
        assert n >= len(c), "asked for fewer bytes than waiting"
        return c


def test_the_one_read_loop_takes_what_is_waiting_and_cuts_lines():
    port = _Chunks(b"FWT:BOOT a", b"pp=x\r\nFWT:INF", b"ER n=1\r\n")
    reader = lines_mod.PortLines(port)
    assert [ln.text for ln in reader.poll()] == ["FWT:BOOT app=x", "FWT:INFER n=1"]
    assert port.asked == [10, 13, 8]  # never more than waiting
    assert reader.poll() == []


def test_which_board_rule_last_flash_then_last_build_then_any(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    last_build = SimpleNamespace(board="pico")
    monkeypatch.setattr(ports, "last_build", lambda: last_build)
    assert ports.board_to_use(None, {"board": "pico_w"})[0].name == "pico_w"
    assert ports.board_to_use(None, {"board": "pico_w"})[1] == "last flash"
    assert ports.board_to_use(None, {})[1] == "last build"
    assert ports.board_to_use("pico_w", {"board": "pico"})[0].name == "pico_w"
    assert ports.board_to_use(None, {"board": "pico_w"}, guess=False) == (None, "")
    last_build = None
    assert ports.board_to_use(None, {}) == (None, "")
    assert ports.board_to_use(None, {"board": "no-such-board"}) == (None, "")  # gone since: any board
