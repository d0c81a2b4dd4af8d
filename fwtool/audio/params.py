"""The numbers of each audio front end, and their derivation from (and check against) a model's input tensor.

``FrontEnd`` is what the device firmware and the host twin must agree on. ``for_model(app, model_input)`` derives it
from the model input, refusing a model the front end cannot feed with the numbers that do not fit.

The model input is taken as a plain ``ModelInput(shape, dtype, scale, zero_point)`` so this module does not
depend on fwtool.model.
"""
from __future__ import annotations

from dataclasses import dataclass

from fwtool.core.errors import BadInput

SAMPLE_RATE = 16000
SAMPLES_PER_INFERENCE = 512  # classifier: the PDM library's buffer; 4 hops of 128 for FFT 256
CLASSIFIER_MAG_DIVISOR = 64  # training features are mag_q15 / 64 (arm_q15_to_float(mag) * 512)
FFT_SIZES = (64, 128, 256, 512, 1024)  # arm_rfft_q15 supports 32..8192; these keep hop >= 32 and RAM small
KWS_FEATURES = 40  # audio_preprocessor_int8.tflite output [40]
KWS_WINDOW = 480  # 30 ms
KWS_STRIDE = 320  # 20 ms
KWS_FFT = 512  # the preprocessor's internal FFT (next power of two of 480)
# The preprocessor's int8 output is (feature * 256) / 666 - 128, i.e. scale 666/256 / 25.6 = 0.1016, zero point -128.
KWS_INPUT_SCALE = 26.0 / 256.0
KWS_INPUT_ZERO_POINT = -128
MAX_CLIP_SECONDS = 10


@dataclass(frozen=True)
class ModelInput:
    """A model's first input tensor, as far as the front ends care."""

    shape: tuple[int, ...]
    dtype: str  # "int8", "float32", ...
    scale: float = 0.0
    zero_point: int = 0

    def shape_str(self) -> str:
        return "x".join(str(d) for d in self.shape)


@dataclass(frozen=True)
class FrontEnd:
    """One audio front end. A frame is one row of the features (a spectrum column in the tutorial's words)."""

    app: str  # "audio_classifier" | "kws"
    sample_rate: int
    window: int  # samples per frame (= fft_size for the spectrogram, 480 for kws)
    fft_size: int
    hop: int  # samples between frames (hop / stride)
    frames: int  # frames per model input
    bins: int  # values per frame (fft/2 + 1 bins, or 40 kws features)
    columns_per_inference: int  # new frames computed (and old ones shifted out) per inference
    threshold: float  # score at or above which a detection is reported
    smoothing: int  # number of consecutive inference scores averaged before the threshold (1 = none)
    input_scale: float = 0.0
    input_zero_point: int = 0

    @property
    def clip_samples(self) -> int:
        """Samples that make exactly one model input: window + (frames - 1) * hop."""
        return self.window + (self.frames - 1) * self.hop

    @property
    def samples_per_inference(self) -> int:
        return self.columns_per_inference * self.hop

    @property
    def inference_period_ms(self) -> float:
        return 1000.0 * self.samples_per_inference / self.sample_rate

    def frames_in(self, n_samples: int) -> int:
        """How many whole frames n samples give (0 if fewer than one window)."""
        return 0 if n_samples < self.window else 1 + (n_samples - self.window) // self.hop


def classifier(fft_size: int = 256, frames: int = 124, scale: float = 0.0, zero_point: int = 0) -> FrontEnd:
    """The Pico spectrogram classifier front end: Hann fft_size, hop fft_size/2, fft/2+1 magnitude bins."""
    hop = fft_size // 2
    return FrontEnd(app="audio_classifier", sample_rate=SAMPLE_RATE, window=fft_size, fft_size=fft_size, hop=hop,
                    frames=frames, bins=fft_size // 2 + 1,
                    columns_per_inference=max(1, SAMPLES_PER_INFERENCE // hop),
                    threshold=0.5, smoothing=1, input_scale=scale, input_zero_point=zero_point)


def kws(frames: int = 49, scale: float = KWS_INPUT_SCALE, zero_point: int = KWS_INPUT_ZERO_POINT) -> FrontEnd:
    """micro_speech: 30 ms window, 20 ms stride, 40 features; an inference every 5 frames (100 ms), 10 averaged."""
    return FrontEnd(app="kws", sample_rate=SAMPLE_RATE, window=KWS_WINDOW, fft_size=KWS_FFT, hop=KWS_STRIDE,
                    frames=frames, bins=KWS_FEATURES, columns_per_inference=5, threshold=0.8, smoothing=10,
                    input_scale=scale, input_zero_point=zero_point)


def _check_int8(app: str, mi: ModelInput) -> None:
    if mi.dtype != "int8":
        raise BadInput(f"the {app} front end feeds an int8 model input; this model's input is {mi.dtype} "
                       f"{mi.shape_str()}",
                       "quantize the model to int8 first: fwtool quantize --model M --representative-data ...")
    if not mi.scale or mi.scale <= 0:
        raise BadInput(f"the model's int8 input has no quantization scale (scale={mi.scale}); the {app} front end "
                       "needs it to quantize features", "re-export the model with full-integer quantization")


def _frames_ok(app: str, mi: ModelInput, frames: int, hop: int, window: int) -> None:
    if frames < 1 or window + (frames - 1) * hop > MAX_CLIP_SECONDS * SAMPLE_RATE:
        raise BadInput(f"a {mi.shape_str()} input asks for {frames} frames; the {app} front end takes 1 to "
                       f"{1 + (MAX_CLIP_SECONDS * SAMPLE_RATE - window) // hop} frames ({MAX_CLIP_SECONDS} s)",
                       "train the model on at most 10 s windows")


def classifier_for(mi: ModelInput) -> FrontEnd:
    """Derive the spectrogram front end from an input of shape (1, frames, bins, 1) or (1, frames, bins)."""
    shape = tuple(int(d) for d in mi.shape)
    if not (len(shape) in (3, 4) and shape[0] == 1 and (len(shape) == 3 or shape[3] == 1)):
        raise BadInput(f"the audio_classifier front end feeds a 1 x frames x bins x 1 spectrogram; this model's "
                       f"input is {mi.shape_str()}",
                       "use a model whose input is 1x124x129x1 (1 s, FFT 256, hop 128), or --app kws for "
                       "1x1960 / 1x49x40x1 micro_speech models")
    frames, bins = shape[1], shape[2]
    fft = 2 * (bins - 1)
    if fft not in FFT_SIZES:
        sizes = ", ".join(f"{n // 2 + 1} for FFT {n}" for n in FFT_SIZES)
        raise BadInput(f"a {mi.shape_str()} input has {bins} bins; the spectrogram front end makes fft/2+1 bins "
                       f"({sizes})",
                       "train on the CMSIS-DSP spectrogram (FFT 256 -> 129 bins, 124 frames = 1 s: input "
                       "1x124x129x1); frames are axis 1, bins axis 2")
    _frames_ok("audio_classifier", mi, frames, fft // 2, fft)
    _check_int8("audio_classifier", mi)
    return classifier(fft, frames, float(mi.scale), int(mi.zero_point))


def kws_for(mi: ModelInput) -> FrontEnd:
    """Derive the micro_speech front end from (1, frames*40), (1, frames, 40) or (1, frames, 40, 1)."""
    shape = tuple(int(d) for d in mi.shape)
    frames = None
    if len(shape) == 2 and shape[0] == 1 and shape[1] % KWS_FEATURES == 0:
        frames = shape[1] // KWS_FEATURES
    elif len(shape) in (3, 4) and shape[0] == 1 and shape[2] == KWS_FEATURES and (len(shape) == 3 or shape[3] == 1):
        frames = shape[1]
    if frames is None:
        raise BadInput(f"a {mi.shape_str()} input does not hold whole frames of {KWS_FEATURES} features; the kws "
                       f"front end (micro_speech audio preprocessor) makes {KWS_FEATURES} int8 features per 20 ms "
                       "frame (1x1960 = 49 frames x 40 for 1 s)",
                       "use a micro_speech-style model with input 1x1960 or 1x49x40x1, or --app audio_classifier "
                       "for a spectrogram model")
    _frames_ok("kws", mi, frames, KWS_STRIDE, KWS_WINDOW)
    _check_int8("kws", mi)
    if mi.zero_point != KWS_INPUT_ZERO_POINT or abs(mi.scale / KWS_INPUT_SCALE - 1) > 0.05:
        raise BadInput(f"the kws front end outputs int8 with scale {KWS_INPUT_SCALE:.4f} and zero point "
                       f"{KWS_INPUT_ZERO_POINT} (the audio preprocessor's fixed output); this model's input has "
                       f"scale {mi.scale:.6g} and zero point {mi.zero_point}",
                       "train on the preprocessor's int8 features as micro_speech does (input quantization "
                       "0.1017 / -128)")
    return kws(frames, float(mi.scale), int(mi.zero_point))


def for_model(app: str, mi: ModelInput) -> FrontEnd:
    """The front end of ``app`` ("audio_classifier" | "kws") for this model input, or BadInput with the numbers."""
    if app == "audio_classifier":
        return classifier_for(mi)
    if app == "kws":
        return kws_for(mi)
    raise BadInput(f"unknown audio app '{app}'", "use --app audio_classifier or --app kws")
