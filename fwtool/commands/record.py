"""``fwtool record``: labelled training clips from the board's own microphone (the recorder app), as WAV files."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from fwtool.audio import record as rec
from fwtool.core import ui
from fwtool.core.errors import BadInput, FwtoolError
from fwtool.devices.ports import resolve_port
from fwtool.devices.serial import open_port as open_serial_port

def open_port(port: str | None, board: str | None = None):
    """The recorder's serial port (a device path or a pyserial URL such as socket://127.0.0.1:PORT); without one,
    the board's port found by the serial layer's one rule (the board flashed last, else built last, else any)."""
    r = resolve_port(port, board)
    return open_serial_port(r.device, r.baud, timeout=0.02,
                            fix="check that the board is plugged in and flashed with the recorder app, and that "
                                "no other program (a monitor, a browser tab) holds the port")


def run_session(port, out: Path, label: str, seconds: float, count: int, pause: float, keep_dropped: bool,
                as_json: bool, on_meter=None) -> dict:
    """Record ``count`` clips; returns the summary. Raises the dropped-samples error after the last clip."""
    written, failed = [], []
    for i in range(count):
        if i and pause > 0:
            time.sleep(pause)
        if not as_json:
            ui.info(f"clip {i + 1}/{count}: recording '{label}' for {seconds:g} s ...")
        clip = rec.record_clip(port, seconds, on_meter=on_meter)
        entry = {"type": "clip", "index": i + 1, "dropped": clip.dropped, "bad_frames": clip.bad_frames,
                 "peak_dbfs": None if clip.peak_dbfs == float("-inf") else round(clip.peak_dbfs, 1)}
        if clip.dropped and not keep_dropped:
            err = rec.dropped_error(clip)
            failed.append({**entry, "error": err.cause})
            if as_json:
                ui.emit_json_line(failed[-1])
            else:
                ui.info(f"  dropped: {err.cause}")
            continue
        path = rec.save_clip(out, label, clip.pcm)
        written.append({**entry, "path": str(path)})
        if as_json:
            ui.emit_json_line(written[-1])
        else:
            note = f"  ({clip.dropped} dropped samples zero-filled)" if clip.dropped else ""
            click.echo(f"wrote {path}{note}")
    return {"type": "summary", "written": len(written), "failed": len(failed), "out": str(out),
            "clips": written, "dropped_clips": failed}


@click.command("record")
@click.option("--port", "-p", metavar="PORT",
              help="The recorder board's serial port or pyserial URL (default: find the board over USB).")
@click.option("--board", "-b", help="Board to look for without --port (default: the last build's board).")
@click.option("--label", "-l", required=True, help="Class label: files are named <label>_<UTC timestamp>.wav.")
@click.option("--out", "-o", "out", type=click.Path(path_type=Path, file_okay=False), default=Path("clips"),
              show_default=True, help="Folder for the WAV files (created; nothing is written outside it).")
@click.option("--seconds", "-s", type=click.FloatRange(min=0.1, max=600), default=1.0, show_default=True,
              help="Length of each clip.")
@click.option("--count", "-n", type=click.IntRange(min=1), default=1, show_default=True, help="Clips to record.")
@click.option("--pause", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between clips.")
@click.option("--keep-dropped", is_flag=True, help="Save clips with dropped samples (gaps zero-filled).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per clip, then a summary, on stdout.")
def record(port, board, label, out, seconds, count, pause, keep_dropped, as_json):
    """Record labelled 16 kHz mono 16-bit clips from the board's microphone (the recorder app) as WAV files.

    The recorder app streams the PDM microphone's samples exactly as the audio apps see them. A level meter shows
    while recording. A gap in the sample stream (the device or the USB link could not keep up) is reported and
    that clip is not saved (exit 1 at the end) unless --keep-dropped.

    \b
    Examples:
      fwtool build --board pico --app recorder --model any.tflite && fwtool flash   # once
      fwtool record --label yes --count 20 --out data/yes         # finds the board flashed last
      fwtool record --port /dev/ttyACM0 --label yes --count 20 --out data/yes
      fwtool record -p /dev/ttyACM0 -l background --seconds 10 --json
      fwtool features --app kws data/yes/*.wav -o yes.npy         # next: the features to train on
    """
    ui.set_json(as_json)
    rec.check_label(label)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file", "name a folder: --out clips")
    p = open_port(port, board)
    tty = sys.stderr.isatty() and not as_json

    def meter(rms_db, peak_db):
        if tty:
            sys.stderr.write("\r  " + rec.meter_text(rms_db, peak_db) + "   ")
            sys.stderr.flush()

    try:
        summary = run_session(p, out, label, seconds, count, pause, keep_dropped, as_json, on_meter=meter)
    finally:
        if tty:
            sys.stderr.write("\n")
        p.close()
    if as_json:
        ui.emit_json_line(summary)
    else:
        click.echo(f"recorded {summary['written']} of {count} clips into {out}")
    if summary["failed"]:
        first = summary["dropped_clips"][0]["error"]
        raise FwtoolError(f"{summary['failed']} of {count} clips had dropped samples ({first})",
                              "use a direct USB port and close other programs using it, or --keep-dropped")
