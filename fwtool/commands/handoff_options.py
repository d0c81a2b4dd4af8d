"""The --on-detect options, shared by ``fwtool monitor`` and ``fwtool run`` (logic: fwtool/monitor/handoff.py)."""
from __future__ import annotations

from pathlib import Path

import click

from fwtool.core.errors import Exit, FwtoolError
from fwtool.monitor.handoff import HandoffOptions, parse_duration

KEYS = ("on_detect", "record", "until_silence", "exec_cmd", "post_url", "post_format", "post_model", "wyoming", "spool",
        "keep_captures", "retries", "handler_timeout", "expect_transcript")


def handoff_options():
    """Decorator adding --on-detect, --record, --until-silence, --exec, --post, --post-format, --post-model, --wyoming, --spool,
    --keep-captures, --retries, --handler-timeout, --expect-transcript (not -v: each command has its own)."""
    opts = [
        click.option("--on-detect", metavar="LABEL[,LABEL…]",
                      help="After FWT:DETECT of LABEL, capture the audio that follows and hand it to the handlers below."),
        click.option("--record", "record", default="3s", show_default=True, metavar="DURATION",
                      help="With --on-detect: seconds of audio per capture after the detection, e.g. 3s, 1500ms (a "
                           "--capture firmware's pre-roll comes on top; at most what the firmware sends)."),
        click.option("--until-silence", metavar="DURATION",
                      help="With --on-detect: end a capture early once its last DURATION (e.g. 700ms) is below "
                           "-40 dBFS, after at least 0.5 s past the pre-roll."),
        click.option("--exec", "exec_cmd", metavar="CMD",
                      help="Run CMD per capture (env: FWTOOL_WAV, FWTOOL_CAPTURE JSON, FWTOOL_LABEL)."),
        click.option("--post", "post_url", metavar="URL",
                      help="POST each capture (OpenAI-compatible /v1/audio/transcriptions multipart). Key: FWTOOL_POST_KEY "
                           "or FWTOOL_POST_HEADERS in the environment, or [handoff] headers in the config file."),
        click.option("--post-format", type=click.Choice(["openai", "wav", "azure"]), default="openai", show_default=True,
                      help="Body of --post: multipart file+model, raw audio/wav, or Azure-ML-style JSON {\"data\": [...]}."),
        click.option("--post-model", default="whisper-1", show_default=True, help="The 'model' field of an openai --post."),
        click.option("--wyoming", metavar="tcp://HOST:PORT", help="Send each capture to a Wyoming speech-to-text server."),
        click.option("--spool", type=click.Path(file_okay=False, path_type=Path), default="fwtool-captures",
                      show_default=True, help="Folder captures are written to first (kept when a handler fails)."),
        click.option("--keep-captures", is_flag=True, help="Keep captures whose handlers all succeeded too."),
        click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
                      help="Retries (with back-off 0.5 s, 1 s, 2 s…) for --post / --wyoming."),
        click.option("--handler-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
                      help="Seconds per request or command."),
        click.option("--expect-transcript", metavar="REGEX", help="Succeed once a handoff's transcript matches REGEX."),
    ]

    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return deco


def handoff_from(kw: dict, verbose: bool = False) -> HandoffOptions | None:
    """Pop the --on-detect options out of ``kw``; None without --on-detect (handlers without it: exit 2)."""
    v = {k: kw.pop(k, None) for k in KEYS}
    if not v["on_detect"]:
        if v["exec_cmd"] or v["post_url"] or v["wyoming"] or v["expect_transcript"]:
            raise FwtoolError("--exec / --post / --wyoming / --expect-transcript need --on-detect LABEL",
                              "add e.g. --on-detect yes", code=Exit.USAGE)
        return None
    labels = tuple(x.strip() for x in v["on_detect"].split(",") if x.strip())
    return HandoffOptions(labels=labels, record_s=parse_duration(v["record"] or "3s"), exec_cmd=v["exec_cmd"],
                          post_url=v["post_url"], post_format=v["post_format"] or "openai",
                          post_model=v["post_model"] or "whisper-1", wyoming=v["wyoming"],
                          spool=v["spool"] or Path("fwtool-captures"), keep=bool(v["keep_captures"]),
                          retries=3 if v["retries"] is None else v["retries"],
                          handler_timeout=v["handler_timeout"] or 30.0, expect_transcript=v["expect_transcript"],
                          verbose=verbose,
                          until_silence_s=parse_duration(v["until_silence"], "--until-silence") if v["until_silence"] else None)
