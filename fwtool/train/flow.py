"""``fwtool train``: scan and split the data, augment, compute the device's features, train, convert to int8, check
it builds, evaluate the way the device decides, and write the outputs — all refusals before the first epoch, every
output written at the end (and the previous run's outputs removed first), so the folder is never half-current.

Outputs in ``out_dir``: ``<app>_int8.tflite`` (the firmware's model), ``model.keras`` (float), ``labels.txt`` (in
the order the firmware reports them), ``split.json``, ``report.json``, ``detection.json`` (kws: the chosen
threshold/smoothing, a ``fwtool build --detection`` input) and ``plots/*.png`` (with matplotlib).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.audio import detection, kws, params
from fwtool.core import locks
from fwtool.core.errors import BadInput
from fwtool.core.files import atomic_write
from fwtool.firmware import plan as build_plan
from fwtool.model.tflite import parse_model

from . import augment, dataset, evaluate, fit, models, plots, streaming
from .featurize import Featurizer, to_float, to_int8

OUTPUTS = ("model.keras", "labels.txt", "split.json", "report.json", "detection.json", "kws_int8.tflite",
           "audio_classifier_int8.tflite")
PLOTS = ("confusion.png", "roc.png", "training.png", "streaming.png")


@dataclass
class TrainOptions:
    data: Path
    app: str = "kws"
    out_dir: Path = Path("train")
    model: str | None = None  # built-in name or a .py file (default: tiny_conv for kws, cnn2d for the classifier)
    keywords: list[str] | None = None
    epochs: int = 30
    batch: int = 64
    patience: int = 5
    lr: float = 0.003
    seed: int = 0
    group_by: str | None = None
    holdout: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    policy: augment.Policy = field(default_factory=augment.Policy)
    warm_up_seconds: float | None = kws.WARM_UP_SECONDS  # kws; None: fresh front end per clip
    board: str | None = None
    stream_seconds: float = 300.0
    max_fa_per_hour: float = 2.0
    plots: bool = True
    cache: Path | None = None


def _front_end(app: str) -> params.FrontEnd:
    if app == "kws":
        return params.kws()
    if app == "audio_classifier":
        return params.classifier()
    raise BadInput(f"unknown app '{app}'", "use --app kws or --app audio_classifier")


def _items(ds: dataset.Dataset, split: str, opts: TrainOptions, n_bg: int, bg_len: list[int], n_ir: int,
           augmenting: bool) -> tuple[list, list[int], list[str]]:
    """(pcm, sha, Spec) per example of a split, its label indices and names; kws adds silence and crop-unknowns."""
    lab = {x: i for i, x in enumerate(ds.labels)}
    items, y, names = [], [], []
    clips = ds.of(split)
    for c in clips:
        items.append((c.pcm, c.sha, augment.Spec("clean")))
        y.append(lab[c.label])
        names.append(f"{c.folder}/{c.path.name}")
        for v in range(opts.policy.copies if augmenting else 0):
            items.append((c.pcm, c.sha, augment.draw(opts.policy, augment.rng_for(opts.seed, c.sha, v + 1), n_bg,
                                                     bg_len, n_ir)))
            y.append(lab[c.label])
            names.append(f"{c.folder}/{c.path.name}#aug{v + 1}")
    if opts.app == "kws":
        base = len(items)
        rng = np.random.default_rng([opts.seed, {"train": 1, "val": 2, "test": 3}[split]])
        for i in range(max(1, int(round(opts.policy.silence_fraction * base)))):
            items.append((None, "0" * 64, augment.draw(opts.policy, rng, n_bg, bg_len, n_ir, "silence")))
            y.append(lab[dataset.SILENCE_LABEL])
            names.append(f"(silence {i + 1})")
        kw = [c for c in clips if c.label != dataset.UNKNOWN_LABEL]
        n_crop = int(round(opts.policy.unknown_fraction * base))
        for i in range(n_crop if kw else 0):
            c = kw[int(rng.integers(0, len(kw)))]
            items.append((c.pcm, c.sha, augment.draw(opts.policy, rng, n_bg, bg_len, n_ir, "crop")))
            y.append(lab[dataset.UNKNOWN_LABEL])
            names.append(f"{c.folder}/{c.path.name}#crop")
    return items, y, names


def _clear_outputs(out: Path) -> None:
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for name in PLOTS:
        (out / "plots" / name).unlink(missing_ok=True)


def run(opts: TrainOptions, on_step: Callable[[str], None] = lambda s: None,
        on_batch: Callable[[int, int, int, dict], None] = lambda e, b, n, logs: None,
        on_epoch: Callable[[int, dict], None] = lambda e, logs: None) -> dict:
    t0 = time.monotonic()
    fe = _front_end(opts.app)
    out = Path(opts.out_dir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file", "name a folder for the training outputs")
    on_step("scanning the data")
    ds = dataset.scan(opts.data, opts.app, opts.keywords)
    dataset.assign_groups(ds, opts.group_by)
    dataset.split(ds, opts.seed, opts.val_fraction, opts.test_fraction, opts.holdout)
    n_classes = len(ds.labels)
    model_name = opts.model or models.DEFAULT[opts.app]
    on_step("loading TensorFlow")
    tf = fit.setup(opts.seed)
    model = models.build(tf, model_name, (fe.frames, fe.bins, 1), n_classes)  # refuses before any feature work
    _clear_outputs(out)
    bgs = [b for _, b in ds.background]
    irs = [ir for _, ir in ds.impulses]
    pp = kws.Preprocessor() if opts.app == "kws" else None
    warm = opts.warm_up_seconds if opts.app == "kws" else None
    feat = Featurizer(fe, bgs, irs, warm, pp, opts.cache)
    sets = {}
    for split in ("train", "val", "test"):
        items, y, names = _items(ds, split, opts, len(bgs), [len(b) for b in bgs], len(irs), split == "train")
        x = feat.many(items, lambda i, n, s=split: on_step(f"features ({s}): {i}/{n}"))
        sets[split] = (x, np.array(y, np.int64), names)
    xtr, ytr, _ = sets["train"]
    xva, yva, _ = sets["val"]
    xte, yte, nte = sets["test"]
    on_step(f"training {model_name} ({model.count_params():,} parameters) on {len(xtr)} examples")
    t_train = time.monotonic()
    history = fit.train(tf, model, to_float(xtr, fe), ytr, to_float(xva, fe), yva, n_classes, opts.epochs,
                        opts.batch, opts.patience, opts.lr, on_batch, on_epoch)
    train_s = time.monotonic() - t_train
    with tempfile.TemporaryDirectory(prefix="fwtool-train-") as tmp:
        on_step("converting to int8 (fwtool quantize's recipe)")
        data, qrep = fit.to_int8(tf, model, to_float(xtr, fe), fe, Path(tmp), on_step)
        keras_bytes = (Path(tmp) / "model.keras").read_bytes()
    tfl_name = f"{opts.app}_int8.tflite"
    int8 = parse_model(data, out / tfl_name)
    ti = int8.inputs[0]
    s_in, z_in = (ti.scale[0], ti.zero_point[0]) if ti.scale else (1.0, 0)
    on_step("evaluating float vs int8 on the test set")
    p_float = fit.predict(model, to_float(xte, fe))
    p_int8 = evaluate.run_int8(int8, to_int8(xte, fe, s_in, z_in))
    test = evaluate.report(ds.labels, yte, p_float, p_int8, nte)
    rocs = {lab: evaluate.roc_curve(p_int8[:, i], yte == i) for i, lab in enumerate(ds.labels)}
    report = {
        "app": opts.app, "data": str(opts.data), "model": model_name, "parameters": int(model.count_params()),
        "labels": ds.labels, "seed": opts.seed,
        "dataset": {"clips": len(ds.clips), "grouping": ds.grouping, "background": [n for n, _ in ds.background],
                    "impulse_responses": [n for n, _ in ds.impulses],
                    "sets": {s: {"clips": len(ds.of(s)), "groups": len({c.group for c in ds.of(s)}),
                                 "examples": int(len(sets[s][0]))} for s in sets}},
        "front_end": {"app": fe.app, "frames": fe.frames, "bins": fe.bins,
                      "warm_up_s": warm, "warm_up_frames": kws.warm_up_frames(fe, warm) if warm is not None else 0},
        "features_cache": {"hits": feat.hits, "computed": feat.misses},
        "training": {"seconds": round(train_s, 1), "history": history, "examples": int(len(xtr)),
                     "class_weights": fit.class_weights(ytr, n_classes)},
        "int8": {"file": tfl_name, "bytes": len(data), "sha256": int8.sha256, "ops": int8.op_names,
                 "input": {"shape": list(ti.shape), "scale": s_in, "zero_point": z_in},
                 "calibration_samples": qrep["representative"]["used"]},
        "test": test, "notes": list(ds.notes),
    }
    det_text = None
    if opts.app == "kws":
        on_step(f"streaming evaluation ({opts.stream_seconds / 60:.1f} min through the host twin)")
        stream_clips = [(c.label, c.pcm) for c in ds.of("test")]
        st = streaming.evaluate_stream(int8, fe, ds.labels, stream_clips, bgs, opts.stream_seconds, opts.seed,
                                       opts.max_fa_per_hour, pp)
        report["streaming"] = st
        c = st["chosen"]
        det_text = detection.payload(c["threshold"], c["smoothing"], fa_per_hour=c["fa_per_hour"], frr=c["frr"],
                                     stream_seconds=st["seconds"], max_fa_per_hour=opts.max_fa_per_hour)
    if opts.board:
        on_step(f"checking that the model builds for {opts.board}")
        report["board"] = _board_check(opts, data, ds.labels, det_text, tfl_name)
    pngs = plots.render(report, rocs) if opts.plots else {}
    if opts.plots and not pngs:
        report["notes"].append(f"no plots: matplotlib is not installed ({plots.FIX})")
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["outputs"] = {"model": str(out / tfl_name), "keras": str(out / "model.keras"),
                         "labels": str(out / "labels.txt"), "split": str(out / "split.json"),
                         "report": str(out / "report.json"),
                         "detection": str(out / "detection.json") if det_text else None,
                         "plots": [str(out / "plots" / n) for n in sorted(pngs)]}
    report["next"] = next_commands(opts, out, tfl_name, bool(det_text))
    on_step("writing the outputs")
    # one writer of the folder at a time (core/locks.py): two trainings into one --out leave one run's whole set
    with locks.hold(locks.folder_lock(out), f"training output folder {out}"):
        atomic_write(out / "labels.txt", "".join(f"{lab}\n" for lab in ds.labels))
        atomic_write(out / "split.json", json.dumps(dataset.split_record(ds, opts.seed), indent=1))
        atomic_write(out / "model.keras", keras_bytes)
        if det_text:
            atomic_write(out / "detection.json", det_text)
        for name, png in pngs.items():
            atomic_write(out / "plots" / name, png)
        atomic_write(out / "report.json", json.dumps(report, indent=1, default=str))
        atomic_write(out / tfl_name, data)  # last: the model is there only when everything else is
    return report


def _board_check(opts: TrainOptions, data: bytes, labels: list[str], det_text: str | None, name: str) -> dict:
    """The build's own checks (ops, app input contract, arena, flash/RAM fit) on the result, nothing compiled."""
    with tempfile.TemporaryDirectory(prefix="fwtool-train-board-") as tmp:
        t = Path(tmp)
        (t / name).write_bytes(data)
        (t / "labels.txt").write_text("".join(f"{lab}\n" for lab in labels))
        det = None
        if det_text:
            det = t / "detection.json"
            det.write_text(det_text)
        p = build_plan.plan(build_plan.BuildOptions(board=opts.board, model=t / name, app=opts.app,
                                                    labels=t / "labels.txt", detection=det, out_dir=t / "build",
                                                    tflm_cores=1))
        return {"board": p.board.name, "ok": True, "arena_bytes": p.arena.total, "fit": p.fit,
                "ops": [o["op"] for o in p.ops]}


def next_commands(opts: TrainOptions, out: Path, name: str, has_detection: bool) -> list[str]:
    board = opts.board or "pico"
    m, lab = out / name, out / "labels.txt"
    extra = f" --detection {out / 'detection.json'}" if has_detection else ""
    clip = f"{opts.data}/{(opts.keywords or ['<label>'])[0]}/<clip>.wav"
    warm = f" --warm-up {opts.data}/{dataset.BACKGROUND}/<noise>.wav" if opts.app == "kws" else ""
    return [f"fwtool validate --board {board} --app {opts.app} -m {m} --labels {lab}{extra}{warm} --audio {clip}",
            f"fwtool run --board {board} --app {opts.app} -m {m} --labels {lab}{extra}"]
