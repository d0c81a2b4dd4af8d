"""Issue 14's flash and build-time levers, checked without a firmware build: the integer-only FWT: formatting is
exact (compiled for the host), type-specialized registrations follow the model's tensor types, the TFLM source
closure of the pinned tree, and the text-by-component split of a map file."""
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import modelgen
from fwtool.firmware import components, registrations, sources
from fwtool.firmware.families.tflm import TFLM_INCLUDES, _tflm_library_sources, kernel_source, tflm_sources
from fwtool.core import vendor
from fwtool.model.tflite import load_model, parse_model, resolver_calls

LINES = Path(__file__).resolve().parents[1] / "templates/common/fwt_lines.cpp.j2"


def tflm_root():
    path = vendor.locate(vendor.manifest()["pico-tflmicro"]).path
    if path is None:
        pytest.skip("pinned pico-tflmicro not available (fwtool vendor sync pico-tflmicro)")
    return Path(path)


@pytest.fixture(scope="module")
def formatter(tmp_path_factory):
    """The firmware's LineOut/emit code, cut from the template and compiled for the host with fwt_write
    collecting the text."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("no host g++ to compile the firmware's formatter")
    text = LINES.read_text()
    code = text[text.index("class LineOut"):text.index("// Output element i")]
    d = tmp_path_factory.mktemp("fmt")
    (d / "f.cpp").write_text(
        "#include <stdarg.h>\n#include <stdint.h>\n#include <string.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
        "#include <string>\nstatic std::string acc;\nvoid fwt_write(const char* t) { acc += t; }\nnamespace {\n"
        + code + "}\nint main() {\n  char line[64];\n  while (fgets(line, sizeof line, stdin)) {\n"
        "    uint32_t bits = (uint32_t)strtoul(line, 0, 16); float f; memcpy(&f, &bits, 4);\n    acc.clear();\n"
        '    emit("s=%.4f q=%d l=%ld u=%lu n=%u t=%s\\n", f, -128, -2147483647L, 4294967295UL, 7u, "x,y");\n'
        "    fputs(acc.c_str(), stdout);\n  }\n}\n")
    subprocess.run([gxx, "-O1", "-o", str(d / "f"), str(d / "f.cpp")], check=True, capture_output=True)
    return d / "f"


def test_fixed_point_formatting_is_byte_identical_to_python(formatter):
    """%.4f as Python formats it (correct rounding, ties to even) for dequantized scores, edge values and random
    float bit patterns; the integer conversions as printf."""
    rng = random.Random(14)
    values = [0.0, 0.5, 1.0, -1.0, 0.00005, 0.00015, -0.00005, 0.99995, 1e-30, 3.4e38, -3.4e38, 1.4e-45,
              float("inf"), float("-inf"), 16777217.0, 123456.78125]
    values += [(q + 128) / 256 for q in range(-128, 128)] + [(q + 3) * 0.4434 for q in range(-128, 128)]
    values += [struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0] for _ in range(20000)]
    bits = [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]
    floats = [struct.unpack("<f", struct.pack("<I", b))[0] for b in bits]
    keep = [(b, f) for b, f in zip(bits, floats) if f == f]  # NaN: printed as "nan" (checked below)
    out = subprocess.run([str(formatter)], input="".join(f"{b:08x}\n" for b, _ in keep), capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == len(keep)
    for (b, f), line in zip(keep, out):
        assert line == "s=%.4f q=-128 l=-2147483647 u=4294967295 n=7 t=x,y" % f, hex(b)
    nan = subprocess.run([str(formatter)], input="7fc00000\nffc00000\n", capture_output=True, text=True).stdout
    assert nan.splitlines()[0].startswith("s=nan ") and nan.splitlines()[1].startswith("s=nan ")


def test_the_fwt_lines_use_no_printf():
    body = LINES.read_text().split("void fwt_print_banner", 1)[1]
    assert not re.search(r"\bs?n?printf\s*\(", body)


def test_int8_model_gets_the_int8_registrations():
    root = tflm_root()
    m = load_model(modelgen.FIRE_ALARM)
    chosen = registrations.registrations(m, resolver_calls(m), root, kernel_source)
    assert {k: v["function"] for k, v in chosen.items()} == {
        "CONV_2D": "Register_CONV_2D_INT8", "MAX_POOL_2D": "Register_MAX_POOL_2D_INT8",
        "FULLY_CONNECTED": "Register_FULLY_CONNECTED_INT8"}
    assert chosen["CONV_2D"]["header"] == "tensorflow/lite/micro/kernels/conv.h"
    values = registrations.template_values(m, resolver_calls(m), root, kernel_source)
    assert values["op_registrations"]["CONV_2D"] == "tflite::Register_CONV_2D_INT8()"
    assert values["op_registrations"]["RESHAPE"] == ""  # no variants: the generic registration


def test_a_tensor_of_another_type_keeps_the_generic_registration():
    root = tflm_root()
    m = parse_model(modelgen.FIRE_ALARM.read_bytes())  # a private copy: its tensor types are changed below
    conv = next(o for o in m.operators if o.op == "CONV_2D")
    m.tensors[conv.inputs[1]].dtype = "INT4"  # int4 weights: the INT4 variant, not INT8
    chosen = registrations.registrations(m, resolver_calls(m), root, kernel_source)
    assert chosen["CONV_2D"]["function"] == "Register_CONV_2D_INT4"
    m.tensors[conv.inputs[0]].dtype = "INT16"  # int16 activations with int4 weights: no variant fits
    assert "CONV_2D" not in registrations.registrations(m, resolver_calls(m), root, kernel_source)


def test_only_referenced_tflm_and_cmsis_nn_sources_are_compiled():
    root = tflm_root()
    common = _tflm_library_sources(str(root))[0]
    m = load_model(modelgen.FIRE_ALARM)
    kernels = sorted({c["kernel"] for c in resolver_calls(m)})
    compiled = tflm_sources(root, kernels)
    assert len(compiled) < 0.6 * (len(common) + len(kernels))
    for must in ("src/tensorflow/lite/micro/micro_interpreter.cpp", "src/tensorflow/lite/micro/micro_allocator.cpp",
                 "src/tensorflow/lite/micro/kernels/conv_common.cpp",
                 "src/third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c",
                 "src/third_party/cmsis_nn/Source/PoolingFunctions/arm_max_pool_s8.c",
                 "src/third_party/cmsis_nn/Source/NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c"):
        assert must in compiled, must
    for never in ("src/tensorflow/lite/micro/kernels/lstm_eval.cpp", "src/tensorflow/lite/micro/test_helpers.cpp",
                  "src/third_party/cmsis_nn/Source/SVDFunctions/arm_svdf_s8.c",
                  "src/third_party/cmsis_nn/Source/SoftmaxFunctions/arm_softmax_s8.c"):
        assert never not in compiled, never
    # a softmax model adds CMSIS-NN's softmax (the closure follows the kernel file's calls)
    softmax = sources.closure(str(root), common, (kernel_source("cmsis_nn/softmax.cpp"), *sources.RUNTIME_ROOTS),
                              tuple(TFLM_INCLUDES))
    assert "src/third_party/cmsis_nn/Source/SoftmaxFunctions/arm_softmax_s8.c" in softmax


MAP = """Linker script and memory map

.text           0x10000100      0x200
 .text.main     0x10000100       0x40 CMakeFiles/firmware.dir/main.cpp.o
 .text._ZN6tflite12_GLOBAL__N_19EvalInt8EP13TfLiteContextP10TfLiteNode
                0x10000140       0x80 libtflm.a(conv.cpp.o)
 .text.arm_convolve_s8
                0x100001c0       0x60 libtflm.a(arm_convolve_s8.c.o)
 *fill*         0x10000220        0x4
 .text.memcpy   0x10000224       0x20 /usr/lib/gcc/arm-none-eabi/12.2.1/thumb/v6-m/nofp/libc_nano.a(lib_a-memcpy.o)
 .text.x        0x10000244       0x30 CMakeFiles/firmware.dir/home/user/.cache/fwtool/vendor/pico-sdk-a1/src/x.c.o
.rodata         0x10000300      0x110
 .rodata.fwtool_model
                0x10000300      0x100 CMakeFiles/firmware.dir/model_data.cpp.o
 .rodata.y      0x10000400       0x10 libtflm.a(micro_allocator.cpp.o)
"""


def test_components_add_up_to_the_text_and_name_where_bytes_come_from(tmp_path, monkeypatch):
    (tmp_path / "f.map").write_text(MAP)
    monkeypatch.setattr(components, "text_sections", lambda elf: {".text": 0x200, ".rodata": 0x110, ".heap": 0x800})
    tflm = ["src/tensorflow/lite/micro/kernels/cmsis_nn/conv.cpp", "src/tensorflow/lite/micro/micro_allocator.cpp",
            "src/third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c"]
    rows = components.by_component(tmp_path / "f.elf", tmp_path / "f.map", tflm)
    assert sum(rows.values()) == 0x200 + 0x110 + 0x800
    assert rows["app"] == 0x40 and rows["kernels"] == 0x80 and rows["cmsis_nn"] == 0x60
    assert rows["c_library"] == 0x20 and rows["sdk_usb"] == 0x30 and rows["model"] == 0x100
    assert rows["tflm_runtime"] == 0x10 and rows["stack_heap"] == 0x800
    assert rows["linker_padding"] == 0x200 - 0x40 - 0x80 - 0x60 - 0x20 - 0x30
    assert components.table(rows)[0][0] == components.LABELS["stack_heap"]


def test_unity_groups_leave_kernel_files_c_and_signal_sources_separate():
    from fwtool.firmware.families.tflm import unity_groups
    compiled = ["src/tensorflow/lite/micro/micro_allocator.cpp", "src/tensorflow/lite/micro/kernels/conv_common.cpp",
                "src/tensorflow/lite/micro/kernels/cmsis_nn/conv.cpp", "src/signal/src/window.cpp",
                "src/third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c"]
    assert unity_groups(compiled, ["cmsis_nn/conv.cpp"]) == {
        "tflm_runtime": ["src/tensorflow/lite/micro/micro_allocator.cpp"],
        "tflm_kernels": ["src/tensorflow/lite/micro/kernels/conv_common.cpp"]}
    assert unity_groups(compiled[2:], ["cmsis_nn/conv.cpp"]) == {}
    rows = components.tflm_members([])
    assert rows["unity_tflm_runtime_cxx.cxx.o"] == "tflm_runtime" and rows["unity_tflm_kernels_cxx.cxx.o"] == "kernels"
