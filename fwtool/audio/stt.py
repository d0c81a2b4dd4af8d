"""A local speech-to-text endpoint for offline use and tests (``fwtool stt-serve``): the OpenAI-compatible
``POST /v1/audio/transcriptions`` (multipart ``file`` + ``model``; a raw ``audio/wav`` body is accepted too),
answering ``{"text": ...}``, with pocketsphinx (its en-US model ships inside the PyPI wheel: no download).

16 kHz mono 16-bit WAV only (what ``fwtool monitor --on-detect`` sends); anything else is a 400 with the reason.
"""
from __future__ import annotations

import email.parser
import http.server
import io
import json
import threading
import wave

from fwtool.core.errors import MissingTool

MAX_BODY = 16 << 20
ROUTE = "/v1/audio/transcriptions"


class PocketSphinx:
    name = "pocketsphinx"

    def __init__(self):
        try:
            from pocketsphinx import Decoder  # optional extra (fwtool[stt]), 29 MB with its model
        except ImportError as e:
            raise MissingTool("fwtool stt-serve needs pocketsphinx (its English model is inside the wheel)",
                              "pip install pocketsphinx") from e
        self.decoder = Decoder(samprate=16000, loglevel="FATAL")
        self.lock = threading.Lock()

    def transcribe(self, pcm16: bytes) -> str:
        with self.lock:
            d = self.decoder
            d.start_utt()
            d.process_raw(pcm16, full_utt=True)
            d.end_utt()
            hyp = d.hyp()
            return hyp.hypstr if hyp is not None else ""


class BadRequest(Exception):
    pass


def wav_pcm(data: bytes) -> bytes:
    try:
        with wave.open(io.BytesIO(data)) as w:
            fmt = (w.getframerate(), w.getsampwidth(), w.getnchannels())
            if fmt != (16000, 2, 1):
                raise BadRequest(f"need 16 kHz mono 16-bit WAV, got {fmt[0]} Hz, {8 * fmt[1]}-bit, {fmt[2]} ch")
            return w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise BadRequest(f"the file is not a WAV ({e})") from None


def audio_of(content_type: str, body: bytes) -> bytes:
    if content_type.startswith("multipart/form-data"):
        msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        for part in msg.get_payload() if msg.is_multipart() else []:
            if part.get_param("name", header="content-disposition") == "file":
                return wav_pcm(part.get_payload(decode=True) or b"")
        raise BadRequest("no 'file' field in the multipart body")
    if content_type.startswith(("audio/wav", "audio/x-wav", "application/octet-stream")):
        return wav_pcm(body)
    raise BadRequest(f"unsupported Content-Type {content_type!r} (multipart/form-data with 'file', or audio/wav)")


def make_server(host: str, port: int, engine, on_request=None) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                return self._answer(200, {"ok": True, "engine": engine.name})
            return self._answer(404, {"error": {"message": f"POST {ROUTE}"}})

        def do_POST(self):
            if self.path.split("?")[0] != ROUTE:
                return self._answer(404, {"error": {"message": f"POST {ROUTE}"}})
            n = int(self.headers.get("Content-Length") or 0)
            if n <= 0 or n > MAX_BODY:
                return self._answer(413 if n > MAX_BODY else 400, {"error": {"message": "body size"}})
            try:
                pcm = audio_of(self.headers.get("Content-Type", ""), self.rfile.read(n))
            except BadRequest as e:
                return self._answer(400, {"error": {"message": str(e)}})
            text = engine.transcribe(pcm)
            if on_request is not None:
                on_request(len(pcm) // 2, text)
            return self._answer(200, {"text": text})

    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    srv.daemon_threads = True
    return srv
