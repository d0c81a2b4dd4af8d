"""``fwtool validate --app audio_classifier|kws --audio FILES...``: prove that the audio app computes, for the same
audio, exactly the features and (within one step) the scores the host computes, and that it keeps up.

Per clip, on the virtual board (default) or a real board (``--device``/``--port``; the app must already run there):

1. The clip is streamed into the firmware's real DSP + model path (fwtool/audio/capture.py), asking for every
   feature row (FWT:FEAT) and every inference (FWT:AINF, FWT:DETECT).
2. Host twin: the same frames (fwtool.audio.spectrogram.stream_features for the classifier, fwtool.audio.kws for
   kws), the same model inputs (``features.device_windows``) and the model run on them by the host TFLM
   interpreter (validate/reference.py).
3. Compared: feature rows identical; output q max |Δ| <= ``max_diff``; detections equal (the device's rule applied
   to the host's outputs); per-hop time (dsp_us + invoke_us) p50/p95 against the real-time budget
   (samples per inference / rate: 32 ms for the classifier).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.audio import capture as capture_mod
from fwtool.audio import detection as audio_detection
from fwtool.audio import device as audio_device
from fwtool.audio import features as features_mod
from fwtool.audio import kws as kws_mod
from fwtool.audio import spectrogram, wav
from fwtool.audio.params import FrontEnd
from fwtool.firmware import flow as build_flow, outdir
from fwtool.core.boards import get_board
from fwtool.core.files import file_sha256
from fwtool.core.errors import BadInput, Exit
from fwtool.emulator import latency_stats
from fwtool.emulator.audio import stream_clip
from fwtool.model.tflite import Model, load_model
from fwtool.targets import registry
from fwtool.targets.base import Target, TargetConfig
from fwtool.validate import reference


@dataclass
class AudioValidateOptions:
    model: Path
    app: str
    audio: list[Path] = field(default_factory=list)
    board: str = "pico"
    target: str = "emulator"  # emulator | board
    port: str | None = None  # board: its serial port (the app must already run there)
    max_diff: int = 1
    budget_ms: float | None = None  # default: the front end's period (32 ms for the classifier)
    out_dir: Path | None = None
    jobs: int | None = None
    labels: Path | None = None
    preprocessor: Path | None = None
    detection: Path | None = None  # kws: detection.json (threshold, smoothing) compiled in and applied on the host
    warm_up: Path | None = None  # kws warm mode: this background streamed before every clip (the device's state)
    warm_up_seconds: float = 1.0


def host_frames(fe: FrontEnd, pcm: np.ndarray, preprocessor=None) -> np.ndarray:
    """Every feature row the device computes on a stream of ``pcm`` (history zeroed at start)."""
    if fe.app == "audio_classifier":
        return spectrogram.stream_features(pcm, fe)
    return kws_mod.stream_features(pcm, fe, preprocessor)


def detections(outputs: list[np.ndarray], out_scale: float, out_zp: int, fe: FrontEnd, labels: list[str]) -> list[dict]:
    """The device's detection rule on quantized outputs: per-class scores (float32, as the firmware computes them)
    averaged over the last ``fe.smoothing`` inferences; a detection when the top average >= threshold."""
    if fe.app == "kws":  # keywords only, with repeat suppression (fwtool.audio.kws.detections)
        return kws_mod.detections(outputs, out_scale, out_zp, fe, labels)
    found, recent = [], []
    for n, q in enumerate(outputs, start=1):
        scores = (np.asarray(q, np.float32) - np.float32(out_zp)) * np.float32(out_scale)
        recent = (recent + [scores])[-max(1, fe.smoothing):]
        avg = np.mean(recent, axis=0, dtype=np.float32) if len(recent) > 1 else scores
        top = int(np.argmax(avg))
        if avg[top] >= np.float32(fe.threshold):
            found.append({"n": n, "label": labels[top] if top < len(labels) else "?"})
    return found


def _clip_report(name: str, pcm: np.ndarray, fe: FrontEnd, model: Model, cap: capture_mod.AudioCapture,
                 max_diff: int, labels: list[str], preprocessor) -> dict:
    frames = host_frames(fe, pcm, preprocessor)
    n_frames, n_inf = capture_mod.expected_counts(len(pcm), fe)
    frames = frames[:n_frames]
    dev_rows = cap.feature_rows(n_frames, fe.bins)
    missing = cap.missing_rows(n_frames, fe.bins)
    diff_rows = [int(i) for i in np.nonzero(np.any(dev_rows != frames, axis=1))[0] if int(i) not in missing]
    windows = features_mod.device_windows(frames, fe)
    out_t = model.outputs[0]
    ref = [per[0] for per in reference.reference_outputs(model, windows)] if len(windows) else []
    dev_q = [np.asarray(i.q, np.int64) for i in cap.inferences]
    problems = []
    if missing:
        problems.append(f"{len(missing)} feature rows missing (first: frame {missing[0]})")
    if diff_rows:
        first = diff_rows[0]
        problems.append(f"{len(diff_rows)} of {n_frames} feature rows differ from the host (first: frame {first})")
    max_d = None
    if len(dev_q) != len(ref):
        problems.append(f"the device ran {len(dev_q)} inferences, the host {len(ref)}")
    elif ref:
        max_d = int(max(int(np.max(np.abs(d - r))) if d.shape == r.shape else 10**9 for d, r in zip(dev_q, ref)))
        if max_d > max_diff:
            problems.append(f"scores differ by up to {max_d} steps (allowed {max_diff})")
    scale = out_t.scale[0] if out_t.scale else 1.0
    zp = out_t.zero_point[0] if out_t.zero_point else 0
    host_det = detections(ref, scale, zp, fe, labels)
    dev_det = [{"n": d.n, "label": d.label} for d in cap.detections]
    if host_det != dev_det:
        problems.append(f"detections differ: device {[d['n'] for d in dev_det]}, host {[d['n'] for d in host_det]}")
    hops = [i.us for i in cap.inferences]
    return {
        "clip": name, "samples": int(len(pcm)), "seconds": round(len(pcm) / fe.sample_rate, 3),
        "frames": n_frames, "inferences": n_inf, "features_identical": not missing and not diff_rows,
        "rows_differing": len(diff_rows), "rows_missing": len(missing), "max_abs_diff": max_d,
        "device_scores": [i.score for i in cap.inferences],
        "host_q": [r.tolist() for r in ref], "device_q": [d.tolist() for d in dev_q],
        "detections": {"device": dev_det, "host": host_det, "equal": host_det == dev_det},
        "dsp_us": [i.dsp_us for i in cap.inferences], "invoke_us": [i.invoke_us for i in cap.inferences],
        "hop_us": hops, "dropped": max((i.dropped for i in cap.inferences), default=0),
        "stream": cap.stream.to_dict() if cap.stream else None, "problems": problems, "pass": not problems,
    }


def audio_target(opts: AudioValidateOptions) -> type[Target]:
    """The board's virtual target, which must take an audio stream (``"bytes"`` in its TargetInfo.feeds)."""
    if opts.target != "emulator":
        raise BadInput("audio validation runs on the virtual board only in this version",
                       "drop --device/--port (fwtool run --audio clip.wav streams to a real board)")
    tgt = registry.target_class(opts.board, opts.target, opts.model)
    if "bytes" not in tgt.info.feeds:
        able = [name for name, cls in registry.TARGETS.items() if cls.info.virtual and "bytes" in cls.info.feeds]
        raise BadInput(f"{tgt.info.title} (board '{opts.board}') cannot be fed an audio stream yet",
                       f"validate audio apps on a board whose virtual target takes one ({', '.join(sorted(able))}: "
                       "e.g. --board pico, pico2, nano33ble_sense, rpi4)")
    return tgt


def build_app(opts: AudioValidateOptions, on_line: Callable[[str], None], on_step: Callable[[str], None],
              cores: int = 2):
    """The audio app built for the virtual target (``cores``: its TargetInfo.cores unless --tflm-cores: a QEMU
    machine runs the single-core link)."""
    board = get_board(opts.board, opts.model)
    out_dir = Path(opts.out_dir) if opts.out_dir else outdir.default_out_dir(  # a folder per model/app/labels
        board.name, f"{opts.app}-emu", model=opts.model, labels=opts.labels)
    bopts = build_flow.BuildOptions(board=opts.board, model=Path(opts.model), out_dir=out_dir, app=opts.app,
                                    jobs=opts.jobs, tflm_cores=getattr(opts, "tflm_cores", None) or cores,
                                    labels=opts.labels)
    if opts.preprocessor is not None and hasattr(bopts, "preprocessor"):
        bopts.preprocessor = opts.preprocessor
    bopts.detection = opts.detection
    return build_flow.run(bopts, on_line=on_line, on_step=on_step)


def run_audio(opts: AudioValidateOptions, on_line: Callable[[str], None] = lambda s: None,
              on_step: Callable[[str], None] = lambda s: None) -> dict:
    """Validate an audio app on ``opts.audio``; returns the report (``ok``, ``exit_code`` 0 or 8)."""
    if not opts.audio:
        raise BadInput("no --audio clips given", "pass one or more 16 kHz mono 16-bit WAV files with --audio")
    tgt = audio_target(opts)
    on_step("reading the clips")
    clips = [(Path(p).name, wav.read_wav(p)) for p in opts.audio]  # every clip refused before any work
    model = load_model(opts.model)
    fe = audio_device.front_end(opts.app, audio_device.model_input_of(model.inputs[0]))
    if fe is None:
        raise BadInput(f"app '{opts.app}' is not an audio app", "use --app audio_classifier or --app kws")
    fe = audio_detection.apply(fe, opts.detection)
    if opts.warm_up is not None:  # warm mode: device and host twin both hear the background first, from boot
        features_mod.check_warm_up(opts.app, False)
        bg = wav.read_wav(opts.warm_up)
        clips = [(f"{n} (after {opts.warm_up_seconds:g} s of {Path(opts.warm_up).name})",
                  np.concatenate([kws_mod.pre_roll(bg, fe, opts.warm_up_seconds), p])) for n, p in clips]
    short = [(n, len(p)) for n, p in clips if capture_mod.expected_counts(len(p), fe)[1] == 0]
    if short:
        raise BadInput(f"{short[0][0]} is {short[0][1] / fe.sample_rate:.3f} s; the {opts.app} app runs its first "
                       f"inference after {fe.frames * fe.hop / fe.sample_rate:.3f} s of audio",
                       "use clips of at least that length (pad with silence: sox in.wav out.wav pad 0 1)")
    preprocessor = kws_mod.Preprocessor(opts.preprocessor) if opts.app == "kws" else None
    on_step(f"building --app {opts.app} for {tgt.info.title}")
    built = build_app(opts, on_line, on_step, cores=tgt.info.cores)
    image = registry.image_for(tgt, opts.board, built.artifacts.image, opts.model)  # e.g. the QEMU link's ELF
    labels = built.report.get("model", {}).get("labels") or built.report.get("labels") or []
    budget = opts.budget_ms if opts.budget_ms is not None else fe.inference_period_ms
    reports = []
    for i, (name, pcm) in enumerate(clips):
        on_step(f"clip {i + 1}/{len(clips)} {name}: streaming to {tgt.info.title}")
        target = tgt(TargetConfig(board=opts.board, max_wall_s=900.0))
        cap = stream_clip(image, pcm, fe, features=True, on_line=on_line, target=target)
        capture_mod.require_complete(cap, fe, len(pcm), name)
        on_step(f"clip {i + 1}/{len(clips)} {name}: host reference")
        reports.append(_clip_report(name, pcm, fe, model, cap, opts.max_diff, labels, preprocessor))
    hops = [u for r in reports for u in r["hop_us"]]
    dsp = [u for r in reports for u in r["dsp_us"]]
    inv = [u for r in reports for u in r["invoke_us"]]
    lat = latency_stats(hops, budget, "emulated")
    problems = [f"{r['clip']}: {p}" for r in reports for p in r["problems"]]
    if lat is not None and lat.within_budget is False:
        problems.append(f"p95 per-hop time {lat.p95_ms:.2f} ms exceeds the {budget:g} ms real-time budget")
    ok = not problems
    return {
        "ok": ok, "exit_code": int(Exit.OK if ok else Exit.MISMATCH), "app": opts.app, "board": opts.board,
        "model": {"name": model.name, "file": str(model.path), "sha256": model.sha256},
        "front_end": {"rate": fe.sample_rate, "window": fe.window, "fft": fe.fft_size, "hop": fe.hop,
                      "frames": fe.frames, "bins": fe.bins, "shift": fe.columns_per_inference,
                      "threshold": fe.threshold, "smoothing": fe.smoothing, "input_scale": fe.input_scale,
                      "input_zero_point": fe.input_zero_point},
        "warm_up": ({"background": str(opts.warm_up), "seconds": opts.warm_up_seconds,
                     "frames": kws_mod.warm_up_frames(fe, opts.warm_up_seconds)} if opts.warm_up else None),
        "target": {"kind": "emulator", "name": tgt.info.title, "target": tgt.info.name,
                   "cycle_accurate": tgt.info.cycle_accurate, "cycle": tgt.info.cycle},
        "firmware": {"image": str(built.artifacts.image), "sha256": file_sha256(built.artifacts.image),
                     "ran": str(image),
                     "tflm_cores": built.report["build"]["tflm_cores"]},
        "thresholds": {"max_diff": opts.max_diff, "budget_ms": budget},
        "timing": {"hop": lat.to_dict() if lat else None,
                   "dsp": latency_stats(dsp, None, "emulated").to_dict() if dsp else None,
                   "invoke": latency_stats(inv, None, "emulated").to_dict() if inv else None,
                   "budget_ms": budget, "budget_used_p95": round(lat.p95_ms / budget, 4) if lat else None},
        "timing_note": tgt.info.timing_note, "clips": reports, "problems": problems,
    }
