"""Render the rp2040 project (common + family + app layers) for a model and check that the generated CMake/C++ is what the model implies."""
import re

import pytest

from fwtool.core import protocol, vendor
from fwtool.firmware import render
from fwtool.firmware.flow import BuildOptions, plan, template_context
from fwtool.firmware.families.tflm import tflm_sources

KERNELS = {  # a miniature pico-tflmicro: the op registrations the generator looks for
    "cmsis_nn/conv.cpp": "CONV_2D", "cmsis_nn/pooling.cpp": "MAX_POOL_2D", "cmsis_nn/softmax.cpp": "SOFTMAX",
    "cmsis_nn/fully_connected.cpp": "FULLY_CONNECTED", "cmsis_nn/depthwise_conv.cpp": "DEPTHWISE_CONV_2D",
    "reshape.cpp": "RESHAPE", "logistic.cpp": "LOGISTIC", "resize_nearest_neighbor.cpp": "RESIZE_NEAREST_NEIGHBOR",
}
COMMON = ["src/tensorflow/lite/micro/micro_interpreter.cpp", "src/tensorflow/lite/micro/kernels/kernel_util.cpp",
          "src/tensorflow/lite/micro/kernels/conv_common.cpp", "src/third_party/cmsis_nn/Source/x.c"]


@pytest.fixture
def mini_tflm(tmp_path):
    root = tmp_path / "pico-tflmicro"
    lines = []
    for rel, op in KERNELS.items():
        p = root / "src/tensorflow/lite/micro/kernels" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"namespace tflite {{\nTFLMRegistration Register_{op}() {{\n  return {{}};\n}}\n}}\n")
        lines.append(f"  ${{CMAKE_CURRENT_LIST_DIR}}/src/tensorflow/lite/micro/kernels/{rel}")
    for rel in COMMON + ["src/signal/src/window.cpp"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("// helper, registers nothing\n")
        lines.append(f"  ${{CMAKE_CURRENT_LIST_DIR}}/{rel}")
    (root / "CMakeLists.txt").write_text("add_library(pico-tflmicro STATIC)\ntarget_sources(pico-tflmicro\n"
                                         "  PRIVATE\n" + "\n".join(lines) + "\n)\n")
    return root


def _render(fire_alarm, tflm_root, **kw):
    opts = BuildOptions(board=kw.pop("board", "pico"), model=fire_alarm, **kw)
    p = plan(opts)
    ctx = template_context(p, {"pico-tflmicro": tflm_root})
    return p, render.render_all(p.family.template_dir, ctx, p.app)


def test_only_the_models_kernels_are_compiled(mini_tflm, fire_alarm):
    _, files = _render(fire_alarm, mini_tflm)
    cml = files["CMakeLists.txt"]
    compiled = set(re.findall(r"\$\{TFLM_ROOT\}/([^\"\s]+)", cml))  # paths are quoted
    kdir = "src/tensorflow/lite/micro/kernels/"
    wanted = {kdir + k for k in ("cmsis_nn/conv.cpp", "cmsis_nn/pooling.cpp", "cmsis_nn/fully_connected.cpp",
                                 "reshape.cpp", "logistic.cpp", "resize_nearest_neighbor.cpp")}
    assert wanted <= compiled
    assert kdir + "cmsis_nn/softmax.cpp" not in compiled and kdir + "cmsis_nn/depthwise_conv.cpp" not in compiled
    assert set(COMMON) <= compiled  # helpers that register nothing are always built
    assert not any("src/signal/" in c for c in compiled)
    assert "-DPICO" not in cml and "pico_sdk_init()" in cml and "pico_enable_stdio_usb(firmware 1)" in cml


def test_resolver_has_exactly_the_models_ops(mini_tflm, fire_alarm):
    _, files = _render(fire_alarm, mini_tflm)
    h = files["ops_resolver.h"]
    assert "MicroMutableOpResolver<6>" in h and "AllOpsResolver" not in h
    assert re.findall(r"resolver\.(Add\w+)\(\)", h) == ["AddResizeNearestNeighbor", "AddConv2D", "AddMaxPool2D",
                                                       "AddReshape", "AddFullyConnected", "AddLogistic"]


def test_model_array_is_the_model_bytes_aligned_in_flash(mini_tflm, fire_alarm):
    _, files = _render(fire_alarm, mini_tflm)
    src = files["model_data.cpp"]
    assert "alignas(16) const unsigned char fwtool_model[]" in src
    body = src[src.index("{") + 1:src.index("};")]
    assert bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", body)) == fire_alarm.read_bytes()
    assert f"fwtool_model_len = {fire_alarm.stat().st_size};" in src


def test_config_header_carries_the_protocol_and_arena(mini_tflm, fire_alarm):
    p, files = _render(fire_alarm, mini_tflm, labels=None)
    h = files["fwtool_config.h"]
    f = protocol.c_formats()
    fmts = files["fwt_formats.h"]  # the model-independent part, included by fwtool_config.h
    assert f'#define FWTOOL_FMT_BANNER "{f["banner"]}"' in fmts and '#include "fwt_formats.h"' in h
    assert f'#define FWTOOL_FMT_INFER "{f["infer"]}"' in fmts
    assert f"#define FWTOOL_ARENA_SIZE {p.arena.total}" in h
    # the shared sources take the model's values from model_data.cpp (a new model recompiles only that file)
    assert f"unsigned char fwtool_tensor_arena[{p.arena.total}];" in files["model_data.cpp"]
    assert '"fwtool_config.h"' not in files["fwt_lines.cpp"] + files["fwt_runtime.cpp"]
    assert '#define FWTOOL_IN_DESC "int8:1x124x129x1"' in h and "#define FWTOOL_LED_PIN 25" in files["fwt_board.h"]
    assert '"class_0",' in h


def test_labels_input_and_board_variants(mini_tflm, fire_alarm, tmp_path):
    import numpy as np
    (tmp_path / "labels.txt").write_text("fire alarm\n")
    x = np.full((1, 124, 129, 1), 5, dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    _, files = _render(fire_alarm, mini_tflm, board="pico_w", labels=tmp_path / "labels.txt",
                       input=tmp_path / "x.npy", stdio="uart")
    assert '"fire_alarm",' in files["fwtool_config.h"]  # sanitized: no spaces in the line format
    assert "#define FWTOOL_LED_PIN -1" in files["fwt_board.h"]  # Pico W: LED is on the CYW43
    assert "pico_enable_stdio_uart(firmware 1)" in files["CMakeLists.txt"]
    assert f"fwtool_input_len = {x.size};" in files["input_data.cpp"]
    assert files["input_data.cpp"].count("0x05") == x.size


def test_templates_are_logic_free():
    from fwtool.core.paths import resource_dir

    for t in resource_dir("templates").rglob("*.j2"):
        text = t.read_text()
        assert "{% if" not in text and "{%- if" not in text, f"{t.name}: decisions belong in Python"
        assert "{% set" not in text and "{%- set" not in text, f"{t.name}: computation belongs in Python"


def test_write_if_changed_only_touches_changed_files(tmp_path):
    assert render.write_project({"a.txt": "1", "b.txt": "2"}, tmp_path) == ["a.txt", "b.txt"]
    mtime = (tmp_path / "a.txt").stat().st_mtime_ns
    assert render.write_project({"a.txt": "1", "b.txt": "3"}, tmp_path) == ["b.txt"]
    assert (tmp_path / "a.txt").stat().st_mtime_ns == mtime


def test_real_tree_source_selection(real_build_reason):
    if real_build_reason:
        pytest.skip(real_build_reason)
    root = vendor.locate(vendor.manifest()["pico-tflmicro"]).path
    srcs = tflm_sources(root, ["cmsis_nn/conv.cpp", "reshape.cpp"])
    assert "src/tensorflow/lite/micro/kernels/cmsis_nn/conv.cpp" in srcs
    assert "src/tensorflow/lite/micro/kernels/cmsis_nn/softmax.cpp" not in srcs
    assert "src/tensorflow/lite/micro/micro_interpreter.cpp" in srcs
    assert all((root / s).is_file() for s in srcs)
