"""rfc2217:// ports (ser2net, labgrid's exported serial ports): fwtool's port opening against pyserial's own RFC 2217
server class (serial.rfc2217.PortManager) in front of a loop:// port, and against one that answers SET_CONTROL
the way ser2net does (not with the value asked for)."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import serial
import serial.rfc2217 as rfc2217

from fwtool.devices.serial import open_serial, serial_open_args
from fwtool.targets.physical import read_port_until_done


class Ser2netLikeManager(rfc2217.PortManager):
    """Sets DTR/RTS without the answer pyserial waits for (seen with ser2net: pyserial then fails "timeout waiting
    for option 'control'"; sredird answers with another value instead, which pyserial rejects as well)."""

    def _telnet_process_subnegotiation(self, suboption):
        if suboption[0:1] == rfc2217.COM_PORT_OPTION and suboption[1:2] == rfc2217.SET_CONTROL and \
                suboption[2:3] in (rfc2217.SET_CONTROL_DTR_ON, rfc2217.SET_CONTROL_DTR_OFF,
                                   rfc2217.SET_CONTROL_RTS_ON, rfc2217.SET_CONTROL_RTS_OFF):
            if suboption[2:3] in (rfc2217.SET_CONTROL_DTR_ON, rfc2217.SET_CONTROL_DTR_OFF):
                self.serial.dtr = suboption[2:3] == rfc2217.SET_CONTROL_DTR_ON
            return
        super()._telnet_process_subnegotiation(suboption)


class Server:
    """One-connection-at-a-time RFC 2217 server; the 'board' behind it prints ``banner`` shortly after the client
    raises DTR (as pico-sdk's USB stdio does)."""

    def __init__(self, manager_cls=rfc2217.PortManager, banner: bytes = b"FWT:BOOT app=test\r\n"):
        self.manager_cls = manager_cls
        self.banner = banner
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.port}"

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self._session(conn)

    def _session(self, conn):
        board = serial.serial_for_url("loop://", timeout=0.02)
        conn.settimeout(0.02)

        class Out:
            @staticmethod
            def write(data):
                conn.sendall(data)

        mgr = self.manager_cls(board, Out())
        board.dtr = False
        dtr_at = None
        try:
            while not self.stop.is_set():
                try:
                    data = conn.recv(4096)
                    if not data:
                        break
                    for b in mgr.filter(data):
                        self.received += b
                        board.write(b)  # the loop port: what the host writes comes back as 'board output'
                except socket.timeout:
                    pass
                if board.dtr and dtr_at is None:
                    dtr_at = time.monotonic()
                if dtr_at is not None and time.monotonic() - dtr_at > 0.3:
                    board.write(self.banner)
                    dtr_at = float("inf")
                out = board.read(board.in_waiting or 1)
                if out:
                    conn.sendall(b"".join(mgr.escape(out)))
        except OSError:
            pass
        finally:
            conn.close()
            board.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def ser2net():
    s = Server(Ser2netLikeManager, banner=b"FWT:BOOT app=validate\r\nFWT:DONE n=0 inputs=0\r\n")
    yield s
    s.close()


def _read_until(ser, needle: bytes, timeout: float = 3.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        got += ser.read(ser.in_waiting or 1)
    return got


def test_open_args_only_change_rfc2217_urls():
    assert serial_open_args("/dev/ttyACM0", write_timeout=1.0) == ("/dev/ttyACM0", {"write_timeout": 1.0})
    assert serial_open_args("socket://h:1", write_timeout=1.0) == ("socket://h:1", {"write_timeout": 1.0})
    assert serial_open_args("rfc2217://h:7000", write_timeout=1.0) == ("rfc2217://h:7000?ign_set_control", {})
    assert serial_open_args("RFC2217://h:1?logging=debug&timeout=2") == \
        ("RFC2217://h:1?logging=debug&timeout=2&ign_set_control", {})
    assert serial_open_args("rfc2217://h:1?ign_set_control") == ("rfc2217://h:1?ign_set_control", {})


def test_pyserial_rejects_a_write_timeout_on_rfc2217(server):
    """The premise of the fix: the way monitor opened ports before fails on rfc2217://."""
    with pytest.raises(NotImplementedError):
        serial.serial_for_url(server.url, timeout=0.1, write_timeout=1.0)


def test_monitor_opens_an_rfc2217_port_reads_and_writes(server):
    ser = open_serial(server.url, 115200, 0.05)
    try:
        assert b"FWT:BOOT app=test" in _read_until(ser, b"\n")
        ser.write(b"ping\n")
        assert b"ping" in _read_until(ser, b"ping")  # the loop port echoes it back through the server
        assert ser.dtr
    finally:
        ser.close()


def test_a_ser2net_style_set_control_answer_does_not_stall_the_open(ser2net):
    with pytest.raises(serial.SerialException, match="control"):  # without ign_set_control: waits, then fails
        serial.serial_for_url(ser2net.url + "?timeout=1", timeout=0.1)
    t0 = time.monotonic()
    ser = open_serial(ser2net.url + "?timeout=1", 115200, 0.05)
    try:
        assert time.monotonic() - t0 < 1.0
        assert b"FWT:BOOT" in _read_until(ser, b"FWT:DONE")
    finally:
        ser.close()


def test_validate_reads_an_rfc2217_port_until_done(ser2net):
    seen = []
    lines = read_port_until_done(ser2net.url + "?timeout=1", 5.0, seen.append)
    assert lines[-1].startswith("FWT:DONE") and seen == lines
