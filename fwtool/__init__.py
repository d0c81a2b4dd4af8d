"""fwtool: a trained TensorFlow Lite model in, verified microcontroller firmware out."""

__version__ = "0.1.0"
