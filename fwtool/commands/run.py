import sys
from pathlib import Path

import click

from fwtool.core import protocol, ui
from fwtool.core.errors import Exit, FwtoolError
from fwtool.audio.wav import read_wav
from fwtool.emulator import latency_stats
from fwtool.flash import runners
from fwtool.flash.ssh import SshHost, flash_over_ssh, program_path
from fwtool.flash.ssh_stream import SshFollow
from fwtool.monitor import session
from fwtool.monitor.session import MonitorOptions
from fwtool.targets import registry
from fwtool.targets.base import Target, TargetConfig
from fwtool.commands.audio_stream import board_audio, emulate_audio
from fwtool.emulator.linux_targets import LinuxNative
from fwtool.commands.build import build_options, options_from, print_report, run_build
from fwtool.firmware.capture import APPS as CAPTURE_APPS
from fwtool.commands import handoff_options as handoff_click
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
@click.option("--host", help="A Linux board (rpi4, linux-host): deploy the program over SSH to [user@]host[:port] "
              "(or an ~/.ssh/config alias) and follow its output there.")
@click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path), help="With --host: ssh -F FILE.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: build and flash summaries, then one per line.")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal (no live panel).")
@click.option("--verbose", "-v", is_flag=True, help="Show every compiler line.")
@handoff_click.handoff_options()
@lab_options.labgrid_options(fleet=True)
def run(emulator, direct_load, serial_number, method, no_verify, count, timeout, expect, expect_label, min_score,
        budget_ms, audio, host, ssh_config, as_json, plain, verbose, lab=None, **kw):
    """Build, flash and monitor in one go: MODEL running on BOARD, its output live.

    The monitor is opened as soon as the flashed board's USB port appears, so the boot banner is caught. With
    --emulator the same image (build/<board>, dual-core unless --tflm-cores 1) runs on the virtual RP2040, both
    cores emulated, and nothing touches hardware. Exit codes are the monitor's: 0 when --count/--expect are met, 7 timeout, 8 expectation
    not met, 9 board lost; build/flash failures keep theirs (3 bad model, 4 missing tool, 5 does not fit, 6 no
    board).

    \b
    Examples:
      fwtool run --board pico --model fire_alarm.tflite
      fwtool run -b pico -m fire_alarm.tflite --emulator --count 3
      fwtool run -b pico -m model.tflite --expect-label fire_alarm --min-score 0.9 --timeout 60   # HIL gate
      fwtool run -b pico -m model.tflite --labgrid-tags board=pico --boards 4 --count 5   # 4 lab boards at once
      fwtool run -b rpi4 -m fire_alarm.tflite --host pi@raspberrypi.local --count 3      # build, deploy, monitor
      fwtool run -b pico --app kws -m example:micro_speech --emulator --audio yes_then_sentence.wav \\
          --on-detect yes --record 3s --post http://127.0.0.1:8000/v1/audio/transcriptions   # builds --capture 3s
    """
    ui.set_json(as_json)
    handoff = handoff_click.handoff_from(kw, verbose)  # --on-detect … (popped: the rest of kw is build options)
    if audio is not None:
        read_wav(audio)  # a bad WAV is refused (exit 3) before the build
    if budget_ms is not None and not emulator:
        raise FwtoolError("--budget-ms needs --emulator (a real board's latency is in the monitor view)",
                          "drop --budget-ms, or add --emulator", Exit.USAGE)
    where = "emulator" if emulator else "board"
    if where == "board" and host is None and lab is None and \
            registry.virtual_for(kw["board"], kw.get("model")).info.name == LinuxNative.info.name:
        where = "emulator"  # a Linux board run on no --host (linux-host): the board is this machine, run it here
    opts = options_from(kw)  # --emulator runs the image 'fwtool build' makes (the virtual RP2040 has core 1)
    if handoff is not None and opts.capture_s is None and opts.app in CAPTURE_APPS:
        opts.capture_s = handoff.record_s  # --on-detect on an audio app: the firmware sends what --record asks
        ui.info(f"note: --on-detect with --app {opts.app}: building with --capture {handoff.record_s:g}s")
    result = run_build(opts, verbose)
    report = result.report
    if as_json:
        ui.emit_json_line({"type": "build", **_build_summary(report)})
    else:
        print_report(report)
    mon = dict(view="json" if as_json else "plain" if plain else "auto", count=count, timeout=timeout,
               expect=tuple(expect), expect_label=expect_label, min_score=min_score, handoff=handoff,
               elf=result.artifacts.elf)  # a FWT:FAULT's pc/lr as function (file:line) from this build's ELF
    if host is not None:  # a Linux board over SSH: deploy the program, then follow it (fwtool/flash/ssh.py)
        code = _over_ssh(result.artifacts.image, kw["board"], host, ssh_config, mon, as_json)
    elif lab is not None:  # labgrid place(s): flashed through their exporters, monitored over exported ports
        code = lab_options.run_on_lab(lab, result.artifacts.image, mon, as_json)
    else:
        tgt = registry.target_class(kw["board"], where, kw.get("model"))(TargetConfig(
            board=kw["board"], serial=serial_number, method=method, verify=not no_verify,
            through_bootloader=not direct_load))
        image = registry.image_for(tgt, kw["board"], result.artifacts.image, kw.get("model"))
        code = _on_target(tgt, image, report, mon, audio, budget_ms, as_json)
    if code:
        sys.exit(code)


def _on_target(tgt: Target, image: Path, report: dict, mon: dict, audio: Path | None, budget_ms: float | None,
               as_json: bool) -> int:
    """Put ``image`` on the target and show its output: an audio stream, the live monitor on its serial stream
    (a board, the virtual RP2040), or its lines as they come (a target without a port: QEMU)."""
    if audio is not None and tgt.info.virtual:
        return emulate_audio(image, report, Path(audio), as_json, handoff=mon["handoff"], target=tgt)
    if not tgt.info.serves:
        ui.info(f"{tgt.info.title}: running {image}")
        lines, _ = tgt.run(image, protocol.PREFIX_INFER, mon["count"] or 3, mon["timeout"] or 300.0, click.echo)
        for line in tgt.summary(lines):
            ui.info(line)
        return 0
    with ui.err.status(f"fwtool flash: looking for {tgt.info.title}") as status:
        tgt.on_step = lambda msg: status.update(f"fwtool flash: {msg.split(maxsplit=1)[-1]}")
        reach = tgt.serve(image)
    if tgt.flash_result is not None:
        _report_flash(tgt.flash_result, as_json)
    if audio is not None:
        return board_audio(tgt.resolve_port(10.0), report, Path(audio), as_json, handoff=mon["handoff"])
    if tgt.info.virtual:
        ui.info(f"{tgt.info.title} serving {reach['port']}")
    records: list = []
    try:
        code = _monitor(MonitorOptions(**reach, **mon), on_record=records.append)
    finally:
        tgt.stop()
    error = tgt.end_error()
    if code == Exit.LOST_DEVICE and error is not None:
        raise error
    return _latency(tgt, records, budget_ms, as_json, code) if tgt.info.virtual else code


def _over_ssh(image: Path, board: str, host: str, config: Path | None, mon: dict, as_json: bool) -> int:
    out = flash_over_ssh(image, board, host, config)
    if as_json:
        ui.emit_json_line({"type": "flash", **out})
    else:
        ui.info(f"deployed  {out['bytes']:,} B to {out['host']}:{out['remote_path']} ({out['remote_arch']}, "
                f"sha256 verified) in {out['seconds']:.1f} s")
    for note in out.get("notes", []):
        if not as_json:
            ui.info(f"note      {note}")
    follow = SshFollow(SshHost(host, config), program_path(board), None, out.get("capture_device"))
    return _monitor(MonitorOptions(port=f"ssh://{host}", send_input=False, **mon), opener=follow.open)


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


def _latency(tgt: Target, records: list, budget_ms: float | None, as_json: bool, code: int) -> int:
    """A virtual target's invoke latency (its own clock) after the monitor; exit 8 when p95 is over the budget."""
    us = [r.parsed.us for r in records if r.kind == "inference"]
    stats = latency_stats(us, budget_ms, "emulated") if us else None
    if stats:
        if as_json:
            ui.emit_json_line({"type": "latency", **stats.to_dict(), "timing_note": tgt.info.timing_note})
        else:
            ui.info(stats.summary())
            ui.info(f"note: {tgt.info.timing_note}")
        if code == 0 and budget_ms is not None and stats.p95_ms > budget_ms:
            ui.info(f"error: p95 invoke time {stats.p95_ms:.2f} ms exceeds the {budget_ms:g} ms budget")
            return int(Exit.MISMATCH)
    return code
