"""micro_speech features on the host: TFLM's ``audio_preprocessor_int8.tflite`` run frame by frame.

The preprocessor model takes one int16 [1, 480] frame (30 ms) and returns int8 [40]. It is stateful: its
noise-reduction (FilterBankSpectralSubtraction) and PCAN ops keep per-channel estimates between invocations.
tflite-micro's micro_speech example (micro_speech_test.cc GenerateFeatures, evaluate.py generate_features) creates
(or resets) the interpreter once per clip, then invokes it for frames at 0, 320, 640, ... samples while a whole
480-sample frame remains, at most 49 frames. This module does exactly that, with the same TFLM kernels the device
compiles (the ``tflite-micro`` wheel's interpreter), so host and device features agree byte for byte.

The model file comes from tflite-micro (tensorflow/lite/micro/examples/micro_speech/models/): an explicit path,
else ``FWTOOL_MICRO_SPEECH_DIR`` (the micro_speech example folder, its models/ folder, or a folder holding the
.tflite), else the pinned tflite-micro vendor tree (``fwtool vendor sync tflite-micro``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fwtool.core import vendor
from fwtool.core.errors import BadInput, MissingTool
from fwtool.model import host

from .params import KWS_FEATURES, KWS_STRIDE, KWS_WINDOW, FrontEnd

PREPROCESSOR = "audio_preprocessor_int8.tflite"
CLASSIFIER = "micro_speech_quantized.tflite"
ENV_DIR = "FWTOOL_MICRO_SPEECH_DIR"
LABELS = ("silence", "unknown", "yes", "no")
EXAMPLE_PATH = "tensorflow/lite/micro/examples/micro_speech"
VENDOR_NAME = "tflite-micro"  # vendor/manifest.toml entry holding the example


def _vendor_dir() -> Path | None:
    """micro_speech/models in the tflite-micro vendor tree (fwtool vendor sync tflite-micro), if it is there."""
    dep = vendor.manifest().get(VENDOR_NAME)
    if dep is None:
        return None
    try:
        root = vendor.require(dep)  # fetched on first use unless offline
    except MissingTool:
        return None
    return root / EXAMPLE_PATH / "models"


def find_model(name: str = PREPROCESSOR, model_dir: str | os.PathLike | None = None) -> Path:
    """Path of a micro_speech model file. Raises MissingTool.

    Looks in ``model_dir`` (if given), else ``$FWTOOL_MICRO_SPEECH_DIR``, else the tflite-micro vendor tree; a
    folder may be the example folder, its models/ folder, or any folder holding the .tflite (or the file itself).
    """
    if model_dir:
        bases, origin = [Path(model_dir)], "the given path"
    elif os.environ.get(ENV_DIR):
        bases, origin = [Path(os.environ[ENV_DIR])], ENV_DIR
    else:
        vd = _vendor_dir()
        bases, origin = ([vd] if vd else []), "the tflite-micro vendor tree"
    for base in bases:
        if base.is_file() and base.name == name:
            return base
        for cand in (base / name, base / "models" / name, base / EXAMPLE_PATH / "models" / name):
            if cand.is_file():
                return cand
    where = f"{bases[0]} (from {origin})" if bases else "the tflite-micro vendor tree is not synced"
    error = vendor.TreeUnavailable if not bases else MissingTool  # no tree (offline or its fetch failed)
    raise error(f"the kws front end needs TFLM's {name}; not found: {where}",
                      f"run 'fwtool vendor sync tflite-micro' (or point {ENV_DIR} at a folder holding "
                      f"{EXAMPLE_PATH}/models/{name})")


class Preprocessor:
    """The micro_speech audio preprocessor: ``frame(int16[480]) -> int8[40]``, stateful until ``reset()``."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else find_model(PREPROCESSOR)
        try:
            self._it = host.load_runtime().Interpreter.from_file(str(self.path))
        except Exception as e:  # the runtime raises RuntimeError/ValueError with TFLM's message
            raise BadInput(f"{self.path.name} does not load in the TFLM interpreter: {e}",
                           f"use {PREPROCESSOR} from tflite-micro's {EXAMPLE_PATH}/models") from e
        inp, out = self._it.get_input_details(0), self._it.get_output_details(0)
        in_shape, out_shape = tuple(int(d) for d in inp["shape"]), tuple(int(d) for d in out["shape"])
        if (in_shape[-1], np.dtype(inp["dtype"]), out_shape[-1], np.dtype(out["dtype"])) != (
                KWS_WINDOW, np.int16, KWS_FEATURES, np.int8):
            raise BadInput(f"{self.path.name} maps {np.dtype(inp['dtype'])}{list(in_shape)} to "
                           f"{np.dtype(out['dtype'])}{list(out_shape)}; the kws front end needs int16[1, 480] -> "
                           "int8[40]", f"use {PREPROCESSOR} from tflite-micro's {EXAMPLE_PATH}/models")

    def reset(self) -> None:
        """Forget the noise/PCAN estimates (the example builds a fresh interpreter per clip; same effect)."""
        self._it.reset()

    def frame(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.int16).reshape(1, KWS_WINDOW)
        self._it.set_input(x, 0)
        self._it.invoke()
        return np.asarray(self._it.get_output(0), dtype=np.int8).reshape(KWS_FEATURES).copy()

    def run(self, pcm: np.ndarray, max_frames: int | None = None) -> np.ndarray:
        """Frames at 0, 320, 640, ... while 480 samples remain (continuing the current state): int8 [n, 40]."""
        pcm = _as_pcm(pcm)
        n = 0 if len(pcm) < KWS_WINDOW else 1 + (len(pcm) - KWS_WINDOW) // KWS_STRIDE
        if max_frames is not None:
            n = min(n, max_frames)
        out = np.empty((n, KWS_FEATURES), dtype=np.int8)
        for k in range(n):
            out[k] = self.frame(pcm[k * KWS_STRIDE: k * KWS_STRIDE + KWS_WINDOW])
        return out


def features(pcm_int16: np.ndarray, fe: FrontEnd, preprocessor: Preprocessor | None = None) -> np.ndarray:
    """One model input: int8 [fe.frames, 40] from a clip, state reset first (micro_speech's GenerateFeatures)."""
    pcm = _as_pcm(pcm_int16)
    if len(pcm) < fe.clip_samples:
        raise BadInput(f"the clip has {len(pcm)} samples ({len(pcm) / fe.sample_rate:.3f} s); {fe.frames} kws "
                       f"frames need {fe.clip_samples} ({fe.clip_samples / fe.sample_rate:.3f} s)",
                       "pad the clip with silence: sox in.wav out.wav pad 0 1 trim 0 1")
    pp = preprocessor or Preprocessor()
    pp.reset()
    return pp.run(pcm, max_frames=fe.frames)


def stream_features(pcm_int16: np.ndarray, fe: FrontEnd, preprocessor: Preprocessor | None = None) -> np.ndarray:
    """Every frame the device computes on a stream starting with these samples (state from boot, zeroed history).

    Like the classifier, the device keeps window - hop = 160 samples of history, zeroed at start, and runs one
    frame per 320 new samples without ever resetting the preprocessor.
    """
    pcm = _as_pcm(pcm_int16)
    pp = preprocessor or Preprocessor()
    pp.reset()
    return pp.run(np.concatenate([np.zeros(fe.window - fe.hop, np.int16), pcm]))


WARM_UP_SECONDS = 1.0  # Silicon Labs' MLTK pads 1 s of audio before every training clip for the same reason


def warm_up_frames(fe: FrontEnd, seconds: float = WARM_UP_SECONDS) -> int:
    """Frames of pre-roll: at least ``seconds`` of them, rounded up so that the clip's last frame completes a
    device inference (frames before + fe.frames is a multiple of fe.columns_per_inference): 51 for 1 s."""
    w = max(0, int(round(seconds * fe.sample_rate / fe.hop)))
    while (w + fe.frames) % fe.columns_per_inference:
        w += 1
    return w


def pre_roll(background: np.ndarray, fe: FrontEnd, seconds: float = WARM_UP_SECONDS, offset: int = 0) -> np.ndarray:
    """The background samples that go before a clip so the clip starts on a frame boundary of the device's stream:
    ``warm_up_frames * hop - (window - hop)`` samples (16160 for 1 s) from ``offset``, the recording repeated if it
    is shorter. Streamed from boot (history zeroed), pre-roll + clip puts the clip's 49 frames exactly where the
    device computes them, after the preprocessor has adapted to the background."""
    bg = _as_pcm(background)
    need = warm_up_frames(fe, seconds) * fe.hop - (fe.window - fe.hop)
    if need <= 0:
        return np.zeros(0, np.int16)
    if len(bg) == 0:
        raise BadInput("the warm-up background recording holds no samples",
                       "record the board's background: fwtool record --label background --seconds 10")
    start = offset % len(bg)
    return np.resize(np.roll(bg, -start), need).astype(np.int16)


def warm_features(pcm_int16: np.ndarray, background: np.ndarray, fe: FrontEnd,
                  preprocessor: Preprocessor | None = None, seconds: float = WARM_UP_SECONDS,
                  offset: int = 0) -> np.ndarray:
    """One model input in the device's listening state: int8 [fe.frames, 40] of the clip after ``seconds`` of
    ``background`` streamed from boot, the pre-roll's frames dropped. Equal, row for row, to what the kws firmware
    computes for the clip when it has heard that background first (``stream_features(pre_roll + clip)``)."""
    pcm = _as_pcm(pcm_int16)
    if len(pcm) < fe.clip_samples:
        raise BadInput(f"the clip has {len(pcm)} samples ({len(pcm) / fe.sample_rate:.3f} s); {fe.frames} kws "
                       f"frames need {fe.clip_samples} ({fe.clip_samples / fe.sample_rate:.3f} s)",
                       "pad the clip with silence: sox in.wav out.wav pad 0 1 trim 0 1")
    w = warm_up_frames(fe, seconds)
    frames = stream_features(np.concatenate([pre_roll(background, fe, seconds, offset), pcm[: fe.clip_samples]]),
                             fe, preprocessor)
    return frames[w: w + fe.frames]


class Classifier:
    """micro_speech_quantized.tflite on the TFLM interpreter: int8 features [49, 40] -> scores per label."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else find_model(CLASSIFIER)
        self._it = host.load_runtime().Interpreter.from_file(str(self.path))
        out = self._it.get_output_details(0)["quantization_parameters"]
        self.out_scale, self.out_zero_point = float(out["scales"][0]), int(out["zero_points"][0])

    def scores(self, feats: np.ndarray) -> np.ndarray:
        self._it.set_input(np.asarray(feats, dtype=np.int8).reshape(1, -1), 0)
        self._it.invoke()
        q = np.asarray(self._it.get_output(0)).reshape(-1).astype(np.float32)
        return (q - self.out_zero_point) * self.out_scale


FIRST_KEYWORD = 2  # micro_speech's labels: silence, unknown, then the keywords


def detections(outputs, out_scale: float, out_zp: int, fe: FrontEnd, labels) -> list[dict]:
    """The kws app's FWT:DETECT rule, in the firmware's float32 order (templates/apps/kws/main.cpp.j2):
    inference n's scores go to ring slot (n - 1) % fe.smoothing; each keyword's (label index >= 2) mean over the
    filled slots, summed in slot order; the best keyword with mean >= fe.threshold is detected unless a detection
    happened in the previous fe.smoothing - 1 inferences."""
    avg_n, thr = max(1, fe.smoothing), np.float32(fe.threshold)
    ring: list = [None] * avg_n
    found, last = [], 0
    for n, q in enumerate(outputs, start=1):
        ring[(n - 1) % avg_n] = (np.asarray(q, np.float32) - np.float32(out_zp)) * np.float32(out_scale)
        have = min(n, avg_n)
        best, best_score = -1, np.float32(0.0)
        for i in range(FIRST_KEYWORD, len(ring[0])):
            total = np.float32(0.0)
            for k in range(have):
                total = np.float32(total + ring[k][i])
            mean = np.float32(total / np.float32(have))
            if mean >= thr and mean > best_score:
                best, best_score = i, mean
        if best >= 0 and (last == 0 or n - last >= avg_n):
            found.append({"n": n, "label": labels[best] if best < len(labels) else "?"})
            last = n
    return found


def _as_pcm(pcm) -> np.ndarray:
    a = np.asarray(pcm)
    if a.ndim != 1 or a.dtype != np.int16:
        raise BadInput(f"audio samples must be a 1-D int16 array (16-bit PCM), got {a.dtype} {a.shape}",
                       "read clips with fwtool.audio.wav.read_wav")
    return a
