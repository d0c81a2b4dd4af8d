"""Every registered board family against its interface (fwtool/firmware/families/base.py): data in, data out.

template_context returns the keys the family's templates need; patches are data and change nothing they are given;
package returns bytes for the board's image kind; progress() parses its build tool's lines; tools and vendor trees
are declared; compile logs every command line. Plus the RP2040 source patches themselves."""
from __future__ import annotations

import copy
import os
import stat
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import jinja2
import jinja2.meta
import pytest

from fwtool.firmware import apps, render
from fwtool.firmware.context import generic_context, template_context
from fwtool.firmware.families import (CompiledFiles, CompileRequest, Family, SourcePatch, all_families,
                                   apply_patches)
from fwtool.firmware.families.rp2040 import RP2040Family
from fwtool.firmware.families.tflm import (MULTICORE_SOURCE, RESIZE_NN_SOURCE, resize_half_pixel_patch,
                                          single_core_patch, split_timing_patch)
from fwtool.firmware.plan import BuildOptions, plan
from fwtool.core import runner, vendor
from fwtool.core.boards import all_boards
from fwtool.core.errors import FwtoolError
from fwtool.core.paths import resource_dir

FAMILIES = sorted(all_families())
# (a line of the family's build tool, the progress it shows); every family must have examples here
PROGRESS_LINES = {
    "linux": [("[3/41] Building CXX object CMakeFiles/tflm.dir/x.cpp.o", (3, 41)), ("-- Configuring done", None),
              ("", None)],
    "rp2040": [("[12/340] Building CXX object CMakeFiles/firmware.dir/main.cpp.obj", (12, 340)),
               ("[ 42%] Building C object x.c.obj", (42, 100)),
               ("-- Configuring done", None), ("$ ninja -C build -j 4", None), ("", None)],
    "rp2350": [("[208/209] Linking CXX executable firmware_vm33.elf", (208, 209)), ("-- Configuring done", None),
               ("", None)],
    "psoc6": [("[7/228] Building C object CMakeFiles/psoc6_board.dir/cy_gpio.c.obj", (7, 228)),
              ("-- fwtool: no ModusToolbox tools package: CMake+Ninja build", None), ("", None)],
    "nrf52": [("[31/113] Building C object CMakeFiles/nrf52_board.dir/dcd_nrf5x.c.obj", (31, 113)),
              ("-- fwtool: configuring (cmake)", None), ("", None)],
}


def boards_of(name: str):
    return [b for b in all_boards().values() if b.family == name]


def fake_vendor(tmp_path: Path) -> dict[str, Path]:
    """Each vendor tree the family declares, as an empty folder; pico-tflmicro as a miniature with the kernels."""
    paths = {}
    for dep in {d.name: d for fam in all_families() for d in vendor.deps_for(fam, "build")}.values():
        paths[dep.name] = tmp_path / dep.name
        paths[dep.name].mkdir(parents=True)
    for bsp in [b.sdk.bsp for b in boards_of("psoc6")]:  # the files the psoc6 family looks up in its trees
        (paths[bsp] / "COMPONENT_CM4/TOOLCHAIN_GCC_ARM").mkdir(parents=True, exist_ok=True)
        (paths[bsp] / "COMPONENT_CM4/TOOLCHAIN_GCC_ARM/startup_psoc6_02_cm4.S").write_text("")
    (paths["cat1cm0p"] / "COMPONENT_CAT1A/COMPONENT_CM0P_BLESS").mkdir(parents=True)
    (paths["cat1cm0p"] / "COMPONENT_CAT1A/COMPONENT_CM0P_BLESS/psoc6_cm0p_bless.c").write_text("")
    return paths


def mini_tflm(root: Path, kernels: list[str]) -> None:
    lines = []
    for k in kernels:
        rel = f"src/tensorflow/lite/micro/kernels/{k}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"TFLMRegistration Register_{Path(k).stem.upper()}() {{\n"
                                "  op_params.half_pixel_centers = false;\n}\n")
        lines.append(f"  ${{CMAKE_CURRENT_LIST_DIR}}/{rel}")
    (root / MULTICORE_SOURCE).parent.mkdir(parents=True, exist_ok=True)
    (root / MULTICORE_SOURCE).write_text("#define TF_LITE_PICO_MULTICORE\nint x;\n")
    lines.append(f"  ${{CMAKE_CURRENT_LIST_DIR}}/{MULTICORE_SOURCE}")
    (root / "CMakeLists.txt").write_text("target_sources(pico-tflmicro\n" + "\n".join(lines) + "\n)\n")


@pytest.fixture
def planned(fire_alarm):
    return {name: plan(BuildOptions(board=boards_of(name)[0].name, model=fire_alarm, tflm_cores=1))
            for name in FAMILIES}


def snapshot(p) -> dict:
    return {f.name: copy.deepcopy(getattr(p, f.name)) for f in fields(p) if f.name not in ("family", "model")}


@pytest.mark.parametrize("name", FAMILIES)
def test_family_declares_its_data(name):
    fam = all_families()[name]
    assert isinstance(fam, Family) and fam.name == name
    assert (resource_dir("templates") / fam.template_dir).is_dir()
    assert fam.tools and any(t.required_for == "build" for t in fam.tools)
    assert vendor.deps_for(name, "build"), "a family names the vendor trees its build needs"
    assert fam.code_reserve_bytes > 0 and fam.ram_reserve_bytes > 0 and fam.context_keys
    for method in ("vendor_paths", "template_context", "compile", "package"):
        assert getattr(type(fam), method) is not getattr(Family, method), f"{name} must implement {method}"
    assert boards_of(name), f"no board file names family {name}"


@pytest.mark.parametrize("name", FAMILIES)
def test_no_family_inherits_another(name):
    """Families compose the shared parts (families/tflm.py, families/cmake.py); none subclasses a family."""
    fam = type(all_families()[name])
    assert fam.__bases__ == (Family,), f"{fam.__name__} derives from {fam.__bases__}"


@pytest.mark.parametrize("name", FAMILIES)
def test_template_context_gives_what_the_templates_need_and_changes_nothing(name, planned, tmp_path):
    fam, p = all_families()[name], planned[name]
    paths = fake_vendor(tmp_path)
    mini_tflm(paths["pico-tflmicro"], p.kernel_files)
    before = snapshot(p)
    ctx = fam.template_context(p, paths)
    assert set(ctx) == set(fam.context_keys)
    assert snapshot(p) == before
    full = template_context(p, paths)
    for a in apps.list_apps().values():  # every template of every app renders with nothing undefined
        files = render.render_all(fam.template_dir, {**full, **apps.template_values(a)}, a)
        assert files
    # and every name the family's own templates use is in the context
    env = jinja2.Environment()
    for t in (resource_dir("templates") / fam.template_dir).glob("*.j2"):
        used = jinja2.meta.find_undeclared_variables(env.parse(t.read_text()))
        assert used <= set(full), f"{t.name} uses {sorted(used - set(full))}"


@pytest.mark.parametrize("name", FAMILIES)
def test_patches_are_data_and_change_nothing(name, planned, tmp_path):
    fam, p = all_families()[name], planned[name]
    paths = fake_vendor(tmp_path)
    mini_tflm(paths["pico-tflmicro"], p.kernel_files)
    upstream = {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()}
    before = snapshot(p)
    patches = fam.patches(p, paths, tmp_path / "patched")
    assert all(isinstance(s, SourcePatch) and s.note for s in patches)
    assert all(s.copy is None or s.copy.is_file() and tmp_path / "patched" in s.copy.parents for s in patches)
    assert snapshot(p) == before
    assert {f: f.read_bytes() for f in upstream} == upstream  # upstream sources untouched
    sources = ["a.cc", *(s.upstream for s in patches)]
    kept, copies = apply_patches(sources, patches)
    assert sources == ["a.cc", *(s.upstream for s in patches)]  # input list unchanged
    assert len(copies) == sum(s.copy is not None for s in patches) and kept[0] == "a.cc"


@pytest.mark.parametrize("name", FAMILIES)
def test_package_returns_bytes_for_each_boards_image_kind(name, tmp_path):
    fam = all_families()[name]
    (tmp_path / "firmware.bin").write_bytes(bytes(range(256)) * 5)
    (tmp_path / "firmware.elf").write_bytes(b"\x7fELF")
    compiled = CompiledFiles(elf=tmp_path / "firmware.elf", bin=tmp_path / "firmware.bin")
    for board in boards_of(name):
        if board.image_kind == "hex":  # a flash image with the CM0+ and CM4 vector tables the .hex check wants
            app = board.app_flash_base - board.flash_base
            flat = bytearray(bytes(range(256)) * (app // 256 + 1))
            flat[0:8] = (board.sram_base + 0x100).to_bytes(4, "little") + (board.flash_base + 0x101).to_bytes(4, "little")
            flat[app:app + 8] = (board.sram_base + 0x100).to_bytes(4, "little") + (board.flash_base + app + 0x201).to_bytes(4, "little")
            (tmp_path / "firmware.bin").write_bytes(bytes(flat))
        if board.image_kind == "elf":  # a Linux program: a real static ELF of the board's architecture
            import shutil
            import subprocess

            from fwtool.firmware.families.linux import board_arch, compiler
            cc = compiler(board).replace("g++", "gcc")
            if not shutil.which(cc):
                continue
            (tmp_path / "m.c").write_text("int main(void){return 0;}\n")
            subprocess.run([cc, "-static", "-o", str(tmp_path / "firmware.elf"), str(tmp_path / "m.c")], check=True)
            assert fam.package(compiled, board)["elf"][:4] == b"\x7fELF", board_arch(board)
            continue
        images = fam.package(compiled, board)
        assert board.image_kind in images or getattr(compiled, board.image_kind, None) is not None
        assert all(isinstance(k, str) and isinstance(v, bytes) and v for k, v in images.items())


@pytest.mark.parametrize("name", FAMILIES)
def test_progress_parses_the_build_tools_lines(name):
    assert name in PROGRESS_LINES, "add example lines of the family's build tool"
    fam = all_families()[name]
    for line, expect in PROGRESS_LINES[name]:
        assert fam.progress(line) == expect, line


def test_compile_logs_every_command_line(tmp_path, monkeypatch):
    """The cmake and ninja command lines reach the log (build.log, -v) before their output."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"cmake": 'for a; do case "$p" in -B) b="$a";; esac; p="$a"; done; touch "$b/CMakeCache.txt"; '
                        'echo "-- Configuring done"',
               "ninja": 'touch "$2/firmware.elf" "$2/firmware.bin"; echo "[1/1] Linking CXX executable firmware.elf"'}
    for tool, body in scripts.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod((bin_dir / tool).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FWTOOL_NO_CCACHE", "1")
    log: list[str] = []
    board = boards_of("rp2040")[0]
    req = CompileRequest(tmp_path / "project", tmp_path / "cmake", board,
                         {"pico-sdk": tmp_path / "sdk", "tinyusb": tmp_path / "tusb"}, jobs=3, log=log.append)
    out = RP2040Family().compile(req)
    assert out.elf == tmp_path / "cmake" / "firmware.elf"
    cmds = [ln for ln in log if ln.startswith("$ ")]
    assert cmds[0].startswith("$ cmake -S ") and f"-DPICO_BOARD={board.sdk.pico_board}" in cmds[0]
    assert cmds[1] == f"$ ninja -C {tmp_path / 'cmake'} -j 3"
    assert log.index(cmds[1]) < log.index("[1/1] Linking CXX executable firmware.elf")


def test_runner_reports_the_command_line_first():
    seen = []
    rc, lines = runner.stream(["echo", "a b"], on_line=seen.append, on_command=seen.append)
    assert rc == 0 and seen == ["$ echo 'a b'", "a b"] and lines == ["a b"]
    seen.clear()
    runner.capture(["true"], on_command=seen.append)
    assert seen == ["$ true"]


def test_generic_context_counts_every_embedded_vector(planned):
    p = planned["rp2040"]
    vec = bytes(len(b"".join(p.inputs)) or 15_996)
    opts = BuildOptions(board=p.board.name, model=p.model.path, inputs=[vec, vec], inputs_source="random (2)")
    q = plan(opts)
    ctx = generic_context(q)
    assert (ctx["vector_count"], ctx["vector_bytes"], ctx["input_bytes"]) == (2, len(vec), 2 * len(vec))
    assert ctx["vectors_sha"] == q.inputs_sha and len(q.inputs_sha) == 12 and ctx["vector_source"] == "random (2)"
    assert generic_context(p)["vectors_sha"] == "none" and generic_context(p)["vector_count"] == 1


# -- the RP2040 source patches (moved from test_emulator.py) ---------------------------------------------------

def _tflm_tree(tmp_path, body: str) -> Path:
    src = tmp_path / "tflm" / MULTICORE_SOURCE
    src.parent.mkdir(parents=True)
    src.write_text(body)
    return tmp_path / "tflm"


def test_single_core_patch_compiles_a_copy_without_the_define(tmp_path):
    body = ("#include \"x.h\"\n// Uncomment this to try the experimental dual core support on the RP2040.\n"
            "#define TF_LITE_PICO_MULTICORE\n\n#ifdef TF_LITE_PICO_MULTICORE\nint dual;\n#endif\n")
    root = _tflm_tree(tmp_path, body)
    patch = single_core_patch(root, tmp_path / "build" / "tflm_patched")
    copy_ = tmp_path / "build" / "tflm_patched" / "arm_nn_mat_mult_nt_t_s8.c"
    assert (patch.upstream, patch.copy) == (MULTICORE_SOURCE, copy_)
    sources, copies = apply_patches(["src/a.cc", MULTICORE_SOURCE, "src/b.cc"], [patch])
    assert sources == ["src/a.cc", "src/b.cc"] and copies == [copy_.as_posix()]
    text = copy_.read_text()
    assert "#define TF_LITE_PICO_MULTICORE" not in text and "#ifdef TF_LITE_PICO_MULTICORE" in text
    assert text.endswith(body.split("#define TF_LITE_PICO_MULTICORE")[1])
    assert (root / MULTICORE_SOURCE).read_text() == body  # upstream untouched
    assert "--tflm-cores 1" in patch.note and str(copy_) in patch.note
    mtime = copy_.stat().st_mtime_ns
    single_core_patch(root, tmp_path / "build" / "tflm_patched")
    assert copy_.stat().st_mtime_ns == mtime  # unchanged content is not rewritten (no needless recompiles)


def test_single_core_patch_when_upstream_changes(tmp_path):
    root = _tflm_tree(tmp_path, "int x;\n")
    patch = single_core_patch(root, tmp_path / "p")
    assert "already single-core" in patch.note and patch.copy is None
    assert apply_patches(["s"], [patch]) == (["s"], [])
    root2 = _tflm_tree(tmp_path / "2", "#if defined(TF_LITE_PICO_MULTICORE)\n#endif\n")
    with pytest.raises(FwtoolError, match="no '#define' line"):
        single_core_patch(root2, tmp_path / "p2")


SPLIT_BODY = ("#include \"pico/multicore.h\"\nstatic void core1_mat_mul_worker(void) {\n"
              "    mat_mul_task(&g_core1_mat_mul_args);\n    multicore_fifo_push_blocking(0);\n}\n"
              "    mat_mul_task(&core0_args);\n    const uint32_t core1_result = multicore_fifo_pop_blocking();\n")


def test_split_timing_patch_times_each_cores_share(tmp_path):
    root = _tflm_tree(tmp_path, SPLIT_BODY)
    patch = split_timing_patch(root, tmp_path / "p")
    text = patch.copy.read_text()
    assert patch.upstream == MULTICORE_SOURCE and "times each core's share" in patch.note
    assert "extern volatile uint32_t fwt_split_us[3];" in text
    core1 = text[text.index("core1_mat_mul_worker"):text.index("multicore_fifo_push_blocking")]
    assert "time_us_32()" in core1 and "fwt_split_us[1] +=" in core1  # core 1's share, on core 1
    assert text.index("fwt_split_us[0] +=") < text.index("multicore_fifo_pop_blocking") < text.index(
        "fwt_split_us[2] +=")  # core 0's share, then its wait for core 1
    assert (root / MULTICORE_SOURCE).read_text() == SPLIT_BODY  # upstream untouched
    with pytest.raises(FwtoolError, match="not the dual-core split"):
        split_timing_patch(_tflm_tree(tmp_path / "2", SPLIT_BODY.replace("core0_args", "args0")), tmp_path / "q")


def test_split_timing_patch_applies_to_the_pinned_tree(tmp_path):
    from fwtool.core import vendor

    try:
        root = vendor.require(vendor.manifest()["pico-tflmicro"])
    except FwtoolError as e:
        pytest.skip(f"pico-tflmicro not synced: {e.cause}")
    assert "fwt_split_us[2]" in split_timing_patch(root, tmp_path / "p").copy.read_text()


def test_resize_patch_makes_the_kernel_read_half_pixel_centers(tmp_path):
    body = ("  op_params.align_corners = params->align_corners;\n  op_params.half_pixel_centers = false;\n")
    root = tmp_path / "tflm"
    (root / RESIZE_NN_SOURCE).parent.mkdir(parents=True)
    (root / RESIZE_NN_SOURCE).write_text(body)
    assert resize_half_pixel_patch(["a.cc"], root, tmp_path / "p") is None  # kernel not compiled: nothing to do
    patch = resize_half_pixel_patch(["a.cc", RESIZE_NN_SOURCE], root, tmp_path / "p")
    copy_ = tmp_path / "p" / "resize_nearest_neighbor.cpp"
    assert "half_pixel_centers" in patch.note
    assert apply_patches(["a.cc", RESIZE_NN_SOURCE], [patch]) == (["a.cc"], [copy_.as_posix()])
    assert "op_params.half_pixel_centers = params->half_pixel_centers;" in copy_.read_text()
    (root / RESIZE_NN_SOURCE).write_text(body.replace("false", "params->half_pixel_centers"))  # fixed upstream
    assert resize_half_pixel_patch([RESIZE_NN_SOURCE], root, tmp_path / "q") is None
    # the family applies the resize fix to every build and the single-core copy only for --tflm-cores 1
    (root / RESIZE_NN_SOURCE).write_text(body)
    (root / MULTICORE_SOURCE).parent.mkdir(parents=True)
    (root / MULTICORE_SOURCE).write_text("#define TF_LITE_PICO_MULTICORE\n")
    for cores, expect in ((2, 1), (1, 2)):
        p = SimpleNamespace(kernel_files=["resize_nearest_neighbor.cpp"], options=SimpleNamespace(tflm_cores=cores),
                            app=SimpleNamespace(tflm_profiler=False))  # the profile app adds the split timing
        patches = RP2040Family().patches(p, {"pico-tflmicro": root}, tmp_path / f"c{cores}")
        assert len(patches) == len([s for s in patches if s.copy]) == expect
