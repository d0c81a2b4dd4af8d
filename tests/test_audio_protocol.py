"""The audio apps' FWT: lines (fwtool.core.protocol): printf formats round-trip through the parsers."""
from fwtool.core import protocol


def _vec(vals, conv):
    return ",".join(conv % v for v in vals)


def test_formats_are_added_not_changed():
    f = protocol.c_formats()
    assert f["infer"] == "FWT:INFER n=%lu us=%lu top=%s score=%.4f"  # existing format untouched
    assert f["audio"] == ("FWT:AUDIO app=%s rate=%lu window=%lu fft=%lu hop=%lu frames=%lu bins=%lu shift=%lu "
                          "source=%s want=%lu")
    assert f["feat"] == "FWT:FEAT n=%lu" and f["feat_vector"] == {"name": "q", "conv": "%d"}
    assert f["ainf"] == ("FWT:AINF n=%lu frame=%lu dsp_us=%lu invoke_us=%lu dropped=%lu top=%s score=%.4f")
    assert f["detect"] == "FWT:DETECT n=%lu label=%s score=%.4f"
    assert f["ack"] == "FWT:ACK seq=%u credit=%u" and f["rec"] == "FWT:REC rate=%lu bits=%u chunk=%u"


def test_audio_banner_roundtrip():
    f = protocol.c_formats()
    line = f["audio"] % ("kws", 16000, 480, 512, 320, 49, 40, 5, "host", 320)
    r = protocol.parse_line(line)
    assert isinstance(r, protocol.AudioBanner)
    assert (r.app, r.rate, r.window, r.fft, r.hop, r.frames, r.bins, r.shift, r.source, r.want) == (
        "kws", 16000, 480, 512, 320, 49, 40, 5, "host", 320)
    assert r.to_dict()["type"] == "audio"
    assert protocol.parse_line(line.replace("source=host", "source=usb")) is None


def test_feature_row_roundtrip_with_log_prefix():
    row = [-128, -1, 0, 5, 127] * 8
    f = protocol.c_formats()
    line = "[core0] " + f["feat"] % 17 + " q=" + _vec(row, f["feat_vector"]["conv"])
    r = protocol.parse_line(line)
    assert isinstance(r, protocol.FeatureRow) and r.n == 17 and r.q == row


def test_audio_inference_roundtrip():
    f = protocol.c_formats()
    line = (f["ainf"] % (3, 54, 1830, 21950, 0, "yes", 0.99609375) + " scores=" + _vec([0, 0, 0.9961, 0.0039], "%.4f")
            + " q=" + _vec([-128, -128, 127, -127], "%d"))
    r = protocol.parse_line(line)
    assert isinstance(r, protocol.AudioInference)
    assert (r.n, r.frame, r.dsp_us, r.invoke_us, r.dropped, r.top) == (3, 54, 1830, 21950, 0, "yes")
    assert r.score == 0.9961 and r.scores[2] == 0.9961 and r.q == [-128, -128, 127, -127] and r.us == 23780
    # not confused with FWT:INFER, and the old parser still parses INFER
    assert isinstance(protocol.parse_line("FWT:INFER n=1 us=5 top=a score=0.5 scores=0.5 q=0"), protocol.Inference)


def test_detect_ack_rec_and_malformed():
    f = protocol.c_formats()
    d = protocol.parse_line(f["detect"] % (9, "no", 0.85))
    assert isinstance(d, protocol.Detection) and (d.n, d.label, d.score) == (9, "no", 0.85)
    a = protocol.parse_line(f["ack"] % (65535, 4))
    assert isinstance(a, protocol.Ack) and (a.seq, a.credit) == (65535, 4)
    s = protocol.parse_line(f["rec"] % (16000, 16, 256))
    assert isinstance(s, protocol.RecStart) and (s.rate, s.bits, s.chunk) == (16000, 16, 256)
    for bad in ("FWT:AINF n=1", "FWT:FEAT q=1,2", "FWT:ACK seq=x credit=1", "FWT:DETECT label=yes",
                "FWT:AUDIO app=kws", "free text FWT:FEATURES", "FWT:REC rate=16000"):
        assert protocol.parse_line(bad) is None, bad
