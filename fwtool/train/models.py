"""The models ``fwtool train`` builds: ``tiny_conv`` (the TinyML book's micro_speech model), ``ds_cnn`` (Arm
ML-zoo's DS-CNN-S: a strided conv, four depthwise-separable blocks, average pooling), ``cnn2d`` (a small 2D CNN for
the spectrogram classifier), or a user's Python file defining ``build(input_shape, n_classes)`` -> Keras model.

Every layer is checked against what converts to int8 ops that TFLM/CMSIS-NN run, before any training, naming the
layer that would not (the converted model is checked again by fwtool.model.tflite.check_for_tflm).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from fwtool.core.errors import BadInput

BUILTIN = ("tiny_conv", "ds_cnn", "cnn2d")
DEFAULT = {"kws": "tiny_conv", "audio_classifier": "cnn2d"}

# Keras layers that become TFLite builtins with int8 kernels in TFLM (or vanish: dropout, input, batchnorm folded
# into the convolution before it).
LAYERS_OK = {
    "InputLayer", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization",
    "Activation", "ReLU", "Softmax", "Dropout", "SpatialDropout2D", "Flatten", "Reshape", "MaxPooling1D",
    "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "Add", "Concatenate", "ZeroPadding2D", "LeakyReLU", "Rescaling", "Multiply",
    "Functional", "Sequential", "Permute", "Cropping2D", "UpSampling2D", "Minimum", "Maximum", "Subtract",
}
ACTIVATIONS_OK = {"linear", "relu", "relu6", "softmax", "sigmoid", "tanh", "leaky_relu", "hard_sigmoid", "swish",
                  "hard_swish", "elu"}


def _tiny_conv(keras, input_shape, n):
    """The TinyML book / micro_speech tiny_conv: one 10x8 conv (8 filters, stride 2), dropout, fully connected."""
    L = keras.layers
    return keras.Sequential([
        keras.Input(input_shape), L.Conv2D(8, (10, 8), strides=(2, 2), padding="same", activation="relu"),
        L.Dropout(0.25), L.Flatten(), L.Dense(n, activation="softmax")], name="tiny_conv")


def _ds_cnn(keras, input_shape, n, filters=64):
    """DS-CNN-S (Arm ML-zoo, Zhang et al. 'Hello Edge'): conv 10x4/2 then 4 x (depthwise 3x3 + pointwise)."""
    L = keras.layers
    x = inp = keras.Input(input_shape)
    x = L.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x)
    x = L.ReLU()(L.BatchNormalization(momentum=0.9)(x))
    for _ in range(4):
        x = L.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization(momentum=0.9)(x))
        x = L.Conv2D(filters, (1, 1), use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization(momentum=0.9)(x))
    x = L.AveragePooling2D(pool_size=(int(x.shape[1]), int(x.shape[2])))(x)
    x = L.Dropout(0.2)(L.Flatten()(x))
    return keras.Model(inp, L.Dense(n, activation="softmax")(x), name="ds_cnn")


def _cnn2d(keras, input_shape, n):
    """A small 2D CNN for the 124x129 spectrogram: strided conv, two conv + pool stages, global pooling."""
    L = keras.layers
    return keras.Sequential([
        keras.Input(input_shape), L.Conv2D(8, (3, 3), strides=(2, 2), padding="same", activation="relu"),
        L.MaxPooling2D((2, 2)), L.Conv2D(16, (3, 3), padding="same", activation="relu"), L.MaxPooling2D((2, 2)),
        L.Conv2D(32, (3, 3), padding="same", activation="relu"), L.GlobalAveragePooling2D(), L.Dropout(0.2),
        L.Dense(n, activation="softmax")], name="cnn2d")


def build(tf, name: str, input_shape: tuple[int, ...], n_classes: int):
    """A built-in model by name, or ``build(input_shape, n_classes)`` from a user's .py file; checked for TFLM."""
    keras = tf.keras
    if name in BUILTIN:
        model = {"tiny_conv": _tiny_conv, "ds_cnn": _ds_cnn, "cnn2d": _cnn2d}[name](keras, input_shape, n_classes)
    else:
        model = _user_model(keras, Path(name), input_shape, n_classes)
    check_layers(model)
    out = tuple(model.outputs[0].shape[1:]) if getattr(model, "outputs", None) else ()
    if out != (n_classes,):
        raise BadInput(f"the model's output is {out}; training needs one score per class ({n_classes})",
                       f"end the model with Dense({n_classes}, activation='softmax')")
    return model


def _user_model(keras, path: Path, input_shape, n_classes):
    if path.suffix != ".py" or not path.is_file():
        raise BadInput(f"--model {path} is neither a built-in model ({', '.join(BUILTIN)}) nor a Python file",
                       "pass tiny_conv, ds_cnn, cnn2d, or a .py file defining build(input_shape, n_classes)")
    spec = importlib.util.spec_from_file_location(f"fwtool_user_model_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: one line, not their traceback
        raise BadInput(f"{path.name} raised {type(e).__name__} when imported: {e}",
                       "fix the model file (run it with python3 to see the traceback)") from e
    fn = getattr(module, "build", None)
    if not callable(fn):
        raise BadInput(f"{path.name} does not define build(input_shape, n_classes)",
                       "add: def build(input_shape, n_classes): return keras.Sequential([...])")
    try:
        model = fn(tuple(input_shape), int(n_classes))
    except Exception as e:
        raise BadInput(f"{path.name}: build{tuple(input_shape), n_classes} raised {type(e).__name__}: {e}",
                       "fix build() in the model file") from e
    finally:
        sys.modules.pop(spec.name, None)
    if not isinstance(model, keras.Model):
        raise BadInput(f"{path.name}: build() returned {type(model).__name__}, not a Keras model",
                       "return a keras.Model (e.g. keras.Sequential([...]))")
    return model


def _layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if getattr(layer, "layers", None):
            yield from _layers(layer)


def check_layers(model) -> None:
    """Refuse a layer (or activation) with no int8 TFLM kernel, naming it, before any training."""
    for layer in _layers(model):
        kind = type(layer).__name__
        if kind not in LAYERS_OK:
            raise BadInput(f"layer '{layer.name}' ({kind}) has no int8 kernel in TFLM (the firmware could not run "
                           "the model)", "use Conv2D, DepthwiseConv2D, Dense, pooling, BatchNormalization, ReLU, "
                           "Softmax, Flatten/Reshape (see 'fwtool inspect' for TFLM's ops)")
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", None) if act is not None else None
        if act_name and act_name not in ACTIVATIONS_OK:
            raise BadInput(f"layer '{layer.name}' ({kind}) uses activation '{act_name}', which has no int8 TFLM "
                           "kernel", "use relu, relu6, sigmoid, tanh or softmax")
