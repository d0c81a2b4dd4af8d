"""Audio front ends for the audio apps (``audio_classifier``, ``kws``): host twins of the device pipelines.

Modules (each usable on its own; they import only ``fwtool.core`` from the rest of fwtool):

- ``wav``          read/write 16 kHz mono 16-bit PCM WAV files; everything else is refused with the fix.
- ``params``       ``FrontEnd`` (the numbers of one front end) derived from, and checked against, a model input.
- ``spectrogram``  CMSIS-DSP q15 spectrogram (Hann 256, hop 128, rfft, magnitude) and its exact int8 quantization.
- ``kws``          micro_speech features: TFLM's ``audio_preprocessor_int8.tflite`` run frame by frame.
- ``features``     ``compute(app, wav_paths, model_input)``: one int8 feature array per clip, stacked.
"""
from __future__ import annotations

APPS = ("audio_classifier", "kws")
