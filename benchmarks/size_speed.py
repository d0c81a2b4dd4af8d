#!/usr/bin/env python3
"""Firmware size, arena and build speed of `fwtool build` for the Pico, measured in one run (issue 14).

    python benchmarks/size_speed.py [--model M] [--jobs 2] [--full-library] [--no-arena]

Prints, for MODEL (default fire_alarm) on board pico:
1. text by component (report.json ``text_by_component``; the total is arm-none-eabi-size's text) before/after
   (before = the figures measured before issue 14) and the ratio to the 81,000 B goal;
2. the arena the firmware allocates / the arena_used its banner prints on the virtual board (goal <= 1.05);
3. the cold build: ccache pointed at an empty temporary CCACHE_DIR, -j JOBS: compile units and seconds (goal
   <= 60 s), of which the compile step, and the arena measurement on the virtual board when it ran;
4. a model-only rebuild (same ops, other bytes; goal <= 2 s), a no-change rebuild (< 1 s) and a second out dir
   with the warm ccache (< 5 s);
5. with --full-library: pico-tflmicro's whole ``pico-tflmicro`` library target built by hand (its own CMake
   project, same -j, empty ccache) and fwtool's cold build as a ratio of it (takes minutes).
Timings depend on the machine's load: run on an idle machine. Needs the toolchain and trees (`fwtool doctor`).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import modelgen  # noqa: E402

GOAL_TEXT = 81_000
# Measured before issue 14 (fire_alarm, pico, USB stdio; fwtool at commit 39a88c8).
BEFORE = {"text": 124_568, "arena": 20_736, "arena_used": 18_020, "cold_s": 121.0, "units": 341}


CPU = {"last": 0.0}  # user+sys seconds of the last fwtool run and everything it started (compilers)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fwtool(*args, env=None, check=True):
    t, c = time.monotonic(), _children_cpu()
    p = subprocess.run([sys.executable, "-m", "fwtool", *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    dt = time.monotonic() - t
    CPU["last"] = _children_cpu() - c
    if check and p.returncode:
        sys.exit(f"fwtool {' '.join(map(str, args))} failed: {p.stderr.strip()[-2000:]}")
    return dt, p


def build(model, out, jobs, env=None):
    dt, p = fwtool("build", "-b", "pico", "-m", model, "--out", out, "-j", jobs, "--json", env=env)
    report = json.loads(p.stdout)
    # compile units = object files in the CMake tree (build.log holds only the last pass when the first build of a
    # model graph re-links with the arena measured on the virtual board)
    ninja = Path(out) / "cmake" / "build.ninja"
    units = sum(1 for ln in ninja.read_text(errors="replace").splitlines()
                if ln.startswith("build ") and ln.split(":", 1)[0].endswith((".o", ".obj"))) if ninja.is_file() else 0
    return dt, report, units


def berkeley_text(elf: Path) -> int | None:
    tool = shutil.which("arm-none-eabi-size")
    if not tool:
        return None
    out = subprocess.run([tool, str(elf)], capture_output=True, text=True).stdout.splitlines()
    return int(out[1].split()[0]) if len(out) > 1 else None


def banner_arena_used(image: Path) -> int | None:
    from fwtool.emulator.arena_probe import banner_arena_used as probe  # the virtual board's banner
    return probe(image)


def full_library(tmp: Path, jobs: int) -> float | None:
    """Seconds to build pico-tflmicro's own ``pico-tflmicro`` library target by hand, empty ccache."""
    from fwtool.core import vendor
    root = vendor.require(vendor.manifest()["pico-tflmicro"])
    sdk = vendor.require(vendor.manifest()["pico-sdk"])
    usb = vendor.require(vendor.manifest()["tinyusb"])
    bdir, src = tmp / "by-hand", tmp / "by-hand-src"
    # pico-tflmicro's own CMakeLists up to its library target (the examples/tests it adds after that are not in
    # the pinned tree), with its paths pointing into the tree: the library exactly as its project builds it.
    cml = (Path(root) / "CMakeLists.txt").read_text()
    cml = cml[:cml.index("add_library(pico-tflmicro_test")]
    cml = cml.replace("${CMAKE_CURRENT_LIST_DIR}", Path(root).as_posix())
    cml = cml.replace("include(pico_sdk_import.cmake)", f"include({Path(root).as_posix()}/pico_sdk_import.cmake)")
    src.mkdir(parents=True, exist_ok=True)
    (src / "CMakeLists.txt").write_text(cml)
    env = dict(os.environ, CCACHE_DISABLE="1")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = subprocess.run(["cmake", "-S", str(src), "-B", str(bdir), *gen, "-DCMAKE_BUILD_TYPE=Release",
                          "-DPICO_NO_PICOTOOL=1", f"-DPICO_SDK_PATH={sdk}", f"-DPICO_TINYUSB_PATH={usb}"],
                         capture_output=True, text=True, env=env)
    if cfg.returncode:
        print(f"by-hand library: configure failed: {cfg.stderr.strip()[-400:]}")
        return None
    t = time.monotonic()
    b = subprocess.run(["cmake", "--build", str(bdir), "--target", "pico-tflmicro", "-j", str(jobs)],
                       capture_output=True, text=True, env=env)
    dt = time.monotonic() - t
    if b.returncode:
        print(f"by-hand library: build failed: {(b.stdout + b.stderr).strip()[-400:]}")
        return None
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=modelgen.FIRE_ALARM)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--full-library", action="store_true", help="also build pico-tflmicro's whole library by hand")
    ap.add_argument("--no-arena", action="store_true", help="skip the banner run on the virtual board")
    a = ap.parse_args()
    print(f"model {a.model}  board pico  -j {a.jobs}  (timings depend on the machine's load)")
    with tempfile.TemporaryDirectory(prefix="fwtool-size-") as tmp:
        tmp = Path(tmp)
        empty_cache = {"CCACHE_DIR": str(tmp / "ccache-empty")}
        cold, r, units = build(a.model, tmp / "cold", a.jobs, empty_cache)
        cold_cpu = CPU["last"]
        text = r["sizes"]["text"]
        size_text = berkeley_text(Path(r["files"]["elf"]))
        comp = r.get("text_by_component", {})

        print("\n1. flash (text)                          before      after")
        for row in comp.get("rows", []):
            print(f"   {row['component']:34} {'':>9} {row['bytes']:10,}  {row['pct']:5.1f} %")
        print(f"   {'total (report)':34} {BEFORE['text']:9,} {text:10,}  {100 * text / BEFORE['text']:5.1f} % of before")
        print(f"   arm-none-eabi-size text            {'':>9} {size_text if size_text is not None else 'n/a':>10}"
              f"  {'equal' if size_text == text else 'DIFFERENT' if size_text is not None else ''}")
        print(f"   text / {GOAL_TEXT:,} goal                       {text / GOAL_TEXT:10.3f}  "
              f"({'met' if text <= GOAL_TEXT else 'NOT met'})")

        ar = r["arena"]
        used = None if a.no_arena else banner_arena_used(Path(r["files"]["uf2"]))
        print("\n2. arena                                  before      after")
        print(f"   allocated ({ar['source']:8})            {BEFORE['arena']:9,} {ar['arena_bytes']:10,}  "
              f"(margin {ar['margin_bytes']:,} B over {ar['measured_bytes']:,})")
        if used:
            print(f"   banner arena_used (virtual board)   {BEFORE['arena_used']:9,} {used:10,}")
            print(f"   allocated / used (goal <= 1.05)     {BEFORE['arena'] / BEFORE['arena_used']:9.3f} "
                  f"{ar['arena_bytes'] / used:10.3f}")
        else:
            print("   banner arena_used: not measured (no virtual board, or --no-arena)")

        print("\n3. cold build, empty ccache              before      after")
        print(f"   compile units                       {BEFORE['units']:9} {units:10}")
        print(f"   wall seconds (goal <= 60)           {BEFORE['cold_s']:9.1f} {cold:10.1f}  "
              f"(includes, once per model graph, the arena run on the virtual board and a re-link)")
        print(f"   CPU seconds (user+sys, all processes)         {cold_cpu:10.1f}  (/ {a.jobs} jobs = "
              f"{cold_cpu / a.jobs:.1f} s: the wall time on an idle machine, roughly)")

        pad = tmp / "second.tflite"
        pad.write_bytes(modelgen.padded_model(2048))
        inc, r2, _ = build(pad, tmp / "cold", a.jobs, empty_cache)
        same, r3, _ = build(pad, tmp / "cold", a.jobs, empty_cache)
        warm, _, _ = build(a.model, tmp / "second-out", a.jobs, empty_cache)
        print("\n4. rebuilds")
        print(f"   model-only rebuild (goal <= 2 s)    {inc:10.2f} s  changed: {', '.join(r2['build']['changed_files'])}")
        print(f"   no-change rebuild (goal < 1 s)      {same:10.2f} s")
        print(f"   second out dir, warm ccache (< 5 s) {warm:10.2f} s")

        if a.full_library:
            lib = full_library(tmp, a.jobs)
            print("\n5. pico-tflmicro's whole library by hand (empty ccache)")
            if lib:
                print(f"   library target                      {lib:10.1f} s")
                print(f"   fwtool cold build / by-hand library {cold / lib:10.3f}")


if __name__ == "__main__":
    main()
