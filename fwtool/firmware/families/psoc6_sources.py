"""PSoC 6 build data: which PDL/BSP/CM0+ files a build compiles (derived from the board file and the pinned
trees), the board layer's defines, the ModusToolbox application files, MTB detection and the image check."""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from fwtool.core import config, escape, runner, vendor
from fwtool.core.boards import Board
from fwtool.core.errors import BadInput, FwtoolError
from fwtool.image import firmware
from fwtool.image.check import check_for_board
from fwtool.firmware.families.base import CompiledFiles, CompileRequest, link_overflow

ARCH_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
# pico-tflmicro files that include pico-sdk headers; replaced by templates/psoc6/fwt_tflm_platform.cpp.j2
PICO_ONLY_SOURCES = ("src/tensorflow/lite/micro/system_setup.cpp", "src/tensorflow/lite/micro/micro_time.cpp")
# PDL drivers the BSP's system_psoc6_cm4.c/startup and the board layer call (found by linking).
PDL_SOURCES = ["drivers/source/cy_syslib.c", "drivers/source/TOOLCHAIN_GCC_ARM/cy_syslib_ext.S",
               "drivers/source/cy_sysclk.c", "drivers/source/cy_gpio.c", "drivers/source/cy_scb_common.c",
               "drivers/source/cy_scb_uart.c", "drivers/source/cy_ipc_drv.c", "drivers/source/cy_ipc_sema.c",
               "drivers/source/cy_ipc_pipe.c", "drivers/source/cy_flash.c", "drivers/source/cy_wdt.c",
               "drivers/source/cy_sysint.c", "drivers/source/cy_syspm.c", "drivers/source/cy_prot.c",
               "drivers/source/cy_pra.c", "drivers/source/cy_pra_cfg.c",
               "devices/COMPONENT_CAT1A/source/cy_device.c"]
PDL_INCLUDES = ["drivers/include", "devices/COMPONENT_CAT1A/include", "devices/COMPONENT_CAT1A/include/ip"]
_SERIES = re.compile(r"startup_psoc6_(\d\d)_cm4\.S$")
REANNOUNCE_MS = 5000  # a monitor that opens the KitProg3 port after boot has the identity within 5 s
MTB_TOOLS_GLOBS = ("~/ModusToolbox/tools_*", "/opt/ModusToolbox/tools_*", "/Applications/ModusToolbox/tools_*")


def _one(pattern: Path, what: str) -> Path:
    found = sorted(glob.glob(str(pattern)))
    if len(found) != 1:
        raise FwtoolError(f"expected one {what} ({pattern}), found {len(found)}",
                          "use the pinned trees ('fwtool vendor sync')")
    return Path(found[0])


def board_files(board: Board, paths: dict[str, Path]) -> dict[str, Path]:
    """startup, system, linker script and CM0+ image source of ``board``, found in its pinned BSP/cat1cm0p trees."""
    sdk = board.sdk
    bsp = paths[sdk.bsp]
    startup = _one(bsp / "COMPONENT_CM4/TOOLCHAIN_GCC_ARM/startup_psoc6_*_cm4.S", "CM4 startup file")
    series = _SERIES.search(startup.name).group(1)
    cm0p_dir = paths["cat1cm0p"] / "COMPONENT_CAT1A" / sdk.cm0p_image
    cm0p = cm0p_dir / f"psoc6_{series}_cm0p_sleep.c" if sdk.cm0p_image.endswith("SLEEP") else \
        _one(cm0p_dir / "psoc6_cm0p_*.c", "CM0+ image")
    return {"startup": startup, "system": bsp / "COMPONENT_CM4/system_psoc6_cm4.c", "cm0p": cm0p,
            "linker": bsp / "COMPONENT_CM4/TOOLCHAIN_GCC_ARM/linker.ld", "series": Path(series)}


def board_defines(board: Board) -> dict[str, str]:
    """The board layer's FWT_* defines (templates/psoc6/fwt_platform.cpp.j2) from the board file's tables."""
    uart, led = board.uart, board.led
    if uart is None or led is None or led.port is None:
        raise BadInput(f"board '{board.name}' ({board.source}): a PSoC 6 board needs a [uart] table and an [led] "
                       "with port and pin", "add them to the board file (docs/boards.md)")
    scb = uart.scb
    tx, rx = (uart.tx_port, uart.tx_pin), (uart.rx_port, uart.rx_pin)
    return {"FWT_CLK_FLL_HZ": f"{board.clock_hz}UL", "FWT_UART_SCB": f"SCB{scb}",
            "FWT_UART_PCLK": f"PCLK_SCB{scb}_CLOCK", "FWT_UART_BAUD": f"{board.uart_baud}UL",
            "FWT_UART_TX_PORT": f"GPIO_PRT{tx[0]}", "FWT_UART_TX_PIN": f"{tx[1]}U",
            "FWT_UART_TX_HSIOM": f"P{tx[0]}_{tx[1]}_SCB{scb}_UART_TX",
            "FWT_UART_RX_PORT": f"GPIO_PRT{rx[0]}", "FWT_UART_RX_PIN": f"{rx[1]}U",
            "FWT_UART_RX_HSIOM": f"P{rx[0]}_{rx[1]}_SCB{scb}_UART_RX",
            "FWT_LED_PORT": f"GPIO_PRT{led.port}", "FWT_LED_PIN": f"{led.pin}U",
            "FWT_LED_ON": f"{led.on_level}U",
            # [debug] on_fault: after FWT:FAULT, 1 = NVIC_SystemReset() (once the UART drained), 0 = halt
            "FWT_FAULT_RESET": "1U" if board.debug.on_fault == "reset" else "0U",
            # the UART has no attach signal: the inference app re-prints FWT:BOOT this often (fwt_runtime.cpp)
            "FWT_REANNOUNCE_MS": f"{REANNOUNCE_MS}U"}


def board_values(board: Board, paths: dict[str, Path]) -> dict:
    """Template values for the board side of the CMake project (absolute paths, CMake-quoted)."""
    files = board_files(board, paths)
    pdl = paths["mtb-pdl-cat1"]
    q = lambda p: escape.cmake_quoted(Path(p).as_posix())  # noqa: E731
    series = files["series"].name
    fwt = [f"{k}={v}" for k, v in board_defines(board).items()]
    defines = [board.sdk.device, "CORE_NAME_CM4_0=1", "COMPONENT_CAT1", "COMPONENT_CAT1A", "COMPONENT_CM4",
               f"COMPONENT_PSOC6_{series}", board.sdk.cm0p_image, "COMPONENT_HARDFP"]
    return {
        "board_sources": [q(pdl / s) for s in PDL_SOURCES] + [q(files[k]) for k in ("startup", "system", "cm0p")],
        "board_includes": [q(pdl / i) for i in PDL_INCLUDES] + [
            q(paths["core-lib"] / "include"), q(paths[board.sdk.bsp]), q(paths["cat1cm0p"] / "COMPONENT_CAT1A"),
            q(paths["infineon-cmsis"] / "Core/Include")],
        "board_defines": defines + fwt,
        "linker_script": q(files["linker"]),
        "psoc6": {"bsp": board.sdk.bsp, "device": board.sdk.device, "cm0p": files["cm0p"].name,
                  "app_flash_base": f"0x{board.app_flash_base:08X}", "virtual_clock_hz": 25_000_000, "fwt_defines": fwt},
    }


# ---- ModusToolbox ---------------------------------------------------------------------------------------------

BUILDERS = ("cmake", "mtb")
BUILDER_ENV = "FWTOOL_PSOC6_BUILDER"
SWITCH = (f"--builder mtb|cmake, or {BUILDER_ENV}=mtb|cmake, or builder = \"mtb\" under [psoc6] in the config "
          "file (fwtool doctor shows where it is)")


def builder_choice(requested: str | None = None) -> tuple[str, str]:
    """(builder, why): CMake+Ninja unless the user asked for ModusToolbox's make, by ``--builder`` (``requested``),
    FWTOOL_PSOC6_BUILDER or the config file's ``[psoc6] builder``, in that order — an installed ModusToolbox alone
    never switches it (it must not turn a working build into a failing one)."""
    if requested:
        return requested, "--builder"
    env = os.environ.get(BUILDER_ENV, "").strip().lower()
    cfg = config.load().get("psoc6", {})
    value, source = (env, BUILDER_ENV) if env else (str(cfg.get("builder", "")).strip().lower(),
                                                     "[psoc6] builder in the config file")
    if not value:
        return "cmake", "the default"
    if value not in BUILDERS:
        raise BadInput(f"{source} = '{escape.terminal(value)[:20]}' is not a PSoC 6 builder",
                       f"use one of: {', '.join(BUILDERS)}")
    return value, source


def find_mtb_tools() -> Path | None:
    """The ModusToolbox tools folder: CY_TOOLS_PATHS (newest), else the default install locations; None."""
    env = os.environ.get("CY_TOOLS_PATHS", "").split()
    found = [p for pat in env or [os.path.expanduser(g) for g in MTB_TOOLS_GLOBS] for p in glob.glob(pat)]
    found = sorted(p for p in found if (Path(p) / "make" / "start.mk").is_file())
    return Path(found[-1]) if found else None


# pico-tflmicro's CMSIS 6 Core headers: TFLM and CMSIS-NN include none of them, and recipe-make-cat1a puts INCLUDES
# before every auto-discovered folder (make/recipe/recipe_common.mk), so listed they would shadow the cmsis library's
# core_cm4.h for the PDL and BSP (CMSIS 6's cmsis_gcc.h then wants m-profile/cmsis_gcc_m.h).
PICO_CMSIS_CORE = "src/third_party/cmsis/CMSIS/Core/Include"


def mtb_values(board: Board, tflm_root: Path, project_dir: Path, tflm_includes: list[str]) -> dict:
    """The ModusToolbox app's template values: pico-tflmicro's folder relative to the app (core-make names the
    object of an absolute source by its file name alone: TFLM's two common.cpp would collide), TFLM's include
    folders without pico's CMSIS Core, and what auto-discovery must skip in the libraries (CY_IGNORE): the HAL the
    BSP depends on, the BSP's cybsp.c and config/ (design.modus: its code generation needs the configurators;
    fwt_platform.cpp replaces both)."""
    bsp = f"$(SEARCH_{board.sdk.bsp})"
    return {"target": board.sdk.bsp[len("TARGET_"):], "app_name": f"fwtool-{board.name}",
            "tflm_root": Path(os.path.relpath(tflm_root, project_dir)).as_posix(),
            "libs": sorted(Path(n).stem for n in mtb_files(board)),
            "tflm_includes": [i for i in tflm_includes if i != PICO_CMSIS_CORE],
            "ignore": ["$(SEARCH_mtb-hal-cat1)", f"{bsp}/cybsp.c", f"{bsp}/config"]}


def mtb_files(board: Board) -> dict[str, str]:
    """deps/*.mtb of the generated ModusToolbox app: ``<url>#<tag>#$$ASSET_REPO$$/<name>/<tag>`` per library."""
    out = {}
    for dep in vendor.deps_for("psoc6", "build"):  # Infineon's libraries and this kit's BSP (not pico-tflmicro)
        if "Infineon" not in dep.url or (dep.name.startswith("TARGET_") and dep.name != board.sdk.bsp):
            continue
        name = "cmsis" if dep.name == "infineon-cmsis" else dep.name
        url = dep.url[:-4] if dep.url.endswith(".git") else dep.url
        out[f"deps/{name}.mtb"] = f"{url}#{dep.version}#$$ASSET_REPO$$/{name}/{dep.version}\n"
    return out


def mtb_build(request: CompileRequest, tools: Path, builder: dict | None = None) -> CompiledFiles:
    """``make getlibs`` + ``make build`` with ModusToolbox's own flow; ``builder`` goes into the result."""
    env = {"CY_TOOLS_PATHS": str(tools)}
    for target in ("getlibs", "build"):
        rc, lines = runner.stream(["make", "-C", str(request.project_dir), target, "TOOLCHAIN=GCC_ARM",
                                   f"-j{request.jobs or os.cpu_count() or 2}"], env=env,
                                  on_line=request.log, on_command=request.log)
        if rc != 0:
            last = (lines or ["no output"])[-1][:200]
            raise link_overflow(lines, request.board.name) or FwtoolError(
                f"ModusToolbox 'make {target}' failed: {last}", "see build.log; build with CMake instead: --builder cmake")
    elfs = sorted((request.project_dir / "build").rglob("*.elf"))
    if not elfs:
        raise FwtoolError("ModusToolbox's build produced no .elf", f"inspect {request.project_dir / 'build'}")
    hexes = sorted(elfs[-1].parent.glob("*.hex"))
    return CompiledFiles(elf=elfs[-1], hex=hexes[-1] if hexes else None, builder=builder)


# ---- the image check --------------------------------------------------------------------------------------------

def _vectors(img, addr: int) -> tuple[int, int]:
    raw = img.bytes_at(addr, 8)
    return int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:], "little")


def validate_image(text: bytes, board: Board):
    """The .hex ``board`` would run: every range inside its flash region (fwtool.image.check), the CM0+ image at
    the flash base (its vector table: stack in SRAM, Thumb reset handler in flash) and the CM4 vector table at
    the application start (stack in the CM4 RAM, Thumb reset handler inside the application region)."""
    img = check_for_board(firmware.parse(text, "firmware.hex", kind="hex"), board)
    lo, hi = board.flash_base, board.flash_base + board.flash_bytes
    app = board.app_flash_base
    ram_lo, ram_hi = board.sram_base & 0xFFF00000, board.sram_base + board.sram_bytes
    for what, addr, pc_lo in (("CM0+ image", lo, lo), ("CM4 vector table", app, app)):
        sp, pc = _vectors(img, addr)
        if not (ram_lo <= sp <= ram_hi and pc & 1 and pc_lo <= pc & ~1 < hi):
            raise BadInput(f"firmware.hex has no valid {what} at 0x{addr:08X} (stack 0x{sp:08X}, reset 0x{pc:08X})",
                           f"rebuild for {board.name} ('fwtool build --board {board.name}')")
    return img
