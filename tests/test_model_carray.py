"""The C array header reader (fwtool.model.carray): the forms tutorials hand out, and every refusal."""
import shutil
import subprocess

import pytest

from fwtool.core.errors import BadInput, Exit
from fwtool.model import carray
from fwtool.model.tflite import parse_model
from modelgen import tiny_fc_model

MODEL = tiny_fc_model()


def xxd_like(data: bytes, name: str = "model_tflite") -> str:
    """What `xxd -i model.tflite` prints (12 bytes a line, then the unsigned int NAME_len)."""
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 12]) for i in range(0, len(data), 12)]
    return f"unsigned char {name}[] = {{\n  " + ",\n  ".join(rows) + f"\n}};\nunsigned int {name}_len = {len(data)};\n"


def body(data: bytes) -> str:
    return ", ".join(f"0x{b:02x}" for b in data)


def test_xxd_output_round_trips(tmp_path):
    src = tmp_path / "model.tflite"
    src.write_bytes(MODEL)
    text = xxd_like(MODEL)
    if shutil.which("xxd"):  # the real tool as well as our imitation of it
        text = subprocess.run(["xxd", "-i", "model.tflite"], cwd=tmp_path, capture_output=True, text=True,
                              check=True).stdout
    a = carray.parse_header(text)
    assert a.name == "model_tflite" and a.data == MODEL
    assert parse_model(a.data).operators  # a model the loader accepts


@pytest.mark.parametrize("decl", [
    "alignas(8) const unsigned char g_model[] = {{{b}}};",
    "alignas(16) const unsigned char g_model[] = {{{b}}};\nconst int g_model_len = {n};",
    "const uint8_t g_model[{n}] = {{{b}}};",
    "static const uint8_t g_model[] __attribute__((aligned(16))) = {{{b},}};",
    "const unsigned char g_model[] DATA_ALIGN_ATTRIBUTE = {{\n{b}\n}};\nconst unsigned int g_model_len = {n}u;",
    "#define G_MODEL_LEN {n}\nconstexpr std::uint8_t g_model[G_MODEL_LEN] = {{{b}}};",
    "const signed char g_model[] = {{{s}}};",
])
def test_declaration_variants(decl):
    text = decl.format(b=body(MODEL), n=len(MODEL), s=", ".join(str(b - 256 if b > 127 else b) for b in MODEL))
    assert carray.parse_header(text).data == MODEL


def test_comments_and_preprocessor_lines_are_ignored():
    text = ("/* Copyright ... SPDX-License-Identifier: Apache-2.0\n * unsigned char fake[] = { 1, 2 }; */\n"
            "#ifndef MODEL_H\n#define MODEL_H\n// const uint8_t other[] = {0x00};\n"
            "alignas(8) const unsigned char g_model[] = {\n  // first line\n  " + body(MODEL[:10]) + ", /* mid */ "
            + body(MODEL[10:]) + "  // end\n};\n#endif  // MODEL_H\n")
    assert carray.parse_header(text).data == MODEL


def test_two_arrays_are_refused_naming_both():
    text = xxd_like(MODEL, "model_a") + xxd_like(b"\x01\x02", "labels_b")
    with pytest.raises(BadInput) as e:
        carray.parse_header(text, "two.h")
    assert "'model_a'" in e.value.cause and "'labels_b'" in e.value.cause and e.value.code == Exit.BAD_INPUT
    assert e.value.fix


def test_no_array_is_refused():
    with pytest.raises(BadInput, match="holds no byte array"):
        carray.parse_header("#pragma once\nconst int g_model_len = 3;\nconst char* name = \"x\";\n", "none.h")


def test_truncated_array_is_refused():
    text = xxd_like(MODEL)
    with pytest.raises(BadInput, match="does not end"):
        carray.parse_header(text[:len(text) // 2], "cut.h")


def test_truncated_line_is_caught_by_the_length_variable():
    text = xxd_like(MODEL)
    first_row_end = text.index("\n", text.index("{") + 2)
    text = text[:text.index("{") + 1] + text[first_row_end + 1:]  # one row of 12 bytes gone, the rest intact
    with pytest.raises(BadInput) as e:
        carray.parse_header(text, "edited.h")
    assert f"says {len(MODEL)} bytes" in e.value.cause and f"holds {len(MODEL) - 12}" in e.value.cause


@pytest.mark.parametrize("decl", [
    "unsigned char m[] = {{{b}}};\nunsigned int m_len = {wrong};",
    "#define m_LEN {wrong}\nunsigned char m[] = {{{b}}};",
    "const uint8_t m[{wrong}] = {{{b}}};",
])
def test_length_that_disagrees_is_refused(decl):
    with pytest.raises(BadInput, match=r"says \d+ bytes but the array 'm' holds"):
        carray.parse_header(decl.format(b=body(MODEL), wrong=len(MODEL) + 4))


@pytest.mark.parametrize("bad", ["0x100", "abc", "-1", ""])
def test_values_that_are_not_bytes_are_refused(bad):
    with pytest.raises(BadInput, match="not a byte value"):
        carray.parse_header(f"unsigned char m[] = {{0x01, {bad}, 0x02}};")


def test_the_fire_alarm_header_is_the_tutorials_model():
    """The Pico tutorial's inference-app/src/tflite_model.h, from the pinned tree, is byte-for-byte its model."""
    from fwtool.core import vendor
    from fwtool.model import examples
    from modelgen import FIRE_ALARM

    ex = examples.catalog()["fire_alarm"]
    loc = vendor.locate(vendor.manifest()[ex.tree])
    if loc.path is None:
        pytest.skip(f"{ex.tree} is not in the cache (fwtool vendor sync {ex.tree})")
    a = carray.read_header(loc.path / ex.path)
    assert a.name == "tflite_model"
    m = parse_model(a.data)
    assert m.data[4:8] == b"TFL3" and len(m.operators) > 0
    if FIRE_ALARM.is_file():
        assert a.data == FIRE_ALARM.read_bytes()
