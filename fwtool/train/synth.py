"""``fwtool dataset synth``: a keyword data set from local text-to-speech (Debian's espeak-ng and flite), as Edge
Impulse and MLTK bootstrap one with cloud TTS — many voices, pitches and speeds, 16 kHz mono 16-bit, 1 s.

Layout: ``OUT/<word>/<engine>-<voice>_nohash_p<pitch>s<speed>.wav`` (Speech Commands' convention: the part before
``_nohash_`` is the speaker, so ``fwtool train``'s split keeps a voice in one set, and ``--holdout '^flite'`` holds
an engine out), ``OUT/_unknown_/`` (other words) and ``OUT/_background_noise_/`` (synthetic noise recordings).
The same options give the same files (sox runs without dither, -D), so a seeded training run is reproducible.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.audio import record, wav
from fwtool.core.errors import BadInput, MissingTool
from fwtool.core.files import atomic_write

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt",
                   "klatt2", "klatt3", "adam", "aunty", "benjamin", "david", "ed", "edward", "grandma", "grandpa",
                   "john", "linda", "max", "paul", "quincy", "rob", "robert", "steph", "travis", "victor", "zac")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
UNKNOWN_WORDS = ("left", "right", "up", "down", "go", "stop", "on", "off", "yes", "no", "one", "two", "cat", "dog",
                 "house", "bed", "wow", "tree")
RATE = 16000


@dataclass(frozen=True)
class Take:
    engine: str
    voice: str
    pitch: int
    speed: int
    word: str
    folder: str

    @property
    def speaker(self) -> str:
        return f"{self.engine}-{self.voice}"

    def name(self) -> str:
        return f"{self.speaker}_nohash_p{self.pitch}s{self.speed}.wav"


def engines_available() -> dict[str, str]:
    return {e: p for e in ("espeak-ng", "flite") if (p := shutil.which(e))}


def voices(engine: str, n: int) -> list[str]:
    if engine == "espeak-ng":
        allv = [f"{a}+{v}" for v in ESPEAK_VARIANTS for a in ESPEAK_ACCENTS]
        # spread over accents and variants: take every k-th of the interleaved list
        step = max(1, len(allv) // max(n, 1))
        return allv[::step][:n]
    return list(FLITE_VOICES[:n])


def speak(take: Take, tmp: Path) -> np.ndarray:
    raw = tmp / f"{take.folder}-{take.name()}"
    if take.engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", take.voice, "-p", str(take.pitch), "-s", str(take.speed), "-w", str(raw), take.word]
    else:  # flite has no pitch option: speed via duration stretch
        cmd = ["flite", "-voice", take.voice, "--setf", f"duration_stretch={160 / take.speed:.3f}", "-t", take.word,
               "-o", str(raw)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    conv = raw.with_suffix(".16k.wav")
    subprocess.run(["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(conv),
                    "norm", "-3"], check=True, capture_output=True, timeout=30)
    pcm = wav.read_wav(conv)
    return _center(pcm)


def _center(pcm: np.ndarray) -> np.ndarray:
    """The word in the middle of exactly 1 s (trimmed of leading/trailing near-silence first)."""
    x = np.asarray(pcm, np.int16)
    loud = np.nonzero(np.abs(x.astype(np.int32)) > 300)[0]
    if len(loud):
        x = x[loud[0]:loud[-1] + 1]
    x = x[:RATE]
    pad = RATE - len(x)
    return np.concatenate([np.zeros(pad // 2, np.int16), x, np.zeros(pad - pad // 2, np.int16)])


def noise(kind: str, seconds: float, seed: int) -> np.ndarray:
    """Synthetic background: white, pink (1/f) or brown noise at about -30 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)
    spec *= {"white": 1.0, "pink": 1 / np.sqrt(f), "brown": 1 / f}[kind]
    x = np.fft.irfft(spec, n)
    x *= 32768 * 10 ** (-30 / 20) / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def synth(words: list[str], out: Path, n_voices: int = 12, pitches=(35, 50, 65), speeds=(140, 175),
          engines: list[str] | None = None, unknown_words: list[str] | None = None, unknown_voices: int = 6,
          noise_seconds: float = 30.0, jobs: int = 2, seed: int = 0,
          on_progress: Callable[[int, int], None] = lambda i, n: None) -> dict:
    """Write the data set; returns a summary. Refuses before writing anything (words, engines, sox)."""
    if not words:
        raise BadInput("no --words given", "e.g. --words yes,no")
    for w in words:
        record.check_label(w)
    have = engines_available()
    wanted = engines or list(have) or ["espeak-ng"]
    missing = [e for e in wanted if e not in have]
    if missing or not wanted:
        raise MissingTool(f"text-to-speech engine {', '.join(missing)} not installed",
                          f"apt-get install {' '.join(missing)}  (Debian/Ubuntu), or choose --engines "
                          f"{','.join(have) or 'espeak-ng'}")
    if not shutil.which("sox"):
        raise MissingTool("sox is not installed (it converts the engines' output to 16 kHz)", "apt-get install sox")
    unknown = [u for u in (UNKNOWN_WORDS if unknown_words is None else unknown_words) if u not in words]
    takes: list[Take] = []
    for e in wanted:
        vs = voices(e, n_voices)
        for w in words:
            takes += [Take(e, v, p, s, w, w) for v in vs for p in (pitches if e == "espeak-ng" else pitches[:1])
                      for s in speeds]
        for i, u in enumerate(unknown):  # each unknown word by a few voices, one take each
            for v in vs[i % len(vs)::max(1, len(vs) // unknown_voices)][:unknown_voices]:
                takes.append(Take(e, v, pitches[len(pitches) // 2], speeds[0], u, "_unknown_"))
    out = Path(out)
    written = 0
    with tempfile.TemporaryDirectory(prefix="fwtool-synth-") as tmp:
        def one(t: Take) -> None:
            pcm = speak(t, Path(tmp))
            name = t.name() if t.folder != "_unknown_" else f"{t.speaker}_nohash_{t.word}.wav"
            atomic_write(out / t.folder / name, record.wav_bytes(pcm))

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for _ in pool.map(one, takes):
                written += 1
                if written % 20 == 0 or written == len(takes):
                    on_progress(written, len(takes))
    bg = []
    for i, kind in enumerate(("white", "pink", "brown") if noise_seconds > 0 else ()):
        p = out / "_background_noise_" / f"{kind}_noise.wav"
        atomic_write(p, record.wav_bytes(noise(kind, noise_seconds, seed + i)))
        bg.append(p.name)
    return {"out": str(out), "words": words, "engines": wanted, "clips": written,
            "per_word": {w: sum(t.word == w and t.folder == w for t in takes) for w in words},
            "unknown": sum(t.folder == "_unknown_" for t in takes), "background": bg,
            "speakers": sorted({t.speaker for t in takes})}
