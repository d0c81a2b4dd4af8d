"""What ``--model`` accepts, turned into a .tflite path: a file, ``example:NAME``, or a C array header.

A header's array is decoded once into the cache (``<cache>/models/<sha12>/<stem>.tflite``, named after the header
so build folders and reports keep the model's name); the header itself is never written to.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from fwtool.core.files import atomic_write
from fwtool.core.paths import cache_dir
from fwtool.model import carray, examples


def resolve(value: str | Path) -> Path:
    text = str(value)
    if examples.is_example(text):
        return examples.model_path(text[len(examples.PREFIX):])
    path = Path(text)
    if carray.is_header(path) and not path.is_dir():
        return header_model(path)
    return path


def header_model(path: Path) -> Path:
    data = carray.read_header(path).data
    out = cache_dir() / "models" / hashlib.sha256(data).hexdigest()[:12] / f"{path.stem}.tflite"
    if not (out.is_file() and out.read_bytes() == data):
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, data)
    return out
