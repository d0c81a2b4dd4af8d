"""Issue 28 host side: ``fwtool monitor --on-detect`` against a fake board on socket:// that prints FWT:DETECT and
then streams the capture as the recorder app's FWR frames (this fake models only the console protocol; the real
firmware side, `fwtool build --capture`, runs in test_capture_emulator.py). Endpoints are real local servers started by the tests."""
from __future__ import annotations

import email.parser
import http.server
import io
import json
import socket
import sys
import threading
import time
import wave

import numpy as np
import pytest

from fwtool.audio.framing import rec_frame
from fwtool.cli import main
from fakes_serial import SocketBoard

SECRET = "sk-test-Zq81sEcReT-4471"
RATE = 16000


def start(fn):
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def fake_firmware(board, pcm, ticks_after=30, tick_s=0.02, label="yes", corrupt=()):
    """Lines, a detection, the capture as FWR frames (text lines between them), then more lines."""
    def fw():
        if not board.wait_host(15):
            return
        for k in range(5):
            board.write_line(f"tick {k}")
        board.write_line(f"FWT:DETECT n=7 label={label} score=0.9100")
        for i, seq in enumerate(range(0, len(pcm), 512)):
            f = bytearray(rec_frame(seq, pcm[seq:seq + 512]))
            if i in corrupt:
                f[20] ^= 0xFF  # a sample flipped on the link: the CRC fails, the frame is dropped
            board.write(bytes(f))
            if i % 8 == 3:
                board.write_line(f"between frames {i}")
        for k in range(5, 5 + ticks_after):
            board.write_line(f"tick {k}")
            time.sleep(tick_s)
    return start(fw)


def invoke(capsys, args):
    with pytest.raises(SystemExit) as e:
        main(["monitor", "--no-input", "--json", *args])
    out, err = capsys.readouterr()
    recs = [json.loads(x) for x in out.splitlines() if x.strip()]
    return e.value.code, recs, err


def wav_samples(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (RATE, 2, 1)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def clip(seconds=1.0, seed=1):
    return np.random.default_rng(seed).integers(-20000, 20000, int(seconds * RATE)).astype(np.int16)


def handoffs(recs):
    return [r for r in recs if r["type"] == "handoff"]


class Endpoint:
    """A local HTTP server on 127.0.0.1; ``mode``: ok | 500 | garbage | hang."""

    def __init__(self, mode="ok", text="turn on the kitchen lights", hang_s=5.0):
        self.requests: list[dict] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                msg = email.parser.BytesParser().parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                         for p in msg.get_payload()} if msg.is_multipart() else {}
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "parts": parts})
                if mode == "hang":
                    time.sleep(hang_s)
                code, answer = {"ok": (200, json.dumps({"text": text}).encode()), "500": (500, b"oops"),
                                "garbage": (200, b"<html>not json</html>"), "hang": (200, b"{}")}[mode]
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        start(self.srv.serve_forever)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/v1/audio/transcriptions"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_exec_sees_wav_and_description_and_its_output_goes_into_the_event(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pcm = clip(1.0)
    board = SocketBoard()
    fake_firmware(board, pcm)
    script = tmp_path / "h.py"
    script.write_text("import os, json, shutil\n"
                      "json.dump({k: os.environ[k] for k in ('FWTOOL_WAV', 'FWTOOL_CAPTURE', 'FWTOOL_LABEL')},"
                      " open('env.json', 'w'))\n"
                      "shutil.copy(os.environ['FWTOOL_WAV'], 'got.wav')\nprint('heard it')\nprint('second')\n")
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "no,yes", "--record", "1s",
                                      "--exec", f"{sys.executable} {script}", "--expect", "tick 34",
                                      "--timeout", "20"])
    board.close()
    assert code == 0, err
    [ev] = handoffs(recs)
    [r] = ev["handlers"]
    assert (r["handler"], r["exit_code"], r["output"], ev["ok"]) == ("exec", 0, "heard it", True)
    env = json.loads((tmp_path / "env.json").read_text())
    desc = json.loads(env["FWTOOL_CAPTURE"])
    assert env["FWTOOL_LABEL"] == "yes" and desc["label"] == "yes" and desc["samples"] == RATE
    assert desc["dropped"] == 0 and env["FWTOOL_WAV"].endswith(".wav")
    assert np.array_equal(wav_samples((tmp_path / "got.wav").read_bytes()), pcm)
    texts = [r.get("text") for r in recs if r["type"] == "other"]
    assert "between frames 3" in texts and "tick 34" in texts  # lines between frames are not lost
    assert not any("FWR" in (t or "") for t in texts)
    assert not list((tmp_path / "fwtool-captures").glob("*.wav"))  # all handlers ok: the spool copy is removed


def test_post_multipart_openai_format_transcript_and_key_never_shown(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FWTOOL_POST_KEY", SECRET)
    pcm = clip(1.5, seed=2)
    board = SocketBoard()
    fake_firmware(board, pcm, ticks_after=200)
    ep = Endpoint()
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--record", "1500ms",
                                      "--post", ep.url, "--expect-transcript", "kitchen", "--timeout", "20",
                                      "-v", "--log", str(tmp_path / "m.log")])
    board.close()
    ep.close()
    assert code == 0, err
    [req] = ep.requests
    assert req["path"] == "/v1/audio/transcriptions" and req["auth"] == f"Bearer {SECRET}"
    assert req["parts"]["model"] == b"whisper-1"
    assert np.array_equal(wav_samples(req["parts"]["file"]), pcm)
    [ev] = handoffs(recs)
    assert ev["transcript"] == "turn on the kitchen lights" and ev["ok"]
    assert recs[-1]["type"] == "result" and "kitchen" in recs[-1]["reason"]
    logs = [r for r in recs if r["type"] == "handoff_log"]
    assert logs and "***" in logs[0]["message"]
    everything = json.dumps(recs) + err + (tmp_path / "m.log").read_text()
    assert SECRET not in everything and SECRET[3:15] not in everything


def test_post_refuses_credentials_in_the_url(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["monitor", "--no-input", "--port", "socket://127.0.0.1:1", "--on-detect", "yes",
              "--post", f"http://u:{SECRET}@127.0.0.1:9/x"])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and "error:" in err and "fix:" in err
    assert SECRET not in out + err


def wyoming_server(text, got):
    """A Wyoming ASR server: reads events with the `wyoming` package when installed (else our own reader)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        r, w = conn.makefile("rb"), conn.makefile("wb")
        try:
            from wyoming.event import read_event, write_event  # noqa: PLC0415 - optional in the test

            def rd():
                ev = read_event(r)
                return None if ev is None else (ev.type, ev.data or {}, ev.payload or b"")

            def wr(kind, data):
                from wyoming.event import Event  # noqa: PLC0415
                write_event(Event(type=kind, data=data), w)
            got["lib"] = True
        except ImportError:
            from fwtool.monitor.handlers import read_wy_event, wy_event

            rd = lambda: read_wy_event(r)  # noqa: E731

            def wr(kind, data):
                w.write(wy_event(kind, data))
                w.flush()
        audio = bytearray()
        while True:
            ev = rd()
            if ev is None:
                break
            got.setdefault("types", []).append(ev[0])
            if ev[0] == "audio-start":
                got["start"] = ev[1]
            if ev[0] == "audio-chunk":
                audio += ev[2]
            if ev[0] == "audio-stop":
                got["audio"] = bytes(audio)
                wr("transcript", {"text": text})
                break
        conn.close()
        srv.close()

    start(serve)
    return f"tcp://127.0.0.1:{srv.getsockname()[1]}"


def test_wyoming_sequence_and_transcript(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pcm = clip(1.0, seed=3)
    got: dict = {}
    url = wyoming_server("what is the weather tomorrow", got)
    board = SocketBoard()
    fake_firmware(board, pcm, ticks_after=200)
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--record", "1s",
                                      "--wyoming", url, "--expect-transcript", "weather", "--timeout", "20"])
    board.close()
    assert code == 0, err
    t = got["types"]
    assert t[0] == "transcribe" and t[1] == "audio-start" and t[-1] == "audio-stop"
    assert set(t[2:-1]) == {"audio-chunk"}
    assert got["start"] == {"rate": 16000, "width": 2, "channels": 1}
    assert np.array_equal(np.frombuffer(got["audio"], dtype="<i2"), pcm)
    [ev] = handoffs(recs)
    assert ev["transcript"] == "what is the weather tomorrow"
    print("wyoming package used:", got.get("lib", False))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_endpoint_down_spooled_retried_one_line_monitor_kept_reading(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pcm = clip(1.0, seed=4)
    board = SocketBoard()
    fake_firmware(board, pcm, ticks_after=60, tick_s=0.05)
    url = f"http://127.0.0.1:{free_port()}/v1/audio/transcriptions"
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--record", "1s", "--post", url,
                                      "--retries", "2", "--expect", "tick 64", "--timeout", "20"])
    board.close()
    assert code == 0, err
    [ev] = handoffs(recs)
    [r] = ev["handlers"]
    assert not ev["ok"] and r["attempts"] == 3 and "cannot reach" in r["error"]
    assert "\n" not in ev["message"] and "post failed" in ev["message"]
    assert ev["kept"]
    wavs = list((tmp_path / "fwtool-captures").glob("yes_*.wav"))
    assert len(wavs) == 1 and np.array_equal(wav_samples(wavs[0].read_bytes()), pcm)
    desc = json.loads(wavs[0].with_suffix(".json").read_text())
    assert desc["handlers"][0]["ok"] is False
    ticks = [r["text"] for r in recs if r["type"] == "other" and r["text"].startswith("tick")]
    assert ticks == [f"tick {k}" for k in range(65)]
    # the retries (0.5 s + 1 s) ran while lines kept coming: the handoff event is not after the last line
    i_ev = recs.index(ev)
    assert any(r.get("text") == "tick 64" for r in recs[i_ev:]), "the monitor waited for the retries"


def test_hanging_endpoint_monitor_keeps_reading(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pcm = clip(0.5, seed=5)
    board = SocketBoard()
    fake_firmware(board, pcm, ticks_after=60, tick_s=0.05)
    ep = Endpoint("hang", hang_s=4.0)
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--record", "500ms",
                                      "--post", ep.url, "--retries", "0", "--handler-timeout", "1.5",
                                      "--expect", "tick 64", "--timeout", "20"])
    board.close()
    ep.close()
    assert code == 0, err
    [ev] = handoffs(recs)
    assert "no answer" in ev["handlers"][0]["error"] and ev["kept"]
    i_ev = recs.index(ev)
    during = [r for r in recs[:i_ev] if r["type"] == "other" and r["text"].startswith("tick")]
    assert len(during) > 5 + 20  # ~1.5 s of 50 ms ticks were read while the request hung
    ticks = [r["text"] for r in recs if r["type"] == "other" and r["text"].startswith("tick")]
    assert ticks == [f"tick {k}" for k in range(65)]


@pytest.mark.parametrize("mode,attempts,why", [("500", 2, "HTTP 500"), ("garbage", 1, "not a transcript")])
def test_endpoint_500_or_garbage(tmp_path, capsys, monkeypatch, mode, attempts, why):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FWTOOL_POST_HEADERS", json.dumps({"api-key": SECRET}))
    pcm = clip(0.5, seed=6)
    board = SocketBoard()
    fake_firmware(board, pcm, ticks_after=40, tick_s=0.05)
    ep = Endpoint(mode)
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--record", "0.5s",
                                      "--post", ep.url, "--retries", "1", "--expect", "tick 44",
                                      "--timeout", "20", "-v"])
    board.close()
    ep.close()
    assert code == 0, err
    [ev] = handoffs(recs)
    r = ev["handlers"][0]
    assert not r["ok"] and r["attempts"] == attempts and why in r["error"]
    assert len(ep.requests) == attempts and ev["kept"]
    assert SECRET not in json.dumps(recs) + err


def test_expect_transcript_not_met_times_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    board = SocketBoard()
    fake_firmware(board, clip(0.5), ticks_after=10)
    ep = Endpoint(text="something else")
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--record", "0.5s",
                                      "--post", ep.url, "--expect-transcript", "lights", "--timeout", "3"])
    board.close()
    ep.close()
    assert code == 7, err
    assert "--expect-transcript 'lights'" in recs[-1]["reason"]
    assert handoffs(recs)[0]["transcript"] == "something else"


def test_no_frames_after_detection_is_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    board = SocketBoard()
    fake_firmware(board, np.zeros(0, dtype=np.int16), ticks_after=60, tick_s=0.05)
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--exec", "true",
                                      "--expect", "tick 64", "--timeout", "20"])
    board.close()
    assert code == 0, err
    [ev] = handoffs(recs)
    assert not ev["ok"] and "no audio frames" in ev["error"]


def test_handler_options_need_on_detect(capsys):
    with pytest.raises(SystemExit) as e:
        main(["monitor", "--no-input", "--exec", "true"])
    assert e.value.code == 2
    assert "--on-detect" in capsys.readouterr().err



def test_headers_from_the_config_file_plain_view_one_line(tmp_path, capsys, monkeypatch):
    from fwtool.core import config
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[handoff]\nheaders = {{ "api-key" = "{SECRET}" }}\n')
    monkeypatch.setenv("FWTOOL_CONFIG", str(cfg))
    config.load.cache_clear()
    board = SocketBoard()
    fake_firmware(board, clip(0.5, seed=7), ticks_after=60, tick_s=0.05)
    ep = Endpoint()
    try:
        with pytest.raises(SystemExit) as e:
            main(["monitor", "--no-input", "--plain", "--port", board.url, "--on-detect", "yes", "--record", "0.5s",
                  "--post", ep.url, "--post-format", "wav", "--expect", "tick 64", "--timeout", "20", "-v"])
    finally:
        config.load.cache_clear()
        board.close()
        ep.close()
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    [req] = ep.requests
    assert req["headers"].get("api-key") == SECRET and req["headers"]["content-type"] == "audio/wav"
    lines = [ln for ln in out.splitlines() if "handoff yes" in ln]
    assert len(lines) == 1 and "transcript: 'turn on the kitchen lights'" in lines[0]
    assert "api-key: ***" in out
    assert SECRET not in out + err


@pytest.mark.parametrize("bad", ["0s", "abc", "61s"])
def test_bad_record_duration_is_one_error_and_fix(capsys, bad):
    with pytest.raises(SystemExit) as e:
        main(["monitor", "--no-input", "--on-detect", "yes", "--exec", "true", "--record", bad])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "error:" in err and "fix:" in err and "Traceback" not in err


def test_run_passes_on_detect_to_the_monitor_and_takes_it_with_audio(monkeypatch, fire_alarm, tmp_path):
    from click.testing import CliRunner

    import fwtool.commands.run as run_cmd
    import fwtool.flash
    import fwtool.monitor.session as session
    from fwtool.cli import cli
    from fwtool.firmware.result import BuildResult

    report = {"files": {"uf2": str(tmp_path / "firmware.uf2")}, "board": {"name": "pico", "title": "Pico"},
              "model": {"name": "m", "sha256": "ab" * 32}, "arena": {"arena_bytes": 1}, "sizes": {}, "usage": {},
              "build": {"seconds": 1.0}}
    calls = {}
    monkeypatch.setattr(run_cmd, "run_build", lambda opts, verbose=False: calls.setdefault("build", opts)
                        and BuildResult.from_report(report, tmp_path))
    monkeypatch.setattr(fwtool.flash, "flash_image", lambda uf2, **kw: {
        "serial": "E6614C311B4A", "port": "/dev/ttyACM7", "bytes_written": 4096, "bytes_skipped": 0,
        "verified": True, "method": "picoboot", "seconds": 1.5})
    monkeypatch.setattr(session, "run_monitor", lambda opts, **kw: calls.setdefault("monitor", opts) and 0)
    r = CliRunner().invoke(cli, ["run", "-b", "pico", "-m", str(fire_alarm), "--serial", "E6614C311B4A",
                                 "--on-detect", "yes,no", "--record", "2s", "--post", "http://127.0.0.1:9/v1/x",
                                 "--expect-transcript", "lights", "--json"])
    assert r.exit_code == 0, r.output
    h = calls["monitor"].handoff
    assert (h.labels, h.record_s, h.post_url, h.expect_transcript) == (("yes", "no"), 2.0, "http://127.0.0.1:9/v1/x",
                                                                      "lights")
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    calls.clear()
    r = CliRunner().invoke(cli, ["run", "-b", "pico", "-m", str(fire_alarm), "--on-detect", "yes", "--exec", "true",
                                 "--audio", str(wav)])
    # --on-detect with --audio is accepted now (the audio stream path captures, test_capture_emulator.py): the bad
    # WAV is what is refused, before the build
    assert "not supported" not in str(r.exception) and int(r.exception.code) == 3 and "build" not in calls


def speech(tmp_path, text):
    import shutil
    import subprocess
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (speech is generated at test time)")
    raw, out = tmp_path / "raw.wav", tmp_path / "s16.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True, capture_output=True)
    return wav_samples(out.read_bytes())


def test_stt_serve_endpoint_meets_expect_transcript(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pocketsphinx", reason="pip install pocketsphinx for the local speech-to-text endpoint")
    from fwtool.audio.stt import PocketSphinx, make_server
    monkeypatch.chdir(tmp_path)
    pcm = speech(tmp_path, "what is the weather tomorrow")
    pcm = np.concatenate([np.zeros(4800, np.int16), pcm, np.zeros(4800, np.int16)])
    srv = make_server("127.0.0.1", 0, PocketSphinx())
    start(srv.serve_forever)
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1/audio/transcriptions"
    board = SocketBoard()
    fake_firmware(board, pcm, ticks_after=400)
    try:
        code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes",
                                          "--record", f"{len(pcm) / RATE:.3f}s", "--post", url,
                                          "--expect-transcript", "weather", "--timeout", "30"])
    finally:
        board.close()
        srv.shutdown()
        srv.server_close()
    assert code == 0, err
    [ev] = handoffs(recs)
    assert "weather" in ev["transcript"]
    print("transcript:", ev["transcript"])


def test_stt_serve_refuses_other_formats(tmp_path):
    pytest.importorskip("pocketsphinx", reason="pip install pocketsphinx for the local speech-to-text endpoint")
    import urllib.error
    import urllib.request
    from fwtool.audio.stt import PocketSphinx, make_server
    srv = make_server("127.0.0.1", 0, PocketSphinx())
    start(srv.serve_forever)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    req = urllib.request.Request(f"http://127.0.0.1:{srv.server_address[1]}/v1/audio/transcriptions",
                                 data=buf.getvalue(), headers={"Content-Type": "audio/wav"}, method="POST")
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 400 and b"16 kHz" in e.value.read()
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_frame_failing_its_crc_is_a_counted_zero_filled_gap(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pcm = clip(1.0, seed=8)
    board = SocketBoard()
    fake_firmware(board, pcm, corrupt=(5,))
    code, recs, err = invoke(capsys, ["--port", board.url, "--on-detect", "yes", "--record", "1s", "--exec", "false",
                                      "--expect", "tick 34", "--timeout", "20"])
    board.close()
    assert code == 0, err
    [ev] = handoffs(recs)
    assert ev["dropped"] == 512 and "512 samples dropped" in ev["message"]
    assert ev["handlers"][0]["exit_code"] == 1 and ev["kept"]
    [wav] = (tmp_path / "fwtool-captures").glob("*.wav")
    got = wav_samples(wav.read_bytes())
    want = pcm.copy()
    want[5 * 512:6 * 512] = 0
    assert np.array_equal(got, want)
