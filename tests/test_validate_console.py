"""Input vectors over the console (fwtool/core/protocol_vectors.py, fwtool/validate/console.py): the host side of
how `fwtool validate` runs the image `fwtool build` makes, against a scripted device on a fake port. The real
firmware side runs in tests/test_emulator_dualcore.py (the default dual-core image on the virtual RP2040)."""
import numpy as np
import pytest

from fwtool.core import protocol
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.protocol_vectors import fnv1a32, vec_command
from fwtool.targets.base import PHYSICAL, Target, TargetInfo, read_lines
from fwtool.validate import console


def test_vector_lines_format_and_parse_from_one_definition():
    f = protocol.c_formats()
    assert f["vec_prefix"] == "FWT:VEC " and f["ready"] == "FWT:READY v=%lu n=%lu sha256=%s"
    assert f["got"] == "FWT:GOT v=%lu n=%lu fnv=%lu"
    assert vec_command(3, 15996) == b"FWT:VEC v=3 n=15996\n"
    r = protocol.parse_line("FWT:GOT v=3 n=15996 fnv=3056271601")
    assert isinstance(r, protocol.VectorReply) and (r.kind, r.v, r.n, r.fnv) == ("got", 3, 15996, 3056271601)
    assert protocol.parse_line("FWT:READY v=1 n=9").kind == "ready"
    assert protocol.parse_line("FWT:READY v=1 n=9 sha256=4d5f2cd1842e").sha256 == "4d5f2cd1842e"
    assert protocol.parse_line("FWT:READY v=1 n=9").sha256 is None  # an older image: no model named
    assert protocol.parse_line("FWT:GOT v=x n=1 fnv=2") is None  # malformed: free text
    assert fnv1a32(b"") == 0x811C9DC5 and fnv1a32(b"a") == 0xE40C292C  # FNV-1a 32 reference values


class FakePort:
    """A port whose bytes arrive in chunks that cut across lines."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.timeout = 0.01

    @property
    def in_waiting(self):
        return len(self.chunks[0]) if self.chunks else 0

    def read(self, n=1):
        return self.chunks.pop(0) if self.chunks else b""


def test_lines_after_the_one_a_read_stopped_at_wait_for_the_next_read():
    port = FakePort([b"FWT:READY v=0 n=4\nFWT:GOT v=0 n=4 fnv=1\nFWT:OUT v=0 t=0 us=5 q=1\n"])
    assert read_lines(port, "FWT:READY", 1, 1.0, lambda s: None) == ["FWT:READY v=0 n=4"]
    assert read_lines(port, "FWT:OUT", 1, 1.0, lambda s: None) == ["FWT:GOT v=0 n=4 fnv=1",
                                                                   "FWT:OUT v=0 t=0 us=5 q=1"]


class ScriptedBoard(Target):
    """A physical target answering like the inference app (``input_bytes``: what the image takes; ``corrupt``:
    flip a byte on the way, as a lossy link would)."""

    info = TargetInfo("scripted", "the scripted board", PHYSICAL, cycle_accurate=True, cores=2, clock_hz=None,
                      feeds=frozenset({"bytes"}), serves=True)

    def __init__(self, input_bytes, corrupt=False, banner=True):
        super().__init__()
        self.input_bytes, self.corrupt = input_bytes, corrupt
        self.out: list[str] = ["FWT:BOOT model=m sha256=abc board=pico cores=2"] if banner else []
        self.want = None
        self.fed: list[bytes] = []

    def start(self):
        pass

    def stop(self):
        pass

    def feed(self, data):
        self.fed.append(data)
        if data.startswith(b"FWT:VEC "):
            f = dict(kv.split("=") for kv in data.decode().split()[1:])
            self.want = int(f["v"])
            self.out.append(f"FWT:READY v={self.want} n={self.input_bytes} sha256=abc")
            return
        got = bytes([data[0] ^ 1]) + data[1:] if self.corrupt else data
        self.out.append(f"FWT:GOT v={self.want} n={len(got)} fnv={fnv1a32(got)}")
        self.out.append(f"FWT:OUT v={self.want} t=0 us=100 q={int(np.frombuffer(got, np.int8).sum())}")
        self.out.append(f"FWT:OUT v={self.want} t=1 us=100 q={got[0]}")

    def read(self, until, count=1, timeout=1.0, on_line=lambda s: None):
        lines, seen = [], 0
        while self.out:
            line = self.out.pop(0)
            lines.append(line)
            if until and line.startswith(until):
                seen += 1
                if seen >= count:
                    break
        return lines


def _vectors(n=3):
    return [np.arange(n * 4, dtype=np.int8).reshape(n, 4)]


def test_every_vector_is_sent_checked_and_its_outputs_collected():
    board = ScriptedBoard(4)
    dev, lines, _ = console.run(board, None, _vectors(), 2, 5.0)
    assert [o[0].tolist() for o in dev.outputs] == [[6], [22], [38]] and dev.us == [100, 100, 100]
    assert board.fed[0] == b"FWT:VEC v=0 n=4\n" and board.fed[1] == bytes([0, 1, 2, 3])
    assert dev.banner["cores"] == 2 and any(ln.startswith("FWT:GOT v=2") for ln in lines)


def test_an_image_of_another_input_size_is_a_mismatch_and_gets_no_bytes():
    board = ScriptedBoard(16)
    with pytest.raises(FwtoolError) as e:
        console.run(board, None, _vectors(), 2, 5.0)
    assert e.value.code == Exit.MISMATCH and "16 input bytes" in e.value.cause
    assert board.fed == [b"FWT:VEC v=0 n=4\n"]  # the raw bytes were never sent


def test_bytes_lost_or_changed_on_the_link_fail_the_run():
    with pytest.raises(FwtoolError) as e:
        console.run(ScriptedBoard(4, corrupt=True), None, _vectors(), 2, 5.0)
    assert e.value.code == Exit.FAILED and "checksum" in e.value.cause


def test_a_silent_image_times_out_naming_what_it_waited_for():
    class Silent(ScriptedBoard):
        def feed(self, data):
            self.fed.append(data)

    with pytest.raises(FwtoolError) as e:
        console.run(Silent(4), None, _vectors(), 1, 0.5)
    assert e.value.code == Exit.TIMEOUT and "FWT:READY" in e.value.cause


def test_a_running_board_whose_banner_went_by_long_ago_is_named_by_its_ready_reply():
    """validate --no-flash on a board that has been running: no banner arrives; FWT:READY names its model."""
    from fwtool.targets.base import TargetConfig

    board = ScriptedBoard(4, banner=False)
    board.config = TargetConfig(flash=False)
    dev, _, _ = console.run(board, None, _vectors(), 2, 5.0)
    assert dev.banner == {"sha256": "abc", "source": "FWT:READY"} and len(dev.outputs) == 3
