"""The handoff handlers (run in the handoff worker thread, never in the serial reader's):

* :func:`run_exec` — a user command with the WAV path and a JSON description in its environment
  (``FWTOOL_WAV``, ``FWTOOL_CAPTURE``, ``FWTOOL_LABEL``); exit code and first output line go into the event.
* :func:`post` — HTTP POST: the OpenAI-compatible ``/v1/audio/transcriptions`` multipart (``file`` + ``model``,
  answer ``{"text": ...}``), or a raw ``audio/wav`` body, or an Azure-ML-style JSON body ``{"data": [floats]}``.
  Headers come from the environment only (``FWTOOL_POST_KEY`` -> ``Authorization: Bearer``, ``FWTOOL_POST_HEADERS``
  a JSON object) or the config file's ``[handoff] headers`` table; never from the command line, never printed.
* :func:`wyoming` — the Wyoming protocol (Home Assistant / Rhasspy): ``transcribe``, ``audio-start``,
  ``audio-chunk``…, ``audio-stop`` -> ``transcript``, as JSONL headers + data + payload over TCP.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.core import config
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.escape import terminal

POST_FORMATS = ("openai", "wav", "azure")
WYOMING_CHUNK = 1024  # samples per audio-chunk
MAX_ANSWER = 1 << 20


class Retry(Exception):
    """A failure worth retrying (connection refused/reset, timeout, HTTP 5xx)."""


class Fail(Exception):
    """A failure not worth retrying (HTTP 4xx, an answer that is not a transcript)."""


def check_http_url(url: str) -> None:
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise FwtoolError(f"--post '{terminal(url)}' is not an http(s) URL",
                          "use e.g. --post http://127.0.0.1:8000/v1/audio/transcriptions", code=Exit.USAGE)
    if u.username or u.password:
        raise FwtoolError("--post: credentials in the URL would show in process lists and logs",
                          "drop them from the URL; put the key in FWTOOL_POST_KEY (see docs/detect-then-act.md)",
                          code=Exit.USAGE)


def parse_tcp(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    try:
        port = u.port
    except ValueError:
        port = None
    if u.scheme != "tcp" or not u.hostname or port is None:
        raise FwtoolError(f"--wyoming '{terminal(url)}' is not tcp://HOST:PORT",
                          "use e.g. --wyoming tcp://127.0.0.1:10300", code=Exit.USAGE)
    return u.hostname, port


# ---- secrets -------------------------------------------------------------------------------------------------------
def post_headers() -> dict[str, str]:
    """Extra request headers: the config file's ``[handoff] headers``, then ``FWTOOL_POST_HEADERS`` (JSON object),
    then ``FWTOOL_POST_KEY`` as a bearer token."""
    h: dict[str, str] = {}
    cfg = config.load().get("handoff", {})
    if isinstance(cfg, dict) and isinstance(cfg.get("headers"), dict):
        h.update({str(k): str(v) for k, v in cfg["headers"].items()})
    raw = os.environ.get("FWTOOL_POST_HEADERS")
    if raw:
        try:
            d = json.loads(raw)
        except ValueError:
            d = None
        if not isinstance(d, dict):
            raise Fail("FWTOOL_POST_HEADERS is not a JSON object (e.g. {\"api-key\": \"...\"})")
        h.update({str(k): str(v) for k, v in d.items()})
    key = os.environ.get("FWTOOL_POST_KEY")
    if key:
        h["Authorization"] = f"Bearer {key}"
    return h


def secrets(headers: dict[str, str]) -> list[str]:
    vals = [v for v in headers.values() if v]
    vals += [v.split(" ", 1)[1] for v in vals if " " in v]
    return sorted({v for v in vals if len(v) >= 4}, key=len, reverse=True)


def mask(text: str, headers: dict[str, str]) -> str:
    """``text`` with every header value (and bearer token) replaced by ``***``."""
    for s in secrets(headers):
        text = text.replace(s, "***")
    return text


# ---- retries -------------------------------------------------------------------------------------------------------
def retrying(fn: Callable[[], dict], name: str, retries: int, backoff_s: float,
             sleep: Callable[[float], None] = time.sleep) -> dict:
    attempt, delay = 0, backoff_s
    while True:
        attempt += 1
        try:
            r = fn()
            r.update(handler=name, ok=True, attempts=attempt)
            return r
        except Retry as e:
            if attempt > retries:
                return {"handler": name, "ok": False, "attempts": attempt, "error": str(e)}
            sleep(delay)
            delay *= 2
        except Fail as e:
            return {"handler": name, "ok": False, "attempts": attempt, "error": str(e)}


# ---- exec ----------------------------------------------------------------------------------------------------------
def run_exec(cmd: str, wav: Path, desc: dict, timeout: float) -> dict:
    env = dict(os.environ, FWTOOL_WAV=str(wav), FWTOOL_CAPTURE=json.dumps(desc), FWTOOL_LABEL=str(desc["label"]))
    try:
        p = subprocess.run(cmd, shell=True, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"handler": "exec", "ok": False, "error": f"the command ran longer than {timeout:g} s (killed)"}
    except OSError as e:
        return {"handler": "exec", "ok": False, "error": f"cannot run the command: {e}"}
    out = p.stdout.decode("utf-8", "replace").strip().splitlines()
    first = terminal(out[0])[:200] if out else ""
    r = {"handler": "exec", "ok": p.returncode == 0, "exit_code": p.returncode, "output": first}
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        r["error"] = f"exit {p.returncode}" + (f": {terminal(err[-1])[:200]}" if err else "")
    return r


# ---- post ----------------------------------------------------------------------------------------------------------
def multipart(fields: dict[str, str], file_field: str, filename: str, data: bytes,
              content_type: str = "audio/wav") -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{b}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={b}"


def post(url: str, wav: Path, pcm: np.ndarray, fmt: str, model: str, timeout: float,
         log: Callable[[str], None] | None = None) -> dict:
    headers = post_headers()
    data = wav.read_bytes()
    if fmt == "openai":
        body, ctype = multipart({"model": model, "response_format": "json"}, "file", wav.name, data)
    elif fmt == "wav":
        body, ctype = data, "audio/wav"
    else:
        body = json.dumps({"data": (pcm.astype(np.float32) / 32768.0).round(6).tolist(),
                           "sampling_rate": 16000}).encode()
        ctype = "application/json"
    req = urllib.request.Request(url, data=body, method="POST", headers={**headers, "Content-Type": ctype})
    if log:
        shown = ", ".join(f"{k}: {mask(v, headers)}" for k, v in headers.items()) or "none"
        log(f"POST {url} ({fmt}, {len(body)} bytes; headers {shown})")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = resp.read(MAX_ANSWER + 1)
            status = resp.status
    except urllib.error.HTTPError as e:
        why = f"HTTP {e.code} from {url}"
        raise (Retry(why) if e.code >= 500 or e.code == 429 else Fail(why)) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
            raise Retry(f"no answer from {url} within {timeout:g} s") from None
        raise Retry(f"cannot reach {url}: {mask(str(reason), headers)}") from None
    if log:
        log(f"POST {url}: HTTP {status}, {len(answer)} bytes")
    return {"transcript": transcript_of(answer, url), "status": status}


def transcript_of(answer: bytes, where: str) -> str:
    try:
        d = json.loads(answer.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        d = None
    if isinstance(d, dict) and isinstance(d.get("text"), str):
        return d["text"].strip()
    if isinstance(d, list) and d and isinstance(d[0], str):  # Azure ML scoring scripts often answer ["text"]
        return d[0].strip()
    snippet = terminal(answer[:60].decode("utf-8", "replace"))
    raise Fail(f"the answer from {where} is not a transcript ({{\"text\": ...}}): {snippet!r}")


# ---- wyoming -------------------------------------------------------------------------------------------------------
def wy_event(kind: str, data: dict | None = None, payload: bytes = b"") -> bytes:
    """One Wyoming event: a JSON header line, then the data JSON (``data_length``), then the payload."""
    d = json.dumps(data or {}).encode()
    head = {"type": kind, "version": "1.5.0", "data_length": len(d)}
    if payload:
        head["payload_length"] = len(payload)
    return json.dumps(head).encode() + b"\n" + d + payload


def _read_exact(f, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise Retry("the Wyoming server closed the connection mid-event")
    return b


def read_wy_event(f) -> tuple[str, dict, bytes] | None:
    line = f.readline(MAX_ANSWER)
    if not line:
        return None
    try:
        head = json.loads(line)
        kind = str(head["type"])
    except (ValueError, KeyError, TypeError):
        raise Fail(f"the Wyoming server sent something that is not an event: {terminal(line[:60].decode('utf-8', 'replace'))!r}") from None
    data = dict(head.get("data") or {})
    if head.get("data_length"):
        try:
            data.update(json.loads(_read_exact(f, int(head["data_length"]))))
        except ValueError:
            raise Fail("the Wyoming server sent event data that is not JSON") from None
    payload = _read_exact(f, int(head["payload_length"])) if head.get("payload_length") else b""
    return kind, data, payload


def wyoming(url: str, pcm: np.ndarray, timeout: float, language: str | None = None) -> dict:
    host, port = parse_tcp(url)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            fmt = {"rate": 16000, "width": 2, "channels": 1}
            out = [wy_event("transcribe", {"language": language} if language else {}), wy_event("audio-start", fmt)]
            raw = np.asarray(pcm, dtype="<i2").tobytes()
            step = WYOMING_CHUNK * 2
            for i in range(0, len(raw), step):
                out.append(wy_event("audio-chunk", fmt, raw[i:i + step]))
            out.append(wy_event("audio-stop"))
            s.sendall(b"".join(out))
            f = s.makefile("rb")
            while True:
                ev = read_wy_event(f)
                if ev is None:
                    raise Retry(f"the Wyoming server at {url} closed the connection without a transcript")
                if ev[0] == "transcript":
                    return {"transcript": str(ev[1].get("text", "")).strip()}
                if ev[0] == "error":
                    raise Fail(f"the Wyoming server answered error: {terminal(str(ev[1].get('text', '')))[:200]}")
    except (socket.timeout, TimeoutError):
        raise Retry(f"no transcript from {url} within {timeout:g} s") from None
    except OSError as e:
        raise Retry(f"cannot reach {url}: {e.strerror or e}") from None
