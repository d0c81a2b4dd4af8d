"""Issue 29 item 3: a damaged cache entry is discarded and rebuilt, never used — one test per cache, each with a
truncated, an empty and a garbage entry (the code-size and target-arena caches: tests/test_checks_agree.py and
tests/test_arena_fit.py). What each test checks could fail: the "measure again" function is counted, and the
rebuilt entry must be the good one."""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest

from fwtool.core import locks

DAMAGE = {"truncated": lambda good: good[: len(good) // 2], "empty": lambda good: b"",
          "garbage": lambda good: b"\x00\xffnot what fwtool wrote\x93NUMPY" * 3}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- the host arena measurement (model/arena.py) ------------------------------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE)
def test_arena_entry(damage, cache, fire_alarm, monkeypatch):
    from fwtool.model import arena
    from fwtool.model.tflite import load_model

    calls = []
    monkeypatch.setattr(arena, "measure", lambda m: calls.append(m) or 18_020)
    m = load_model(fire_alarm)
    assert arena.cached_measure(m) == 18_020 and len(calls) == 1
    entry = cache / "arena" / f"{m.sha256}.json"
    good = entry.read_bytes()
    entry.write_bytes(DAMAGE[damage](good))
    assert arena.cached_measure(m) == 18_020 and len(calls) == 2  # measured again, not read from the damage
    assert entry.read_bytes() == good
    assert arena.cached_measure(m) == 18_020 and len(calls) == 2  # and the rebuilt entry is used


# ---- the TFLM source closure (firmware/sources.py) ----------------------------------------------------------------
@pytest.mark.parametrize("damage", [*DAMAGE, "foreign"])
def test_source_closure_entry(damage, cache, tmp_path, monkeypatch):
    from fwtool.firmware import sources

    root = tmp_path / "tree"
    for r in sources.RUNTIME_ROOTS:
        (root / r).parent.mkdir(parents=True, exist_ok=True)
        (root / r).write_text("// root\n")
    library = ("src/a.cc", "src/b.cc", "src/c.cc")
    calls = []
    monkeypatch.setattr(sources, "closure", lambda *a: calls.append(a) or ["src/a.cc", "src/c.cc"])
    args = (root, library, ["conv.cc"], ["src"], "rev1")
    assert sources.needed_sources(*args) == ["src/a.cc", "src/c.cc"] and len(calls) == 1
    entry = next((cache / "tflm_sources").glob("*.json"))
    good = entry.read_bytes()
    bad = json.dumps(["src/a.cc", "src/not-in-the-library.cc"]).encode() if damage == "foreign" \
        else DAMAGE[damage](good)
    entry.write_bytes(bad)
    assert sources.needed_sources(*args) == ["src/a.cc", "src/c.cc"] and len(calls) == 2
    assert entry.read_bytes() == good


# ---- train-features (train/featurize.py) --------------------------------------------------------------------------
def _npy(x) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("damage", [*DAMAGE, "wrong dtype", "wrong shape"])
def test_train_features_entry(damage, tmp_path):
    from fwtool.audio import params
    from fwtool.train import augment
    from fwtool.train.featurize import Featurizer

    fe = params.classifier()
    f = Featurizer(fe, [], [], None, cache=tmp_path / "features")
    rng = np.random.default_rng(1)
    pcm = np.clip(rng.normal(0, 3000, 16000 * 2), -32768, 32767).astype(np.int16)
    spec = augment.Spec("aug", noise_seed=1)
    x1 = f.features(pcm, "ab" * 32, spec)
    entry = next((tmp_path / "features").rglob("*.npy"))
    good = entry.read_bytes()
    bad = {"wrong dtype": lambda: _npy(x1.astype(np.float32)),
           "wrong shape": lambda: _npy(x1[:10])}.get(damage, lambda: DAMAGE[damage](good))()
    entry.write_bytes(bad)
    x2 = f.features(pcm, "ab" * 32, spec)
    assert (f.hits, f.misses) == (0, 2)  # the damaged entry was computed again, not used
    assert np.array_equal(x1, x2) and x2.dtype == np.int16 and entry.read_bytes() == good
    f.features(pcm, "ab" * 32, spec)
    assert f.hits == 1


# ---- the int8 conversion of a Keras model (model/quantize.py) -----------------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE)
def test_quantized_model_entry(damage, cache, tmp_path, monkeypatch, fire_alarm):
    from fwtool.model import quantize

    model, rep = tmp_path / "m.keras", tmp_path / "rep.npy"
    model.write_bytes(b"a keras model")
    np.save(rep, np.zeros((4, 3), np.float32))
    good = fire_alarm.read_bytes()
    calls = []
    monkeypatch.setattr(quantize, "quantize", lambda opts, on_step: calls.append(opts) or (good, {"ok": True}))
    out, hit = quantize.cached_quantize(model, rep)
    assert not hit and out.read_bytes() == good and len(calls) == 1
    assert quantize.cached_quantize(model, rep) == (out, True) and len(calls) == 1
    out.write_bytes(DAMAGE[damage](good))
    again, hit = quantize.cached_quantize(model, rep)
    assert (again, hit) == (out, False) and len(calls) == 2 and out.read_bytes() == good
    record = json.loads((out.parent / "quantize.json").read_text())
    assert record["output_sha256"] == hashlib.sha256(good).hexdigest()


def test_quantized_model_entry_without_its_record_is_converted_again(cache, tmp_path, monkeypatch, fire_alarm):
    """A conversion killed between writing the model and its record (or an entry from before records named the
    model's hash) is not taken as done."""
    from fwtool.model import quantize

    model, rep = tmp_path / "m.keras", tmp_path / "rep.npy"
    model.write_bytes(b"a keras model")
    np.save(rep, np.zeros((4, 3), np.float32))
    calls = []
    monkeypatch.setattr(quantize, "quantize", lambda o, s: calls.append(o) or (fire_alarm.read_bytes(), {}))
    out, _ = quantize.cached_quantize(model, rep)
    (out.parent / "quantize.json").unlink()
    assert quantize.cached_quantize(model, rep) == (out, False) and len(calls) == 2
    assert not locks.sibling_lock(out.parent).exists()  # the conversion's lock is gone with it


# ---- a model from a C header (model/sources.py) -------------------------------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE)
def test_header_model_entry(damage, cache, tmp_path, fire_alarm):
    from fwtool.model import sources

    data = fire_alarm.read_bytes()
    header = tmp_path / "model_data.h"
    body = ",".join(f"0x{b:02x}" for b in data)
    header.write_text(f"const unsigned char g_model[] = {{{body}}};\nconst unsigned int g_model_len = {len(data)};\n")
    out = sources.header_model(header)
    assert out.read_bytes() == data
    out.write_bytes(DAMAGE[damage](data))
    assert sources.header_model(header) == out and out.read_bytes() == data


# ---- the virtual RP2040's bootrom (emulator/bootrom.py) -----------------------------------------------------------
@pytest.mark.parametrize("damage", [*DAMAGE, "same size"])
def test_bootrom_entry(damage, cache, tmp_path):
    from fwtool.emulator import bootrom

    words = [0x20041F00, 0x000000EF] + [(i * 2654435761) & 0xFFFFFFFF for i in range(bootrom.WORDS - 2)]
    ts = tmp_path / "bootrom.ts"
    ts.write_text("export const bootromB1 = new Uint32Array([\n" + ",\n".join(f"0x{w:08x}" for w in words) + "]);\n")
    out = bootrom.bootrom_file(ts)
    good = out.read_bytes()
    assert len(good) == bootrom.WORDS * 4
    bad = bytes(len(good)) if damage == "same size" else DAMAGE[damage](good)  # the old size-only check let it by
    out.write_bytes(bad)
    assert bootrom.bootrom_file(ts) == out and out.read_bytes() == good


# ---- an example model cut out of its tree's C header (model/examples.py) ------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE)
def test_example_model_entry(damage, tmp_path, monkeypatch):
    from fwtool.core import vendor
    from fwtool.core.errors import FwtoolError
    from fwtool.model import examples

    ex = examples.get("fire_alarm")
    if not vendor.manifest()[ex.dep().name].cache_path.is_dir():
        pytest.skip(f"the {ex.dep().name} tree is not synced ('fwtool vendor sync {ex.dep().name}')")
    monkeypatch.setattr(examples, "cache_dir", lambda: tmp_path)  # the tree stays in the shared cache
    try:
        out = examples.model_path("fire_alarm")
    except FwtoolError as e:
        pytest.skip(f"example tree not usable: {e.cause}")
    good = out.read_bytes()
    assert hashlib.sha256(good).hexdigest() == ex.sha256 and tmp_path in out.parents
    out.write_bytes(DAMAGE[damage](good))
    assert examples.model_path("fire_alarm") == out and out.read_bytes() == good
