"""What an audio app's firmware is compiled with: the front end derived from the model's input (``front_end``), as
template values (``template_values``) — numbers and the generated C header, no logic in the templates.

Used by the build (fwtool/firmware/plan.py decides the front end and refuses a model that does not fit it;
fwtool/firmware/context.py puts these values into every template context).
"""
from __future__ import annotations

from fwtool.audio import APPS, params, spectrogram

# How long an audio app with a microphone listens for the host's stream-start magic after boot before it uses the
# microphone (a board without a microphone always waits for the host).
HOST_WAIT_MS = 2000
# Samples buffered from the host stream (chunks of samples_per_inference): the credit window (fwtool/audio/stream.py).
HOST_SLOTS = 4


AUDIO_KEYS = ("app", "rate", "window", "fft", "hop", "frames", "bins", "shift", "samples_per_inference", "threshold",
              "threshold_value", "smoothing", "host_wait_ms", "host_slots", "period_us", "input_scale",
              "input_zero_point", "header")


def is_audio_app(app_name: str) -> bool:
    return app_name in APPS


def front_end(app_name: str, model_input: params.ModelInput) -> params.FrontEnd | None:
    """The front end app ``app_name`` feeds this model with (None: not an audio app); BadInput with the numbers
    when the model's input does not fit it."""
    if not is_audio_app(app_name):
        return None
    return params.for_model(app_name, model_input)


def template_values(fe: params.FrontEnd | None) -> dict:
    """``audio``: the front end's numbers for the firmware templates (for other apps: the same keys, zeros, and a
    header that is an #error, so templates need no conditionals).

    Common to every audio app: app, rate, window, fft, hop, frames, bins, shift (frames per inference),
    samples_per_inference, threshold, smoothing, host_wait_ms, host_slots, period_us (the real-time budget of one
    inference). The spectrogram classifier adds ``header`` (fwt_audio_config.h: FWT_AUDIO_* and the int8 threshold
    table, from fwtool.audio.spectrogram.device_header).
    """
    if fe is None:  # every key, so an audio app's templates render; its header stops the compile with the reason
        return {"audio": {**dict.fromkeys(AUDIO_KEYS, 0), "app": "none", "threshold": "0.0f",
                          "header": '#error "fwtool: this app needs an audio front end (an audio --app derives it '
                                    'from the model input)"'}}
    values = {
        "app": fe.app, "rate": fe.sample_rate, "window": fe.window, "fft": fe.fft_size, "hop": fe.hop,
        "frames": fe.frames, "bins": fe.bins, "shift": fe.columns_per_inference,
        "samples_per_inference": fe.samples_per_inference, "threshold": f"{fe.threshold:.4f}f",
        "threshold_value": fe.threshold, "smoothing": fe.smoothing, "host_wait_ms": HOST_WAIT_MS,
        "host_slots": HOST_SLOTS, "period_us": int(round(fe.inference_period_ms * 1000)),
        "input_scale": fe.input_scale, "input_zero_point": fe.input_zero_point,
    }
    if fe.app == "audio_classifier":
        values["header"] = spectrogram.device_header(fe, spectrogram.Quant.of(fe))
    return {"audio": values}


def model_input_of(tensor) -> params.ModelInput:
    """A ``ModelInput`` from a tensor-like object (shape, dtype, scale list, zero_point list)."""
    scale = tensor.scale[0] if getattr(tensor, "scale", None) else 0.0
    zp = tensor.zero_point[0] if getattr(tensor, "zero_point", None) else 0
    return params.ModelInput(tuple(int(d) for d in tensor.shape), str(tensor.dtype).lower(), float(scale), int(zp))
