"""``compute(app, wav_paths, model_input)``: the model inputs the device would compute, one per clip, stacked.

This is the API behind ``fwtool features --app audio_classifier|kws [--model M] WAV... -o X.npy``.

Clip policy (one clip = one model input, like training data):
- a clip must hold at least ``fe.clip_samples`` samples (16000 = 1 s for 124x129, 15840 for kws 49x40);
- it may be longer by less than one hop (the unused tail is what frames = 1 + (n - window) // hop drops);
- a longer recording is refused unless ``all_windows=True``, which returns every window the device would run an
  inference on if the recording started at boot (device history zeroed; an inference every
  ``fe.columns_per_inference`` frames once ``fe.frames`` frames exist).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from fwtool.core.errors import BadInput

from . import kws as kws_mod
from . import params, spectrogram, wav


def _front_end(app: str, model_input: params.ModelInput | None) -> params.FrontEnd:
    if model_input is not None:
        return params.for_model(app, model_input)
    if app == "kws":
        return params.kws()
    if app == "audio_classifier":
        raise BadInput("audio_classifier features are quantized with the model's input scale and zero point; no "
                       "model given", "pass the model: fwtool features --app audio_classifier --model M WAV...")
    return params.for_model(app, params.ModelInput((), "int8"))  # raises: unknown app


def default_front_end(app: str) -> params.FrontEnd:
    """The app's front end without a model: classifier 124x129 (q15 magnitudes, no quantization), kws 49x40."""
    if app == "audio_classifier":
        return params.classifier()
    return _front_end(app, None)


def is_quantized(fe: params.FrontEnd) -> bool:
    """Does this front end produce int8 model inputs (else: the classifier's int16 q15 magnitudes)?"""
    return fe.app == "kws" or fe.input_scale > 0


def device_windows(frames: np.ndarray, fe: params.FrontEnd) -> np.ndarray:
    """The model inputs a device runs on, from its frame stream: [n_windows, fe.frames, bins]."""
    ends = range(fe.columns_per_inference, len(frames) + 1, fe.columns_per_inference)
    wins = [frames[e - fe.frames: e] for e in ends if e >= fe.frames]
    return np.stack(wins) if wins else np.zeros((0, fe.frames, fe.bins), frames.dtype)


def check_warm_up(app: str, all_windows: bool) -> None:
    """Refuse a warm-up where it means nothing (the spectrogram keeps no state; a long recording warms itself)."""
    if app != "kws":
        raise BadInput("the audio_classifier spectrogram keeps no state between frames, so a warm-up changes nothing",
                       "drop --warm-up (it is for --app kws, whose noise reduction and PCAN adapt over time)")
    if all_windows:
        raise BadInput("--warm-up and --all-windows exclude each other: a recording streamed from boot warms the "
                       "front end itself", "use --all-windows alone, or --warm-up with 1 s clips")


def compute_pcm(app: str, clips: Iterable[np.ndarray], fe: params.FrontEnd, names: list[str] | None = None,
                all_windows: bool = False, preprocessor=None, warm_up: np.ndarray | None = None,
                warm_up_seconds: float = kws_mod.WARM_UP_SECONDS) -> np.ndarray:
    """Like compute() on int16 arrays already in memory. ``warm_up`` (kws only): a background recording streamed
    for ``warm_up_seconds`` before every clip, its frames dropped (kws.warm_features: the device's state)."""
    if warm_up is not None:
        check_warm_up(app, all_windows)
    out = []
    pp = None
    if app == "kws":
        pp = preprocessor or kws_mod.Preprocessor()
    quant = spectrogram.Quant.of(fe) if app == "audio_classifier" and is_quantized(fe) else None
    raw = app == "audio_classifier" and quant is None  # no model scale: q15 magnitudes (training = mag / 64)
    dtype = np.int16 if raw else np.int8
    for i, pcm in enumerate(clips):
        name = names[i] if names else f"clip {i}"
        if all_windows:
            if raw:
                frames = spectrogram.spectrogram_q15(np.concatenate([np.zeros(fe.window - fe.hop, np.int16),
                                                                     np.asarray(pcm, np.int16)]), fe)
            else:
                frames = (spectrogram.stream_features(pcm, fe, quant) if app == "audio_classifier"
                          else kws_mod.stream_features(pcm, fe, pp))
            out.append(device_windows(frames, fe))
            continue
        n = fe.frames_in(len(pcm))
        if n < fe.frames:
            raise BadInput(f"{name} is {len(pcm) / fe.sample_rate:.3f} s ({len(pcm)} samples); one {app} input "
                           f"({fe.frames} frames) needs {fe.clip_samples} samples "
                           f"({fe.clip_samples / fe.sample_rate:.3f} s)",
                           f"pad it with silence: sox '{name}' padded.wav pad 0 1 trim 0 1")
        if n > fe.frames:
            raise BadInput(f"{name} is {len(pcm) / fe.sample_rate:.3f} s; one {app} input covers "
                           f"{fe.clip_samples / fe.sample_rate:.3f} s ({fe.frames} frames)",
                           f"cut 1 s clips (sox '{name}' clip.wav trim 0 1), or ask for every window the device "
                           "would see (--all-windows)")
        if raw:
            out.append(spectrogram.spectrogram_q15(pcm[: fe.clip_samples], fe)[None])
        elif app == "audio_classifier":
            out.append(spectrogram.features(pcm, fe, quant)[None])
        elif warm_up is not None:
            out.append(kws_mod.warm_features(pcm, warm_up, fe, pp, warm_up_seconds)[None])
        else:
            out.append(kws_mod.features(pcm, fe, pp)[None])
    if not out:
        return np.zeros((0, fe.frames, fe.bins), dtype)
    return np.concatenate(out).astype(dtype)


def compute(app: str, wav_paths: Iterable[str | os.PathLike], model_input: params.ModelInput | None = None,
            all_windows: bool = False, preprocessor=None) -> np.ndarray:
    """int8 [n, frames, bins]: one model input per WAV (or per device window with all_windows), in order.

    Reshape to the model's input shape with ``x.reshape((-1,) + model_input.shape[1:])``. Raises BadInput for a
    refused WAV or model input (the cause names the file and the numbers).
    """
    paths = [Path(p) for p in wav_paths]
    if not paths:
        raise BadInput("no WAV files given", "pass one or more 16 kHz mono 16-bit WAV files")
    fe = _front_end(app, model_input)
    clips = [wav.read_wav(p) for p in paths]  # read (and refuse) every file before any work
    return compute_pcm(app, clips, fe, [p.name for p in paths], all_windows, preprocessor)


def save(path: str | os.PathLike, x: np.ndarray) -> Path:
    """Write the stacked features as .npy (int8)."""
    p = Path(path)
    np.save(p, np.asarray(x, dtype=np.int8))
    return p
