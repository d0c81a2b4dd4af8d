"""Issue 12: a bounded, seeded fuzz test of the model side. A few hundred mutants (byte flips and structural edits
of fire_alarm and of a small generated model) go through ``fwtool inspect``'s Python API in-process (parse,
TFLM check, layers/MACs, board rows, the printed report, default labels), and ~30 through the CLI (which also runs
the native TFLM interpreter for the arena, in a child process). Any exception other than a FwtoolError fails the
test, as do a native crash escaping (exit code from a signal), "internal error", a traceback, or a hang."""
from __future__ import annotations

import concurrent.futures
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

import modelgen
from fwtool.firmware import userdata
from fwtool.firmware.verdict import inspect_model
from fwtool.commands.inspect import print_report
from fwtool.core.errors import FwtoolError
from fwtool.model import arena as arena_mod
from fwtool.model import inspection
from fwtool.model.tflite import parse_model

SEED = 12
IN_PROCESS = 300
CLI_CASES = 30
CASE_TIMEOUT_S = 5.0  # one in-process case (parse + report)
CLI_TIMEOUT_S = 60.0

INTERESTING = [0, 1, -1, 2, 3, 7, 127, 128, 255, 256, 65535, 2**31 - 1, -2**31, 10**9, 4096]


def _flip_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(8, len(b))  # keep the identifier: flips past it reach the parser
        b[i] = rng.choice([rng.randrange(256), 0, 0xFF, b[i] ^ (1 << rng.randrange(8))])
    if rng.random() < 0.15:
        b = b[:rng.randrange(8, len(b))]  # truncated
    return bytes(b)


def _structural(data: bytes, rng: random.Random) -> bytes:
    m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    sg = m.subgraphs[0]
    for _ in range(rng.randint(1, 3)):
        what = rng.randrange(11)
        t = rng.choice(sg.tensors)
        op = rng.choice(sg.operators)
        v = rng.choice(INTERESTING)
        if what == 0 and t.shape is not None and len(t.shape):
            t.shape = np.array(t.shape, dtype=np.int32)
            t.shape[rng.randrange(len(t.shape))] = v  # every INTERESTING value fits int32
        elif what == 1:
            t.type = rng.randrange(-1, 20)
        elif what == 2:
            t.buffer = v if v >= 0 else 0
        elif what == 3 and t.quantization is not None:
            rng.choice([lambda: setattr(t.quantization, "zeroPoint", None),
                        lambda: setattr(t.quantization, "scale", np.array([np.nan], np.float32)),
                        lambda: setattr(t.quantization, "scale", np.array([0.0, 1.0], np.float32))])()
        elif what == 4:
            op.opcodeIndex = abs(v) % 300
        elif what == 5 and op.inputs is not None and len(op.inputs):
            op.inputs = np.array(op.inputs, dtype=np.int32)
            op.inputs[rng.randrange(len(op.inputs))] = max(-2**31, min(v, 2**31 - 1))
        elif what == 6:
            sg.inputs = np.array([max(-2**31, min(v, 2**31 - 1))], dtype=np.int32) if rng.random() < 0.7 else []
        elif what == 7:
            sg.outputs = np.array([max(-2**31, min(v, 2**31 - 1))], dtype=np.int32) if rng.random() < 0.7 else []
        elif what == 8:
            oc = rng.choice(m.operatorCodes)
            oc.builtinCode = rng.randrange(0, 210)
            oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
            oc.version = rng.choice([1, 2, 3, 9, 0])
        elif what == 9:
            t.name = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        else:
            m.version = rng.choice([0, 2, 3, 4])
    return modelgen.pack(m)


def mutants(count: int, seed: int):
    rng = random.Random(seed)
    bases = [modelgen.FIRE_ALARM.read_bytes(), modelgen.tiny_fc_model()]
    for i in range(count):
        base = bases[i % 2]
        try:
            data = _structural(base, rng) if rng.random() < 0.6 else _flip_bytes(base, rng)
        except Exception:  # the object API cannot pack every edit; fall back to byte flips
            data = _flip_bytes(base, rng)
        yield i, data


def _inspect_in_process(data: bytes, capsys) -> None:
    try:
        model = parse_model(data, "fuzz.tflite")
    except FwtoolError:
        return
    report = inspect_model(model, board="pico")
    json.dumps(report)
    print_report(report)
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err
    userdata.read_labels(None, model.outputs[0].elements)


@pytest.fixture
def fixed_arena(monkeypatch):
    """In-process cases skip the native arena measurement (the CLI cases run it, contained in a child)."""
    def size_for(model, override=None, target=None):
        return arena_mod.ArenaSize(1000, 1024, 2032, "override")

    monkeypatch.setattr(inspection.arena_mod, "size_for", size_for)


def test_mutated_models_in_process(fire_alarm, fixed_arena, capsys):
    start = time.monotonic()
    failures = []
    for i, data in mutants(IN_PROCESS, SEED):
        box: dict = {}

        def case():
            try:
                _inspect_in_process(data, capsys)
            except FwtoolError:
                pass
            except BaseException as e:  # noqa: BLE001 - what the fuzz test is for
                box["error"] = f"{type(e).__name__}: {e}"

        worker = threading.Thread(target=case, daemon=True)
        worker.start()
        worker.join(CASE_TIMEOUT_S)
        if worker.is_alive():
            failures.append((i, "hang"))
            break
        if "error" in box:
            failures.append((i, box["error"]))
    assert not failures, failures[:10]
    assert time.monotonic() - start < 45


def _cli(path: str) -> tuple[int, str]:
    env = {**os.environ, "FWTOOL_CONFIG": os.devnull + "-none"}
    try:
        proc = subprocess.run([sys.executable, "-m", "fwtool", "inspect", path, "--board", "pico"],
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return -999, "hang"
    return proc.returncode, proc.stderr + proc.stdout


def test_mutated_models_through_the_cli(tmp_path, fire_alarm):
    paths = []
    for i, data in mutants(CLI_CASES, SEED + 1):
        p = tmp_path / f"m{i}.tflite"
        p.write_bytes(data)
        paths.append(str(p))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_cli, paths))
    bad = []
    for path, (code, text) in zip(paths, results):
        if code == -999 or code < 0 or code >= 128 or code not in (0, 1, 3, 5):
            bad.append((path, code, "hang" if code == -999 else f"exit {code}"))
        elif "Traceback" in text or "internal error" in text or "\x1b" in text:
            bad.append((path, code, text[-300:]))
        elif code:
            lines = [ln for ln in text.splitlines() if ln.startswith("error: ")]
            if len(lines) != 1:
                bad.append((path, code, text[-300:]))
    assert not bad, bad[:5]
    assert -signal.SIGSEGV not in [c for c, _ in results]
