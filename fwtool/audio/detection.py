"""The kws app's detection rule as a build input: ``detection.json`` = ``{"threshold": T, "smoothing": N}``.

The firmware reports a keyword when its score, averaged over the last ``smoothing`` inferences, reaches
``threshold`` (fwtool.audio.kws.detections is the host copy of the rule). ``fwtool train --app kws`` picks the pair
on a streaming evaluation and writes this file; ``fwtool build/run/validate --app kws --detection FILE`` compiles it
in (without it: micro_speech's 10 inferences and 0.8, from fwtool.audio.params.kws).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

from fwtool.core.errors import BadInput

from .params import FrontEnd

MAX_SMOOTHING = 50  # inferences averaged (the firmware keeps a float[smoothing][labels] ring)
_FIX = 'write {"threshold": 0.8, "smoothing": 10} (threshold in (0, 1], smoothing 1..50), or re-run fwtool train'


def read(path: str | os.PathLike) -> tuple[float, int]:
    """(threshold, smoothing) from a detection file; BadInput naming what is wrong."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > 64 * 1024:
            raise BadInput(f"detection file {p} is not a small regular file", _FIX)
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadInput(f"detection file {p.name} is not JSON ({type(e).__name__})", _FIX) from e
    if not isinstance(data, dict) or "threshold" not in data or "smoothing" not in data:
        raise BadInput(f"detection file {p.name} needs the keys 'threshold' and 'smoothing'", _FIX)
    thr, smooth = data["threshold"], data["smoothing"]
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not math.isfinite(thr) or not 0 < thr <= 1:
        raise BadInput(f"detection file {p.name}: threshold {thr!r} is not a score in (0, 1]", _FIX)
    if isinstance(smooth, bool) or not isinstance(smooth, int) or not 1 <= smooth <= MAX_SMOOTHING:
        raise BadInput(f"detection file {p.name}: smoothing {smooth!r} is not a whole number of inferences "
                       f"1..{MAX_SMOOTHING}", _FIX)
    return float(thr), int(smooth)


def payload(threshold: float, smoothing: int, **extra) -> str:
    """The file's text (extra keys, e.g. the evaluation figures behind the choice, are kept for people)."""
    return json.dumps({"threshold": round(float(threshold), 4), "smoothing": int(smoothing), **extra}, indent=2) + "\n"


def apply(fe: FrontEnd | None, path: str | os.PathLike | None) -> FrontEnd | None:
    """``fe`` with the file's threshold and smoothing (unchanged without a file). Refuses a file for a non-kws app."""
    if path is None or fe is None:
        if path is not None:
            raise BadInput("--detection sets the kws app's detection rule; this build has no audio front end",
                           "use it with --app kws")
        return fe
    if fe.app != "kws":
        raise BadInput(f"--detection sets the kws app's detection rule, not {fe.app}'s", "use it with --app kws")
    thr, smooth = read(path)
    return replace(fe, threshold=thr, smoothing=smooth)
