"""Issue 12: hostile and broken input through the CLI, table-driven per class. Each case must end with the right
exit code, exactly one ``error:`` line and one ``fix:`` line, no traceback, no "internal error", and nothing
written outside the output folder. (Escaping itself: test_escape.py; mutated models: test_fuzz_models.py.)"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelgen
from fwtool.firmware.flow import BuildOptions, plan

FIRE = modelgen.FIRE_ALARM
SHAPE = (1, 124, 129, 1)


def fwtool_subprocess(args, cwd, env=None, timeout=120):
    e = {**os.environ, "FWTOOL_CONFIG": str(Path(cwd) / "no-config.toml"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fwtool", *args], capture_output=True, text=True, cwd=cwd, env=e,
                          timeout=timeout)


def fwtool(args, cwd, env=None, timeout=None):
    """``fwtool ARGS`` in-process through fwtool.cli.main (exit code, stdout, stderr), in ``cwd`` with ``env``."""
    from fwtool import cli
    from fwtool.core import config

    env = {"FWTOOL_CONFIG": str(Path(cwd) / "no-config.toml"), **(env or {})}
    saved_env = {k: os.environ.get(k) for k in env}
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.environ.update(env)
        os.chdir(cwd)
        config.load.cache_clear()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        config.load.cache_clear()
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_one_error(proc, code, match):
    assert proc.returncode == code, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("  fix: "), proc.stderr
    assert match in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "\x1b" not in proc.stderr + proc.stdout


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def mutate(fn) -> bytes:
    m = modelgen.load()
    fn(m, m.subgraphs[0])
    return modelgen.pack(m)


def _out_tensor(m, sg):
    return sg.tensors[sg.outputs[0]]


MODELS = {  # class 5 (internal error before), 4 (unbounded), 8 (cannot start)
    "no_inputs": (lambda m, sg: setattr(sg, "inputs", []), "declares no inputs"),
    "no_outputs": (lambda m, sg: setattr(sg, "outputs", []), "declares no outputs"),
    "output_index": (lambda m, sg: setattr(sg, "outputs", [999]), "output tensor index 999 is out of range"),
    "input_index": (lambda m, sg: setattr(sg, "inputs", [-5]), "input tensor index -5 is out of range"),
    "opcode_index": (lambda m, sg: setattr(sg.operators[0], "opcodeIndex", 77), "op code index 77"),
    "op_tensor_index": (lambda m, sg: setattr(sg.operators[1], "inputs", np.array([5000], dtype=np.int32)),
                        "input tensor index 5000"),
    "buffer_index": (lambda m, sg: setattr(sg.tensors[0], "buffer", 10_000), "buffer index 10000"),
    "scale_no_zero_point": (lambda m, sg: setattr(sg.tensors[sg.inputs[0]].quantization, "zeroPoint", None),
                            "scale(s) but 0 zero point(s)"),
    "billion_outputs": (lambda m, sg: setattr(_out_tensor(m, sg), "shape", np.array([1, 10**9], dtype=np.int32)),
                        "1,000,000,000 elements"),
    "negative_dim": (lambda m, sg: setattr(_out_tensor(m, sg), "shape", np.array([1, -3], dtype=np.int32)),
                     "negative dimension"),
    "schema_version": (lambda m, sg: setattr(m, "version", 2), "schema version 2"),
    "no_subgraphs": (lambda m, sg: setattr(m, "subgraphs", []), "no subgraphs"),
}


BUILT = {"no_outputs", "billion_outputs", "schema_version", "scale_no_zero_point"}  # also through build


@pytest.mark.parametrize("name,command", [(n, "inspect") for n in sorted(MODELS)] +
                         [(n, "build") for n in sorted(BUILT)])
def test_malformed_models_are_refused(tmp_path, fire_alarm, name, command):
    fn, match = MODELS[name]
    (tmp_path / "m.tflite").write_bytes(mutate(fn))
    before = files_under(tmp_path)
    args = ["inspect", "m.tflite"] if command == "inspect" else ["build", "-b", "pico", "-m", "m.tflite",
                                                                  "--out", "out"]
    proc = fwtool(args, tmp_path)
    assert_one_error(proc, 3, match)
    assert files_under(tmp_path) - before <= {"out"}


def _special(tmp_path: Path, kind: str) -> str:
    p = tmp_path / f"special_{kind}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "loop":
        os.symlink(tmp_path / "special_loop2", p)
        os.symlink(p, tmp_path / "special_loop2")
    elif kind == "device":
        return "/dev/zero"
    return str(p)


SPECIAL = {"fifo": "FIFO", "dir": "a directory", "loop": "symlink loop", "device": "a device",
           "missing": "does not exist"}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
@pytest.mark.parametrize("option", ["--model", "--input", "--labels"])
def test_special_files_get_their_own_cause(tmp_path, fire_alarm, kind, option):
    """class 4/10: never read a FIFO or device (hang, unbounded read); never say 'does not exist' for a folder."""
    path = _special(tmp_path, kind)
    args = {"--model": ["-m", path], "--input": ["-m", str(fire_alarm), "--input", path],
            "--labels": ["-m", str(fire_alarm), "--labels", path]}[option]
    proc = fwtool(["build", "-b", "pico", *args, "--arena", "30000", "--out", "out"], tmp_path, timeout=60)
    assert_one_error(proc, 3, SPECIAL[kind])


def _arrays(tmp_path: Path) -> dict:
    nan = np.zeros(SHAPE, np.float32)
    nan[0, 3, 4, 0] = np.nan
    inf = np.zeros(SHAPE, np.float32)
    inf[0, 0, 7, 0] = np.inf
    big = np.zeros(SHAPE, np.int64)
    big[0, 1, 2, 0] = 200
    big[0, 5, 5, 0] = -129
    return {
        "int64_out_of_range": (big, "2 value(s) do not fit int8 [-128, 127], the first at index [0, 1, 2, 0] (200)"),
        "nan": (nan, "1 NaN/infinite value(s), the first at index [0, 3, 4, 0]"),
        "inf": (inf, "the first at index [0, 0, 7, 0]"),
        "complex": (np.zeros(SHAPE, np.complex64), "complex array"),
        "string": (np.full(SHAPE, "a"), "string array"),
        "float_out_of_range": (np.full(SHAPE, 1e6, np.float32), "fall outside int8 after quantizing"),
        "wrong_size": (np.zeros(7, np.int8), "has 7 values"),
    }


@pytest.mark.parametrize("case", ["int64_out_of_range", "nan", "inf", "complex", "string", "float_out_of_range",
                                  "wrong_size", "npz", "pickled", "not_npy"])
def test_bad_input_arrays(tmp_path, fire_alarm, case):
    """class 5/6: values are never wrapped, clipped or changed without a word."""
    path = tmp_path / "x.npy"
    if case == "npz":
        path = tmp_path / "x.npz"
        np.savez(path, x=np.zeros(SHAPE, np.int8))
        match = ".npz archive"
    elif case == "pickled":
        path.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
                         .ljust(127, b" ") + b"\n" + pickle.dumps([1]))
        match = "holds Python objects"
    elif case == "not_npy":
        path.write_text("1 2 3\n")
        match = "is not a .npy array"
    else:
        arr, match = _arrays(tmp_path)[case]
        np.save(path, arr)
    proc = fwtool(["build", "-b", "pico", "-m", str(fire_alarm), "--input", str(path), "--arena", "30000",
                   "--out", "out"], tmp_path)
    assert_one_error(proc, 3, match)


def test_labels_keep_their_text_and_changes_are_noted(tmp_path, fire_alarm):
    long = "ラベル" * 20  # 180 bytes of UTF-8: kept whole
    (tmp_path / "l.txt").write_text(long + "\n", encoding="utf-8")
    p = plan(BuildOptions(board="pico", model=fire_alarm, labels=tmp_path / "l.txt", arena=30000,
                          out_dir=tmp_path / "o"))
    assert p.labels == [long] and not any("labels" in n for n in p.notes)
    (tmp_path / "l.txt").write_text("feu, alarme\n", encoding="utf-8")
    p = plan(BuildOptions(board="pico", model=fire_alarm, labels=tmp_path / "l.txt", arena=30000,
                          out_dir=tmp_path / "o"))
    assert p.labels == ["feu__alarme"] and any("'feu, alarme' -> 'feu__alarme'" in n for n in p.notes)


@pytest.mark.parametrize("content,match", [
    (b"\xff\xfe\n", "not UTF-8"), ("x" * 300 + "\n", "300 bytes"), ("a\nb\n", "has 2 labels"),
])
def test_bad_labels(tmp_path, fire_alarm, content, match):
    (tmp_path / "l.txt").write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = fwtool(["build", "-b", "pico", "-m", str(fire_alarm), "--labels", "l.txt", "--arena", "30000",
                   "--out", "out"], tmp_path)
    assert_one_error(proc, 3, match)


CONFIGS = {
    "vendor_string": ('vendor = "x"\n', "'vendor' must be a table"),
    "path_int": ("[vendor.pico-sdk]\npath = 5\n", "must be a non-empty string, not int"),
    "path_list": ('[vendor.pico-sdk]\npath = ["a"]\n', "not list"),
    "entry_list": ("[[vendor.pico-sdk]]\npath = 'a'\n", "must be a table with path/url keys"),
    "not_toml": ("x = \n", "not valid TOML"),
    "not_utf8": (b"[vendor.a]\npath = \"\xff\"\n", "not UTF-8"),
    "unknown_user": ('[vendor.pico-sdk]\npath = "~nosuchuser12345/sdk"\n', "names user 'nosuchuser12345'"),
    "directory": (None, "is a directory"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bad_config_is_exit_4(tmp_path, name):
    content, match = CONFIGS[name]
    cfg = tmp_path / "config.toml"
    if content is None:
        cfg.mkdir()
    else:
        cfg.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = fwtool(["vendor", "status"], tmp_path, env={"FWTOOL_CONFIG": str(cfg)})
    assert_one_error(proc, 4, match)


def test_arena_override_below_the_measured_minimum_is_refused(tmp_path, fire_alarm):
    """class 8: a firmware that would only print FWT:ERROR is not a successful build."""
    proc = fwtool(["build", "-b", "pico", "-m", str(fire_alarm), "--arena", "2000", "--out", "out"], tmp_path)
    assert_one_error(proc, 3, "is smaller than the")
    assert not (tmp_path / "out" / "firmware.uf2").exists()


def test_poisoned_arena_cache_is_remeasured(tmp_path, fire_alarm, monkeypatch):
    from fwtool.model import arena
    from fwtool.model.tflite import load_model

    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    m = load_model(fire_alarm)
    path = tmp_path / "arena" / f"{m.sha256}.json"
    good = arena.cached_measure(m)
    for poison in ['{"tflite_micro": "%s", "measured": -5}', '{"tflite_micro": "%s", "measured": true}',
                   '["%s"]', "not json %s", '{"tflite_micro": "%s", "measured": 99999999999}']:
        path.write_text(poison % arena._runtime_version())
        assert arena.cached_measure(m) == good
    path.unlink()
    os.mkfifo(path)  # a FIFO in the cache must not hang the build
    assert arena.cached_measure(m) == good


def test_escape_sequences_in_tensor_and_file_names_are_shown_escaped(tmp_path, fire_alarm):
    """class 10: an embedded ESC[2J must not clear the screen."""
    data = mutate(lambda m, sg: setattr(sg.tensors[sg.inputs[0]], "name", b"in\x1b[2Jput"))
    name = "m\x1b[31m.tflite"
    (tmp_path / name).write_bytes(data)
    proc = fwtool_subprocess(["inspect", name, "--board", "pico"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and "in\\x1b[2Jput" in proc.stdout


def test_bad_port_url_says_what_is_wrong(tmp_path):
    proc = fwtool_subprocess(["monitor", "--port", "socket://127.0.0.1:99999", "--timeout", "1"], tmp_path,
                             timeout=30)
    assert "debug|info|warning|error" not in proc.stderr and "PORT 1-65535" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


# class 11: a refused build leaves no output that could be mistaken for the last command's
STALE = ("firmware.uf2", "firmware.elf", "firmware.bin", "firmware.map", "report.json")


@pytest.mark.parametrize("why", ["bad_model", "does_not_fit", "bad_input"])
def test_refused_build_leaves_no_stale_outputs(tmp_path, fire_alarm, why):
    out = tmp_path / "out"
    (out / "project").mkdir(parents=True)
    for name in STALE:
        (out / name).write_text("old")
    (out / "mine.txt").write_text("not fwtool's")
    args = {"bad_model": ["-m", "bad.tflite"], "does_not_fit": ["-m", "big.tflite"],
            "bad_input": ["-m", str(fire_alarm), "--input", "x.npy"]}[why]
    (tmp_path / "bad.tflite").write_bytes(b"garbage")
    if why == "does_not_fit":
        (tmp_path / "big.tflite").write_bytes(modelgen.padded_model(2_500_000))
    np.save(tmp_path / "x.npy", np.full(SHAPE, 300, np.int64))
    proc = fwtool(["build", "-b", "pico", *args, "--arena", "30000", "--out", "out"], tmp_path)
    assert proc.returncode in (3, 5), proc.stderr
    assert [n for n in STALE if (out / n).exists()] == []
    assert (out / "mine.txt").read_text() == "not fwtool's"


def _out_dir(tmp_path: Path, kind: str) -> tuple[str, dict]:
    if kind == "root":
        return "/", {}
    if kind == "home":
        (tmp_path / "home").mkdir()
        return str(tmp_path / "home"), {"HOME": str(tmp_path / "home")}
    if kind == "file":
        (tmp_path / "afile").write_text("x")
        return "afile", {}
    if kind == "foreign":
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "thesis.tex").write_text("x")
        return "docs", {}
    if kind == "too_long":
        return "d" * 300, {}
    return "a;b", {}


@pytest.mark.parametrize("kind,match", [
    ("root", "is a filesystem root"), ("home", "is your home folder"), ("file", "is an existing file"),
    ("foreign", "holds no previous fwtool build (thesis.tex)"), ("too_long", "too long"),
    ("semicolon", "contains ';'"),
])
def test_unsafe_output_folders(tmp_path, fire_alarm, kind, match):
    out, env = _out_dir(tmp_path, kind)
    before = files_under(tmp_path)
    proc = fwtool(["build", "-b", "pico", "-m", str(fire_alarm), "--arena", "30000", "--out", out], tmp_path, env)
    assert_one_error(proc, 3, match)
    assert files_under(tmp_path) == before
    if kind == "root":
        assert not Path("/project").exists() and not Path("/cmake").exists()


def test_read_only_output_folder(tmp_path, fire_alarm):
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only folder")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    proc = fwtool(["build", "-b", "pico", "-m", str(fire_alarm), "--arena", "30000", "--out", "ro/out"], tmp_path)
    assert_one_error(proc, 4, "cannot be written")
