"""The kws app's build side: the signal ops in the op table and the model check, the signal-library source selection
(derived from the pinned pico-tflmicro tree), the embedded preprocessor model and its refusals, the rendered
firmware (two resolvers with exactly their ops, two arenas).

Tests that need the pinned trees (pico-tflmicro, tflite-micro) skip with the reason where they are absent."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from fwtool.firmware import preprocessor as pre_mod
from fwtool.firmware.apps import get_app
from fwtool.firmware.families import tflm
from fwtool.core import vendor
from fwtool.core.errors import BadInput, Exit, MissingTool
from fwtool.model.tflite import Operator, check_for_tflm, load_model, resolver_calls, tflm_ops

REPO = Path(__file__).resolve().parent.parent
MODELS = "tensorflow/lite/micro/examples/micro_speech/models"
SIGNAL_OPS = ["SignalWindow", "SignalFftAutoScale", "SignalRfft", "SignalEnergy", "SignalFilterBank",
              "SignalFilterBankSquareRoot", "SignalFilterBankSpectralSubtraction", "SignalPCAN",
              "SignalFilterBankLog"]
METHODS = ["AddWindow", "AddFftAutoScale", "AddRfft", "AddEnergy", "AddFilterBank", "AddFilterBankSquareRoot",
           "AddFilterBankSpectralSubtraction", "AddPCAN", "AddFilterBankLog"]


def _tree(name: str) -> Path:
    loc = vendor.locate(vendor.manifest()[name])
    if loc.path is None:
        pytest.skip(f"vendor tree {name} not available (fwtool vendor sync {name})")
    return loc.path


@pytest.fixture(scope="module")
def tflm_root() -> Path:
    return _tree("pico-tflmicro")


@pytest.fixture(scope="module")
def models() -> Path:
    return _tree("tflite-micro") / MODELS


# ---- op table and model check -------------------------------------------------------------------------------

def test_op_table_has_the_signal_ops_with_their_resolver_methods():
    table = tflm_ops()
    for op, method in zip(SIGNAL_OPS, METHODS):
        entry = table[f"CUSTOM:{op}"]
        assert entry["method"] == method and entry["custom"] is True
        assert entry["kernel"].startswith("signal/micro/kernels/") and entry["kernel"].endswith(".cpp")
    assert table["CUSTOM:SignalFftAutoScale"]["kernel"] == "signal/micro/kernels/fft_auto_scale_kernel.cpp"
    assert not table["CONV_2D"].get("custom", False)


def test_op_table_is_what_the_generator_makes_from_the_pinned_tree(tflm_root):
    p = subprocess.run([sys.executable, str(REPO / "tools/gen_tflm_ops.py"), str(tflm_root),  # + reference kernels
                        str(_tree("tflite-micro"))], capture_output=True, text=True, check=True)
    assert p.stdout == (REPO / "fwtool/data/tflm_ops.toml").read_text()
    # every method the table names is one pico-tflmicro's resolver has
    header = (tflm_root / "src/tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    assert all(f"TfLiteStatus {e['method']}(" in header for e in tflm_ops().values())


def test_the_preprocessor_model_passes_the_check_with_its_custom_ops(models):
    m = load_model(models / "audio_preprocessor_int8.tflite")
    check_for_tflm(m)  # no raise: every op, custom ones included, has a kernel
    calls = resolver_calls(m)
    assert {c["method"] for c in calls} >= set(METHODS)
    assert len(calls) == 18 and len({c["method"] for c in calls}) == 18


def test_an_unknown_custom_op_is_refused_naming_the_ones_there_are(models):
    m = load_model(models / "audio_preprocessor_int8.tflite")
    bad = dataclasses.replace(m, operators=[*m.operators, Operator(99, "CUSTOM:SignalMagic", 1, [], [])])
    with pytest.raises(BadInput) as e:
        check_for_tflm(bad)
    assert "CUSTOM:SignalMagic" in e.value.cause and "\n" not in e.value.cause
    assert "SignalPCAN" in e.value.fix and "SignalMagic" in e.value.fix and e.value.code == Exit.BAD_INPUT


# ---- signal-library source selection ------------------------------------------------------------------------

PREPROCESSOR_SIGNAL_SOURCES = sorted(
    [f"src/signal/micro/kernels/{k}.cpp" for k in (
        "energy", "fft_auto_scale_common", "fft_auto_scale_kernel", "filter_bank", "filter_bank_log",
        "filter_bank_spectral_subtraction", "filter_bank_square_root", "filter_bank_square_root_common", "pcan",
        "rfft", "window")]
    + [f"src/signal/src/{s}.cpp" for s in (
        "energy", "fft_auto_scale", "filter_bank", "filter_bank_log", "filter_bank_spectral_subtraction",
        "filter_bank_square_root", "log", "max_abs", "msb_32", "msb_64", "pcan_argc_fixed", "rfft_float",
        "rfft_int16", "rfft_int32", "square_root_32", "square_root_64", "window")]
    + [f"src/signal/src/kiss_fft_wrappers/kiss_fft_{t}.cpp" for t in ("float", "int16", "int32")])


def test_exactly_the_preprocessors_signal_sources_are_compiled(tflm_root, models):
    m = load_model(models / "audio_preprocessor_int8.tflite")
    kernels = sorted({c["kernel"] for c in resolver_calls(m)})
    srcs = tflm.tflm_sources(tflm_root, kernels)
    signal = sorted(s for s in srcs if s.startswith(tflm.SIGNAL_DIRS))
    assert signal == PREPROCESSOR_SIGNAL_SOURCES
    # not: other signal ops (delay, framer, stacker, irfft, overlap_add), nor kiss_fft.c on its own (the
    # wrappers #include it inside their own namespaces)
    assert not any(x in s for s in signal for x in ("delay", "framer", "stacker", "irfft", "overlap_add",
                                                      "circular_buffer", "kissfft/kiss_fft.c"))
    assert all((tflm_root / s).is_file() for s in srcs)
    assert "src/tensorflow/lite/micro/kernels/strided_slice.cpp" in srcs
    assert tflm.tflm_includes(kernels)[-1] == "src/third_party/kissfft"


def test_a_model_without_signal_ops_compiles_no_signal_source(tflm_root):
    srcs = tflm.tflm_sources(tflm_root, ["cmsis_nn/fully_connected.cpp", "reshape.cpp"])
    assert not any(s.startswith(tflm.SIGNAL_DIRS) for s in srcs)
    assert "src/third_party/kissfft" not in tflm.tflm_includes(["reshape.cpp"])


def _write(root: Path, rel: str, text: str = "") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_source_selection_follows_the_includes_of_any_tree(tmp_path):
    """The rule on a made-up tree: a kernel's headers pull in the sources that implement them (same stem, or the
    closest-named header they include), transitively; sources #included as code are not compiled again."""
    files = {
        "src/signal/micro/kernels/foo.cpp": '#include "signal/src/foo.h"\n',
        "src/signal/micro/kernels/bar.cpp": '#include "signal/src/bar.h"\n',  # another op: not wanted
        "src/signal/src/foo.h": '#include "signal/src/util.h"\n',
        "src/signal/src/foo_int16.cpp": '#include "signal/src/util.h"\n#include "signal/src/foo.h"\n'
                                        '#include "signal/src/wrap/fft_int16.h"\n',
        "src/signal/src/bar.h": "", "src/signal/src/bar_int16.cpp": '#include "signal/src/bar.h"\n',
        "src/signal/src/util.h": "", "src/signal/src/util_32.cpp": '#include "signal/src/util.h"\n',
        "src/signal/src/wrap/fft_int16.h": "", "src/signal/src/wrap/fft_int16.cpp": '#include "fft.c"\n',
        "src/third_party/kissfft/fft.h": "", "src/third_party/kissfft/fft.c": '#include "fft.h"\n',
    }
    for rel, text in files.items():
        _write(tmp_path, rel, text)
    listed = "\n".join(f"  ${{CMAKE_CURRENT_LIST_DIR}}/{rel}" for rel in files if not rel.endswith(".h"))
    _write(tmp_path, "CMakeLists.txt", f"target_sources(pico-tflmicro\n  PRIVATE\n{listed}\n)\n")
    got = tflm.signal_sources(tmp_path, ["src/signal/micro/kernels/foo.cpp"])
    assert got == ["src/signal/micro/kernels/foo.cpp", "src/signal/src/foo_int16.cpp", "src/signal/src/util_32.cpp",
                   "src/signal/src/wrap/fft_int16.cpp"]


# ---- the embedded preprocessor ------------------------------------------------------------------------------

def test_the_kws_app_embeds_the_pinned_preprocessor_with_its_own_arena(models):
    pre = pre_mod.plan_preprocessor(get_app("kws"), None)
    assert pre.model.path == models / "audio_preprocessor_int8.tflite"
    assert pre.origin.startswith("tflite-micro ") and pre.labels == ("silence", "unknown", "yes", "no")
    assert 4_000 < pre.arena.measured < 16_000 and pre.arena.total > pre.arena.measured
    assert {op["method"] for op in pre.ops} >= set(METHODS)
    values = pre_mod.template_values(pre)["pre"]
    assert values["op_count"] == 18 and values["input_elements"] == 480 and values["output_elements"] == 40
    assert values["bytes"] == pre.model.size and len(values["hex"]) == (pre.model.size + 15) // 16


def test_a_user_preprocessor_is_used_as_given(models, tmp_path):
    own = tmp_path / "my_front_end.tflite"
    own.write_bytes((models / "audio_preprocessor_int8.tflite").read_bytes())
    pre = pre_mod.plan_preprocessor(get_app("kws"), own)
    assert pre.model.path == own and pre.origin == "--preprocessor"


def test_a_missing_tflite_micro_tree_names_the_sync_command(monkeypatch):
    monkeypatch.setattr(pre_mod.vendor, "locate", lambda dep: vendor.Located(dep, None, "missing"))
    monkeypatch.setenv("FWTOOL_OFFLINE", "1")  # else the tree is fetched on first use
    with pytest.raises(MissingTool) as e:
        pre_mod.plan_preprocessor(get_app("kws"), None)
    assert "audio_preprocessor_int8.tflite" in e.value.cause and "\n" not in e.value.cause
    assert "'fwtool vendor sync tflite-micro'" in e.value.fix and e.value.code == Exit.MISSING_TOOL


def test_a_preprocessor_of_the_wrong_shape_is_refused_with_both_signatures(models):
    with pytest.raises(BadInput) as e:
        pre_mod.plan_preprocessor(get_app("kws"), models / "micro_speech_quantized.tflite")
    assert e.value.cause == ("preprocessor micro_speech_quantized.tflite maps int8[1, 1960] -> int8[1, 4]; app 'kws' "
                             "feeds it int16[1, 480] and reads int8[40]")
    assert "audio_preprocessor_int8.tflite" in e.value.fix


def test_a_preprocessor_for_an_app_without_one_is_refused(tmp_path):
    with pytest.raises(BadInput) as e:
        pre_mod.plan_preprocessor(get_app("inference"), tmp_path / "x.tflite")
    assert "app 'inference' runs no preprocessor model" in e.value.cause and "--app kws" in e.value.fix
    assert pre_mod.plan_preprocessor(get_app("inference"), None) is None


def test_labels_default_to_the_apps_only_when_none_are_given(models):
    pre = pre_mod.plan_preprocessor(get_app("kws"), None)
    assert pre_mod.labels_for(pre, None, ["class_0"] * 4) == ["silence", "unknown", "yes", "no"]
    assert pre_mod.labels_for(pre, Path("l.txt"), ["a", "b", "c", "d"]) == ["a", "b", "c", "d"]
    assert pre_mod.labels_for(pre, None, ["class_0", "class_1"]) == ["class_0", "class_1"]


# ---- the whole plan and the rendered firmware ---------------------------------------------------------------

def test_the_kws_build_renders_two_resolvers_and_two_arenas(models, real_build_reason, tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    from fwtool.firmware import render
    from fwtool.firmware.context import template_context
    from fwtool.firmware.plan import BuildOptions, plan

    p = plan(BuildOptions(board="pico", model=models / "micro_speech_quantized.tflite", app="kws",
                          out_dir=tmp_path / "out"))
    assert p.labels == ["silence", "unknown", "yes", "no"] and p.preprocessor is not None
    assert "signal/micro/kernels/pcan.cpp" in p.kernel_files and "cmsis_nn/fully_connected.cpp" in p.kernel_files
    assert p.fit["ram"]["arena"] == p.arena.total + p.preprocessor.arena.total
    ctx = template_context(p, p.family.vendor_paths())
    files = render.render_all(p.family.template_dir, ctx, p.app)
    clf_ops = files["ops_resolver.h"]
    assert "MicroMutableOpResolver<4>" in clf_ops and "AddWindow" not in clf_ops
    assert all(f"resolver.{m}(" in clf_ops for m in ("AddReshape", "AddFullyConnected", "AddDepthwiseConv2D",
                                                      "AddSoftmax"))  # int8 models: type-specialized registrations
    pre_h = files["preprocessor.h"]
    assert "MicroMutableOpResolver<18>" in pre_h and all(f"resolver.{m}()" in pre_h for m in METHODS)
    assert "AddSoftmax" not in pre_h and f"FWT_PRE_ARENA_SIZE {p.preprocessor.arena.total}" in pre_h
    assert f"FWTOOL_ARENA_SIZE {p.arena.total}" in files["fwtool_config.h"]
    assert "src/signal/src/pcan_argc_fixed.cpp" in files["CMakeLists.txt"]
    assert "irfft" not in files["CMakeLists.txt"] and "fwt_mic.cpp" in files["CMakeLists.txt"]
    assert '"yes",' in files["fwtool_config.h"]


def test_the_kws_detection_rule_keywords_only_averaged_and_suppressed():
    from fwtool.audio import kws, params

    fe = params.kws()  # threshold 0.8, 10 inferences averaged
    labels = ["silence", "unknown", "yes", "no"]
    unknown, yes, silence = [-128, 125, -128, -126], [-128, -116, 116, -128], [127, -128, -128, -128]
    assert kws.detections([silence] * 30, 1 / 256, -128, fe, labels) == []  # never silence/unknown
    # 4 'unknown' inferences first: the 10-slot mean of 'yes' (0.953) reaches 0.8 once 9 slots hold it (n = 13),
    # then no repeat for 10 inferences (n = 23 is the next)
    got = kws.detections([unknown] * 4 + [yes] * 20, 1 / 256, -128, fe, labels)
    assert got == [{"n": 13, "label": "yes"}, {"n": 23, "label": "yes"}]
    assert kws.detections([yes] * 3, 1 / 256, -128, fe, labels) == [{"n": 1, "label": "yes"}]
