"""How far the virtual board's latency can be trusted: emulated / real RP2040 time, per layer type and per invoke.

    python3 benchmarks/emulator_fidelity.py [--out DIR] [--json]

Not a test: prints the table (Markdown, for docs/profile.md) measured in this one run. Needs the pinned pico-tflmicro
tree (fwtool vendor sync), the ARM toolchain and the virtual board (Node + rp2040js), like `fwtool profile`.

The real figures are pico-tflmicro's own: ``benchmark_results.txt`` in the pinned tree (person_detection_benchmark
on a Pico, TFLM's MicroProfiler with the Pico's µs timer, one "NoPersonDataIterations(1)" run without and one with
the TF_LITE_PICO_MULTICORE dual-core CMSIS-NN kernels). The same model and the same "no person" image come from the
pinned tree's examples (C arrays, converted here at run time; the examples folder is left out of the vendor sync,
so the files are read from the pinned commit with `git show`, which fetches their blobs from the tree's origin when
needed). The model is profiled with `fwtool profile` on the virtual board (single-core: rp2040js has no core 1).

Two emulated builds: fwtool's own (TFLM at -Os, what `fwtool profile` measures) and, unless --no-o3, the same
generated project with -O3 instead of -Os (configured with the first build's CMake cache values, built with
cmake --build, run with fwtool.emulator): pico-tflmicro's benchmark was compiled at pico-sdk's Release -O3 (its own
"COMPILE_FLAGS -Os" is overridden by a later COMPILE_FLAGS line), so the -O3 ratio isolates the emulator from the
compiler flags, and the -Os/-O3 ratio is what fwtool's size-first flags cost.

The published total is the sum of the profiler's layer events (the benchmark adds GetTotalTicks()), so the invoke
ratio compares like with like: the sum of the emulated layers over the sum of the published ones (the emulated
whole Invoke() is printed too). Multi-core: the virtual board runs the single-core kernels, so its ratio to the
dual-core figures says how much slower the emulated estimate is than a dual-core build on a real board.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from fwtool import emulator
from fwtool.core import protocol, runner, vendor
from fwtool.core.errors import FwtoolError
from fwtool.model.tflite import load_model
from fwtool.profile import ProfileOptions, layer_table, parse_lines, profile_one

EXAMPLE = "examples/person_detection/tensorflow/lite/micro/tools/make/downloads/person_model"
MODEL_FILE, MODEL_ARRAY = f"{EXAMPLE}/person_detect_model_data.cpp", "g_person_detect_model_data"
IMAGE_FILE, IMAGE_ARRAY = f"{EXAMPLE}/no_person_image_data.cpp", "g_no_person_image_data"
RESULTS_FILE = "benchmark_results.txt"
_TOOK = re.compile(r"^(\S+) took (\d+) ticks", re.M)


def tree_file(tree: Path, rev: str, rel: str) -> str:
    """A file of the pinned tree: from the work tree when checked out, else from the pinned commit (git show)."""
    path = tree / rel
    if path.is_file():
        return path.read_text()
    proc = runner.capture(["git", "-C", str(tree), "show", f"{rev}:{rel}"], check=False, timeout=300)
    if proc.returncode != 0:
        raise FwtoolError(f"cannot read {rel} of pico-tflmicro {rev[:12]}: {proc.stderr.strip()[:200]}",
                          "the tree needs git access to its origin for the examples folder (or point "
                          "FWTOOL_TFLMICRO_PATH at a full checkout)")
    return proc.stdout


def c_array(source: str, name: str) -> bytes:
    """The bytes of ``const unsigned char NAME[] = { ... };`` (hex or decimal literals)."""
    at = source.index(name + "[]")
    body = source[source.index("{", at) + 1:source.index("}", at)]
    return bytes(int(tok.strip(), 0) for tok in body.split(",") if tok.strip())


def published(text: str) -> dict[str, list[tuple[str, int]]]:
    """{"single": [(op, µs), ...], "multi": [...]} in layer order, plus each section's total ("_total")."""
    single, _, multi = text.partition("Multi-core")
    out = {}
    for key, part in (("single", single), ("multi", multi)):
        rows = [(op, int(t)) for op, t in _TOOK.findall(part)]
        total = next((t for op, t in rows if op.startswith("NoPerson")), None)
        out[key] = [(op, t) for op, t in rows if not op.startswith(("NoPerson", "WithPerson"))]
        out[key + "_total"] = total
    return out


def by_type(rows: list[tuple[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for op, us in rows:
        out[op] = out.get(op, 0.0) + us
    return out


_CACHE_KEYS = ("CMAKE_BUILD_TYPE", "PICO_NO_PICOTOOL", "PICO_SDK_PATH", "PICO_TINYUSB_PATH", "PICO_BOARD",
               "CMAKE_C_COMPILER_LAUNCHER", "CMAKE_CXX_COMPILER_LAUNCHER")


def build_o3(build_out: Path, work: Path) -> Path:
    """fwtool's generated project for ``build_out`` rebuilt with -O3 where it says -Os; the ELF."""
    project = work / "project"
    text = (build_out / "project" / "CMakeLists.txt").read_text()
    o3 = re.sub(r"(target_compile_options\((?:tflm|firmware) PRIVATE) -Os\b", r"\1 -O3", text)
    if o3.count("PRIVATE -O3") != 2:
        raise FwtoolError("the generated CMakeLists no longer compiles tflm/firmware with -Os",
                          "update benchmarks/emulator_fidelity.py (build_o3) or run it with --no-o3")
    for src in (build_out / "project").iterdir():  # the generated sources, next to the edited CMakeLists
        if src.is_file() and src.name != "CMakeLists.txt":
            (project / src.name).parent.mkdir(parents=True, exist_ok=True)
            (project / src.name).write_bytes(src.read_bytes())
    (project / "CMakeLists.txt").write_text(o3)
    cache = (build_out / "cmake" / "CMakeCache.txt").read_text()
    values = dict(re.findall(r"^(\w+):\w+=(.*)$", cache, re.M))
    gen = values.get("CMAKE_GENERATOR", "Ninja")
    args = ["cmake", "-S", str(project), "-B", str(work / "cmake"), "-G", gen,
            *(f"-D{k}={values[k]}" for k in _CACHE_KEYS if k in values)]
    env = {"CCACHE_NOHASHDIR": "1", "CCACHE_BASEDIR": str(work)}  # as fwtool builds: ccache shared across folders
    for cmd in (args, ["cmake", "--build", str(work / "cmake"), "-j", "2"]):
        rc, lines = runner.stream(cmd, env=env)
        if rc != 0:
            raise FwtoolError(f"the -O3 build failed: {(lines or [''])[-1][:200]}", "see the output above")
    return work / "cmake" / "firmware.elf"


def profile_elf(elf: Path, model_path: Path) -> list[tuple[str, float]]:
    """(op, median µs) per layer of the profile image ``elf`` on the virtual board."""
    run = emulator.run_capture(elf, count=1, until=protocol.PREFIX_DONE, timeout=900, max_emulated_s=None)
    if not run.ok:
        raise emulator.failure(run.reason, run.detail)
    table = layer_table(load_model(model_path), parse_lines(run.lines), emulator.CLOCK_MHZ * 1e6, "cortex-m0plus")
    return [(r["op"], r["us"]) for r in table["layers"]]


def compare(emu: list[tuple[str, float]], real: dict) -> dict:
    """Per layer, per layer type and whole-invoke ratios of ``emu`` to the published figures."""
    if [op for op, _ in emu] != [op for op, _ in real["single"]]:
        raise FwtoolError("the emulated layers differ from the published ones",
                          f"emulated {[op for op, _ in emu]}, published {[op for op, _ in real['single']]}")
    out = {"layers": [], "types": []}
    for i, ((op, e), (_, s), (_, m)) in enumerate(zip(emu, real["single"], real["multi"])):
        out["layers"].append({"index": i, "op": op, "emulated_us": e, "real_1core_us": s, "real_2core_us": m,
                              "ratio_1core": e / s if s else None, "ratio_2core": e / m if m else None})
    te, ts, tm = by_type(emu), by_type(real["single"]), by_type(real["multi"])
    for op in te:
        out["types"].append({"op": op, "layers": sum(1 for o, _ in emu if o == op), "emulated_us": te[op],
                             "real_1core_us": ts[op], "real_2core_us": tm[op],
                             "ratio_1core": te[op] / ts[op] if ts[op] else None,
                             "ratio_2core": te[op] / tm[op] if tm[op] else None})
    sum_e = sum(e for _, e in emu)
    out["invoke"] = {"emulated_layers_us": sum_e, "real_1core_us": real["single_total"],
                     "real_2core_us": real["multi_total"], "ratio_1core": sum_e / real["single_total"],
                     "ratio_2core": sum_e / real["multi_total"]}
    return out


def measure(out_dir: Path, o3: bool = True) -> dict:
    dep = vendor.manifest()["pico-tflmicro"]
    tree = vendor.require(dep)
    model_path, image_path = out_dir / "person_detect.tflite", out_dir / "no_person.npy"
    model_path.write_bytes(c_array(tree_file(tree, dep.rev, MODEL_FILE), MODEL_ARRAY))
    image = np.frombuffer(c_array(tree_file(tree, dep.rev, IMAGE_FILE), IMAGE_ARRAY), dtype=np.uint8)
    np.save(image_path, image.view(np.int8).reshape(1, 96, 96, 1))  # the benchmark feeds the bytes as int8
    real = published(tree_file(tree, dep.rev, RESULTS_FILE))
    prof = profile_one(ProfileOptions(model=model_path, board="pico", target="emulator", input=image_path,
                                      out_dir=out_dir / "pico-profile-emu", tflm_cores=1),
                       on_step=lambda s: print(f"... {s}", file=sys.stderr))
    emu = [(r["op"], r["us"]) for r in prof["layers"]]
    result = {"tflm": f"pico-tflmicro {dep.version}", "emulated": prof, "Os": compare(emu, real)}
    result["Os"]["invoke"]["emulated_invoke_us"] = prof["invoke_us"]
    if o3:
        print("... rebuilding the same project with -O3", file=sys.stderr)
        elf = build_o3(out_dir / "pico-profile-emu", out_dir / "o3")
        result["O3"] = compare(profile_elf(elf, model_path), real)
    return result


def _r(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_markdown(r: dict) -> None:
    builds = [("Os", "fwtool's build (TFLM -Os)")] + ([("O3", "same project at -O3, as the published run")]
                                                       if "O3" in r else [])
    print(f"person_detection (pico-tflmicro's benchmark model, 'no person' image), {r['tflm']}, virtual board "
          f"(1 core) vs pico-tflmicro's benchmark_results.txt (real RP2040, 125 MHz)\n")
    head = "| layer type | layers | real 1-core ms | real 2-core ms |"
    rule = "|---|---:|---:|---:|"
    for key, name in builds:
        head += f" emulated ms, {name} | emulated / real 1-core | emulated / real 2-core |"
        rule += "---:|---:|---:|"
    print(head)
    print(rule)
    first = r[builds[0][0]]
    for n, t in enumerate(first["types"]):
        row = f"| {t['op']} | {t['layers']} | {t['real_1core_us'] / 1000:.2f} | {t['real_2core_us'] / 1000:.2f} |"
        for key, _ in builds:
            x = r[key]["types"][n]
            row += f" {x['emulated_us'] / 1000:.2f} | {_r(x['ratio_1core'])} | {_r(x['ratio_2core'])} |"
        print(row)
    inv = first["invoke"]
    row = (f"| **whole invoke** (sum of layers) | {len(first['layers'])} | {inv['real_1core_us'] / 1000:.2f} | "
           f"{inv['real_2core_us'] / 1000:.2f} |")
    for key, _ in builds:
        x = r[key]["invoke"]
        row += f" {x['emulated_layers_us'] / 1000:.2f} | **{_r(x['ratio_1core'])}** | **{_r(x['ratio_2core'])}** |"
    print(row)
    print(f"\nemulated whole Invoke() of fwtool's build: {inv['emulated_invoke_us'] / 1000:.2f} ms "
          f"(its layers: {inv['emulated_layers_us'] / 1000:.2f} ms)")
    if "O3" in r:
        print(f"fwtool's -Os build / the same at -O3 (emulated): "
              f"{inv['emulated_layers_us'] / r['O3']['invoke']['emulated_layers_us']:.2f}")
    for key, name in builds:
        ratios = [x["ratio_1core"] for x in r[key]["layers"] if x["ratio_1core"] and x["real_1core_us"] >= 1000]
        if ratios:
            print(f"{name}: per layer (layers >= 1 ms) emulated / real 1-core from {min(ratios):.2f} to "
                  f"{max(ratios):.2f}")
    print("\n| # | op | real 1-core µs |" + "".join(f" emulated µs ({k}) | ratio ({k}) |" for k, _ in builds))
    print("|---:|---|---:|" + "---:|---:|" * len(builds))
    for n, x in enumerate(first["layers"]):
        print(f"| {x['index']} | {x['op']} | {x['real_1core_us']:,} |" +
              "".join(f" {r[k]['layers'][n]['emulated_us']:,.0f} | {_r(r[k]['layers'][n]['ratio_1core'])} |"
                      for k, _ in builds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="work folder (model, image, build) [a temporary folder]")
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--no-o3", action="store_true", help="skip the -O3 rebuild (fwtool's own build only)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fwtool-fidelity-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        try:
            r = measure(out, o3=not args.no_o3)
        except FwtoolError as e:
            sys.exit(f"error: {e.cause}" + (f"\n  fix: {e.fix}" if e.fix else ""))
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    else:
        print_markdown(r)


if __name__ == "__main__":
    main()
