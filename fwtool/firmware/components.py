"""Where the flash goes: the firmware's ``text`` (as ``arm-none-eabi-size`` counts it) split by component, from
the linker map (like esp-idf-size's per-archive table).

Every allocated ELF section that Berkeley ``size`` counts as text (elfsize.py) is split by the input sections the
map file lists inside it, each given to a component by the object or archive member it came from; what the map
lists no input section for (alignment fill, linker-made bytes) is "linker padding". So the rows always add up to
the ``text`` figure exactly. Components:

* ``model``: the model array (model_data.cpp);
* ``app``: fwtool's generated sources (platform layer, FWT: lines, the app, embedded inputs) and an app's vendor
  libraries (CMSIS-DSP front end, PDM microphone);
* ``kernels``: the TFLM kernel files the model registers and their helpers (``lite/micro/kernels``,
  ``lite/kernels``);
* ``cmsis_nn``: CMSIS-NN;
* ``tflm_runtime``: the rest of TFLM (interpreter, allocator, schema, flatbuffers);
* ``sdk_usb``: the board SDK (pico-sdk, tinyusb / PDL, BSP);
* ``c_library``: newlib, libgcc, libstdc++;
* ``stack_heap``: stack and heap reserves that ``size`` counts as text (pico-sdk's read-only NOBITS
  ``.stack_dummy``/``.heap``; RAM, not flash);
* ``linker_padding``: alignment fill and linker-made bytes.
"""
from __future__ import annotations

import re
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

COMPONENTS = ("model", "app", "kernels", "cmsis_nn", "tflm_runtime", "sdk_usb", "c_library", "stack_heap",
              "linker_padding")
LABELS = {"model": "model", "app": "app (fwtool sources, app libraries)", "kernels": "TFLM kernels",
          "cmsis_nn": "CMSIS-NN", "tflm_runtime": "TFLM runtime", "sdk_usb": "SDK / USB",
          "c_library": "C/C++ library", "stack_heap": "stack/heap reserve (RAM)", "linker_padding": "linker padding"}
_OUT = re.compile(r"^(\.\S+)\s+0x[0-9a-fA-F]+\s+0x[0-9a-fA-F]+")
_OUT_NAME_ONLY = re.compile(r"^(\.\S+)\s*$")
_IN = re.compile(r"^ (\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_IN_NAME_ONLY = re.compile(r"^ (\S+)\s*$")
_IN_CONT = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_MEMBER = re.compile(r"\(([^()]+)\)$")
_LIBC = ("libc.a", "libc_nano.a", "libg.a", "libg_nano.a", "libm.a", "libgcc.a", "libstdc++", "libsupc++",
         "libnosys.a", "crti.o", "crtn.o", "crtbegin.o", "crtend.o", "crt0.o")


def text_sections(elf_path: Path) -> dict[str, int]:
    """{section: size} of the sections Berkeley ``size`` counts as text (allocated, code or not writable)."""
    found = {}
    with open(elf_path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            flags = sec["sh_flags"]
            if flags & SH_FLAGS.SHF_ALLOC and (flags & SH_FLAGS.SHF_EXECINSTR or not flags & SH_FLAGS.SHF_WRITE):
                found[sec.name] = found.get(sec.name, 0) + sec["sh_size"]
    return found


def map_inputs(map_text: str) -> dict[str, list[tuple[str, int]]]:
    """{output section: [(object or archive member, bytes), …]} from a GNU ld map's memory map."""
    start = map_text.find("Linker script and memory map")
    lines = map_text[start:].splitlines() if start >= 0 else []
    result: dict[str, list[tuple[str, int]]] = {}
    current, pending = None, False
    for ln in lines:
        m = _OUT.match(ln) or _OUT_NAME_ONLY.match(ln)
        if m and not ln.startswith(" "):
            current, pending = m.group(1), False
            result.setdefault(current, [])
            continue
        if current is None:
            continue
        m = _IN.match(ln)
        if m:
            if int(m.group(3), 16):
                result[current].append((m.group(4).strip(), int(m.group(3), 16)))
            pending = False
            continue
        if _IN_NAME_ONLY.match(ln) and not ln.strip().startswith("*"):
            pending = True  # a long input-section name: address, size and file on the next line
            continue
        m = _IN_CONT.match(ln) if pending else None
        if m:
            if int(m.group(2), 16):
                result[current].append((m.group(3).strip(), int(m.group(2), 16)))
            pending = False
    return result


def classify(origin: str, tflm: dict[str, str]) -> str:
    """The component of an input section from ``origin`` (object path or ``archive(member)``); ``tflm`` maps TFLM
    archive member names (``conv.cpp.o``) to their component."""
    member = _MEMBER.search(origin)
    name = member.group(1) if member else Path(origin).name
    low = origin.replace("\\", "/")
    if any(lib in low for lib in _LIBC) or "/arm-none-eabi/lib" in low or "/gcc/arm-none-eabi/" in low:
        return "c_library"
    if "model_data" in name:
        return "model"
    if member and "libtflm" in low:
        return tflm.get(name, "tflm_runtime")
    if "/tflm.dir/" in low or "tflm_patched" in low:
        return "cmsis_nn" if "/cmsis_nn/Source/" in low else "kernels" if "/kernels/" in low else "tflm_runtime"
    if "pico-sdk" in low or "tinyusb" in low or "mtb-pdl" in low or "TARGET_" in low or "core-lib" in low:
        return "sdk_usb"
    if "pico-tflmicro" in low:
        return "tflm_runtime"
    return "app"


def tflm_members(sources: list[str]) -> dict[str, str]:
    """{archive member name: component} for TFLM sources (tree-relative or patched-copy paths)."""
    table: dict[str, str] = {}
    for src in sources:
        s = src.replace("\\", "/")
        comp = ("cmsis_nn" if "/cmsis_nn/Source/" in s else
                "kernels" if "/lite/micro/kernels/" in s or "/lite/kernels/" in s or "tflm_patched" in s else
                "tflm_runtime")
        table.setdefault(Path(s).name + ".o", comp)
    # the unity compile units of the RP2040 build (CMake UNITY_BUILD_MODE GROUP, families/tflm.py unity_groups)
    table.update({"unity_tflm_runtime_cxx.cxx.o": "tflm_runtime", "unity_tflm_kernels_cxx.cxx.o": "kernels"})
    return table


def by_component(elf_path: Path, map_path: Path | None, tflm_sources: list[str] = ()) -> dict[str, int]:
    """{component: text bytes}; the values add up to the ELF's Berkeley text exactly. Without a map, everything
    is one ``unattributed`` row."""
    sections = text_sections(elf_path)
    total = sum(sections.values())
    if map_path is None or not Path(map_path).is_file():
        return {"unattributed": total}
    inputs = map_inputs(Path(map_path).read_text(errors="replace"))
    members = tflm_members(list(tflm_sources))
    rows = dict.fromkeys(COMPONENTS, 0)
    for name, size in sections.items():
        listed = inputs.get(name, [])
        if name in (".heap", ".stack_dummy", ".stack1_dummy") or name.startswith(".stack"):
            rows["stack_heap"] += size
            continue
        used = 0
        for origin, n in listed:
            take = min(n, size - used)
            if take <= 0:
                break
            rows[classify(origin, members)] += take
            used += take
        rows["linker_padding"] += size - used
    assert sum(rows.values()) == total
    return rows


def table(rows: dict[str, int]) -> list[tuple[str, int, float]]:
    """(label, bytes, percent of text) rows, largest first, zero rows left out."""
    total = sum(rows.values()) or 1
    return [(LABELS.get(k, k), v, round(100 * v / total, 1))
            for k, v in sorted(rows.items(), key=lambda kv: -kv[1]) if v]
