"""fwtool train / fwtool dataset synth: data checks and refusals, leak-free splits, deterministic augmentation, the
feature cache, the model checks, and (with TensorFlow, espeak-ng and sox) a real end-to-end train on a yes/no set
spoken by local text-to-speech at test time, whose int8 model passes the kws build checks and recognises clips
from voices it never heard.

Nothing here is committed data: clips are numpy tones/noise or generated speech, in tmp_path.
"""
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from fwtool.audio import record, wav
from fwtool.core.errors import BadInput
from fwtool.train import augment, dataset

RATE = 16000


def tone(freq, seed=0, seconds=1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    x = 6000 * np.sin(2 * np.pi * freq * t) * (np.abs(t - 0.5) < 0.2) + rng.normal(0, 200, len(t))
    return np.clip(x, -32768, 32767).astype(np.int16)


def make_set(root: Path, classes=("yes", "no"), speakers=6, takes=3, extra=None):
    for ci, c in enumerate(classes):
        for s in range(speakers):
            for k in range(takes):
                p = root / c / f"spk{s}_nohash_{k}.wav"
                p.parent.mkdir(parents=True, exist_ok=True)
                wav.write_wav(p, tone(300 + 400 * ci + 20 * s + 5 * k, seed=ci * 100 + s * 10 + k))
    for rel, pcm in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        wav.write_wav(root / rel, pcm)
    return root


def fwtool(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "fwtool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_one_error(p, code=3):
    assert p.returncode == code, (p.returncode, p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines[-2].startswith("error: ") and lines[-1].lstrip().startswith("fix: "), p.stderr
    assert "Traceback" not in p.stderr


# ------------------------------------------------------------------------------------------ dataset, refusals

def test_scan_labels_in_firmware_order(tmp_path):
    make_set(tmp_path, ("yes", "no"), extra={"_unknown_/spk0_nohash_up.wav": tone(900),
                                             "_background_noise_/room.wav": tone(50, seconds=3)})
    ds = dataset.scan(tmp_path, "kws")
    assert ds.labels == ["silence", "unknown", "no", "yes"]  # the kws firmware's first keyword is label 2
    assert len(ds.background) == 1 and sum(c.label == "unknown" for c in ds.clips) == 1
    ds = dataset.scan(tmp_path, "kws", keywords=["yes"])
    assert ds.labels == ["silence", "unknown", "yes"] and sum(c.label == "unknown" for c in ds.clips) == 19


def _write_44k_stereo(p: Path):
    p.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(np.zeros(44100 * 2, "<i2").tobytes())


@pytest.mark.parametrize("case", ["bad_wav", "bad_label", "one_clip", "duplicate", "reserved", "no_classes"])
def test_scan_refusals(tmp_path, case):
    root = make_set(tmp_path / "data")
    if case == "bad_wav":
        _write_44k_stereo(root / "yes" / "phone.wav")
        match = "44100 Hz stereo"
    elif case == "bad_label":
        (root / "yes").rename(root / "oui merci")
        match = "firmware can print"
    elif case == "one_clip":
        (root / "maybe").mkdir()
        wav.write_wav(root / "maybe" / "a.wav", tone(1000))
        match = "1 clip"
    elif case == "duplicate":
        shutil.copy(root / "yes" / "spk0_nohash_0.wav", root / "no" / "copy.wav")
        match = "two classes"
    elif case == "reserved":
        (root / "silence").mkdir()
        wav.write_wav(root / "silence" / "a.wav", tone(1000))
        wav.write_wav(root / "silence" / "b.wav", tone(1100))
        match = "clashes"
    else:
        root = tmp_path / "empty"
        root.mkdir()
        match = "no label folders"
    with pytest.raises(BadInput, match=match) as e:
        dataset.scan(root, "kws")
    if case == "bad_wav":
        assert "sox" in e.value.fix and "-r 16000 -c 1 -b 16" in e.value.fix


def test_cli_refusal_writes_nothing(tmp_path):
    root = make_set(tmp_path / "data")
    _write_44k_stereo(root / "no" / "phone.wav")
    out = tmp_path / "out"
    p = fwtool("train", root, "--app", "kws", "--out", out)
    assert_one_error(p)
    assert "phone.wav" in p.stderr and "sox" in p.stderr
    assert not out.exists() or not any(out.iterdir())


def test_group_split_never_leaks(tmp_path):
    make_set(tmp_path, ("yes", "no", "up"), speakers=12, takes=2)
    for seed in range(5):
        ds = dataset.scan(tmp_path, "kws")
        dataset.assign_groups(ds)
        dataset.split(ds, seed, 0.2, 0.2)
        where = {}
        for c in ds.clips:
            assert c.group == c.path.stem.split("_nohash_")[0]
            assert where.setdefault(c.group, c.split) == c.split  # one group, one set
        assert {c.split for c in ds.clips} == {"train", "val", "test"}
    dataset.split(ds, 0, 0.1, 0.1, holdout=r"^spk1[01]$")
    assert {c.group for c in ds.of("test")} == {"spk10", "spk11"}
    rec = dataset.split_record(ds, 0)
    assert sum(s["clips"] for s in rec["sets"].values()) == len(ds.clips)
    assert not set(rec["sets"]["train"]["groups"]) & set(rec["sets"]["test"]["groups"])
    with pytest.raises(BadInput, match="matches no group"):
        dataset.split(ds, 0, 0.1, 0.1, holdout="^nobody$")


def test_group_by_regex_and_record_sessions(tmp_path):
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 8, 21, 10, 0, tzinfo=timezone.utc)
    for label in ("yes", "no"):
        for i, minutes in enumerate((0, 0.1, 0.2, 60, 60.1, 120, 120.2)):
            p = record.out_path(tmp_path / label, label, t0 + timedelta(minutes=minutes, seconds=i))
            p.parent.mkdir(parents=True, exist_ok=True)
            wav.write_wav(p, tone(400 + 37 * i + (label == "no") * 500, seed=i))
    ds = dataset.scan(tmp_path, "kws")
    dataset.assign_groups(ds)
    assert "session" in ds.grouping and len({c.group for c in ds.clips}) == 6  # 3 sessions per label
    dataset.assign_groups(ds, r"^(?:yes|no)_\d{8}T\d\d")  # no capture group: the whole match (label + hour)
    assert len({c.group for c in ds.clips}) == 6
    with pytest.raises(BadInput, match="do not match"):
        dataset.assign_groups(ds, "^zzz")


# ------------------------------------------------------------------------------------- augmentation, features

def test_augmentation_is_deterministic(tmp_path):
    pol = augment.Policy()
    pcm = tone(700)
    bgs = [tone(60, seed=3, seconds=5)]
    specs = [augment.draw(pol, augment.rng_for(7, "ab" * 32, v), 1, [len(bgs[0])], 0) for v in range(1, 6)]
    again = [augment.draw(pol, augment.rng_for(7, "ab" * 32, v), 1, [len(bgs[0])], 0) for v in range(1, 6)]
    other = [augment.draw(pol, augment.rng_for(8, "ab" * 32, v), 1, [len(bgs[0])], 0) for v in range(1, 6)]
    assert specs == again and specs != other
    a = [augment.render(s, pcm, bgs, [], 16160) for s in specs]
    b = [augment.render(s, pcm, bgs, [], 16160) for s in again]
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert all(len(x[0]) == RATE and len(x[1]) == 16160 and x[0].dtype == np.int16 for x in a)
    assert not np.array_equal(a[0][0], pcm)
    rev = augment.Spec("aug", rt60=0.4, noise_seed=1)
    dry = augment.Spec("aug", noise_seed=1)
    assert not np.array_equal(augment.render(rev, pcm, [], [])[0], augment.render(dry, pcm, [], [])[0])
    sil = augment.render(augment.Spec("silence", bg=0, snr_db=-40, noise_seed=2), None, bgs, [])[0]
    assert abs(20 * np.log10(np.sqrt(np.mean(sil.astype(float) ** 2)) / 32768) + 40) < 1


def test_feature_cache(tmp_path):
    pytest.importorskip("tflite_micro", reason="tflite-micro Python package not installed")
    from fwtool.audio import params
    from fwtool.train.featurize import Featurizer

    try:
        f = Featurizer(params.kws(), [tone(60, seed=1, seconds=3)], [], 1.0, cache=tmp_path / "cache")
    except Exception as e:  # the preprocessor model comes from the tflite-micro tree
        pytest.skip(f"kws preprocessor not available: {e}")
    spec = augment.Spec("aug", shift=800, gain_db=2, bg=0, snr_db=10, noise_seed=3)
    x1 = f.features(tone(800), "cd" * 32, spec)
    x2 = f.features(tone(800), "cd" * 32, spec)
    assert (f.hits, f.misses) == (1, 1) and np.array_equal(x1, x2) and x1.shape == (49, 40)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1


# ------------------------------------------------------------------------------------- report arithmetic

def test_auc_and_streaming_scoring():
    from fwtool.audio import params
    from fwtool.train import evaluate, streaming

    y = np.array([True, True, False, False])
    assert evaluate.auc(np.array([0.9, 0.8, 0.1, 0.2]), y) == 1.0
    assert evaluate.auc(np.array([0.1, 0.2, 0.9, 0.8]), y) == 0.0
    assert evaluate.auc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert evaluate.auc(np.array([0.5, 0.5]), np.array([True, True])) is None
    fe = params.kws()
    assert streaming.inference_time(1, fe) == 1.0 and abs(streaming.inference_time(11, fe) - 2.0) < 1e-9
    events = [{"label": "yes", "start": 2.0, "end": 3.0}, {"label": "unknown", "start": 6.0, "end": 7.0}]
    at = {t: round((t - 1.0) * 10) + 1 for t in (1.5, 2.6, 2.9, 6.5, 9.0)}  # inference numbers at these times
    dets = [{"n": at[2.6], "label": "yes"}, {"n": at[2.9], "label": "yes"},  # one accept (a repeat is not an FA)
            {"n": at[6.5], "label": "yes"}, {"n": at[9.0], "label": "no"}, {"n": at[1.5], "label": "yes"}]
    assert streaming.score_detections(dets, events, {"yes", "no"}, fe) == (1, 1, 3)
    stream, ev = streaming.make_stream([("yes", tone(500)), ("no", tone(900))], [], 30, 0)
    assert stream.dtype == np.int16 and len(stream) == 30 * RATE and 5 <= len(ev) <= 10
    assert all(e["end"] - e["start"] == 1.0 and e["end"] < 30 for e in ev)


def test_plots_render_or_skip(monkeypatch):
    from fwtool.train import plots

    report = {"test": {"int8_accuracy": 90.0, "per_class": {"a": {"roc_auc": 0.9}, "b": {"roc_auc": 0.8}},
                       "confusion": {"labels": ["a", "b"], "matrix": [[5, 1], [0, 4]]}},
              "training": {"history": {"accuracy": [0.5, 0.9], "val_accuracy": [0.4, 0.8]}}}
    rocs = {"a": ([0, 0.5, 1], [0, 0.9, 1]), "b": ([0, 1], [0, 1])}
    if plots.available():
        out = plots.render(report, rocs)
        assert set(out) == {"confusion.png", "roc.png", "training.png"}
        assert all(v.startswith(b"\x89PNG") for v in out.values())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert not plots.available() and plots.render(report, rocs) == {}


# ------------------------------------------------------------------------------------------------ models (TF)

@pytest.fixture(scope="module")
def tf():
    pytest.importorskip("tensorflow", reason="TensorFlow not installed (pip install 'fwtool[tf]')")
    from fwtool.model.quantize import import_tf

    return import_tf()


def test_user_model_refusals(tf, tmp_path):
    from fwtool.train import models

    nobuild = tmp_path / "nobuild.py"
    nobuild.write_text("x = 1\n")
    with pytest.raises(BadInput, match="does not define build"):
        models.build(tf, str(nobuild), (49, 40, 1), 4)
    lstm = tmp_path / "lstm.py"
    lstm.write_text("import keras\n"
                    "def build(input_shape, n_classes):\n"
                    "    return keras.Sequential([keras.Input(input_shape), keras.layers.Reshape((49, 40)),\n"
                    "        keras.layers.LSTM(8, name='my_lstm'),\n"
                    "        keras.layers.Dense(n_classes, activation='softmax')])\n")
    with pytest.raises(BadInput, match="my_lstm.*LSTM"):
        models.build(tf, str(lstm), (49, 40, 1), 4)
    ok = tmp_path / "ok.py"
    ok.write_text("import keras\n"
                  "def build(input_shape, n_classes):\n"
                  "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),\n"
                  "        keras.layers.Dense(n_classes, activation='softmax')])\n")
    assert models.build(tf, str(ok), (49, 40, 1), 4).count_params() == 1960 * 4 + 4
    for name in models.BUILTIN:
        shape = (124, 129, 1) if name == "cnn2d" else (49, 40, 1)
        assert models.build(tf, name, shape, 4).outputs[0].shape[-1] == 4


def test_refusal_before_training_names_the_layer(tf, tmp_path):
    root = make_set(tmp_path / "data")
    lstm = tmp_path / "lstm.py"
    lstm.write_text("import keras\n"
                    "def build(input_shape, n_classes):\n"
                    "    return keras.Sequential([keras.Input(input_shape), keras.layers.Reshape((49, 40)),\n"
                    "        keras.layers.GRU(8), keras.layers.Dense(n_classes, activation='softmax')])\n")
    p = fwtool("train", root, "--app", "kws", "--model", lstm, "--out", tmp_path / "out")
    assert_one_error(p)
    assert "GRU" in p.stderr and "epoch" not in p.stderr
    assert not (tmp_path / "out" / "kws_int8.tflite").exists()


def test_tensorflow_missing_message(tmp_path):
    root = make_set(tmp_path / "data")
    code = ("import sys; sys.modules['tensorflow'] = None; from fwtool.cli import main; "
            f"main(['train', {str(root)!r}, '--app', 'kws', '--out', {str(tmp_path / 'out')!r}])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert_one_error(p, 4)
    assert "pip install 'fwtool[tf]'" in p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------- real speech, end to end (slow)

def tts_reason() -> str | None:
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            return f"{tool} not installed (apt-get install espeak-ng sox)"
    return None


@pytest.fixture(scope="module")
def speech_set(tmp_path_factory):
    reason = tts_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("speech") / "data"
    p = fwtool("dataset", "synth", "--words", "yes,no", "--out", root, "--voices", "12", "--engines", "espeak-ng",
               "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["per_word"] == {"yes": 72, "no": 72} and len(s["background"]) == 3
    return root


def test_synth_layout(speech_set):
    names = sorted(p.name for p in (speech_set / "yes").glob("*.wav"))
    assert all("_nohash_" in n and n.startswith("espeak-ng-") for n in names)
    pcm = wav.read_wav(speech_set / "yes" / names[0])
    assert len(pcm) == RATE and np.max(np.abs(pcm)) > 10000
    assert any((speech_set / "_unknown_").glob("*.wav"))


@pytest.fixture(scope="module")
def trained(speech_set, tf, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "out"
    p = fwtool("train", speech_set, "--app", "kws", "--out", out, "--epochs", "15", "--board", "pico",
               "--stream-minutes", "2", "--json", "--seed", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads(p.stdout)


@pytest.mark.slow
def test_train_kws_end_to_end(speech_set, trained, tmp_path):
    from fwtool.audio import detection
    from fwtool.model.tflite import load_model

    out, r = trained
    m = load_model(out / "kws_int8.tflite")
    t = m.inputs[0]
    assert t.dtype == "INT8" and t.zero_point[0] == -128 and abs(t.scale[0] - 26 / 256) < 1e-6
    assert (out / "labels.txt").read_text().split() == ["silence", "unknown", "no", "yes"]
    assert r["board"]["ok"] and r["board"]["board"] == "pico"
    # held-out voices (the test set's speakers were never trained on): keyword accuracy far above chance (25 %)
    sets = json.loads((out / "split.json").read_text())["sets"]
    assert not set(sets["train"]["groups"]) & set(sets["test"]["groups"])
    pc = r["test"]["per_class"]
    kw_acc = (pc["yes"]["int8_accuracy"] * pc["yes"]["clips"] + pc["no"]["int8_accuracy"] * pc["no"]["clips"]) / \
        (pc["yes"]["clips"] + pc["no"]["clips"])
    print(f"\nheld-out voices: int8 accuracy {r['test']['int8_accuracy']}%, keywords {kw_acc:.1f}%, float "
          f"{r['test']['float_accuracy']}%, train {r['training']['seconds']} s, total {r['seconds']} s")
    assert kw_acc >= 75 and r["test"]["int8_accuracy"] >= 60
    assert abs(r["test"]["float_accuracy"] - r["test"]["int8_accuracy"]) <= 10
    st = r["streaming"]
    assert all(np.isfinite(g["fa_per_hour"]) and 0 <= g["frr"] <= 1 for g in st["grid"])
    thr, smooth = detection.read(out / "detection.json")
    assert (thr, smooth) == (st["chosen"]["threshold"], st["chosen"]["smoothing"])
    assert any(ln.startswith("fwtool validate") for ln in r["next"])
    # same seed, same model bytes (features come from the cache the first run filled)
    p2 = fwtool("train", speech_set, "--app", "kws", "--out", tmp_path / "again", "--epochs", "15",
                "--stream-minutes", "2", "--json", "--seed", "1", "--no-plots")
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert (tmp_path / "again" / "kws_int8.tflite").read_bytes() == (out / "kws_int8.tflite").read_bytes()
    assert json.loads(p2.stdout)["features_cache"]["computed"] == 0


@pytest.mark.slow
def test_trained_model_validates_on_the_virtual_board(speech_set, trained, tmp_path, real_build_reason,
                                                      emulator_ready):
    """Cold and warm: every feature row, score and detection of the firmware equals the host twin's."""
    if real_build_reason:
        pytest.skip(real_build_reason)
    out, r = trained
    test_yes = [f for f in json.loads((out / "split.json").read_text())["sets"]["test"]["files"]
                if f.startswith("yes/")][0]
    bg = wav.read_wav(next((speech_set / "_background_noise_").glob("pink*.wav")))
    clip = np.concatenate([np.zeros(8000, np.int16), wav.read_wav(speech_set / test_yes), np.zeros(16000, np.int16)])
    clip = np.clip(clip.astype(np.int32) + bg[: len(clip)] // 10, -32768, 32767).astype(np.int16)
    wav.write_wav(tmp_path / "yes.wav", clip)
    wav.write_wav(tmp_path / "bg.wav", (bg[: 3 * RATE] // 10).astype(np.int16))
    base = ["validate", "--board", "pico", "--app", "kws", "-m", out / "kws_int8.tflite", "--labels",
            out / "labels.txt", "--detection", out / "detection.json", "--out", tmp_path / "emu", "--json",
            "--audio", tmp_path / "yes.wav"]
    for extra in ([], ["--warm-up", tmp_path / "bg.wav"]):
        p = fwtool(*base, *extra, timeout=1800)
        assert p.returncode == 0, p.stderr[-3000:]
        v = json.loads(p.stdout)
        c = v["clips"][0]
        assert v["ok"] and c["features_identical"] and c["detections"]["equal"]
        assert v["front_end"]["threshold"] == r["streaming"]["chosen"]["threshold"]
        assert (v["warm_up"] is not None) == bool(extra)
        print(f"\nvirtual board ({'warm' if extra else 'cold'}): {c['frames']} rows identical, max |d| "
              f"{c['max_abs_diff']}, detections {c['detections']['device']}")


def alarm_set(root: Path):
    """Smoke-alarm-like patterns (3 kHz square, 0.5 s on/off) against noise (sox) and speech (espeak-ng)."""
    for g in range(8):
        rng = np.random.default_rng(g)
        f = 2900 + 60 * g
        for k in range(5):
            t = np.arange(RATE) / RATE
            x = 8000 * np.sign(np.sin(2 * np.pi * f * t)) * (((t + rng.uniform(0, 1)) % 1.0) < 0.5)
            x = x + rng.normal(0, rng.uniform(200, 2000), RATE)
            (root / "alarm").mkdir(parents=True, exist_ok=True)
            wav.write_wav(root / "alarm" / f"tone{f}_nohash_{k}.wav", np.clip(x, -32768, 32767).astype(np.int16))
    words = ["hello", "kitchen", "music", "door", "seven", "water"]
    (root / "other").mkdir(parents=True, exist_ok=True)
    for g in range(8):
        for k in range(5):
            p = root / "other" / f"src{g}_nohash_{k}.wav"
            if k % 2 == 0:
                subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(p), "synth", "1",
                                ["white", "pink", "brown"][(g + k) % 3] + "noise", "vol", str(0.05 + 0.05 * g)],
                               check=True)
            else:
                raw = p.with_name(p.stem + "-tts.wav")
                subprocess.run(["espeak-ng", "-v", f"en-us+m{1 + g % 7}", "-w", str(raw), words[(g + k) % 6]],
                               check=True)
                subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(p)], check=True)
                raw.unlink()


@pytest.mark.slow
def test_train_audio_classifier(tf, tmp_path):
    reason = tts_reason()
    if reason:
        pytest.skip(reason)
    alarm_set(tmp_path / "data")
    p = fwtool("train", tmp_path / "data", "--app", "audio_classifier", "--out", tmp_path / "out", "--epochs", "10",
               "--board", "pico", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["labels"] == ["alarm", "other"] and r["board"]["ok"] and "streaming" not in r
    assert r["test"]["int8_accuracy"] >= 80, r["test"]
    assert not (tmp_path / "out" / "detection.json").exists()
