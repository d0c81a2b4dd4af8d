import sys
from pathlib import Path

import click

from fwtool.core import ui
from fwtool.core.errors import Exit, FwtoolError
from fwtool import devices, emulator, flash
from fwtool.firmware.families import get_family
from fwtool.core.boards import get_board
from fwtool.emulator import qemu, virtual_flash
from fwtool.audio.wav import read_wav
from fwtool.flash import runners
from fwtool.monitor import session
from fwtool.monitor.session import MonitorOptions
from fwtool.commands.audio_stream import board_audio, emulate_audio
from fwtool.commands.build import build_options, options_from, print_report, run_build
from fwtool.commands import lab_options


def _monitor(options, **kw) -> int:
    return session.run_monitor(options, **kw)  # looked up at call time: tests replace it


@click.command()
@build_options
@click.option("--emulator", is_flag=True, help="Run on the virtual RP2040 (rp2040js) instead of a board: flashed "
              "through the real bootrom over PICOBOOT, booted from its emulated flash.")
@click.option("--direct-load", is_flag=True, help="With --emulator: load the image straight into emulated flash and "
              "start at boot2 (faster, skips the bootrom and flashing).")
@click.option("--serial", "serial_number", help="Flash and monitor the board with this USB serial number.")
@click.option("--method", type=click.Choice(runners.method_choices()), default="auto", show_default=True,
              help="How to flash: auto tries the board file's runners in order (see 'fwtool flash --help').")
@click.option("--no-verify", is_flag=True, help="Skip the read-back verify after flashing.")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after N inferences (exit 0).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds of monitoring.")
@click.option("--expect", multiple=True, metavar="REGEX", help="Succeed once a line matches REGEX (repeatable).")
@click.option("--expect-label", metavar="LABEL", help="Succeed when an inference's top label is LABEL.")
@click.option("--min-score", type=float, help="With --expect-label: the label's score must be at least X.")
@click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True),
              help="With --emulator: exit 8 when the p95 invoke time exceeds this (the audio tutorial's: 32).")
@click.option("--audio", "audio", type=click.Path(path_type=Path), metavar="WAV",
              help="Audio apps: stream this WAV into the app in place of its microphone (board: at the sample "
                   "rate over its serial port; --emulator: as fast as it goes) and print its lines.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: build and flash summaries, then one per line.")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal (no live panel).")
@click.option("--verbose", "-v", is_flag=True, help="Show every compiler line.")
@lab_options.labgrid_options(fleet=True)
def run(emulator, direct_load, serial_number, method, no_verify, count, timeout, expect, expect_label, min_score,
        budget_ms, audio, as_json, plain, verbose, lab=None, **kw):
    """Build, flash and monitor in one go: MODEL running on BOARD, its output live.

    The monitor is opened as soon as the flashed board's USB port appears, so the boot banner is caught. With
    --emulator the same firmware, built single-core (--tflm-cores 1), runs on the virtual RP2040 and nothing
    touches hardware. Exit codes are the monitor's: 0 when --count/--expect are met, 7 timeout, 8 expectation
    not met, 9 board lost; build/flash failures keep theirs (3 bad model, 4 missing tool, 5 does not fit, 6 no
    board).

    \b
    Examples:
      fwtool run --board pico --model fire_alarm.tflite
      fwtool run -b pico -m fire_alarm.tflite --emulator --count 3
      fwtool run -b pico -m model.tflite --expect-label fire_alarm --min-score 0.9 --timeout 60   # HIL gate
      fwtool run -b pico -m model.tflite --labgrid-tags board=pico --boards 4 --count 5   # 4 lab boards at once
    """
    ui.set_json(as_json)
    if audio is not None:
        read_wav(audio)  # a bad WAV is refused (exit 3) before the build
    opts = options_from(kw)  # --emulator runs the image 'fwtool build' makes (the virtual RP2040 has core 1)
    result = run_build(opts, verbose)
    report = result.report
    if as_json:
        ui.emit_json_line({"type": "build", **_build_summary(report)})
    else:
        print_report(report)
    uf2 = str(result.artifacts.image)
    mon = dict(view="json" if as_json else "plain" if plain else "auto", count=count, timeout=timeout,
               expect=tuple(expect), expect_label=expect_label, min_score=min_score)
    if emulator and audio is not None:
        code = emulate_audio(result.artifacts.image, report, Path(audio), as_json)
    elif emulator and getattr(get_family(get_board(kw["board"]).family), "virtual_target", None):
        code = qemu.emulate(get_family(get_board(kw["board"]).family).virtual_image(result.artifacts.image), count,
                            timeout, click.echo, ui.info)  # the family's virtual Cortex-M4 (QEMU)
    elif emulator:
        code = _run_emulated(uf2, mon, budget_ms, as_json, None if direct_load else (kw["board"], not no_verify))
    else:
        if budget_ms is not None:
            raise FwtoolError("--budget-ms needs --emulator (a real board's latency is in the monitor view)",
                              "drop --budget-ms, or add --emulator", Exit.USAGE)
        if lab is not None:  # labgrid place(s): flashed through their exporters, monitored over exported ports
            code = lab_options.run_on_lab(lab, result.artifacts.image, mon, as_json)
            if code:
                sys.exit(code)
            return
        with ui.err.status("fwtool flash: looking for the board") as status:
            result = flash.flash_image(uf2, board=kw["board"], serial=serial_number, method=method, verify=not no_verify,
                                 on_step=lambda msg: status.update(f"fwtool flash: {msg.split(maxsplit=1)[-1]}"))
        _report_flash(result, as_json)
        if audio is not None:
            port = result.get("port") or devices.find_serial_port(kw["board"], serial=result.get("serial") or
                                                                  serial_number, wait_s=10.0)
            code = board_audio(port, report, Path(audio), as_json)
            if code:
                sys.exit(code)
            return
        code = _monitor(MonitorOptions(board=kw["board"], serial=result.get("serial") or serial_number,
                                          port=result.get("port") if not result.get("serial") else None, **mon))
    if code:
        sys.exit(code)


def _build_summary(r: dict) -> dict:
    return {"board": r["board"]["name"], "model": r["model"]["name"], "sha256": r["model"]["sha256"],
            "arena": r["arena"]["arena_bytes"], "sizes": r["sizes"], "usage": r["usage"], "files": r["files"],
            "seconds": r["build"]["seconds"], "notes": r["build"].get("notes", [])}


def _report_flash(result: dict, as_json: bool) -> None:
    if as_json:
        ui.emit_json_line({"type": "flash", **{k: v for k, v in result.items() if k != "image"}})
        return
    verified = "verified" if result.get("verified") else "NOT verified"
    ui.info(f"flashed   {result['bytes_written']:,} B written, {result.get('bytes_skipped', 0):,} B unchanged, "
            f"{verified}, via {result['method']} in {result['seconds']:.1f} s")


def _run_emulated(uf2: str, mon: dict, budget_ms, as_json: bool, flash_to=None) -> int:
    emulator.check()
    records = []
    if flash_to:  # PICOBOOT through the real bootrom into the virtual board's flash, then it boots from there
        result, board = virtual_flash.flash_virtual(uf2, flash_to[0], verify=flash_to[1])
        _report_flash(result, as_json)
    else:
        board = emulator.start(uf2)  # execution starts when the monitor attaches: the banner is never missed
    try:
        ui.info(f"virtual RP2040 (rp2040js) serving {board.url}")
        code = _monitor(MonitorOptions(port=board.url, reconnect=False, wait=10.0, send_input=False, **mon),
                           on_record=records.append)
    finally:
        ev = board.stop() or {}
    reason = ev.get("reason")
    if code == Exit.LOST_DEVICE and reason not in (None, "stopped", "killed"):
        raise emulator.failure(reason, ev.get("detail"))
    us = [r.parsed.us for r in records if r.kind == "inference"]
    stats = emulator.latency_stats(us, budget_ms, "emulated") if us else None
    if stats:
        if as_json:
            ui.emit_json_line({"type": "latency", **stats.to_dict(), "timing_note": emulator.TIMING_NOTE})
        else:
            ui.info(stats.summary())
            ui.info(f"note: {emulator.TIMING_NOTE}")
        if code == 0 and budget_ms is not None and stats.p95_ms > budget_ms:
            ui.info(f"error: p95 invoke time {stats.p95_ms:.2f} ms exceeds the {budget_ms:g} ms budget")
            return int(Exit.MISMATCH)
    return code
