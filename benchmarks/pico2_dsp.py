#!/usr/bin/env python3
"""Pico 2 (RP2350) next to the Pico (RP2040), and what CMSIS-NN's DSP paths bring on the Cortex-M33 (issue 24),
measured in one run.

    python benchmarks/pico2_dsp.py [--models fire_alarm person_detect] [--jobs 2]

For each example model, three single-core inference builds (``--tflm-cores 1``):
  pico2        the Pico 2 board: TFLM + CMSIS-NN for the M33 with the DSP extension and FPU;
  pico2-nodsp  a user board ``extends = "pico2"`` with ``[sdk] dsp = false`` (the same build without the DSP
               extension: CMSIS-NN's plain C paths);
  pico         the RP2040 board (Cortex-M0+).
Prints text (arm-none-eabi-size's, from report.json), the arena, SMLAD instructions linked, and per invoke: the
M33 builds' *instructions* on QEMU mps2-an505 (-icount: 1 instruction = 1 ns; not cycle-accurate, not RP2350
timing) and the RP2040's *cycles* on rp2040js (125 MHz; rp2040js counts cycles). The DSP speed-up is
instructions(nodsp) / instructions(dsp) of the same model on the same machine.
Needs the toolchain, the trees, QEMU and Node (`fwtool doctor`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NODSP_BOARD = 'name = "pico2_nodsp"\nextends = "pico2"\ntitle = "Pico 2, CMSIS-NN without DSP"\n[sdk]\ndsp = false\n'


def fwtool(*args) -> dict:
    r = subprocess.run([sys.executable, "-m", "fwtool", *args, "--json"], capture_output=True, text=True,
                       cwd=os.getcwd())
    if r.returncode != 0:
        sys.exit(f"fwtool {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def smlad(elf: Path) -> int:
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return sum(1 for ln in dis.splitlines() if "\tsmlad" in ln)


def per_invoke(elf_or_uf2: Path, target: str) -> int:
    from fwtool.emulator.targets import run_capture
    res = run_capture(elf_or_uf2, count=3, target=target, timeout=600, max_emulated_s=120)
    us = res.invoke_us
    if not us:
        sys.exit(f"no FWT:INFER lines from {elf_or_uf2} on {target}: {res.reason} {res.detail}")
    return min(us) * (1000 if target.startswith("qemu") else 125)  # ns = instructions; us * 125 MHz = cycles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["fire_alarm", "person_detect"])
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fwtool-pico2-"))
    rows = []
    for name in a.models:
        model_dir = work / name
        (model_dir / "boards").mkdir(parents=True)
        (model_dir / "boards" / "pico2_nodsp.toml").write_text(NODSP_BOARD)  # a user board beside the model
        got = {}
        for board in ("pico2", "pico2_nodsp", "pico"):
            out = work / f"{name}-{board}"
            model = f"example:{name}"
            if board == "pico2_nodsp":  # user boards are found beside a model file: copy the example there
                from fwtool.model.examples import model_path  # noqa: PLC0415
                src = model_path(name)
                (model_dir / f"{name}.tflite").write_bytes(Path(src).read_bytes())
                model = str(model_dir / f"{name}.tflite")
            rep = fwtool("build", "--board", board, "-m", model, "--tflm-cores", "1", "--out", str(out),
                         "--jobs", str(a.jobs))
            if board == "pico":
                n = per_invoke(out / "firmware.uf2", "rp2040js")
            else:
                n = per_invoke(out / "cmake" / "firmware_vm33.elf", "qemu-mps2-an505")
            got[board] = {"text": rep["sizes"]["text"], "arena": rep["arena"]["arena_bytes"],
                          "smlad": smlad(out / "firmware.elf"), "per_invoke": n}
        rows.append((name, got))
    print(f"{'model':<14} {'board':<12} {'text B':>9} {'arena B':>9} {'SMLAD':>6} {'per invoke':>16}")
    for name, got in rows:
        for board, g in got.items():
            unit = "cycles (rp2040js)" if board == "pico" else "instr (QEMU M33)"
            print(f"{name:<14} {board:<12} {g['text']:>9,} {g['arena']:>9,} {g['smlad']:>6} {g['per_invoke']:>12,} {unit}")
        print(f"{name:<14} DSP speed-up on the M33: {got['pico2_nodsp']['per_invoke'] / got['pico2']['per_invoke']:.2f}x "
              f"fewer instructions per invoke with CMSIS-NN's DSP paths")
    print("note: QEMU -icount counts instructions (not cycle-accurate, not RP2350 timing); rp2040js counts cycles")


if __name__ == "__main__":
    main()
