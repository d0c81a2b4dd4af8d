"""Issue 28 end to end on the virtual RP2040: micro_speech's kws app built with ``--capture 3s`` hears a synthetic
"yes" followed by a sentence (espeak-ng + sox at test time, never committed) through ``fwtool run --emulator
--audio``, and after its FWT:DETECT sends the pre-roll + 3 s as FWR frames; ``--on-detect yes --post`` hands the WAV
to an HTTP endpoint in this test (its samples must equal the streamed samples from 0.3 s before the detection, none
missing), and to ``fwtool stt-serve`` (pocketsphinx) with ``--expect-transcript``; an endpoint that is down leaves
the capture on disk with one failure line while every inference of the clip is still read. The audio_classifier
app (fire_alarm) captures the same way.

Runs where the ARM toolchain, the SDK and tflite-micro trees, Node/rp2040js, espeak-ng and sox are present; skips
with the reason otherwise."""
from __future__ import annotations

import email.parser
import http.server
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import wave

import numpy as np
import pytest

RATE = 16000
PRE, POST, HOP = 4800, 48000, 320
SENTENCE = "what is the weather tomorrow"


def wav_samples(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (RATE, 2, 1)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """0.5 s silence, "yes", 0.5 s silence, the sentence, 1.5 s silence: 16 kHz mono 16-bit, made now."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (speech is generated at test time: apt-get install espeak-ng sox)")
    d = tmp_path_factory.mktemp("speech")
    parts = []
    for name, text in (("yes", "yes"), ("sentence", SENTENCE)):
        raw, s16 = d / f"{name}.raw.wav", d / f"{name}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True,
                       capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(s16)], check=True,
                       capture_output=True)
        parts.append(wav_samples(s16.read_bytes()))
    gap = np.zeros(RATE // 2, np.int16)
    pcm = np.concatenate([gap, parts[0], gap, parts[1], gap, gap, gap])
    path = d / "yes_then_sentence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path, pcm


class Endpoint:
    """An OpenAI-compatible transcription route on 127.0.0.1 that keeps every upload."""

    def __init__(self, text="my own endpoint heard it"):
        self.uploads: list[bytes] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                msg = email.parser.BytesParser().parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                for part in msg.get_payload():
                    if part.get_param("name", header="content-disposition") == "file":
                        outer.uploads.append(part.get_payload(decode=True))
                answer = json.dumps({"text": text}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/v1/audio/transcriptions"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory, real_build_reason, emulator_ready):
    if real_build_reason:
        pytest.skip(real_build_reason)
    return tmp_path_factory.mktemp("kws-capture") / "build"


def run(out_dir, wav, tmp_path, *handoff):
    """The issue's command: `run --on-detect` on the kws app builds it with --capture from --record (3 s)."""
    cmd = [sys.executable, "-m", "fwtool", "run", "-b", "pico", "--app", "kws", "-m", "example:micro_speech",
           "--out", str(out_dir), "--emulator", "--audio", str(wav),
           "--on-detect", "yes", "--record", "3s", "--spool", str(tmp_path / "spool"), *handoff]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    return p


def detection_start(stdout: str) -> int:
    """Stream position of the first pre-roll sample: the detection's inference covers frames up to `frame`, i.e.
    (frame + 1) strides of 320 samples pushed; the pre-roll is the 4800 before that."""
    det = next(line for line in stdout.splitlines() if line.startswith("FWT:DETECT"))
    n = det.split("n=")[1].split()[0]
    ainf = next(line for line in stdout.splitlines() if line.startswith(f"FWT:AINF n={n} "))
    return (int(ainf.split("frame=")[1].split()[0]) + 1) * HOP - PRE


def test_the_endpoint_gets_the_samples_after_the_keyword_with_the_pre_roll_and_its_transcript_is_an_event(
        out_dir, clip, tmp_path):
    wav, pcm = clip
    ep = Endpoint()
    try:
        p = run(out_dir, wav, tmp_path, "--post", ep.url)
    finally:
        ep.close()
    assert p.returncode == 0, p.stderr[-3000:]
    assert "FWT:CAPCFG rate=16000 pre=4800 post=48000 frame=256 inference=continues" in p.stdout
    assert "capture   3.3 s per detection (0.3 s pre-roll)" in p.stdout  # the build report's line
    assert "building with --capture 3s" in p.stderr
    [upload] = ep.uploads
    got = wav_samples(upload)
    start = detection_start(p.stdout)
    assert len(got) == PRE + POST and start > 0
    assert np.array_equal(got, pcm[start:start + PRE + POST])  # every sample, in order, from 0.3 s before
    assert re.search(r"^FWT:CAPEND n=\d+ sent=52800 lost=0 overrun=0$", p.stdout, re.M)
    events = [line for line in p.stdout.splitlines() if line.startswith("-- handoff yes")]
    assert events == ["-- handoff yes (3.30 s): post ok; transcript: 'my own endpoint heard it' --"]
    assert not list((tmp_path / "spool").glob("*.wav"))  # delivered: not kept


def test_stt_serve_as_the_endpoint_meets_expect_transcript(out_dir, clip, tmp_path):
    pytest.importorskip("pocketsphinx", reason="pip install pocketsphinx for 'fwtool stt-serve'")
    wav, _ = clip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([sys.executable, "-m", "fwtool", "stt-serve", "--port", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        p = run(out_dir, wav, tmp_path, "--post", f"http://127.0.0.1:{port}/v1/audio/transcriptions",
                "--expect-transcript", "weather")
        miss = run(out_dir, wav, tmp_path, "--post", f"http://127.0.0.1:{port}/v1/audio/transcriptions",
                   "--expect-transcript", "kitchen lights")
    finally:
        srv.terminate()
        srv.wait(10)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "transcript: 'what is the weather tomorrow'" in p.stdout
    assert miss.returncode == 8 and "no handoff transcript matched" in miss.stderr


def test_an_endpoint_that_is_down_leaves_the_capture_on_disk_and_the_reading_goes_on(out_dir, clip, tmp_path):
    wav, pcm = clip
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = run(out_dir, wav, tmp_path, "--post", f"http://127.0.0.1:{port}/v1/audio/transcriptions", "--retries", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    fails = [line for line in p.stdout.splitlines() if line.startswith("-- handoff yes")]
    assert len(fails) == 1 and "post failed: cannot reach" in fails[0] and "after 2 attempts" in fails[0]
    [kept] = (tmp_path / "spool").glob("*.wav")
    start = detection_start(p.stdout)
    assert np.array_equal(wav_samples(kept.read_bytes()), pcm[start:start + PRE + POST])
    assert json.loads(kept.with_suffix(".json").read_text())["handlers"][0]["ok"] is False
    # the reader never waited for the endpoint: every inference of the clip was printed and summed up
    frames = len(pcm) // HOP
    infs = sum(1 for e in range(5, frames + 1, 5) if e >= 49)
    assert sum(line.startswith("FWT:AINF") for line in p.stdout.splitlines()) == infs
    assert f"audio     {infs} inferences" in p.stderr


def test_the_audio_classifier_captures_too(real_build_reason, emulator_ready, fire_alarm, tmp_path):
    """The Pico fire-alarm classifier with --capture: a T3 smoke-alarm pattern (3 kHz square, sox-like, made here)
    after 1 s of quiet noise; --exec gets the WAV, equal to the stream from 0.3 s before the detection."""
    if real_build_reason:
        pytest.skip(real_build_reason)
    t = np.arange(RATE // 2) / RATE
    on = (np.sign(np.sin(2 * np.pi * 3000 * t)) * 8000).astype(np.int16)
    off = np.zeros(RATE // 2, np.int16)
    noise = np.random.default_rng(1).normal(0, 300, 2 * RATE).astype(np.int16)
    pcm = np.concatenate([noise[:RATE], on, off, on, off, on, off, off, off, noise])
    wav = tmp_path / "alarm.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    p = subprocess.run([sys.executable, "-m", "fwtool", "run", "-b", "pico", "--app", "audio_classifier", "-m",
                        str(fire_alarm), "--out", str(tmp_path / "build"), "--emulator", "--audio", str(wav),
                        "--on-detect", "class_0", "--record", "2s", "--exec", "true", "--keep-captures",
                        "--spool", str(tmp_path / "spool")], capture_output=True, text=True, timeout=2400,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "FWT:CAPCFG rate=16000 pre=4800 post=32000 frame=256 inference=continues" in p.stdout
    [kept] = (tmp_path / "spool").glob("*.wav")
    det = next(line for line in p.stdout.splitlines() if line.startswith("FWT:DETECT"))
    n = det.split("n=")[1].split()[0]
    ainf = next(line for line in p.stdout.splitlines() if line.startswith(f"FWT:AINF n={n} "))
    start = (int(ainf.split("frame=")[1].split()[0]) + 1) * 128 - PRE  # hop 128: frames pushed so far
    got = wav_samples(kept.read_bytes())
    assert len(got) == PRE + 32000 and np.array_equal(got, pcm[start:start + len(got)])
    assert sum(line.startswith("FWT:DETECT") for line in p.stdout.splitlines()) >= 2  # inference went on
    assert p.stdout.count("FWT:CAPTURE ") == 1  # detections during a capture start none
