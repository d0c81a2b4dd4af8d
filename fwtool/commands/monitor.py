import sys
from pathlib import Path

import click

from fwtool.core import ui
from fwtool.core.errors import Exit, FwtoolError
from fwtool.monitor import MonitorOptions, run_monitor
from fwtool.monitor.handoff import HandoffOptions, parse_duration
from fwtool.commands import lab_options


@click.command()
@click.option("--port", "-p", help="Device (/dev/ttyACM0, COM3) or pyserial URL (socket://host:port, rfc2217://…). "
                                   "Default: find the board by its USB id.")
@click.option("--serial", "serial_number", help="Only the board with this USB serial number.")
@click.option("--board", "-b", help="Board whose USB id to look for (default: the board flashed last, else any).")
@click.option("--uart", is_flag=True, help="The console is a UART behind a USB-UART bridge (FTDI, CP210x, CH340…).")
@click.option("--baud", type=click.IntRange(min=1), help="Baud rate [115200; the board's for --uart].")
@click.option("--no-reconnect", is_flag=True, help="Stop (exit 9) when the board disconnects instead of following it.")
@click.option("--wait", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Seconds to wait for the board to appear.")
@click.option("--reconnect-timeout", type=click.FloatRange(min=0),
              help="Give up (exit 9) when the board stays away this long [forever; 10 s with a stop condition].")
@click.option("--raw", is_flag=True, help="Print the bytes exactly as they come.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (banner, inference, error, other).")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal (no live panel).")
@click.option("--timestamps", "-t", is_flag=True, help="Prefix lines with the host time.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write everything to FILE.")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after N inferences.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds.")
@click.option("--expect", multiple=True, metavar="REGEX", help="Succeed once a line matches REGEX (repeatable).")
@click.option("--expect-label", metavar="LABEL", help="Succeed when an inference's top label is LABEL.")
@click.option("--min-score", type=float, help="With --expect-label: the label's score must be at least X.")
@click.option("--eol", type=click.Choice(["crlf", "lf", "cr"]), default="crlf", show_default=True,
              help="Line ending appended to what you type.")
@click.option("--no-input", is_flag=True, help="Do not forward stdin to the board.")
@click.option("--on-detect", metavar="LABEL[,LABEL…]",
              help="After FWT:DETECT of LABEL, capture the audio that follows and hand it to the handlers below.")
@click.option("--record", "record", default="3s", show_default=True, metavar="DURATION",
              help="With --on-detect: seconds of audio per capture (pre-roll included), e.g. 3s, 1500ms.")
@click.option("--exec", "exec_cmd", metavar="CMD",
              help="Run CMD per capture (env: FWTOOL_WAV, FWTOOL_CAPTURE JSON, FWTOOL_LABEL).")
@click.option("--post", "post_url", metavar="URL",
              help="POST each capture (OpenAI-compatible /v1/audio/transcriptions multipart). Key: FWTOOL_POST_KEY "
                   "or FWTOOL_POST_HEADERS in the environment, or [handoff] headers in the config file.")
@click.option("--post-format", type=click.Choice(["openai", "wav", "azure"]), default="openai", show_default=True,
              help="Body of --post: multipart file+model, raw audio/wav, or Azure-ML-style JSON {\"data\": [...]}.")
@click.option("--post-model", default="whisper-1", show_default=True, help="The 'model' field of an openai --post.")
@click.option("--wyoming", metavar="tcp://HOST:PORT", help="Send each capture to a Wyoming speech-to-text server.")
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path), default="fwtool-captures",
              show_default=True, help="Folder captures are written to first (kept when a handler fails).")
@click.option("--keep-captures", is_flag=True, help="Keep captures whose handlers all succeeded too.")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Retries (with back-off 0.5 s, 1 s, 2 s…) for --post / --wyoming.")
@click.option("--handler-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds per request or command.")
@click.option("--expect-transcript", metavar="REGEX", help="Succeed once a handoff's transcript matches REGEX.")
@click.option("--verbose", "-v", is_flag=True, help="Log each handoff request (keys masked).")
@lab_options.labgrid_options()
def monitor(port, serial_number, board, uart, baud, no_reconnect, wait, reconnect_timeout, raw, as_json, plain,
            timestamps, log_path, count, timeout, expect, expect_label, min_score, eol, no_input, on_detect=None,
            record="3s", exec_cmd=None, post_url=None, post_format="openai", post_model="whisper-1", wyoming=None,
            spool=Path("fwtool-captures"), keep_captures=False, retries=3, handler_timeout=30.0,
            expect_transcript=None, verbose=False, lab=None):
    """Show what the board prints, live: score bars, top label, latency, rate.

    Finds the board (USB 2E8A:000A for pico-sdk USB stdio; the one flashed last if several), opens it as soon as
    it appears so the FWT:BOOT banner is caught, and follows it across resets and re-flashing. Type a line and
    Enter to send it; Ctrl-R reboots the board, Ctrl-B reboots it into BOOTSEL, Ctrl-C quits.

    Stop conditions for CI / hardware-in-the-loop: exit 0 when met, 7 timeout, 8 expectation not met (or
    FWT:ERROR), 9 board lost, 6 no board. --expect-label alone judges the first inference; with --count N, any
    of the first N.

    \b
    Examples:
      fwtool monitor
      fwtool monitor --json --count 5 > inferences.jsonl
      fwtool monitor --expect-label fire_alarm --min-score 0.9 --timeout 30
      fwtool monitor --port socket://localhost:4000 --raw
      fwtool monitor --port rfc2217://exporter:7000 --count 3      # ser2net
      fwtool monitor --labgrid my-pico --count 3                  # a labgrid place's board
      fwtool monitor --on-detect yes --record 3s --post http://127.0.0.1:8000/v1/audio/transcriptions
      fwtool monitor --on-detect yes --exec 'aplay "$FWTOOL_WAV"' --json
      fwtool monitor --on-detect yes --wyoming tcp://127.0.0.1:10300 --expect-transcript 'lights' --timeout 60
    """
    if sum(map(bool, (raw, as_json, plain))) > 1:
        raise FwtoolError("--raw, --json and --plain exclude each other", "pick one", code=Exit.USAGE)
    ui.set_json(as_json)
    view = "raw" if raw else "json" if as_json else "plain" if plain else "auto"
    handoff = handoff_options(on_detect, record, exec_cmd, post_url, post_format, post_model, wyoming, spool,
                              keep_captures, retries, handler_timeout, expect_transcript, verbose)
    opts = MonitorOptions(port=port, serial=serial_number, board=board, uart=uart, baud=baud,
                          reconnect=not no_reconnect, wait=wait, reconnect_timeout=reconnect_timeout, view=view,
                          timestamps=timestamps, log=log_path, count=count, timeout=timeout, expect=tuple(expect),
                          expect_label=expect_label, min_score=min_score, send_input=not no_input, eol=eol,
                          handoff=handoff)
    code = lab_options.monitor_on_lab(lab, opts) if lab is not None else run_monitor(opts)
    if code:
        # Not click's Exit: with standalone_mode=False click *returns* its code and fwtool's main exits 0.
        sys.exit(code)


def handoff_options(on_detect, record, exec_cmd, post_url, post_format, post_model, wyoming, spool, keep, retries,
                    handler_timeout, expect_transcript, verbose) -> HandoffOptions | None:
    if not on_detect:
        if exec_cmd or post_url or wyoming or expect_transcript:
            raise FwtoolError("--exec / --post / --wyoming / --expect-transcript need --on-detect LABEL",
                              "add e.g. --on-detect yes", code=Exit.USAGE)
        return None
    labels = tuple(x.strip() for x in on_detect.split(",") if x.strip())
    return HandoffOptions(labels=labels, record_s=parse_duration(record), exec_cmd=exec_cmd, post_url=post_url,
                          post_format=post_format, post_model=post_model, wyoming=wyoming, spool=spool, keep=keep,
                          retries=retries, handler_timeout=handler_timeout, expect_transcript=expect_transcript,
                          verbose=verbose)
