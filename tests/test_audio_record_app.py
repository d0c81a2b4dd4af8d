"""The recorder app (`fwtool build --app recorder`, device side of `fwtool record`): app.toml ``defines`` reaching
the build template, the rendered project, a real pico build (binary-safe stdio in the linked image), the app on the
virtual board (FWRS -> FWT:REC + CRC-checked FWR frames), and `fwtool record` finding the board's port itself."""
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from fakes_picoboot import FakeBoard, install
from fwtool.audio import framing
from fwtool.firmware import apps, render
from fwtool.firmware.context import template_context
from fwtool.firmware.plan import BuildOptions, plan
from fwtool.commands import record as record_cmd
from fwtool.core import protocol, vendor
from fwtool.core.errors import BadInput, NoDevice
from modelgen import tiny_fc_model

from conftest import build_prerequisites, virtual_board_reason

CRLF_OFF = "PICO_STDIO_ENABLE_CRLF_SUPPORT=0"


def trees_reason():
    for name in ("pico-sdk", "tinyusb", "pico-tflmicro", "microphone-library-for-pico"):
        if vendor.locate(vendor.manifest()[name]).path is None:
            return f"vendor tree {name} not available (fwtool vendor sync {name})"
    return None


needs_trees = pytest.mark.skipif(trees_reason() is not None, reason=str(trees_reason()))


@pytest.fixture()
def tiny(tmp_path):
    p = tmp_path / "tiny.tflite"
    p.write_bytes(tiny_fc_model())
    return p


def test_recorder_app_declares_mic_vendor_and_binary_stdio():
    app = apps.get_app("recorder")
    assert app.needs == ("pdm_mic",) and app.vendor == ("microphone-library-for-pico",)
    assert app.sources == ("main.cpp", "fwt_mic.cpp") and app.defines == (CRLF_OFF,)
    values = apps.template_values(app)
    assert values["app_defines"] == [CRLF_OFF] and values["app_sources"] == ["main.cpp", "fwt_mic.cpp"]
    assert apps.template_values(apps.get_app("inference"))["app_defines"] == []


def test_bad_define_is_refused_with_the_fix(tmp_path):
    meta = tmp_path / "x" / "app.toml"
    meta.parent.mkdir()
    meta.write_text('sources = ["main.cpp"]\ndefines = ["A=1) evil("]\n')
    with pytest.raises(BadInput) as e:
        apps.load_app(meta)
    assert "A=1) evil(" in e.value.cause and "NAME=VALUE" in e.value.cause and "defines = [" in e.value.fix
    meta.write_text('defines = "X=1"\n')
    with pytest.raises(BadInput, match="list of strings"):
        apps.load_app(meta)


def test_recorder_needs_a_microphone_board(tiny):
    with pytest.raises(BadInput) as e:
        plan(BuildOptions(board="sparkfun_micromod_rp2040", model=tiny, app="recorder"))
    assert "needs a pdm_mic" in e.value.cause and "pico" in e.value.fix


@needs_trees
def test_render_puts_defines_sources_and_mic_into_the_project(tmp_path, tiny):
    p = plan(BuildOptions(board="pico", model=tiny, app="recorder", out_dir=tmp_path))
    assert p.audio is None and set(p.app_vendor) == {"microphone-library-for-pico"}
    ctx = template_context(p, p.family.vendor_paths())
    files = render.render_all(p.family.template_dir, ctx, p.app)
    cml = files["CMakeLists.txt"]
    assert f"target_compile_definitions(firmware PRIVATE {CRLF_OFF})" in cml
    exe = cml[cml.index("add_executable(firmware"):]
    exe = exe[:exe.index(")")]
    assert "main.cpp" in exe and "fwt_mic.cpp" in exe
    assert "pico_generate_pio_header(pico_pdm_mic" in cml and "cmsis_dsp" not in cml
    main = files["main.cpp"]
    rec_fmt = protocol.c_formats()["rec"]
    assert f'"{rec_fmt}\\r\\n"' in main  # the host's FWT:REC parser's own format
    line = rec_fmt.replace("%lu", "16000").replace("%u", "16", 1).replace("%u", "256", 1)
    rec = protocol.parse_audio_line(line)
    assert isinstance(rec, protocol.RecStart) and (rec.rate, rec.bits, rec.chunk) == (16000, 16, 256)
    assert "{2, 3, pio0, 0, sample_rate" in " ".join(files["fwt_mic.cpp"].split()).replace("{ ", "{")
    plain = plan(BuildOptions(board="pico", model=tiny, out_dir=tmp_path))
    plain_cml = render.render_all(plain.family.template_dir, template_context(plain, plain.family.vendor_paths()),
                                  plain.app)["CMakeLists.txt"]
    assert "target_compile_definitions(firmware PRIVATE)" in plain_cml and CRLF_OFF not in plain_cml


def _prereq():
    return build_prerequisites() or trees_reason()


@pytest.fixture(scope="module")
def recorder_build(tmp_path_factory):
    reason = _prereq()
    if reason:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("recorder")
    (d / "tiny.tflite").write_bytes(tiny_fc_model())
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "pico", "--app", "recorder",
                           "--model", str(d / "tiny.tflite"), "--out", str(d / "out"), "--json"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return d / "out"


def test_real_build_links_binary_safe_stdio(recorder_build):
    elf = recorder_build / "firmware.elf"
    assert (recorder_build / "firmware.uf2").is_file() and elf.is_file()
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        pytest.skip("arm-none-eabi-nm not installed")
    syms = {}
    for ln in subprocess.run([nm, "-S", "-C", str(elf)], capture_output=True, text=True).stdout.splitlines():
        parts = ln.split(maxsplit=3)
        if len(parts) == 4:
            syms[parts[3]] = int(parts[1], 16)
    # Built with CRLF support the function scans every byte for '\n'; without it, it only forwards (<= 8 bytes).
    assert syms["stdio_out_chars_crlf"] <= 8, syms["stdio_out_chars_crlf"]
    assert "pdm_microphone_read" in syms and "(anonymous namespace)::g_ring" in syms
    assert b"FWT:REC rate=" in (recorder_build / "firmware.bin").read_bytes()


def test_recorder_on_the_virtual_board_streams_crc_checked_frames(recorder_build):
    """rp2040js runs the PDM PIO + DMA capture (the data pin reads a constant level, so the filter settles to a DC
    value); it delivers only the first few blocks before the DMA interrupt stops (an emulator limit: a real clip
    cannot be recorded here), which is enough to check FWRS -> FWT:REC -> consecutive FWR frames, binary-safe."""
    reason = virtual_board_reason()
    if reason:
        pytest.skip(reason)
    from fwtool.emulator.audio import open_port
    from fwtool.emulator.session import Rp2040jsProcess

    board = Rp2040jsProcess(recorder_build / "firmware.uf2", serial="tcp", start="on-connect", max_wall_s=120)
    board.start()
    port = open_port(board.url)
    reader = framing.SplitReader()
    started, frames, sent, t0 = False, [], 0.0, time.monotonic()
    try:
        while time.monotonic() - t0 < 60 and len(frames) < 4:
            if not started and time.monotonic() - sent > 1.0:  # USB enumerates after a while: ask again
                port.write(framing.REC_START)
                sent = time.monotonic()
            for it in reader.feed(port.read(4096) or b""):
                if isinstance(it, str):
                    started = started or isinstance(protocol.parse_audio_line(it), protocol.RecStart)
                elif started:
                    frames.append(it)
        port.write(framing.REC_STOP)
    finally:
        port.close()
        board.stop()
    assert started, "no FWT:REC line"
    assert len(frames) >= 3, f"only {len(frames)} frames"
    assert [s for s, _ in frames] == [256 * i for i in range(len(frames))]
    assert all(len(x) == 256 for _, x in frames) and reader.bad_frames == 0


def test_record_finds_the_last_builds_board_port(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    install(monkeypatch, FakeBoard("app", serial="AAAA000000000001"))
    from fwtool.devices import ports as build_result
    from fwtool.devices import ports, serial as serial_layer
    monkeypatch.setattr(build_result, "last_build", lambda: SimpleNamespace(board="pico"))
    r = ports.resolve_port(None, None)  # no last flash here: the last build's board
    assert r.device == "/dev/ttyACM0" and r.board.name == "pico" and r.board_from == "last build"
    assert ports.resolve_port(None, "pico").device == "/dev/ttyACM0"
    opened = []

    class Port:
        def open(self):
            pass

    monkeypatch.setattr(serial_layer.serial, "serial_for_url", lambda url, **kw: opened.append(url) or Port())
    assert isinstance(record_cmd.open_port(None, "pico"), Port) and opened == ["/dev/ttyACM0"]


def test_record_without_port_and_no_board_is_no_device(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    install(monkeypatch)
    from fwtool.devices import ports as build_result
    monkeypatch.setattr(build_result, "last_build", lambda: None)
    r = CliRunner().invoke(record_cmd.record, ["--label", "yes", "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, NoDevice) and "--port" in r.exception.fix
    r = CliRunner().invoke(record_cmd.record, ["--board", "pico", "--label", "yes", "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, NoDevice) and "no pico found" in r.exception.cause
    assert not (tmp_path / "o").exists()
