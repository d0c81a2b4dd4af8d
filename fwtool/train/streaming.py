"""kws streaming evaluation: the way the device decides, on a long noise-mixed stream of test clips.

The stream: background (the test-free recordings of ``_background_noise_``, else synthetic noise) with the test
keywords and unknown words placed every few seconds at a random SNR. It runs through the host twin of the firmware
— kws.stream_features (the preprocessor, never reset), features.device_windows (an inference every 100 ms), the int8
classifier in TFLM, and kws.detections (the firmware's averaging, threshold and repeat suppression) — once per
(threshold, smoothing) pair of the grid.

A keyword counts as accepted when a detection of its label falls between 0.3 s after its start and 1 s after its
end; any other detection is a false accept. FRR = missed keywords / keywords; FA/h = false accepts per hour of
stream. The chosen pair has the lowest FRR among those with FA/h <= the target (else the lowest FA/h).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from fwtool.audio import features as features_mod
from fwtool.audio import kws
from fwtool.audio.params import FrontEnd
from fwtool.model.tflite import Model

from . import augment, evaluate

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
SMOOTHING = (1, 3, 5, 10)
RATE = 16000


def make_stream(clips: list[tuple[str, np.ndarray]], backgrounds: list[np.ndarray], seconds: float,
                seed: int) -> tuple[np.ndarray, list[dict]]:
    """int16 stream of ``seconds`` and its events [{label, start (s), end (s)}]: clips cycled in a seeded order,
    one every 2-4 s, each at 5-20 dB SNR over the background (-50..-35 dBFS)."""
    rng = np.random.default_rng([seed, 27])
    n = int(seconds * RATE)
    if backgrounds:
        bg = np.concatenate([b.astype(np.float64) for b in backgrounds])
        bg = np.resize(np.roll(bg, -int(rng.integers(0, len(bg)))), n)
    else:
        bg = np.cumsum(rng.normal(0, 1, n)) * 0.02 + rng.normal(0, 1, n)  # brownish noise
        bg -= np.convolve(bg, np.ones(801) / 801, "same")
    level = 32768 * 10 ** (rng.uniform(-50, -35) / 20)
    stream = bg * (level / max(float(np.sqrt(np.mean(bg ** 2))), 1e-9))
    events, t = [], 1.5
    order = rng.permutation(len(clips)) if clips else []
    k = 0
    while clips and t + 1.0 < seconds - 0.5:
        label, pcm = clips[order[k % len(order)]]
        x = augment.fit_one_second(pcm).astype(np.float64)
        active = np.abs(x) > 0.05 * max(float(np.max(np.abs(x))), 1.0)
        sig = float(np.sqrt(np.mean(x[active] ** 2))) if active.any() else 1.0
        x *= level * 10 ** (rng.uniform(5, 20) / 20) / max(sig, 1e-9)
        s = int(t * RATE)
        stream[s:s + RATE] += x
        events.append({"label": label, "start": round(t, 3), "end": round(t + 1.0, 3)})
        t += 1.0 + float(rng.uniform(2.0, 4.0))
        k += 1
    peak = float(np.max(np.abs(stream))) or 1.0
    if peak > 32767:
        stream *= 32767 / peak
    return np.round(stream).astype(np.int16), events


def inference_time(n: int, fe: FrontEnd) -> float:
    """Stream time (s) of the device's n-th inference (1-based): the first runs once fe.frames rows exist, at the
    first multiple of fe.columns_per_inference frames; frame k ends at (k + 1) * hop samples of the stream."""
    first = -(-fe.frames // fe.columns_per_inference) * fe.columns_per_inference
    return (first + (n - 1) * fe.columns_per_inference) * fe.hop / fe.sample_rate


def score_detections(dets: list[dict], events: list[dict], keywords: set[str], fe: FrontEnd) -> tuple[int, int, int]:
    """(accepted keywords, keyword events, false accepts)."""
    used = [False] * len(events)
    fa = 0
    for d in dets:
        t = inference_time(d["n"], fe)
        hit = None
        for i, e in enumerate(events):
            if e["label"] == d["label"] and e["start"] + 0.3 <= t <= e["end"] + 1.0:
                hit = i
                break
        if hit is None:
            fa += 1
        else:
            used[hit] = True  # a repeat within the same keyword's window is not a second accept nor a false one
    kw = [i for i, e in enumerate(events) if e["label"] in keywords]
    return sum(used[i] for i in kw), len(kw), fa


def evaluate_stream(model: Model, fe: FrontEnd, labels: list[str], clips: list[tuple[str, np.ndarray]],
                    backgrounds: list[np.ndarray], seconds: float, seed: int, max_fa_per_hour: float,
                    preprocessor: kws.Preprocessor | None = None) -> dict:
    stream, events = make_stream(clips, backgrounds, seconds, seed)
    frames = kws.stream_features(stream, fe, preprocessor)
    windows = features_mod.device_windows(frames, fe)
    q = evaluate.raw_q(model, windows)
    to = model.outputs[0]
    scale, zp = (to.scale[0], to.zero_point[0]) if to.scale else (1.0, 0)
    keywords = set(labels[kws.FIRST_KEYWORD:])
    hours = len(stream) / RATE / 3600
    grid = []
    for smooth in SMOOTHING:
        for thr in THRESHOLDS:
            dets = kws.detections(list(q), scale, zp, replace(fe, threshold=thr, smoothing=smooth), labels)
            ok, n_kw, fa = score_detections(dets, events, keywords, fe)
            grid.append({"threshold": thr, "smoothing": smooth, "detections": len(dets), "accepted": ok,
                         "keywords": n_kw, "false_accepts": fa, "fa_per_hour": round(fa / hours, 2),
                         "frr": round(1 - ok / n_kw, 4) if n_kw else None})
    meeting = [g for g in grid if g["fa_per_hour"] <= max_fa_per_hour and g["frr"] is not None]
    if meeting:
        best = min(meeting, key=lambda g: (g["frr"], g["fa_per_hour"], -g["threshold"], g["smoothing"]))
    else:
        best = min(grid, key=lambda g: (g["fa_per_hour"], g["frr"] if g["frr"] is not None else 1, -g["threshold"]))
    default = next(g for g in grid if g["threshold"] == 0.8 and g["smoothing"] == 10)
    return {"seconds": round(len(stream) / RATE, 1), "events": len(events),
            "keyword_events": sum(e["label"] in keywords for e in events), "inferences": int(len(q)),
            "fa_resolution_per_hour": round(1 / hours, 2), "max_fa_per_hour": max_fa_per_hour,
            "meets_target": bool(meeting), "chosen": best, "micro_speech_default": default, "grid": grid}
