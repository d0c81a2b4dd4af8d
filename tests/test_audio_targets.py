"""Audio streaming through the targets interface (Target.open_link / feed, fwtool/targets/link.py) on every virtual
target that declares ``"bytes"`` in its TargetInfo.feeds: the virtual RP2040 (tests/test_kws_emulator.py), QEMU's
Cortex-M33 (pico2) and Cortex-M4 (nano33ble_sense), a Linux program natively (linux-host) and under qemu-aarch64
(rpi4).

The first part needs nothing (the links, the refusals, the QEMU command line). The second builds micro_speech's kws
app per board and runs ``fwtool validate --app kws --audio`` on clips spoken by espeak-ng at test time (never in
training: micro_speech was trained on human speakers), then the Linux program's two inputs: raw S16LE PCM on stdin
(``arecord ... | program``) and ``fwtool run --board linux-host --app kws --audio`` on micro_speech's own test clips.
Each skips with the reason where its toolchain, trees, QEMU or espeak-ng are absent.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from fwtool.audio import wav
from fwtool.core import vendor
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput
from fwtool.emulator import qemu
from fwtool.firmware.families import get_family
from fwtool.targets import registry
from fwtool.targets.base import Target, TargetConfig, Unsupported
from fwtool.targets.link import FdLink, QueueLink
from fwtool.validate.audio import AudioValidateOptions, audio_target

TESTDATA = "tensorflow/lite/micro/examples/micro_speech/testdata"
RATE = 16000


# -- the links and the interface (no toolchain) -------------------------------------------------------------------
def test_an_fd_link_is_a_port_both_ways():
    a, b = socket.socketpair()
    link = FdLink(a.fileno(), owner=a, timeout=0.2)
    try:
        assert link.read(10) == b"" and link.in_waiting == 0  # nothing came within the timeout
        b.sendall(b"FWT:ACK seq=0 credit=4\r\n")
        assert link.in_waiting > 0
        assert link.read(4096) == b"FWT:ACK seq=0 credit=4\r\n"
        link.write(b"FWH\x03" * 1000)
        got = b""
        while len(got) < 4000:
            got += b.recv(65536)
        assert got == b"FWH\x03" * 1000
        b.close()  # the far end went away: quiet reads, never an exception from read()
        assert link.read(10) == b"" and link.eof
    finally:
        link.close()
    with pytest.raises(OSError):
        link.write(b"x")


def test_a_queue_link_connects_an_in_process_emulator():
    link = QueueLink(timeout=0.05)
    link.write(b"FWH\x01")
    assert link.has_input and link.take(2) == b"FW" and link.take(10) == b"H\x01" and not link.has_input
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(link.take(4, wait=2.0)))
    t.start()
    link.write(b"data")
    t.join(5)
    assert got == [b"data"]
    link.emit(b"FWT:BOOT model=x\n")
    assert link.in_waiting == 17 and link.read(100) == b"FWT:BOOT model=x\n"
    link.finish()
    assert link.read(10) == b""
    link.close()
    with pytest.raises(OSError):
        link.read(1)


def test_every_target_that_takes_bytes_implements_a_live_link():
    for name, cls in registry.TARGETS.items():
        if "bytes" in cls.info.feeds and cls.info.virtual:
            assert cls.open_link is not Target.open_link, f"{name} declares bytes but has no open_link"
    assert {n for n, c in registry.TARGETS.items() if c.info.virtual and "bytes" in c.info.feeds} >= {
        "rp2040js", "qemu-mps2-an386", "qemu-mps2-an505", "linux-native", "qemu-aarch64"}


def test_a_target_without_a_link_refuses_to_be_fed():
    cls = registry.by_name("qemu-mps2-an386")
    t = cls(TargetConfig())
    with pytest.raises(Unsupported, match="open_link"):
        t.feed(b"x")  # takes bytes, but only while it runs with a link


def test_qemu_puts_uart0_on_a_unix_socket_for_a_live_feed(tmp_path):
    cmd = qemu.command(tmp_path / "fw.elf", qemu.MACHINE_M33, serial_socket=str(tmp_path / "s.sock"))
    assert "-nographic" not in cmd and ["-serial", "chardev:fwt0"] == cmd[cmd.index("-serial"):][:2]
    chardev = cmd[cmd.index("-chardev") + 1]
    assert chardev.startswith("socket,") and "server=on" in chardev and "wait=on" in chardev
    assert "-nographic" in qemu.command(tmp_path / "fw.elf")  # the plain run: stdout as before


def test_audio_validate_picks_the_boards_virtual_target_and_refuses_one_without_a_feed(tmp_path):
    model = tmp_path / "m.tflite"
    for board, name in (("pico", "rp2040js"), ("pico2", "qemu-mps2-an505"), ("nano33ble_sense", "qemu-mps2-an386"),
                        ("rpi4", "qemu-aarch64")):
        assert audio_target(AudioValidateOptions(model=model, app="kws", board=board)).info.name == name
    psoc6 = registry.target_class("cy8cproto_062_4343w", "emulator")
    if "bytes" in psoc6.info.feeds:
        pytest.skip("the virtual PSoC 6 takes a stream now (s22-mic)")
    with pytest.raises(BadInput) as e:
        audio_target(AudioValidateOptions(model=model, app="kws", board="cy8cproto_062_4343w"))
    assert "cannot be fed an audio stream" in e.value.cause and "pico2" in e.value.fix


# -- on the targets (real builds, QEMU, espeak-ng) ------------------------------------------------------------------
def fwtool(*args, timeout=2400):
    return subprocess.run([sys.executable, "-m", "fwtool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def micro_speech_tree():
    loc = vendor.locate(vendor.manifest()["tflite-micro"])
    if loc.path is None:
        pytest.skip("vendor tree tflite-micro not available (fwtool vendor sync tflite-micro)")
    return loc.path


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """'yes' and 'no' spoken by espeak-ng (a voice and accent micro_speech never heard), 0.5 s of silence before."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install espeak-ng sox)")
    out = tmp_path_factory.mktemp("spoken")
    clips = []
    for word in ("yes", "no"):
        raw, clip = out / f"raw-{word}.wav", out / f"{word}.wav"
        subprocess.run(["espeak-ng", "-v", "en-gb-scotland+f3", "-p", "45", "-s", "150", "-w", str(raw), word],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                        str(clip), "norm", "-3", "pad", "0.5", "0.6"], check=True, capture_output=True, timeout=60)
        clips.append(clip)
    return clips


BOARDS = {  # board: (its virtual target, what it needs here)
    "pico2": ("qemu-mps2-an505", ("qemu-system-arm", "arm-none-eabi-gcc", "cmake")),
    "nano33ble_sense": ("qemu-mps2-an386", ("qemu-system-arm", "arm-none-eabi-gcc", "cmake")),
    "rpi4": ("qemu-aarch64", ("qemu-aarch64-static", "aarch64-linux-gnu-g++", "cmake")),
    "linux-host": ("linux-native", ("g++", "cmake")),
}


def _needs(board: str) -> None:
    for tool in BOARDS[board][1]:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    family = get_family(get_board(board).family)
    for dep in vendor.deps_for(family.name, "build"):
        if vendor.locate(dep).path is None:
            pytest.skip(f"vendor tree {dep.name} not synced ('fwtool vendor sync {dep.name}')")


@pytest.mark.slow
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_kws_audio_validate_passes_on_the_boards_virtual_target(board, spoken, micro_speech_tree, tmp_path):
    _needs(board)
    p = fwtool("validate", "--board", board, "--app", "kws", "-m", "example:micro_speech", "--audio", *spoken,
               "--out", tmp_path / "fw", "--json")
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    r = json.loads(p.stdout)
    assert r["ok"] and r["target"]["target"] == BOARDS[board][0]
    for clip, word in zip(r["clips"], ("yes", "no")):
        assert clip["features_identical"] and clip["max_abs_diff"] <= 1 and clip["detections"]["equal"]
        assert clip["inferences"] >= 5 and clip["stream"]["resent"] == 0
        print(f"\n{board} ({r['target']['name']}): {clip['clip']} {clip['frames']} rows identical, "
              f"max |d| {clip['max_abs_diff']}, detections {clip['detections']['device']}")
        assert [d["label"] for d in clip["detections"]["device"]] == [word]  # and it heard the word


@pytest.fixture(scope="module")
def linux_kws(tmp_path_factory, micro_speech_tree):
    _needs("linux-host")
    out = tmp_path_factory.mktemp("lh") / "kws"
    p = fwtool("build", "--board", "linux-host", "--app", "kws", "-m", "example:micro_speech", "--out", out)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_the_linux_program_takes_raw_pcm_on_stdin_as_its_microphone(linux_kws, micro_speech_tree):
    """``arecord -f S16_LE -r 16000 -c 1 -t raw | program``: micro_speech's 'yes' and 'no' test clips (then 1 s
    of silence) give FWT:DETECT of their word, and the program ends with its input."""
    for word in ("yes", "no"):
        pcm = wav.read_wav(micro_speech_tree / TESTDATA / f"{word}_1000ms.wav")
        raw = np.concatenate([pcm, np.zeros(RATE, np.int16)]).astype("<i2").tobytes()
        p = subprocess.run([str(linux_kws / "firmware.elf")], input=raw, capture_output=True, timeout=60)
        lines = p.stdout.decode().splitlines()
        assert p.returncode == 0 and any(ln.startswith("FWT:AUDIO") and "source=mic" in ln for ln in lines)
        assert any(ln.startswith("FWT:DETECT") and f"label={word}" in ln for ln in lines), lines[-6:]
        ainf = [ln for ln in lines if ln.startswith("FWT:AINF")]
        assert len(ainf) == 11 and all(" dropped=0 " in ln for ln in ainf)  # 100 frames: not one block lost


def test_run_on_linux_host_streams_a_clip_and_detects_its_keyword(linux_kws, micro_speech_tree):
    clip = micro_speech_tree / TESTDATA / "yes_1000ms.wav"
    p = fwtool("run", "--board", "linux-host", "--app", "kws", "-m", "example:micro_speech", "--out", linux_kws,
               "--audio", clip, "--json", timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    docs, text, dec = [], p.stdout.strip(), json.JSONDecoder()
    while text:  # a build line, then the audio run's summary (indented)
        doc, end = dec.raw_decode(text)
        docs.append(doc)
        text = text[end:].strip()
    summary = docs[-1]
    assert summary["type"] == "audio_run" and summary["complete"]
    assert [d["label"] for d in summary["detections"]] == ["yes"]
