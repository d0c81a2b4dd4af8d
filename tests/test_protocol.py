import re

from fwtool.core import protocol


def _printf(fmt: str, *args) -> str:
    """Python's % matches C printf for the conversions the firmware uses, once the C length modifiers go."""
    return re.sub(r"%l([ud])", r"%\1", fmt) % args


def test_banner_round_trip_with_c_format():
    f = protocol.c_formats()
    line = _printf(f["banner"], "fire_alarm", "4d5f2cd1842e", "pico", 20736, 18001, 6, "int8:1x124x129x1",
                   "int8:1x1", "fire_alarm", "0.1.0", 2, 200, "speed")
    rec = protocol.parse_line(line)
    assert isinstance(rec, protocol.Banner)
    assert (rec.fields["cores"], rec.fields["clock_mhz"], rec.fields["opt"]) == (2, 200, "speed")
    assert rec.fields["arena"] == 20736 and rec.fields["arena_used"] == 18001 and rec.fields["board"] == "pico"
    assert rec.labels == ["fire_alarm"]
    assert len(protocol.BANNER_FIELDS) == f["banner"].count("%")


def test_inference_round_trip_with_vectors():
    f = protocol.c_formats()
    line = _printf(f["infer"], 7, 24113, "b", 0.75) + " scores=0.2500,0.7500 q=-64,64"
    rec = protocol.parse_line("noise before " + line)
    assert isinstance(rec, protocol.Inference)
    assert (rec.n, rec.us, rec.top, rec.score, rec.scores, rec.q) == (7, 24113, "b", 0.75, [0.25, 0.75], [-64, 64])
    assert rec.to_dict()["type"] == "inference"


def test_free_text_and_malformed_records_are_not_parsed():
    assert protocol.parse_line("hello world") is None
    assert protocol.parse_line("FWT:INFER n=x us=1 top=a score=0.5") is None
    assert protocol.parse_line("FWT:INFER") is None
