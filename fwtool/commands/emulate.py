import json
import sys
import time
from pathlib import Path

import click

from fwtool import emulator
from fwtool.core import hints, protocol, ui
from fwtool.firmware.result import last_build
from fwtool.commands.audio_stream import emulate_audio
from fwtool.core.errors import BadInput, Exit, FwtoolError
from fwtool.emulator import virtual_flash, virtual_usb
from fwtool.emulator.targets import Rp2040js
from fwtool.targets.base import TargetConfig


def _default_image(board: str | None) -> tuple[Path, dict | None]:
    last = last_build(board=board)
    if not last or getattr(last.artifacts, last.artifacts.image_kind) is None:
        b = hints.board_or_none(board)
        raise BadInput("no firmware given and no previous build found in ./build",
                       f"pass the firmware ({hints.image_options(b).replace('--', '.')}), or build first: fwtool "
                       f"build {hints.board_arg(b)} --model model.tflite")
    return last.artifacts.image, last.report


def _sibling_report(image: Path) -> dict | None:
    p = image.parent / "report.json"
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except (OSError, ValueError):
        return None


def _summary(lines: list[str], budget_ms: float | None):
    us = [r.us for r in (protocol.parse_line(ln) for ln in lines) if isinstance(r, protocol.Inference)]
    return emulator.latency_stats(us, budget_ms, "emulated")


@click.command()
@click.argument("firmware", required=False, type=click.Path(path_type=Path))
@click.option("--board", "-b", help="Use this board's last build when FIRMWARE is not given.")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after N inference lines (exit 0).")
@click.option("--until", "until_text", metavar="TEXT", default=protocol.PREFIX_INFER, show_default=True,
              help="With --count: the text the counted lines contain.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
              help="Wall-clock seconds before the run is stopped (exit 7 if --count was not reached).")
@click.option("--max-emulated-s", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this much emulated time.")
@click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True),
              help="Real-time budget: exit 8 when the p95 invoke time exceeds it (the Pico audio tutorial: 32).")
@click.option("--serve", is_flag=True, help="Do not print: serve the serial stream on socket://127.0.0.1:PORT "
                                            "for 'fwtool monitor --port ...' (execution starts when it attaches).")
@click.option("--port", "tcp_port", type=click.IntRange(min=0, max=65535), default=0, show_default=True,
              help="With --serve: the TCP port (0: any free one).")
@click.option("--audio", "audio", type=click.Path(path_type=Path), metavar="WAV",
              help="Audio apps: stream this 16 kHz mono 16-bit WAV into the firmware's DSP + model path (over its "
                   "USB serial link, faster than real time) and print its FWT:AINF lines; exit 8 over budget.")
@click.option("--power-on", is_flag=True, help="Boot like a real chip: bootrom, then boot2 reading the emulated SPI "
              "flash chip (default: the image is loaded into flash and execution starts at boot2).")
@click.option("--bootsel", is_flag=True, help="Serve a virtual board with a USB port, powered on in BOOTSEL mode "
              "(the real bootrom): flash it with 'fwtool flash --virtual'; its flash is kept between runs.")
@click.option("--flash-timing", type=click.Choice(["none", "typical"]), default="none", show_default=True,
              help="With --bootsel: erase/program busy times of the emulated flash chip (typical: W25Q16JV datasheet "
                   "values, 45 ms per sector erase, 0.4 ms per page).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (records, latency) as JSON on stdout.")
def emulate(firmware, board, count, until_text, timeout, max_emulated_s, budget_ms, serve, tcp_port, audio, power_on,
            bootsel, flash_timing, as_json):
    """Run FIRMWARE on its board's virtual target and show its serial output - no board needed.

    FIRMWARE is a .uf2, .elf, .hex or .bin (default: the last build). The virtual board starts at boot2 with the
    RP2040 B1 bootrom, shows UART and USB-CDC output, and reports the invoke latency the firmware measured on its
    emulated clock (p50/p95): both cores in lock-step, at the clk_sys the firmware set (125 MHz by default).
    Needs Node.js >= 18; the pinned rp2040js npm package is installed into fwtool's cache on first use.

    Exit codes: 0 ok, 1 panic or reboot, 3 bad image, 4 node/npm missing,
    7 --count not reached in time, 8 p95 over --budget-ms, 10 the firmware printed FWT:ERROR (its cause is
    shown) or FWT:FAULT (a CPU fault: pc/lr as function and file:line from the ELF beside the image); the run
    stops at that line, 130 Ctrl-C.

    \b
    Examples:
      fwtool build -b pico -m fire_alarm.tflite && fwtool emulate --count 3
      fwtool emulate build/pico/firmware.uf2 --count 20 --budget-ms 32 --json
      fwtool emulate --serve --port 4000 &  fwtool monitor --port socket://127.0.0.1:4000 --count 3
      fwtool emulate --audio clip.wav                               # an audio app's last build, fed a WAV
      fwtool emulate --bootsel &  fwtool flash --virtual            # flash it through PICOBOOT, like a board
    """
    ui.set_json(as_json)
    if bootsel:
        if firmware is not None:
            raise BadInput("--bootsel starts the virtual board in its bootloader: it takes no FIRMWARE",
                           "drop FIRMWARE and flash it with 'fwtool flash --virtual --uf2 FIRMWARE'")
        _serve_bootsel(timeout, flash_timing)
        return
    report = None
    if firmware is None:
        firmware, report = _default_image(board)
    else:
        report = _sibling_report(Path(firmware))
    target = Rp2040js(TargetConfig(port=str(tcp_port), max_emulated_s=max_emulated_s, max_wall_s=timeout,
                                   through_bootloader=power_on))
    if serve:
        _serve(target, Path(firmware), timeout)
        return
    if audio is not None:
        code = emulate_audio(Path(firmware), report, Path(audio), as_json)
        if code:
            sys.exit(code)
        return

    def on_line(line: str) -> None:
        if not as_json:
            click.echo(line)

    target.load(Path(firmware))
    interrupted = False
    try:
        ui.info(f"virtual RP2040 (rp2040js): running {firmware}" + (f" until {count} '{until_text}' lines" if count
                                                                     else f" for up to {timeout:g} s") + "…")
        result = target.capture(until_text if count else None, count or 0, timeout, on_line)
    except KeyboardInterrupt:
        interrupted = True
        result = target.process.result()  # what it printed before Ctrl-C (the process is stopped)
    _finish(target, result, count, budget_ms, interrupted, as_json)


def _finish(target: Rp2040js, result, count, budget_ms, interrupted: bool, as_json: bool) -> None:
    """The run's report (JSON, or the summary lines) and its exit code."""
    stats = _summary(result.lines, budget_ms)
    limit_end = result.reason in ("wall-limit", "emulated-limit") and not count
    process = target.process
    out = {**result.to_dict(), "records": [r.to_dict() for r in result.records],
           "latency": stats.to_dict() if stats else None, "timing_note": target.info.timing_note,
           "image_kind": process.image.kind if process.image else None}
    out.pop("lines", None)
    out["lines"] = result.lines
    code = Exit.OK
    error = None
    if interrupted:
        code = Exit.INTERRUPTED
    elif not (result.ok or limit_end):
        error = emulator.failure(result.reason, result.detail)
        code = error.code
    elif stats is not None and stats.within_budget is False:
        code = Exit.MISMATCH
    out["exit_code"] = int(code)
    if as_json:
        ui.emit_json(out)
    else:
        ui.info(f"ran {result.emulated_us / 1e6:.3f} s emulated in {result.wall_s:.2f} s wall"
                f" ({result.reason}{': ' + result.detail if result.detail and not result.ok else ''})")
        if stats is not None:
            ui.info(stats.summary())
            ui.info(f"note: {target.info.timing_note}")
    if error is not None:
        raise error
    if code != Exit.OK:
        sys.exit(int(code))


def _serve(target: Rp2040js, firmware: Path, timeout: float) -> None:
    try:
        url = target.serve(firmware)["port"]
        board = target.served
        click.echo(url)
        ui.info(f"virtual RP2040 serving {firmware} on {board.url} (for up to {timeout:g} s; Ctrl-C stops)\n"
                f"attach: fwtool monitor --port {board.url}")
        sys.stdout.flush()
        while board.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        target.stop()
        sys.exit(int(Exit.INTERRUPTED))
    finally:
        target.stop()
    ev = target.exit_event or {}
    if ev.get("reason") not in ("wall-limit", "emulated-limit", "stopped", None):
        raise emulator.failure(ev.get("reason", "exited"), ev.get("detail"))
    if not isinstance(ev.get("reason"), str):
        raise FwtoolError("the virtual board ended without reporting why", "re-run; check 'fwtool doctor'")


def _serve_bootsel(timeout: float, timing: str = "none") -> None:
    """A virtual board in BOOTSEL mode that 'fwtool flash --virtual' (and run/monitor) find, until Ctrl-C/timeout."""
    emulator.check()
    board = virtual_usb.Rp2040jsUsbProcess(bootsel=True, max_wall_s=timeout, timing=timing)
    try:
        board.start()
        board.wait_enumerated()
        virtual_flash.publish(board)
        click.echo(board.url)
        ui.info(f"virtual RP2040 in BOOTSEL mode (real B1 bootrom, USB 2E8A:0003) for up to {timeout:g} s; Ctrl-C "
                f"stops\nflash it:  fwtool flash --virtual --uf2 FIRMWARE.uf2\nserial:    fwtool monitor --port "
                f"{board.url}\nflash kept in {board.flash_state}")
        sys.stdout.flush()
        while board.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        sys.exit(int(Exit.INTERRUPTED))
    finally:
        virtual_flash.unpublish()
        board.stop()
