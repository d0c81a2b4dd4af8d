"""The ``--model`` parameter type: a .tflite (or Keras/SavedModel) path, ``example:NAME``, or a C array header."""
from __future__ import annotations

from pathlib import Path

import click

from fwtool.model import sources

HELP = ("a .tflite file, a C array header (xxd -i output), or example:NAME ('fwtool examples')")


class ModelPath(click.ParamType):
    name = "MODEL"

    def convert(self, value, param, ctx) -> Path:
        return sources.resolve(value)


MODEL = ModelPath()
