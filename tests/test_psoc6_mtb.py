"""ModusToolbox installed is a supported PSoC 6 configuration (issue 22 item 1).

- the builder is an explicit choice (``--builder``, FWTOOL_PSOC6_BUILDER, ``[psoc6] builder``; cmake by default
  even when ``~/ModusToolbox/tools_3.x`` exists), the report says which ran, the hint names what switches it;
- the generated ModusToolbox app: pico-tflmicro's CMSIS 6 Core/Include is not in INCLUDES (recipe-make puts INCLUDES
  before the PDL's folders), tflm_patched/ is in .cyignore (it is listed in SOURCES), sources are relative;
- the real test: GNU make on the generated app through Infineon's public core-make and recipe-make-cat1a (pinned in
  vendor/manifest.toml, needed only here) with tests/mtb_tools_standin/ in place of the proprietary tools package
  and Debian's GCC (CY_COMPILER_GCC_ARM_DIR=/usr); its HEX has the CMake build's sections and CM0+ image.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from fwtool.core import vendor
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, Exit
from fwtool.firmware.families import psoc6_sources as ps
from fwtool.firmware.plan import BuildOptions, plan
from fwtool.image import firmware

KIT = "cy8ckit_062s2_43012"
STANDIN = Path(__file__).resolve().parent / "mtb_tools_standin"
TEST_TREES = ("core-make", "recipe-make-cat1a")


def psoc6_reason() -> str | None:
    for tool in ("arm-none-eabi-gcc", "cmake", "ninja"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    for dep in vendor.deps_for("psoc6", "build"):
        if vendor.locate(dep).path is None:
            return f"vendor tree {dep.name} not synced (fwtool vendor sync)"
    return None


def build(out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    from modelgen import FIRE_ALARM
    if not FIRE_ALARM.is_file():
        pytest.skip("fire_alarm model not available")
    return subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", KIT, "-m", str(FIRE_ALARM),
                           "--out", str(out), "--json", *extra], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})


# ---- the choice ---------------------------------------------------------------------------------------------

def test_builder_option_beats_env_and_is_refused_off_psoc6(monkeypatch, fire_alarm, tmp_path):
    monkeypatch.setenv(ps.BUILDER_ENV, "mtb")
    assert ps.builder_choice("cmake") == ("cmake", "--builder")
    assert ps.builder_choice() == ("mtb", ps.BUILDER_ENV)
    assert "--builder" in ps.SWITCH  # the hint names every switch, the option first
    with pytest.raises(BadInput, match="has one build system"):
        plan(BuildOptions(board="pico", model=fire_alarm, out_dir=tmp_path / "o", builder="mtb"))
    r = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", "pico", "-m", str(fire_alarm), "--out",
                        str(tmp_path / "p"), "--builder", "mtb"], capture_output=True, text=True, timeout=300)
    assert r.returncode == Exit.BAD_INPUT, r.stderr
    assert "error: --builder mtb" in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p" / "report.json").exists()


def test_generated_mtb_app_scopes_cmsis_and_lists_tflm_once(fire_alarm, tmp_path):
    from fwtool.firmware import render
    from fwtool.firmware.context import template_context
    from fwtool.firmware.families import get_family
    from test_psoc6_build import fake_trees
    p = plan(BuildOptions(board=KIT, model=fire_alarm, out_dir=tmp_path / "out"))
    fam = get_family("psoc6")
    paths = fake_trees(tmp_path / "trees")
    patches = fam.patches(p, paths, p.out_dir / "project" / "tflm_patched")
    files = render.render_all(fam.template_dir, template_context(p, paths, patches), p.app)
    mk, ignore = files["Makefile"], files[".cyignore"]
    includes = next(ln for ln in mk.splitlines() if ln.startswith("INCLUDES="))
    assert "cmsis_nn" in includes and ps.PICO_CMSIS_CORE not in includes  # PDL/BSP get the cmsis library's core_cm4.h
    assert "tflm_patched" in ignore.split() and "vm4_platform.cpp" in ignore.split()
    patched = next(ln for ln in mk.splitlines() if ln.startswith("FWT_PATCHED_SOURCES="))
    assert "tflm_patched/resize_nearest_neighbor.cpp" in patched and "$(patsubst $(CURDIR)/%,./%" in mk
    root = next(ln for ln in mk.splitlines() if ln.startswith("TFLM_ROOT=")).split("=", 1)[1]
    assert not root.startswith("/") and (p.out_dir / "project" / root).resolve() == paths["pico-tflmicro"].resolve()
    bsp = get_board(KIT).sdk.bsp
    assert f"$(SEARCH_{bsp})/cybsp.c" in mk and "$(SEARCH_mtb-hal-cat1)" in mk  # no configurator output needed


@pytest.mark.skipif(psoc6_reason() is not None, reason=str(psoc6_reason()))
def test_an_empty_modustoolbox_folder_keeps_the_working_cmake_build(tmp_path):
    """`fwtool build` with ~/ModusToolbox/tools_3.2 present (empty) exits 0 with a valid hex built by CMake, and
    says so; --builder mtb then refuses with the cause (no make/start.mk there) and the switch back."""
    home = tmp_path / "home"
    (home / "ModusToolbox" / "tools_3.2").mkdir(parents=True)
    env = {"HOME": str(home), "FWTOOL_CACHE_DIR": str(vendor.cache_dir()), "FWTOOL_CONFIG": str(tmp_path / "none.toml")}
    env.pop("CY_TOOLS_PATHS", None)
    os.environ.pop(ps.BUILDER_ENV, None)
    r = build(tmp_path / "out", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["build"]["builder"] == {"name": "cmake", "why": "the default"}
    ps.validate_image((tmp_path / "out" / "firmware.hex").read_bytes(), get_board(KIT))
    log = (tmp_path / "out" / "build.log").read_text()
    assert "builder cmake (the default)" in log and "--builder" in log
    r = build(tmp_path / "out2", "--builder", "mtb", env=env)
    assert r.returncode == Exit.MISSING_TOOL, r.stderr[-2000:]
    assert "error:" in r.stderr and "make/start.mk" in r.stderr and "--builder cmake" in r.stderr
    assert not (tmp_path / "out2" / "firmware.hex").exists()


# ---- the real test: public core-make + recipe-make-cat1a ---------------------------------------------------

def mtb_reason() -> str | None:
    reason = psoc6_reason()
    if reason:
        return reason
    if not shutil.which("make"):
        return "GNU make not installed"
    man = vendor.manifest()
    for name in TEST_TREES:
        if vendor.locate(man[name]).path is None:
            return f"{name} {man[name].version} not synced (fwtool vendor sync {' '.join(TEST_TREES)})"
    return None


def getlibs_standin(project: Path) -> list[str]:
    """Stand-in for 'make getlibs': libs/mtb.mk naming the pinned tree of every deps/*.mtb (its tag must be the
    manifest's version) and the BSP's build-system dependencies (core-make, recipe-make-cat1a from props.json)."""
    man = vendor.manifest()
    by_url = {d.url.removesuffix(".git"): d for d in man.values()}
    libs = {}
    for mtb in sorted((project / "deps").glob("*.mtb")):
        url, tag, _where = mtb.read_text().strip().split("#")
        dep = by_url[url]
        assert tag == dep.version, f"{mtb.name} pins {tag}, the manifest {dep.version}"
        libs[mtb.stem] = vendor.locate(dep).path
    bsp = next(p for n, p in libs.items() if n.startswith("TARGET_"))
    wanted = json.loads((bsp / "props.json").read_text())["opt"]["props"]["dependencies"]
    for name in TEST_TREES:
        assert name in wanted  # the BSP brings these in a real getlibs
        libs[name] = vendor.locate(man[name]).path
    lines = [f"SEARCH_{n}={Path(p).as_posix()}" for n, p in libs.items()]
    lines.append("SEARCH_MTB_MK+=" + " ".join(f"$(SEARCH_{n})" for n in libs))
    lines.append("COMPONENTS+=" + " ".join("MW_" + re.sub(r"[^A-Z0-9]", "_", n.upper()) for n in libs
                                           if not n.startswith("TARGET_")))
    (project / "libs").mkdir(exist_ok=True)
    (project / "libs" / "mtb.mk").write_text("\n".join(lines) + "\n")
    return list(libs)


def gcc_dir(tmp_path: Path) -> str:
    """CY_COMPILER_GCC_ARM_DIR: Debian's GCC (/usr), its compilers behind ccache when installed."""
    if not shutil.which("ccache"):
        return "/usr"
    root = tmp_path / "gcc-ccache"
    (root / "bin").mkdir(parents=True)
    for tool in Path("/usr/bin").glob("arm-none-eabi-*"):
        dst = root / "bin" / tool.name
        if tool.name in ("arm-none-eabi-gcc", "arm-none-eabi-g++"):
            dst.write_text(f'#!/bin/sh\nexec ccache {tool} "$@"\n')
            dst.chmod(0o755)
        else:
            dst.symlink_to(tool)
    return str(root)


def alloc_sections(elf: Path) -> dict[str, tuple[int, bytes]]:
    with open(elf, "rb") as f:
        e = ELFFile(f)
        return {s.name: (s["sh_addr"], s.data() if s["sh_type"] != "SHT_NOBITS" else b"")
                for s in e.iter_sections() if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"]}


@pytest.mark.skipif(mtb_reason() is not None, reason=str(mtb_reason()))
def test_generated_app_builds_with_public_core_make_and_recipe(tmp_path):
    out = tmp_path / "out"
    r = build(out, env={"FWTOOL_CONFIG": str(tmp_path / "none.toml")})
    assert r.returncode == 0, r.stderr[-3000:]
    project = out / "project"
    getlibs_standin(project)
    jobs = str(os.cpu_count() or 2)
    cmd = ["make", "-C", str(project), "build", "TOOLCHAIN=GCC_ARM", f"CY_COMPILER_GCC_ARM_DIR={gcc_dir(tmp_path)}",
           f"CY_TOOLS_PATHS={STANDIN}", f"-j{jobs}"]
    # 247 files: ~12 min cold on a loaded 2-core machine; through ccache (as fwtool's own builds) a repeat is seconds
    env = {**os.environ, "CCACHE_NOHASHDIR": "1", "CCACHE_BASEDIR": str(tmp_path)}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-5000:]
    assert "m-profile/cmsis_gcc_m.h" not in log and "multiple definition" not in log
    board = get_board(KIT)
    app = f"fwtool-{KIT}"
    mk_dir = project / "build" / board.sdk.bsp[len("TARGET_"):] / "Release"
    mk_hex, mk_elf = mk_dir / f"{app}.hex", mk_dir / f"{app}.elf"
    assert mk_hex.is_file() and mk_elf.is_file()
    ps.validate_image(mk_hex.read_bytes(), board)  # CM0+ image at the flash base, CM4 vectors at the app start
    # the same sections as the CMake build, each at the same place for the fixed parts
    mine, theirs = alloc_sections(mk_elf), alloc_sections(out / "firmware.elf")
    assert set(mine) == set(theirs), (sorted(mine), sorted(theirs))
    assert mine[".cy_m0p_image"] == theirs[".cy_m0p_image"]  # Infineon's CM0+ image, byte for byte, same address
    assert mine[".text"][0] == theirs[".text"][0] == board.app_flash_base
    # the HEX files: the CM0+ region identical, both start the CM4 at the same address
    a = firmware.parse(mk_hex.read_bytes(), "mtb.hex", kind="hex")
    b = firmware.parse((out / "firmware.hex").read_bytes(), "cmake.hex", kind="hex")
    m0p_addr, m0p = theirs[".cy_m0p_image"]
    assert a.bytes_at(m0p_addr, len(m0p)) == b.bytes_at(m0p_addr, len(m0p)) == m0p
    assert a.start == b.start == board.flash_base
    # fwtool's own sources were compiled once each (no tflm_patched object beside the listed one)
    objs = [o.name for o in mk_dir.rglob("*.o")]
    assert objs.count("resize_nearest_neighbor.o") == 1 and objs.count("arm_nn_mat_mult_nt_t_s8.o") == 1
