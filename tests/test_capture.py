"""Issue 28 firmware side, the parts that need no board: ``fwtool build --capture`` planning (the link check with its
numbers, the apps and families that capture, the template values) and the host's reading of a --capture firmware's
lines (FWT:CAPTURE / FWT:CAPEND, the end marker, --until-silence), fed byte for byte as the firmware sends them
(the frames are built with the recorder's own framing). The firmware itself runs in test_capture_emulator.py."""
from __future__ import annotations

import numpy as np
import pytest

from fwtool.audio.framing import rec_frame
from fwtool.core.errors import FwtoolError
from fwtool.core.protocol_capture import CaptureLine
from fwtool.core.protocol import c_formats, parse_line
from fwtool.firmware import capture as C
from fwtool.monitor.handoff import Handoff, HandoffOptions

RATE = 16000


def kws_plan(post=3.0, pre=None, **kw):
    args = dict(app="kws", family="rp2040", stdio="usb", uart_baud=115200, inferences_per_s=10.0, labels=4)
    args.update(kw)
    return C.plan_capture(post, pre, **args)


def test_usb_carries_a_capture_with_the_default_pre_roll():
    p = kws_plan()
    assert (p.pre_samples, p.post_samples) == (4800, 48000)
    assert p.audio_bps == 32688  # 16 kHz x 2 B x (512 + 11) / 512
    assert p.need_bps < p.link_bps == C.USB_BUDGET_BPS
    assert p.ring_samples >= p.pre_samples + 2 * C.FRAME_SAMPLES and p.ram_bytes > 2 * p.ring_samples
    assert p.to_dict()["inference"] == "continues"


def test_a_115200_baud_uart_is_refused_with_the_numbers():
    with pytest.raises(FwtoolError) as e:
        kws_plan(stdio="uart")
    msg = f"{e.value.cause} {e.value.fix}"
    assert "34,068 B/s" in msg and "11,520 B/s" in msg and "115,200 baud" in msg and "3.0x" in msg
    assert "uart_baud = 460800" in msg and e.value.code == 3
    assert kws_plan(stdio="uart", uart_baud=460800).link_bps == 46080  # a faster bridge rate is accepted


@pytest.mark.parametrize("kw, words", [
    ({"app": "inference"}, "audio apps"), ({"family": "linux"}, "linux family"),
])
def test_apps_and_families_that_cannot_capture_are_refused(kw, words):
    with pytest.raises(FwtoolError) as e:
        kws_plan(**kw)
    assert words in e.value.cause


def test_pre_roll_needs_capture_and_durations_are_checked():
    with pytest.raises(FwtoolError) as e:
        C.plan_capture(None, 0.3, app="kws", family="rp2040", stdio="usb", uart_baud=115200,
                       inferences_per_s=10, labels=4)
    assert e.value.code == 2 and "--capture" in e.value.fix
    assert C.parse_seconds("300ms", "--pre-roll", 2) == pytest.approx(0.3)
    for bad in ("3x", "0", "99s"):
        with pytest.raises(FwtoolError):
            C.parse_seconds(bad, "--capture", C.MAX_CAPTURE_S)


def test_template_values_enable_the_header_and_binary_stdio_only_with_capture():
    off = C.template_values(None)
    assert off["capture"]["enabled"] == "false" and off["capture_defines"] == []
    on = C.template_values(kws_plan())
    assert on["capture"]["enabled"] == "true" and on["capture"]["pre_samples"] == 4800
    assert on["capture_defines"] == ["PICO_STDIO_ENABLE_CRLF_SUPPORT=0"]


def test_the_capture_lines_round_trip_through_the_formats():
    f = c_formats()
    line = f["capture"] % (3, "yes", 16000, 4800, 52800, 256)
    rec = parse_line(line)
    assert isinstance(rec, CaptureLine) and rec.kind == "start" and rec.fields["samples"] == 52800
    end = parse_line(f["capend"] % (3, 52800, 12, 0))
    assert end.kind == "end" and end.fields["lost"] == 12
    assert parse_line(f["capcfg"] % (16000, 4800, 48000, 256, "continues")).fields["inference"] == "continues"
    assert parse_line("FWT:CAPEND n=3 sent=x lost=0 overrun=0") is None  # malformed: free text


def firmware_bytes(pcm, n=7, pre=4800, lost=0, frames_after_end=True, skip=()):
    """What a --capture kws build prints for one detection: the lines and frames of fwt_capture.h."""
    out = bytearray(f"FWT:DETECT n={n} label=yes score=0.9100\n".encode())
    out += f"FWT:CAPTURE n={n} label=yes rate=16000 pre={pre} samples={len(pcm)} frame=256\n".encode()
    for i, seq in enumerate(range(0, len(pcm), 256)):
        if i not in skip:
            out += rec_frame(seq, pcm[seq:seq + 256])
        if i % 10 == 5:
            out += f"FWT:AINF n={n + i} frame=1 dsp_us=1 invoke_us=1 dropped=0 top=yes score=0.5\n".encode()
    out += f"FWT:CAPEND n={n} sent={len(pcm)} lost={lost} overrun=0\n".encode()
    if frames_after_end:
        out += rec_frame(len(pcm), pcm[:0])
    return bytes(out)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def handoff(tmp_path, **kw):
    opts = HandoffOptions(labels=("yes",), exec_cmd="true", spool=tmp_path, keep=True, **kw)
    h = Handoff(opts, clock=Clock())
    h._jobs.put = lambda c: h.__dict__.setdefault("finished", []).append(c)  # keep the capture, run no handler
    return h


def test_the_announced_pre_roll_comes_on_top_of_record_and_the_end_marker_ends_it(tmp_path):
    pcm = np.random.default_rng(3).integers(-9000, 9000, 4800 + 48000).astype(np.int16)
    h = handoff(tmp_path, record_s=3.0)
    text = b""
    data = firmware_bytes(pcm, lost=12)
    for i in range(0, len(data), 700):  # arbitrary cuts, like a serial port
        text += h.feed(data[i:i + 700])
    [c] = h.finished
    assert c.want == 52800 and np.array_equal(c.samples(), pcm) and c.pre == 4800
    assert c.dropped == 12 and not c.ended_early and h.stray_frames == 0  # the device's own count, no stray marker
    assert b"FWT:AINF" in text and b"FWR" not in text and text.count(b"\n") == text.count(b"FWT:")


def test_a_shorter_record_keeps_pre_roll_plus_record_and_the_rest_is_not_stray(tmp_path):
    pcm = np.arange(52800, dtype=np.int64).astype(np.int16)
    h = handoff(tmp_path, record_s=1.0)
    h.feed(firmware_bytes(pcm))
    [c] = h.finished
    assert c.want == 4800 + 16000 and np.array_equal(c.samples(), pcm[:20800]) and h.stray_frames == 0


def test_a_frame_lost_on_the_link_is_a_counted_gap(tmp_path):
    pcm = np.ones(52800, np.int16)
    h = handoff(tmp_path)
    h.feed(firmware_bytes(pcm, skip=(30,)))
    [c] = h.finished
    assert c.dropped == 256 and c.samples()[30 * 256:31 * 256].max() == 0


def test_until_silence_ends_the_capture_after_speech_stops(tmp_path):
    rng = np.random.default_rng(5)
    speech = rng.integers(-8000, 8000, 4800 + 24000).astype(np.int16)  # pre-roll + 1.5 s of "speech"
    pcm = np.concatenate([speech, np.zeros(24000, np.int16)])  # then 1.5 s of silence
    h = handoff(tmp_path, until_silence_s=0.5)
    h.feed(firmware_bytes(pcm))
    [c] = h.finished
    assert c.cut == "silence" and 28800 + 8000 <= c.want <= 28800 + 8000 + 256
    assert h.stray_frames == 0  # the frames after the cut up to the end marker belong to it
    quiet = handoff(tmp_path, until_silence_s=0.5)  # all silence: still at least the pre-roll + 0.5 s
    quiet.feed(firmware_bytes(np.zeros(52800, np.int16)))
    assert quiet.finished[0].want >= 4800 + 8000 + 8000 - 256


class BytesPort:
    """A pyserial-like port over a byte string, read in small pieces (the audio stream path's reads)."""

    def __init__(self, data: bytes, piece: int = 333):
        self.data, self.piece, self.timeout, self.written = bytearray(data), piece, 0.0, b""

    @property
    def in_waiting(self):
        return min(len(self.data), self.piece)

    def read(self, n=1):
        out = bytes(self.data[:min(n, self.piece)])
        del self.data[:len(out)]
        return out

    def write(self, b):
        self.written += b
        return len(b)


def test_the_frame_port_gives_the_reader_only_text_and_the_handoff_the_frames(tmp_path):
    from fwtool.core.lines import PortLines
    from fwtool.monitor.frameport import FramePort

    pcm = np.random.default_rng(9).integers(-9000, 9000, 52800).astype(np.int16)
    h = handoff(tmp_path)
    port = FramePort(BytesPort(b"FWT:AUDIO app=kws\n" + firmware_bytes(pcm) + b"tail line\n"), h)
    lines = PortLines(port)
    texts = []
    for _ in range(2000):
        texts += lines.texts()
    assert texts[0] == "FWT:AUDIO app=kws" and texts[-1] == "tail line" and not any("FWR" in t for t in texts)
    assert len([t for t in texts if t.startswith("FWT:AINF")]) == 21
    [c] = h.finished
    assert np.array_equal(c.samples(), pcm)
    assert port.write(b"FWH\x01") == 4 and port.port.written == b"FWH\x01"


def test_monitor_without_on_detect_takes_a_capture_firmwares_frames_out_of_the_view(capsys):
    import json
    import threading

    from fakes_serial import SocketBoard
    from fwtool.cli import main

    pcm = np.random.default_rng(2).integers(-20000, 20000, 52800).astype(np.int16)
    board = SocketBoard()

    def fw():
        if board.wait_host(15):
            board.write(b"FWT:CAPCFG rate=16000 pre=4800 post=48000 frame=256 inference=continues\n")
            board.write(firmware_bytes(pcm))
            board.write(b"after the capture\n")
    threading.Thread(target=fw, daemon=True).start()
    with pytest.raises(SystemExit) as e:
        main(["monitor", "--no-input", "--json", "--port", board.url, "--expect", "after the capture",
              "--timeout", "20"])
    board.close()
    out = capsys.readouterr().out
    recs = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert e.value.code == 0
    texts = [r.get("line", r.get("raw", "")) for r in recs if r["type"] != "event"]
    assert not any("\\x" in json.dumps(r) for r in recs), texts[:5]  # no frame bytes shown as text
    assert any(r["type"] == "capture_skipped" and "3.30 s" in r["message"] for r in recs), recs[-4:]


@pytest.mark.parametrize("family", ["rp2040", "psoc6"])  # PSoC 6: the KitProg3 bridge's 115200 default
def test_the_uart_refusal_is_the_same_on_every_family(family):
    with pytest.raises(FwtoolError) as e:
        kws_plan(family=family, stdio="uart")
    assert "11,520 B/s" in e.value.cause


def test_build_refuses_a_uart_capture_with_one_error_line_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    from fwtool.core import vendor
    if vendor.locate(vendor.manifest()["tflite-micro"]).path is None:
        pytest.skip("vendor tree tflite-micro not available (example:micro_speech comes from it)")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", "pico", "--app", "kws", "-m",
                        "example:micro_speech", "--capture", "3s", "--stdio", "uart", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 3
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "34,068 B/s" in errors[0] and "Traceback" not in p.stderr
    assert "fix:" in p.stderr and not (out / "firmware.uf2").exists()
