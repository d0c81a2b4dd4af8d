"""``fwtool features``: the model inputs the audio apps' firmware computes, from WAV files, as one .npy."""
from __future__ import annotations

import io
import time
from pathlib import Path

import click
import numpy as np

from fwtool.audio import APPS, features, kws, models, wav
from fwtool.core import ui
from fwtool.core.errors import BadInput
from fwtool.core.files import atomic_write
from fwtool.commands.model_arg import MODEL

PROGRESS_FROM = 8  # clips: show a progress bar from this many on


def _npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def _check_output(out: Path) -> None:
    if out.suffix != ".npy":
        raise BadInput(f"the output {out} is not a .npy file", f"write to {out.with_suffix('.npy')}")
    if out.is_dir():
        raise BadInput(f"the output {out} is a folder", f"name a file: -o {out / 'features.npy'}")


def extract(app: str, wav_paths: list[Path], model: Path | None, all_windows: bool, on_clip=None,
            warm_up: Path | None = None, warm_up_seconds: float = kws.WARM_UP_SECONDS) -> dict:
    """Read (and refuse) every WAV, then compute one input per clip; returns the array and a summary."""
    if not wav_paths:
        raise BadInput("no WAV files given", "pass one or more 16 kHz mono 16-bit WAV files")
    background = None
    if warm_up is not None:
        features.check_warm_up(app, all_windows)
        background = wav.read_wav(warm_up)
    mi = None
    if model is not None:
        fe, mi = models.front_end_for_model(app, model)
    else:
        fe = features.default_front_end(app)
    clips = [wav.read_wav(p) for p in wav_paths]  # every file refused before any work
    pp = kws.Preprocessor() if app == "kws" else None
    t0 = time.perf_counter()
    parts = []
    for i, (path, pcm) in enumerate(zip(wav_paths, clips)):
        parts.append(features.compute_pcm(app, [pcm], fe, [path.name], all_windows, preprocessor=pp,
                                          warm_up=background, warm_up_seconds=warm_up_seconds))
        if on_clip:
            on_clip(i + 1, len(clips))
    x = np.concatenate(parts) if parts else np.zeros((0, fe.frames, fe.bins), np.int8)
    secs = sum(len(c) for c in clips) / fe.sample_rate
    quantized = features.is_quantized(fe)
    if mi is not None and quantized:
        x = x.reshape((-1,) + tuple(mi.shape[1:]))  # exactly the model's input layout
    summary = {
        "app": app, "model": str(model) if model else None, "shape": list(x.shape), "dtype": str(x.dtype),
        "clips": len(clips), "windows": int(x.shape[0]), "seconds": round(secs, 3),
        "compute_s": round(time.perf_counter() - t0, 3),
        "warm_up": ({"background": str(warm_up), "seconds": warm_up_seconds,
                     "frames_dropped": kws.warm_up_frames(fe, warm_up_seconds)} if warm_up is not None else None),
        "values": "int8 model input" if quantized else "int16 q15 magnitudes (training features = value / 64)",
        "front_end": {"sample_rate": fe.sample_rate, "window": fe.window, "fft": fe.fft_size, "hop": fe.hop,
                      "frames": fe.frames, "bins": fe.bins, "input_scale": fe.input_scale,
                      "input_zero_point": fe.input_zero_point},
    }
    return {"x": x, "summary": summary}


@click.command("features")
@click.argument("wavs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="WAV...")
@click.option("--app", "-a", required=True, type=click.Choice(APPS), help="Whose front end to run.")
@click.option("--model", "-m", type=MODEL,
              help="The model the features feed: parameters derived from (and checked against) its input.")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Output .npy file.")
@click.option("--all-windows", is_flag=True,
              help="Every window the device would run on (recording from boot), not one input per 1 s clip.")
@click.option("--warm-up", "warm_up", type=click.Path(path_type=Path), metavar="BACKGROUND.wav",
              help="kws: stream this background recording before every clip and drop its frames, so the features "
                   "are the listening device's (noise reduction and PCAN adapted), not a fresh front end's.")
@click.option("--warm-up-seconds", type=click.FloatRange(0, 10), default=kws.WARM_UP_SECONDS, show_default=True,
              help="With --warm-up: seconds of pre-roll (rounded up to a whole device inference).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def features_cmd(wavs, app, model, output, all_windows, warm_up, warm_up_seconds, as_json):
    """Compute, from 16 kHz mono 16-bit WAV files, exactly the features the audio firmware feeds its model.

    One model input per clip (1 s clips; --all-windows for longer recordings), stacked in one .npy written
    atomically. With --model the shape, scale and zero point come from the model's input, and the result is
    its int8 input (a model the front end cannot feed is refused, exit 3). Without --model: kws gives the
    49x40 int8 micro_speech features; audio_classifier gives the 124x129 q15 magnitude spectrogram (int16) -
    divide by 64 for the training notebook's float features. Any other WAV format is refused (exit 3) with the
    sox/ffmpeg command that converts it.

    The kws front end adapts (noise reduction, PCAN) and the firmware never resets it while it listens. By
    default each clip starts from a fresh front end (micro_speech's test features); --warm-up BACKGROUND.wav
    first streams ~1 s of that background from boot and drops its frames, giving the features the device
    computes for the clip in its listening state (what fwtool train trains on).

    \b
    Examples:
      fwtool features --app audio_classifier --model fire_alarm.tflite clips/*.wav -o x.npy
      fwtool features --app audio_classifier clips/*.wav -o spectrograms.npy      # train on x / 64
      fwtool features --app kws yes/*.wav no/*.wav -o kws_x.npy --json
      fwtool features --app kws --warm-up room_noise.wav yes/*.wav -o kws_warm.npy
      fwtool features --app kws --model micro_speech_quantized.tflite session.wav --all-windows -o win.npy
    """
    ui.set_json(as_json)
    _check_output(output)
    if len(wavs) >= PROGRESS_FROM and not as_json:
        with ui.err.status(f"fwtool features: 0/{len(wavs)} clips") as status:
            res = extract(app, list(wavs), model, all_windows,
                          on_clip=lambda i, n: status.update(f"fwtool features: {i}/{n} clips"),
                          warm_up=warm_up, warm_up_seconds=warm_up_seconds)
    else:
        res = extract(app, list(wavs), model, all_windows, warm_up=warm_up, warm_up_seconds=warm_up_seconds)
    atomic_write(output, _npy_bytes(res["x"]))
    s = {**res["summary"], "output": str(output)}
    if as_json:
        ui.emit_json(s)
        return
    fe = s["front_end"]
    click.echo(f"features  {output}  {s['dtype']}{s['shape']}  ({s['values']})")
    click.echo(f"clips     {s['clips']} ({s['seconds']:.2f} s of audio) -> {s['windows']} inputs "
               f"in {s['compute_s']:.2f} s")
    click.echo(f"front end {app}: {fe['sample_rate']} Hz, window {fe['window']}, hop {fe['hop']}, "
               f"{fe['frames']} frames x {fe['bins']} bins" +
               (f", int8 scale {fe['input_scale']:.6g} zero point {fe['input_zero_point']}"
                if s["dtype"] == "int8" else ""))
    if s["warm_up"]:
        w = s["warm_up"]
        click.echo(f"warm-up   {w['background']}: {w['frames_dropped']} frames of pre-roll per clip, dropped")
