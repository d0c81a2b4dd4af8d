"""Firmware apps independent of the family: app.toml parsing, the three template layers (common -> family -> app),
sources from data, board features (``needs``)."""
import dataclasses
import re
from pathlib import Path

import pytest

from fwtool.firmware import apps, render
from fwtool.firmware.capture import template_values as capture_values
from fwtool.core import protocol
from fwtool.core.board_schema import PdmMic
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput
from fwtool.core.paths import resource_dir

TEMPLATES = resource_dir("templates")
PLATFORM_API = ["fwt_platform_init", "fwt_time_us", "fwt_sleep_ms", "fwt_has_led", "fwt_led_set", "fwt_led_toggle",
                "fwt_host_connected", "fwt_wait_for_host", "fwt_wait_next_session", "fwt_halt"]


@pytest.fixture
def app_tree(tmp_path, monkeypatch):
    """templates/ with the real common and family layers and apps written by the test."""
    root = tmp_path / "templates"
    (root / "apps").mkdir(parents=True)
    for layer in ("common", "rp2040"):
        (root / layer).symlink_to(TEMPLATES / layer, target_is_directory=True)
    monkeypatch.setattr(apps, "resource_dir", lambda what: root if what == "templates" else resource_dir(what))
    monkeypatch.setattr(render, "resource_dir", lambda what: root if what == "templates" else resource_dir(what))

    def make(name: str, toml: str, files: dict[str, str] | None = None) -> Path:
        d = root / "apps" / name
        d.mkdir()
        (d / "app.toml").write_text(toml)
        for fname, text in (files or {}).items():
            (d / fname).write_text(text)
        return d

    return make


def context(**kw) -> dict:
    """Every name the real templates use, with small values."""
    ctx = {
        "fwtool_version": "0.0-test", "board_name": "pico", "model_name": "m", "model_file": "m.tflite",
        "model_sha": "ab" * 32, "model_sha_short": "abababababab", "model_bytes": 4, "model_hex": ["0x00,"],
        "input_bytes": 0, "input_hex": ["0x00,"], "input_source": "zeros", "vectors_hex": ["0x00,"],
        "vector_count": 1, "vector_bytes": 0, "vector_source": "zeros", "vectors_sha": "none",
        "arena_bytes": 1024, "ops": [], "op_count": 0, "kernel_files": [], "input_desc": "int8:1x1",
        "output_desc": "int8:1x1", "labels": ["a"], "led_pin": 25, "stdio_usb": 1, "stdio_uart": 0,
        "usb_wait_ms": 2500, "loop_delay_ms": 500, "on_fault": "halt", "fmt": protocol.c_formats(),
        "tflm_root": "/t", "tflm_version": "x", "tflm_sources": [], "tflm_patched_sources": [],
        "tflm_includes": [], "tflm_defines": [],
        "app_vendor_libs": [], "tflm_fast_sources": [], "audio": None,
        "mic": {"present": 0, "data_pin": -1, "clk_pin": -1, "pio": 0, "sm": 0},
        "op_registrations": {}, "op_registration_headers": [], "tflm_unity_groups": {},
        "tflm_cores": 2, "clock_mhz": 125, "opt": "size", "clock_cmake": [],
        "capture": capture_values(None)["capture"],  # templates/common/fwt_capture.h (no --capture)
    }
    ctx.update(kw)
    return ctx


def test_app_toml_declares_sources_vendor_needs_and_input(app_tree):
    app_tree("mic", 'description = "listens"\nsources = ["main.cpp", "frontend.cpp"]\n'
                    'vendor = ["cmsis-dsp", "microphone-library-for-pico"]\nneeds = ["pdm_mic"]\n'
                    '[input]\nshape = [1, 49, 40, 1]\ndtype = "int8"\n')
    app = apps.get_app("mic")
    assert (app.name, app.description) == ("mic", "listens")
    assert app.sources == ("main.cpp", "frontend.cpp")
    assert app.vendor == ("cmsis-dsp", "microphone-library-for-pico") and app.needs == ("pdm_mic",)
    assert app.input_shape == (1, 49, 40, 1) and app.input_dtype == "int8"
    assert set(apps.list_apps()) == {"mic"}
    with pytest.raises(BadInput) as e:
        apps.get_app("nope")
    assert e.value.cause == "unknown app 'nope' for this board; available: mic"


def test_the_product_apps():
    listed = apps.list_apps()
    assert {"inference", "validate"} <= set(listed)
    for app in listed.values():
        assert app.path == TEMPLATES / "apps" / app.name
    for app in (listed["inference"], listed["validate"]):  # audio apps add sources and needs (test_audio_app*.py)
        assert app.sources == ("main.cpp",) and app.needs == () and app.input_shape is None
    assert apps.template_values(listed["validate"]) == {
        "app_name": "validate", "common_sources": ["fwt_lines.cpp", "fwt_runtime.cpp", "input_data.cpp",
                                                   "model_data.cpp"], "app_sources": ["main.cpp"],
        "app_defines": []}


def test_bad_app_toml_is_one_line(app_tree):
    app_tree("bad", 'sources = "main.cpp"\n')
    with pytest.raises(BadInput, match="'sources' must be a list of strings"):
        apps.get_app("bad")


def test_app_sources_reach_the_rendered_cmakelists(app_tree):
    app_tree("two", 'sources = ["main.cpp", "extra.cpp"]\n',
             {"main.cpp.j2": "// {{ app_name }}\nint main() {}\n", "extra.cpp.j2": "// extra\n"})
    app = apps.get_app("two")
    files = render.render_all("rp2040", context(**apps.template_values(app)), app)
    cml = files["CMakeLists.txt"]
    exe = cml[cml.index("add_executable(firmware"):]
    exe = exe[:exe.index(")")]
    assert re.findall(r"^\s+(\S+)$", exe, re.M) == ["fwt_lines.cpp", "fwt_runtime.cpp", "input_data.cpp",
                                                     "model_data.cpp", "fwt_platform.cpp", "fwt_fault.cpp", "main.cpp",
                                                     "extra.cpp"]
    assert files["main.cpp"] == "// two\nint main() {}\n" and files["extra.cpp"] == "// extra\n"


def without_mic(board):
    return dataclasses.replace(board, pdm_mic=None)


def test_needs_a_board_feature(app_tree):
    app_tree("mic", 'sources = ["main.cpp"]\nneeds = ["pdm_mic"]\n')
    app = apps.get_app("mic")
    pico = without_mic(get_board("pico"))
    assert not apps.has_feature(pico, "pdm_mic")
    with pytest.raises(BadInput) as e:
        app.check_board(pico)
    assert e.value.cause == "app 'mic' needs a pdm_mic but board 'pico' has none (no [pdm_mic] table in its board file)"
    assert "\n" not in e.value.cause and "pico_w" in e.value.fix  # the boards whose files have one
    with_mic = dataclasses.replace(pico, pdm_mic=PdmMic(data_pin=2, clk_pin=3))
    assert apps.has_feature(with_mic, "pdm_mic")
    app.check_board(with_mic)  # accepted
    app_tree("plain", 'sources = ["main.cpp"]\n')
    apps.get_app("plain").check_board(pico)


def test_needs_names_the_boards_that_have_it(app_tree, monkeypatch):
    app_tree("mic", 'sources = ["main.cpp"]\nneeds = ["pdm_mic"]\n')
    pico, pico_w = without_mic(get_board("pico")), get_board("pico_w")
    pico_w = dataclasses.replace(pico_w, pdm_mic=PdmMic(data_pin=2, clk_pin=3))
    monkeypatch.setattr(apps, "all_boards", lambda: {"pico": pico, "pico_w": pico_w})
    with pytest.raises(BadInput) as e:
        apps.get_app("mic").check_board(pico)
    assert "board 'pico' has none" in e.value.cause and e.value.fix == "use a board that has one (pico_w)"


def test_layers_override_common_then_family_then_app(app_tree, tmp_path):
    app = app_tree("over", 'sources = ["main.cpp"]\n', {"main.cpp.j2": "app main\n",
                                                         "model_data.h.j2": "app's model_data.h\n"})
    root = tmp_path / "templates"
    fam = root / "fam"
    fam.mkdir()
    (fam / "fwt_platform.cpp.j2").write_text("family platform\n")
    (fam / "input_data.cpp.j2").write_text("family input_data\n")
    (fam / "model_data.h.j2").write_text("family model_data.h\n")
    files = render.render_all("fam", context(), apps.get_app("over"))
    assert files["input_data.cpp"] == "family input_data\n"  # family over common
    assert files["model_data.h"] == "app's model_data.h\n"  # app over family and common
    assert files["main.cpp"] == "app main\n" and files["fwt_platform.cpp"] == "family platform\n"
    assert "fwtool_model[]" in files["model_data.cpp"]  # common, not overridden
    assert render.layers("fam", apps.get_app("over")) == [root / "common", fam, app]


def test_the_same_app_for_rp2040_gets_common_and_platform_files():
    for name in ("inference", "validate"):
        app = apps.get_app(name)
        files = render.render_all("rp2040", context(**apps.template_values(app)), app)
        for common in ("fwt_platform.h", "fwt_board.h", "fwt_lines.h", "fwt_lines.cpp", "fwt_runtime.h", "fwt_runtime.cpp",
                       "model_data.cpp", "model_data.h", "ops_resolver.h", "fwtool_config.h", "input_data.cpp"):
            assert common in files, common
        assert "pico_sdk_init()" in files["CMakeLists.txt"]
        platform = files["fwt_platform.cpp"]
        for fn in PLATFORM_API:  # the family implements the whole platform API
            assert fn in files["fwt_platform.h"] and re.search(rf"\b{fn}\b", platform), fn
        assert "pico/stdlib.h" in platform
        main = files["main.cpp"]
        assert "fwt_platform_init();" in main and "pico" not in main.lower()  # apps are family-independent
    assert "fwtool_vector_count = 1;" in files["input_data.cpp"]  # the validate app's own input_data.cpp


def test_common_and_app_code_is_free_of_family_specifics():
    for folder in (TEMPLATES / "common", TEMPLATES / "apps"):
        for t in folder.rglob("*.j2"):
            text = t.read_text()
            for word in ("pico/", "gpio_", "stdio_usb_connected", "sleep_ms(", "time_us_64", "hardware/"):
                assert word not in text.replace("fwt_sleep_ms(", ""), f"{t.relative_to(TEMPLATES)}: {word}"
