"""The bridge from a .tflite file to the audio front ends: its first input as a ``params.ModelInput``.

Kept apart from ``params`` so the front-end arithmetic stays free of the flatbuffer reader; this is the one audio
module that imports ``fwtool.model``.
"""
from __future__ import annotations

import os

from fwtool.model.tflite import load_model

from .params import FrontEnd, ModelInput, for_model


def model_input(path: str | os.PathLike) -> ModelInput:
    """The first input tensor of a .tflite model (shape, dtype, per-tensor scale and zero point). Raises BadInput."""
    m = load_model(path)
    t = m.inputs[0]
    return ModelInput(tuple(int(d) for d in t.shape), t.dtype.lower(),
                      float(t.scale[0]) if t.scale else 0.0, int(t.zero_point[0]) if t.zero_point else 0)


def front_end_for_model(app: str, path: str | os.PathLike) -> tuple[FrontEnd, ModelInput]:
    """The front end ``app`` runs for this model (derived from and checked against its input). Raises BadInput."""
    mi = model_input(path)
    return for_model(app, mi), mi
