"""The machine-readable lines fwtool firmware prints, defined once.

The firmware template gets its printf formats from here (``c_formats()``); ``fwtool monitor``, ``fwtool run`` and
``fwtool validate`` parse with ``parse_line()``. Format (one line each, ``key=value`` pairs separated by one space,
values never contain spaces; vectors are comma-separated)::

    FWT:BOOT model=fire_alarm sha256=4d5f2cd1842e board=pico arena=12345 arena_used=11872 ops=6 in=int8:1x124x129x1 out=int8:1x1 labels=fire_alarm fwtool=0.1.0 cores=2 clock_mhz=125 opt=size
    FWT:INFER n=7 us=24113 top=fire_alarm score=0.9961 scores=0.9961 q=127
    FWT:ERROR AllocateTensors failed: arena too small (rebuild with a larger --arena)
    FWT:OUT v=3 t=0 us=22101 q=-128
    FWT:DONE n=20 inputs=3f2a9c0d1e7b

The validation app (``fwtool validate``) prints one ``FWT:OUT`` line per output tensor ``t`` per input vector ``v``
(``q``: every raw quantized value of that tensor, ``us``: that vector's ``Invoke()`` time), then ``FWT:DONE`` with
the number of vectors it ran and the first 12 hex digits of the sha256 of their bytes.

``scores`` are the dequantized values of output tensor 0 (``(q - zero_point) * scale``), ``q`` the raw quantized
values, ``us`` the ``Invoke()`` time in microseconds from ``time_us_64()``, ``top`` the label of the highest score.
Any other line the firmware prints is free text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Re-exported (noqa: F401): fwtool.core.protocol is the one import for every FWT: line type.
from fwtool.core.protocol_profile import (  # noqa: F401 - the profile app's lines (FWT:PROF, FWT:PROFRUN)
    PREFIX_PROF, PREFIX_PROFRUN, PREFIX_SPLIT, ProfileEvent, ProfileRun, ProfileSplit, parse_profile_line,
    profile_c_formats)
from fwtool.core.protocol_outputs import (  # noqa: F401 - a model's further outputs (FWT:INFER_OUT)
    PREFIX_INFER_OUT, InferenceOutput, outputs_c_formats, parse_outputs_line)
from fwtool.core.protocol_vectors import (  # noqa: F401 - input vectors over the console (fwtool validate)
    PREFIX_GOT, PREFIX_READY, PREFIX_VEC, VectorReply, parse_vectors_line, vectors_c_formats)
from fwtool.core.protocol_capture import (  # noqa: F401 - --capture builds (FWT:CAPCFG, FWT:CAPTURE, FWT:CAPEND)
    CaptureLine, capture_c_formats, parse_capture_line)

PREFIX_BANNER = "FWT:BOOT"
PREFIX_INFER = "FWT:INFER"
PREFIX_ERROR = "FWT:ERROR"  # "FWT:ERROR <free text>": the firmware cannot run (repeated every second)
# "FWT:FAULT kind=hardfault [cfsr=0x.. hfsr=0x..] pc=0x.. lr=0x.. xpsr=0x.. [bfar=0x..] [mmfar=0x..] [r0=.. r1=.. r2=..
# r3=.. r12=.. sp=0x.. core=N]": cfsr/hfsr on the Cortex-M4/M33 (PSoC 6, RP2350), the stacked registers, sp and core
# on RP2040/RP2350 (templates/rp2040/fwt_fault.cpp.j2); "FWT:FAULT kind=assert file=.. line=.. lr=.." (PSoC 6 PDL).
PREFIX_FAULT = "FWT:FAULT"
PREFIX_OUT = "FWT:OUT"  # validation app: one output tensor of one input vector
PREFIX_DONE = "FWT:DONE"  # validation app: all vectors ran

# (field, printf conversion) in the order the firmware prints them.
BANNER_FIELDS = [
    ("model", "%s"), ("sha256", "%s"), ("board", "%s"), ("arena", "%lu"), ("arena_used", "%lu"),
    ("ops", "%lu"), ("in", "%s"), ("out", "%s"), ("labels", "%s"), ("fwtool", "%s"),
    ("cores", "%d"), ("clock_mhz", "%lu"), ("opt", "%s"),  # TFLM's cores, clk_sys asked for, --opt
]
INFER_FIELDS = [("n", "%lu"), ("us", "%lu"), ("top", "%s"), ("score", "%.4f")]
INFER_VECTORS = [("scores", "%.4f"), ("q", "%d")]  # printed after the fixed fields, comma-separated
OUT_FIELDS = [("v", "%lu"), ("t", "%lu"), ("us", "%lu")]
OUT_VECTOR = ("q", "%ld")  # after the fixed fields, comma-separated (printed as long: int8..int32 tensors)
DONE_FIELDS = [("n", "%lu"), ("inputs", "%s")]  # inputs: sha256[:12] of the vectors

# Optional banner fields after the fixed ones, from a platform that knows them (fwt_clock_status in fwt_lines.h):
# core_hz = the core clock the firmware runs at (PSoC 6: computed from the clock registers after init), fll =
# "locked" (an FLL that does not lock is an FWT:ERROR instead of a banner).
BANNER_OPTIONAL = [("core_hz", "%lu"), ("fll", "%s")]
_INT_FIELDS = {"arena", "arena_used", "ops", "n", "us", "v", "t", "cores", "clock_mhz", "core_hz"}
_PAIR = re.compile(r"(\w+)=(\S*)")


def c_formats() -> dict[str, str]:
    """printf formats for the firmware template (each ends before the newline / vector part)."""
    def fmt(prefix, fields):
        return prefix + "".join(f" {name}={conv}" for name, conv in fields)

    return {
        "banner": fmt(PREFIX_BANNER, BANNER_FIELDS),
        "infer": fmt(PREFIX_INFER, INFER_FIELDS),
        "vectors": [{"name": n, "conv": c} for n, c in INFER_VECTORS],
        "out": fmt(PREFIX_OUT, OUT_FIELDS), "out_vector": {"name": OUT_VECTOR[0], "conv": OUT_VECTOR[1]},
        "done": fmt(PREFIX_DONE, DONE_FIELDS),
        "error": PREFIX_ERROR + " %s",
        **audio_c_formats(),
        **profile_c_formats(),
        **outputs_c_formats(),
        **vectors_c_formats(),
        **capture_c_formats(),
    }


@dataclass
class Banner:
    fields: dict
    raw: str = ""

    @property
    def labels(self) -> list[str]:
        v = self.fields.get("labels", "")
        return v.split(",") if v else []

    def to_dict(self) -> dict:
        return {"type": "banner", **self.fields}


@dataclass
class Inference:
    n: int
    us: int
    top: str
    score: float
    scores: list[float] = field(default_factory=list)
    q: list[int] = field(default_factory=list)
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "inference", "n": self.n, "us": self.us, "top": self.top, "score": self.score,
                "scores": self.scores, "q": self.q}


@dataclass
class FirmwareError:
    """``FWT:ERROR <text>``: the firmware stopped (e.g. AllocateTensors failed) and keeps repeating why."""

    text: str
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "error", "text": self.text}


def _pairs(rest: str) -> dict:
    out = {}
    for k, v in _PAIR.findall(rest):
        out[k] = int(v) if k in _INT_FIELDS and re.fullmatch(r"-?\d+", v) else v
    return out


def _vector(text: str, cast):
    if not text:
        return []
    return [cast(x) for x in text.split(",")]


@dataclass
class Output:
    """``FWT:OUT``: output tensor ``t`` of input vector ``v`` (validation app)."""

    v: int
    t: int
    us: int
    q: list[int] = field(default_factory=list)
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "output", "v": self.v, "t": self.t, "us": self.us, "q": self.q}


@dataclass
class Done:
    """``FWT:DONE``: the validation app ran all ``n`` vectors."""

    n: int
    inputs: str | None = None
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "done", "n": self.n, "inputs": self.inputs}


@dataclass
class FirmwareFault(FirmwareError):
    """``FWT:FAULT key=value ...``: the CPU faulted (or an assert failed) and the firmware halted. A
    FirmwareError, so every consumer that stops on FWT:ERROR (exit 10) stops on it too."""

    fields: dict = field(default_factory=dict)

    def address(self, key: str) -> int | None:
        try:
            return int(str(self.fields[key]), 16)
        except (KeyError, ValueError):
            return None

    def to_dict(self) -> dict:
        return {"type": "fault", **self.fields}


def parse_line(line: str) -> "Banner | Inference | FirmwareError | Output | Done | AudioRecord | None":
    """Parse one line (without its newline). Returns None for free text or a malformed record."""
    line = line.strip()
    i = line.find(PREFIX_FAULT + " ")
    if i >= 0:
        rest = line[i + len(PREFIX_FAULT):].strip()
        return FirmwareFault(f"the CPU faulted: {rest}", raw=line, fields=_pairs(rest))
    i = line.find(PREFIX_ERROR)
    if i >= 0 and line[i + len(PREFIX_ERROR):i + len(PREFIX_ERROR) + 1] in ("", " "):
        return FirmwareError(line[i + len(PREFIX_ERROR):].strip(), raw=line)
    # The prefix may follow other text on the same line (e.g. a log prefix), so search, don't match.
    i = line.find(PREFIX_BANNER + " ")
    if i >= 0:
        return Banner(_pairs(line[i + len(PREFIX_BANNER):]), raw=line)
    i = line.find(PREFIX_INFER + " ")
    if i >= 0:
        p = _pairs(line[i + len(PREFIX_INFER):])
        try:
            return Inference(n=int(p["n"]), us=int(p["us"]), top=str(p["top"]), score=float(p["score"]),
                             scores=_vector(p.get("scores", ""), float), q=_vector(p.get("q", ""), int), raw=line)
        except (KeyError, ValueError):
            return None
    i = line.find(PREFIX_OUT + " ")
    if i >= 0:
        p = _pairs(line[i + len(PREFIX_OUT):])
        try:
            return Output(v=int(p["v"]), t=int(p["t"]), us=int(p["us"]), q=_vector(p["q"], int), raw=line)
        except (KeyError, ValueError):
            return None
    i = line.find(PREFIX_DONE + " ")
    if i >= 0:
        p = _pairs(line[i + len(PREFIX_DONE):])
        try:
            inputs = p.get("inputs")
            return Done(n=int(p["n"]), inputs=None if inputs in (None, "", "none") else str(inputs), raw=line)
        except (KeyError, ValueError):
            return None
    return (parse_audio_line(line) or parse_profile_line(line) or parse_outputs_line(line)
            or parse_vectors_line(line) or parse_capture_line(line))


# ---------------------------------------------------------------------------------------------------------------
# Audio apps (audio_classifier, kws). Device -> host lines, added to the formats above (which are unchanged):
#
#   FWT:AUDIO app=kws rate=16000 window=480 fft=512 hop=320 frames=49 bins=40 shift=5 source=host want=320
#   FWT:FEAT n=17 q=-128,-90,...                         one feature row (frame n since boot) as fed to the model
#   FWT:AINF n=3 frame=54 dsp_us=1830 invoke_us=21950 dropped=0 top=yes score=0.9961 scores=0.0000,...,0.9961 q=-128,...
#   FWT:DETECT n=3 label=yes score=0.8516                a detection (kws: averaged score over the threshold)
#   FWT:ACK seq=12 credit=4                              host PCM stream: chunk seq consumed, room for credit more
#   FWT:REC rate=16000 bits=16 chunk=256                 recorder app: binary FWR frames follow (fwtool.audio.record)
#
# FWT:AUDIO is printed once the source is chosen (``source`` mic|host; ``want`` = samples per host chunk, 0 for the
# mic); ``shift`` = frames per inference. FWT:FEAT ``n`` counts frames from boot (0-based), so frame n covers stream
# samples [hop*n - (window - hop), hop*(n+1)) with zeros before the stream. FWT:AINF ``frame`` = the newest frame
# index in the model's input; ``dsp_us`` the front-end time for the frames since the last inference, ``invoke_us``
# the Invoke() time, ``dropped`` the samples lost so far (mic overruns or host chunks lost).

PREFIX_AUDIO = "FWT:AUDIO"
PREFIX_FEAT = "FWT:FEAT"
PREFIX_AINF = "FWT:AINF"
PREFIX_DETECT = "FWT:DETECT"
PREFIX_ACK = "FWT:ACK"
PREFIX_REC = "FWT:REC"

AUDIO_FIELDS = [("app", "%s"), ("rate", "%lu"), ("window", "%lu"), ("fft", "%lu"), ("hop", "%lu"),
                ("frames", "%lu"), ("bins", "%lu"), ("shift", "%lu"), ("source", "%s"), ("want", "%lu")]
FEAT_FIELDS = [("n", "%lu")]
FEAT_VECTOR = ("q", "%d")
AINF_FIELDS = [("n", "%lu"), ("frame", "%lu"), ("dsp_us", "%lu"), ("invoke_us", "%lu"), ("dropped", "%lu"),
               ("top", "%s"), ("score", "%.4f")]
AINF_VECTORS = [("scores", "%.4f"), ("q", "%d")]
DETECT_FIELDS = [("n", "%lu"), ("label", "%s"), ("score", "%.4f")]
ACK_FIELDS = [("seq", "%u"), ("credit", "%u")]
REC_FIELDS = [("rate", "%lu"), ("bits", "%u"), ("chunk", "%u")]
AUDIO_SOURCES = ("mic", "host")
_AUDIO_INTS = {"rate", "window", "fft", "hop", "frames", "bins", "shift", "want", "n", "frame", "dsp_us",
               "invoke_us", "dropped", "seq", "credit", "bits", "chunk"}


def audio_c_formats() -> dict:
    """printf formats of the audio lines (fixed fields; vectors follow comma-separated, like ``c_formats()``)."""
    def fmt(prefix, fields):
        return prefix + "".join(f" {name}={conv}" for name, conv in fields)

    return {
        "audio": fmt(PREFIX_AUDIO, AUDIO_FIELDS),
        "feat": fmt(PREFIX_FEAT, FEAT_FIELDS), "feat_vector": {"name": FEAT_VECTOR[0], "conv": FEAT_VECTOR[1]},
        "ainf": fmt(PREFIX_AINF, AINF_FIELDS), "ainf_vectors": [{"name": n, "conv": c} for n, c in AINF_VECTORS],
        "detect": fmt(PREFIX_DETECT, DETECT_FIELDS),
        "ack": fmt(PREFIX_ACK, ACK_FIELDS),
        "rec": fmt(PREFIX_REC, REC_FIELDS),
    }


@dataclass
class AudioBanner:
    """``FWT:AUDIO``: the audio front end the firmware runs, and where its samples come from."""

    app: str
    rate: int
    window: int
    fft: int
    hop: int
    frames: int
    bins: int
    shift: int
    source: str  # "mic" | "host"
    want: int = 0  # host source: samples per PCM chunk the device asks for
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "audio", "app": self.app, "rate": self.rate, "window": self.window, "fft": self.fft,
                "hop": self.hop, "frames": self.frames, "bins": self.bins, "shift": self.shift,
                "source": self.source, "want": self.want}


@dataclass
class FeatureRow:
    """``FWT:FEAT``: feature row (frame) ``n`` since boot, the int8 values the model is fed."""

    n: int
    q: list[int] = field(default_factory=list)
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "feature", "n": self.n, "q": self.q}


@dataclass
class AudioInference:
    """``FWT:AINF``: one inference of an audio app."""

    n: int
    frame: int
    dsp_us: int
    invoke_us: int
    dropped: int
    top: str
    score: float
    scores: list[float] = field(default_factory=list)
    q: list[int] = field(default_factory=list)
    raw: str = ""

    @property
    def us(self) -> int:
        """Processing time of this hop group: front end + Invoke()."""
        return self.dsp_us + self.invoke_us

    def to_dict(self) -> dict:
        return {"type": "audio_inference", "n": self.n, "frame": self.frame, "dsp_us": self.dsp_us,
                "invoke_us": self.invoke_us, "dropped": self.dropped, "top": self.top, "score": self.score,
                "scores": self.scores, "q": self.q}


@dataclass
class Detection:
    """``FWT:DETECT``: inference ``n`` crossed the app's threshold (kws: averaged score)."""

    n: int
    label: str
    score: float
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "detection", "n": self.n, "label": self.label, "score": self.score}


@dataclass
class Ack:
    """``FWT:ACK``: the device consumed host PCM chunk ``seq`` and has room for ``credit`` more chunks."""

    seq: int
    credit: int
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "ack", "seq": self.seq, "credit": self.credit}


@dataclass
class RecStart:
    """``FWT:REC``: the recorder app starts streaming binary PCM frames (see fwtool.audio.record)."""

    rate: int
    bits: int
    chunk: int
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "rec", "rate": self.rate, "bits": self.bits, "chunk": self.chunk}


AudioRecord = AudioBanner | FeatureRow | AudioInference | Detection | Ack | RecStart


def _audio_pairs(rest: str) -> dict:
    return {k: int(v) if k in _AUDIO_INTS and re.fullmatch(r"-?\d+", v) else v for k, v in _PAIR.findall(rest)}


def parse_audio_line(line: str) -> AudioRecord | None:
    """Parse one audio-app line (see the table above). None for anything else or a malformed record."""
    line = line.strip()
    for prefix in (PREFIX_AUDIO, PREFIX_FEAT, PREFIX_AINF, PREFIX_DETECT, PREFIX_ACK, PREFIX_REC):
        i = line.find(prefix + " ")
        if i >= 0:
            break
    else:
        return None
    p = _audio_pairs(line[i + len(prefix):])
    try:
        if prefix == PREFIX_AUDIO:
            if p["source"] not in AUDIO_SOURCES:
                return None
            return AudioBanner(str(p["app"]), int(p["rate"]), int(p["window"]), int(p["fft"]), int(p["hop"]),
                               int(p["frames"]), int(p["bins"]), int(p["shift"]), str(p["source"]),
                               int(p.get("want", 0)), raw=line)
        if prefix == PREFIX_FEAT:
            return FeatureRow(int(p["n"]), _vector(p["q"], int), raw=line)
        if prefix == PREFIX_AINF:
            return AudioInference(int(p["n"]), int(p["frame"]), int(p["dsp_us"]), int(p["invoke_us"]),
                                  int(p["dropped"]), str(p["top"]), float(p["score"]),
                                  _vector(p.get("scores", ""), float), _vector(p.get("q", ""), int), raw=line)
        if prefix == PREFIX_DETECT:
            return Detection(int(p["n"]), str(p["label"]), float(p["score"]), raw=line)
        if prefix == PREFIX_ACK:
            return Ack(int(p["seq"]), int(p["credit"]), raw=line)
        return RecStart(int(p["rate"]), int(p["bits"]), int(p["chunk"]), raw=line)
    except (KeyError, ValueError, TypeError):
        return None
