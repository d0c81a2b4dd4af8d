"""Issue 12 class 2: hostile file names, labels and output paths must not change the meaning of generated C++ or
CMake. The rendered sources are compiled with the host compiler (symbols and label bytes compared with a benign
render); when the SDK is present, a real pico build runs with every hostile name at once."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fwtool.firmware import render
from fwtool.firmware.flow import BuildOptions, plan, template_context
from test_render import mini_tflm  # noqa: F401 - the miniature pico-tflmicro fixture

HOSTILE_NAME = os.fsdecode(b"evil\n#warning injected\nint injected_symbol = 1; /x* ${HOME} $(id) ; # \\ \x1b[2J\xff")
HOSTILE_NAME = HOSTILE_NAME.replace("/", "")  # a file name cannot hold '/'
HOSTILE_LABEL = 'a"b\\c*/d??/e\u30e9\u30d9\u30eb#x${y}$(z);'


def _render(tmp_path: Path, name: str, label: str, fire_alarm: Path, tflm_root: Path) -> Path:
    folder = tmp_path / ("hostile" if name != "model" else "benign")
    folder.mkdir()
    model = folder / f"{name}.tflite"
    shutil.copy(fire_alarm, model)
    (folder / "labels.txt").write_text(label + "\n", encoding="utf-8")
    np.save(folder / "x.npy", np.zeros((1, 124, 129, 1), np.int8))
    inp = folder / f"{name}.npy"
    os.replace(folder / "x.npy", inp)
    p = plan(BuildOptions(board="pico", model=model, labels=folder / "labels.txt", input=inp, arena=30000,
                          out_dir=folder / "out"))
    files = render.render_all(p.family.template_dir, template_context(p, {"pico-tflmicro": tflm_root}), p.app)
    project = folder / "project"
    render.write_project(files, project)
    return project


def _compile(project: Path) -> tuple[set[str], bytes]:
    objs = []
    for src in ("model_data.cpp", "input_data.cpp"):
        obj = project / (src + ".o")
        proc = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", "-I", str(project), "-o", str(obj),
                               str(project / src)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        objs.append(obj)
    (project / "labels_main.cpp").write_text(
        '#include <cstdio>\n#include "fwtool_config.h"\n'
        'int main() { fputs(fwtool_labels[0], stdout); fputc(0x1e, stdout); fputs(FWTOOL_LABELS_CSV, stdout); }\n')
    exe = project / "labels"
    proc = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(project), "-o", str(exe),
                           str(project / "labels_main.cpp")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    symbols = set()
    for obj in objs:
        nm = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True, check=True).stdout
        symbols |= {line.split()[-1] for line in nm.splitlines() if line.strip()}
    return symbols, subprocess.run([str(exe)], capture_output=True, check=True).stdout


def test_hostile_names_do_not_change_generated_sources(tmp_path, fire_alarm, mini_tflm):
    for tool in ("g++", "nm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    benign_symbols, _ = _compile(_render(tmp_path, "model", "fire", fire_alarm, mini_tflm))
    project = _render(tmp_path, HOSTILE_NAME, HOSTILE_LABEL, fire_alarm, mini_tflm)
    symbols, labels = _compile(project)
    assert symbols == benign_symbols  # nothing declared by a file name
    assert labels == (HOSTILE_LABEL + "\x1e" + HOSTILE_LABEL).encode()  # byte for byte, UTF-8 kept
    for text in (project / "model_data.cpp").read_text(), (project / "input_data.cpp").read_text():
        # the name may appear escaped inside a string literal or a // comment; outside them it must not
        code = re.sub(r"//[^\n]*", "", re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text))
        assert "#warning" not in code and "injected_symbol" not in code, code
        assert "\x1b" not in text


def test_real_build_with_hostile_names(tmp_path, fire_alarm, real_build_reason):
    if real_build_reason:
        pytest.skip(real_build_reason)
    model = tmp_path / f"{HOSTILE_NAME}.tflite"
    shutil.copy(fire_alarm, model)
    (tmp_path / "labels.txt").write_text(HOSTILE_LABEL + "\n", encoding="utf-8")
    out = tmp_path / "out dir (x) {y} ü"
    proc = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", "pico", "-m", str(model), "--labels",
                           str(tmp_path / "labels.txt"), "--out", str(out)], capture_output=True, text=True,
                          errors="strict", timeout=900)  # strict: the terminal output must be valid UTF-8
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (out / "build.log").read_text(errors="replace")
    assert "injected" not in log and "warning: #warning" not in log
    assert HOSTILE_LABEL.encode() in (out / "firmware.elf").read_bytes()  # the label, byte for byte
    nm = shutil.which("arm-none-eabi-nm")
    if nm:  # the model name is in the image only as a sanitized string (FWTOOL_MODEL_NAME), never as a symbol
        symbols = subprocess.run([nm, str(out / "firmware.elf")], capture_output=True, text=True).stdout
        assert "injected_symbol" not in symbols
    assert "\x1b" not in proc.stdout + proc.stderr
