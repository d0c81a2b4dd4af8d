"""PSoC 6 audio apps: the CY8CPROTO-062-4343W's PDM microphone in its board file, the mic/PWM-LED values derived
from the pinned PDL's pin header (and refused where the part cannot do it), the generated kws project capturing
from P10_4/P10_5, a real kws build (compiled and linked with Debian's GCC), and `fwtool validate --app kws --audio`
on the virtual PSoC 6 (the kit's real firmware.hex hearing host PCM on its UART) with speech synthesised at test
time (espeak-ng + sox) that the micro_speech model never saw. Skips with the reason where the trees, the
toolchain, unicorn or the TTS tools are absent."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import build_prerequisites
from fwtool.core import vendor
from fwtool.core.boards import all_boards, get_board
from fwtool.core.errors import BadInput
from fwtool.firmware.apps import get_app
from fwtool.firmware.families import psoc6_mic

KIT = "cy8cproto_062_4343w"


def _tree(name: str) -> Path:
    found = vendor.locate(vendor.manifest()[name]).path
    if found is None:
        pytest.skip(f"vendor tree {name} not synced (fwtool vendor sync)")
    return found


def test_the_kit_board_file_has_its_pdm_microphone():
    mic = get_board(KIT).pdm_mic
    assert (mic.clk_port, mic.clk_pin, mic.data_port, mic.data_pin) == (10, 4, 10, 5)  # design.modus CYBSP_PDM_*
    assert "pdm_mic" in get_board(KIT).features
    get_app("kws").check_board(get_board(KIT))  # no longer refused
    get_app("audio_classifier").check_board(get_board(KIT))


@pytest.mark.parametrize("kit", sorted(b.name for b in all_boards().values()
                                       if b.family == "psoc6" and b.name != KIT))
def test_kits_without_a_microphone_are_refused_with_the_kit_that_has_one(kit):
    with pytest.raises(BadInput) as e:
        get_app("kws").check_board(get_board(kit))
    assert "needs a pdm_mic" in e.value.cause and KIT in e.value.fix


def test_mic_and_pwm_values_come_from_the_pdl_pin_header():
    defines = psoc6_mic.mic_defines(get_board(KIT), _tree("mtb-pdl-cat1"))
    assert "FWT_PDM_CLK_HSIOM=P10_4_AUDIOSS0_PDM_CLK" in defines
    assert "FWT_PDM_DATA_HSIOM=P10_5_AUDIOSS0_PDM_DATA" in defines
    assert "FWT_PDM_BASE=PDM0" in defines and "FWT_PDM_IRQN=audioss_0_interrupt_pdm_IRQn" in defines
    # P13_7 (the active-low user LED) carries tcpwm[0].line_compl[3]: the complement lights it while the line is high
    assert "FWT_LED_PWM_HSIOM=P13_7_TCPWM0_LINE_COMPL3" in defines and "FWT_LED_PWM_CNT=3U" in defines
    assert "FWT_LED_PWM_INVERT=0U" in defines and "FWT_LED_PWM_PCLK=PCLK_TCPWM0_CLOCKS3" in defines


def test_a_pin_that_is_no_pdm_pin_is_refused():
    board = get_board(KIT)
    wrong = dataclasses.replace(board, pdm_mic=dataclasses.replace(board.pdm_mic, clk_pin=3))
    with pytest.raises(BadInput) as e:
        psoc6_mic.mic_defines(wrong, _tree("mtb-pdl-cat1"))
    assert "P10_3 is not a PDM_CLK pin" in e.value.cause and "CYBSP_PDM_CLK" in e.value.fix
    portless = dataclasses.replace(board, pdm_mic=dataclasses.replace(board.pdm_mic, data_port=None))
    with pytest.raises(BadInput, match="needs clk_port/clk_pin and data_port/data_pin"):
        psoc6_mic.mic_defines(portless, _tree("mtb-pdl-cat1"))


@pytest.fixture(scope="module")
def kws_build(tmp_path_factory):
    reason = build_prerequisites()
    if reason:
        pytest.skip(reason)
    for dep in [*vendor.deps_for("psoc6", "build"), vendor.manifest()["tflite-micro"]]:
        if vendor.locate(dep).path is None:
            pytest.skip(f"vendor tree {dep.name} not synced")
    out = tmp_path_factory.mktemp("psoc6-kws") / KIT
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", KIT, "--app", "kws", "-m",
                        "example:micro_speech", "--out", str(out), "--json"], capture_output=True, text=True,
                       timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def _symbols(elf: Path) -> set[str]:
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        pytest.skip("arm-none-eabi-nm not installed")
    out = subprocess.run([nm, "-C", str(elf)], capture_output=True, text=True, check=True).stdout
    return {line.split(" ", 2)[-1].split("(")[0] for line in out.splitlines() if " " in line}


def test_the_kws_build_captures_from_p10_4_and_p10_5(kws_build):
    project = kws_build / "project"
    cml, mic = (project / "CMakeLists.txt").read_text(), (project / "fwt_mic.cpp").read_text()
    assert "FWT_PDM_CLK_HSIOM=P10_4_AUDIOSS0_PDM_CLK" in cml and "FWT_PDM_DATA_HSIOM=P10_5_AUDIOSS0_PDM_DATA" in cml
    assert "cy_pdm_pcm.c" in cml and "cy_tcpwm_pwm.c" in cml
    assert "set(FWT_BOARD_APP_SOURCES fwt_mic.cpp)" in cml  # compiled per image, not in the shared objects
    assert "Cy_PDM_PCM_Init" in mic and "FWT_PDM_CLK_HSIOM" in mic
    kit = _symbols(kws_build / "firmware.elf")
    assert {"Cy_PDM_PCM_Init", "Cy_TCPWM_PWM_Init", "fwt_mic_start", "fwt_led_keyword", "Cy_SysClk_PllConfigure"} <= kit
    vm4 = _symbols(kws_build / "cmake" / "firmware_vm4.elf")  # the QEMU M4 link: the same app, no microphone
    assert "fwt_mic_start" in vm4 and "Cy_PDM_PCM_Init" not in vm4


def _speech_reason() -> str | None:
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            return f"{tool} not installed (apt-get install espeak-ng sox)"
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return "the virtual PSoC 6 needs the unicorn package (fwtool[psoc6])"
    return None


def _clips(folder: Path) -> dict[str, Path]:
    """Three clips made now: "yes", "no" and another word, each 0.25 s silence + 1 s word + 0.5 s silence."""
    from fwtool.audio import record
    from fwtool.train.synth import Take, speak

    out = {}
    for word, voice, pitch, speed in (("yes", "en-us+f2", 55, 150), ("no", "en-gb-scotland+m3", 45, 160),
                                      ("left", "en-029+m5", 50, 170)):
        pcm = speak(Take("espeak-ng", voice, pitch, speed, word, word), folder)
        pcm = np.concatenate([np.zeros(4000, np.int16), pcm, np.zeros(8000, np.int16)])
        out[word] = folder / f"{word}.wav"
        out[word].write_bytes(record.wav_bytes(pcm))
    return out


def test_virtual_kit_validates_kws_on_unseen_speech(kws_build, tmp_path):
    reason = _speech_reason()
    if reason:
        pytest.skip(reason)
    clips = _clips(tmp_path)
    p = subprocess.run([sys.executable, "-m", "fwtool", "validate", "-b", KIT, "--app", "kws", "-m",
                        "example:micro_speech", "--audio", *map(str, clips.values()), "--out", str(kws_build),
                        "--json"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    report = json.loads(p.stdout)
    assert report["ok"] and report["target"]["name"] == "the virtual PSoC 6 (Unicorn)"
    assert report["firmware"]["image"].endswith("firmware.hex")  # the kit's image, not the QEMU relink
    by_clip = {c["clip"]: c for c in report["clips"]}
    for word in ("yes", "no", "left"):
        c = by_clip[f"{word}.wav"]
        assert c["features_identical"] and c["max_abs_diff"] <= 1 and c["detections"]["equal"], c["problems"]
        assert c["inferences"] == 8 and c["dropped"] == 0
    assert [d["label"] for d in by_clip["yes.wav"]["detections"]["device"]] == ["yes"]
    assert [d["label"] for d in by_clip["no.wav"]["detections"]["device"]] == ["no"]
    assert by_clip["left.wav"]["detections"]["device"] == []
    assert report["timing"]["hop"]["within_budget"]


def test_virtual_kit_hears_yes_through_its_pdm_microphone(kws_build, tmp_path):
    """The microphone path itself: no host stream, so after its 2 s wait the app starts fwt_mic.cpp's capture —
    PLL on path 1 -> CLK_HF1, PDM-PCM init, FIFO interrupt, double buffer — on the virtual kit, whose PDM-PCM model
    plays a synthesised "yes" at the rate the firmware's clocks give; the LED's PWM ends bright."""
    reason = _speech_reason()
    if reason:
        pytest.skip(reason)
    from fwtool.audio import wav
    from fwtool.core.lines import PortLines
    from fwtool.emulator.psoc6 import checks, target
    from fwtool.emulator.psoc6.serial_port import MachinePort

    board = get_board(KIT)
    pcm = wav.read_wav(_clips(tmp_path)["yes"])
    port = MachinePort(board, timeout=0.5, max_emulated_s=10)
    port.attach(target.machine_for(kws_build / "firmware.hex", board, on_byte=port.on_byte, mic_pcm=pcm))
    reader, lines = PortLines(port), []
    while not any(ln.startswith("FWT:DETECT") or ln.startswith("FWT:ERROR") for ln in lines):
        lines += reader.texts()
    m = port.machine
    assert any("source=mic" in ln for ln in lines), lines[-5:]
    assert lines[-1].startswith("FWT:DETECT") and "label=yes" in lines[-1], lines[-5:]
    ainf = next(ln for ln in lines if ln.startswith("FWT:AINF"))
    assert "dropped=0" in ainf and m.pdm.overflows == 0 and m.pdm.reads > 15_000
    st = m.state()
    assert 24_000_000 < st["hf1_hz"] < 25_000_000 and abs(st["pdm_rate_hz"] - 16_000) < 16  # PLL 24.57 MHz
    assert st["led_pwm_duty"] == 1.0  # "yes": full brightness on TCPWM0 counter 3
    assert checks.problems(m, board) == []  # clocks, UART, LED and the PDM pins as the board file and kit say
    swapped = dataclasses.replace(board, pdm_mic=dataclasses.replace(board.pdm_mic, clk_pin=5, data_pin=4))
    found = checks.mic_problems(m, swapped)
    assert "P10_5 has no PDM CLK function on this device" in found, found
    assert any("is not the kit's CYBSP_PDM_CLK P10_4" in p for p in found), found


@pytest.mark.parametrize("kit,pdm,led", [("cy8ckit_062s2_43012", "PDM0", "P1_5_TCPWM0_LINE_COMPL5"),
                                         ("cy8ckit_062_ble", "PDM", "P1_5_TCPWM0_LINE_COMPL5")])
def test_a_shield_board_file_gives_the_other_kits_a_microphone(kit, pdm, led, tmp_path):
    """The CY8CKIT-028-TFT shield's PDM_CLK/PDM_DATA are CYBSP_A4/A5 = P10_4/P10_5 on both kits (docs/psoc6-audio.md):
    a user board file that extends the kit with that [pdm_mic] is accepted and derives the part's own instance."""
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / f"{kit}_tft.toml").write_text(
        f'extends = "{kit}"\nname = "{kit}_tft"\n\n[pdm_mic]\nclk_port = 10\nclk_pin = 4\ndata_port = 10\n'
        'data_pin = 5\n')
    board = get_board(f"{kit}_tft", tmp_path / "model.tflite")
    get_app("kws").check_board(board)
    defines = psoc6_mic.mic_defines(board, _tree("mtb-pdl-cat1"))
    assert f"FWT_PDM_BASE={pdm}" in defines and f"FWT_LED_PWM_HSIOM={led}" in defines
    assert any(d.startswith("FWT_PDM_CLK_HSIOM=P10_4_AUDIOSS") for d in defines)


def test_pdm_model_rate_fifo_and_interrupt_causes():
    """pdm.py on its own: fs from CLK_HF1 and CLOCK_CTL, samples due by CM4 time, the 254-word mono FIFO, the
    trigger/overflow/underflow causes (write-one-to-clear) and RX_FIFO_CTL.CLEAR."""
    pytest.importorskip("unicorn", reason="the virtual PSoC 6 needs the unicorn package (fwtool[psoc6])")
    from fwtool.emulator.psoc6.bus import CM4, Bus
    from fwtool.emulator.psoc6.pdm import FIFO_MONO, Pdm
    from fwtool.emulator.psoc6.regdefs import Device

    dev = Device.load(_tree("mtb-pdl-cat1"), "CY8C624ABZI_S2D44", "02")
    bus, now = Bus(), [0]
    pcm = (np.arange(1000) - 500).astype(np.int16)
    pdm = Pdm(bus, dev, "PDM0", lambda: now[0], 100_000_000, lambda: 24_576_000, pcm)
    reg = lambda name: dev.reg("PDM0", name, "PDM_Type")  # noqa: E731
    fld = lambda r, n: dev.field(f"PDM_{r}", n)  # noqa: E731
    clock = sum(v << fld("CLOCK_CTL", n)[0] for n, v in (("CLK_CLOCK_DIV", 1), ("MCLKQ_CLOCK_DIV", 0),
                                                             ("CKO_CLOCK_DIV", 11), ("SINC_RATE", 32)))
    bus.write(CM4, reg("CLOCK_CTL"), 4, clock)
    bus.write(CM4, reg("MODE_CTL"), 4, 1 << fld("MODE_CTL", "PCM_CH_SET")[0])  # mono, left
    assert pdm.sample_rate() == 16_000.0  # 24.576 MHz / (2 x 1 x 12) / (2 x 32)
    bus.write(CM4, reg("RX_FIFO_CTL"), 4, 127)
    trigger, overflow = fld("INTR", "RX_TRIGGER")[1], fld("INTR", "RX_OVERFLOW")[1]
    bus.write(CM4, reg("INTR_MASK"), 4, trigger | overflow)
    bus.write(CM4, reg("CMD"), 4, fld("CMD", "STREAM_EN")[1])
    now[0] = 100 * 6250  # 100 samples at 16 kHz = 6,250 instructions each at 100 MHz
    assert bus.read(CM4, reg("RX_FIFO_STATUS"), 4) & 0xFF == 100 and not pdm.pending()
    assert [bus.read(CM4, reg("RX_FIFO_RD"), 4) for _ in range(2)] == [(-500) & 0xFFFFFFFF, (-499) & 0xFFFFFFFF]
    now[0] = 300 * 6250  # 98 + 200 more: the FIFO fills at 254 and the rest is lost
    assert bus.read(CM4, reg("RX_FIFO_STATUS"), 4) & 0xFF == FIFO_MONO and pdm.overflows == 300 - 2 - FIFO_MONO
    assert pdm.pending() and bus.read(CM4, reg("INTR_MASKED"), 4) == trigger | overflow
    bus.write(CM4, reg("INTR"), 4, overflow)  # write one to clear
    assert bus.read(CM4, reg("INTR_MASKED"), 4) == trigger
    bus.write(CM4, reg("RX_FIFO_CTL"), 4, 127 | fld("RX_FIFO_CTL", "CLEAR")[1])
    bus.write(CM4, reg("INTR"), 4, trigger)
    assert bus.read(CM4, reg("RX_FIFO_STATUS"), 4) & 0xFF == 0 and not pdm.pending()
    bus.read(CM4, reg("RX_FIFO_RD"), 4)
    assert bus.read(CM4, reg("INTR"), 4) & fld("INTR", "RX_UNDERFLOW")[1]
