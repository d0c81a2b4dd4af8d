"""fwtool monitor, pure parts: line splitting, decoding, parsing, statistics, stop conditions, port choice, keys."""
from __future__ import annotations

import io
import json
import time

import pytest
from rich.console import Console

from fwtool.core.errors import Exit, FwtoolError, NoDevice
from fwtool.monitor.keys import InputReader
from fwtool.devices.last_flash import read_last_flash
from fwtool.devices.ports import (USB_UART_BRIDGES, Discovery, PortInfo, Wanted, choose_port, target_for, wanted_for)
from fwtool.core.lines import Line, LineSplitter, decode_line
from fwtool.monitor.session import Conditions
from fwtool.monitor.stats import Stats, classify, percentile
from fwtool.monitor.view import PanelState, render_panel
from fakes_serial import FakeListPortInfo, banner_line, infer_line

LABELS = ("fire_alarm", "no_fire")


def lines_of(chunks, max_line=1 << 16):
    sp = LineSplitter(max_line)
    out = []
    for c in chunks:
        out += sp.feed(c, 0.0)
    return out + sp.flush(0.0)


# ---- splitting and decoding -----------------------------------------------------------------------------------
def test_splitter_same_lines_whatever_the_chunking():
    data = b"one\r\ntwo\n\r\nthree\r\nfour-no-newline"
    whole = [(x.raw, x.partial) for x in lines_of([data])]
    bytewise = [(x.raw, x.partial) for x in lines_of([data[i:i + 1] for i in range(len(data))])]
    assert whole == bytewise == [(b"one", False), (b"two", False), (b"", False), (b"three", False),
                                 (b"four-no-newline", True)]


def test_splitter_keeps_partial_line_until_flush_and_does_not_glue_it_to_the_next_boot():
    sp = LineSplitter()
    assert sp.feed(b"FWT:INFER n=3 us=2", 1.0) == []
    assert sp.pending == 18
    (cut,) = sp.flush(2.0)
    assert cut.partial and cut.raw == b"FWT:INFER n=3 us=2" and not cut.complete
    assert [x.raw for x in sp.feed(b"FWT:BOOT x=1\r\n", 3.0)] == [b"FWT:BOOT x=1"]
    assert sp.flush(4.0) == []


def test_splitter_cuts_very_long_lines_into_pieces_without_losing_bytes():
    long = bytes(range(32, 127)) * 3000  # 285 kB, no newline for a while
    out = lines_of([long[:100_000], long[100_000:] + b"\nnext\n"], max_line=65536)
    pieces = [x for x in out if x.raw != b"next"]
    assert b"".join(x.raw for x in pieces) == long
    assert all(x.split for x in pieces[:-1]) and pieces[-1].complete
    assert max(len(x.raw) for x in pieces) <= 65536
    assert out[-1].raw == b"next" and out[-1].complete


def test_decode_escapes_invalid_utf8_and_control_characters():
    assert decode_line(b"ok \xff\xfe\x80 end") == "ok \\xff\\xfe\\x80 end"
    assert decode_line(b"a\x1b[31mred\x00\tTab") == "a\\x1b[31mred\\x00\tTab"
    assert decode_line("temp 23 °C ✓".encode()) == "temp 23 °C ✓"


# ---- parsing ----------------------------------------------------------------------------------------------------
def test_classify_parses_complete_lines_only():
    text = infer_line(4, 24113, LABELS, [0.25, 0.75])
    rec = classify(Line(text.encode(), 5.0))
    assert rec.kind == "inference"
    d = rec.to_json()
    assert d["type"] == "inference" and d["n"] == 4 and d["us"] == 24113 and d["top"] == "no_fire"
    assert d["scores"] == [0.25, 0.75] and d["t"] == 5.0
    cut = classify(Line(text[:40].encode(), 5.0, partial=True))
    assert cut.kind == "other" and cut.to_json()["partial"] is True
    err = classify(Line(b"FWT:ERROR AllocateTensors failed: arena too small", 1.0))
    assert err.kind == "error" and err.to_json()["text"] == "AllocateTensors failed: arena too small"
    b = classify(Line(banner_line(labels=LABELS).encode(), 1.0))
    assert b.kind == "banner" and b.parsed.labels == list(LABELS)
    assert classify(Line(b"hello \xff", 1.0)).to_json() == {"type": "other", "text": "hello \\xff", "t": 1.0}


# ---- statistics ---------------------------------------------------------------------------------------------------
def test_percentiles_nearest_rank():
    assert percentile([], 50) is None
    vals = list(range(1, 101))
    assert percentile(vals, 50) == 50 and percentile(vals, 95) == 95 and percentile([7], 95) == 7


def test_stats_latency_rate_missed_and_reboots():
    st = Stats()
    st.add(classify(Line(banner_line(labels=LABELS).encode(), 0.0)))
    for i, n in enumerate([1, 2, 3, 6, 7]):  # 4 and 5 were printed while nobody listened
        st.add(classify(Line(infer_line(n, 1000 * (i + 1), LABELS, [0.9, 0.1]).encode(), 10.0 + 0.5 * i)))
    assert st.inferences == 5 and st.missed == 2
    assert st.latency_ms(50) == 3.0 and st.latency_ms(95) == 5.0
    assert st.rate() == pytest.approx(3.0)  # the board ran n=1..7 in 2 s, two of them unseen
    assert st.class_scores() == [("fire_alarm", 0.9), ("no_fire", 0.1)]
    st.add(classify(Line(infer_line(1, 1000, LABELS, [0.9, 0.1]).encode(), 20.0)))  # counter restarted
    assert st.rate() is None and st.missed == 2


def test_panel_shows_bars_top_label_latency_and_rate():
    st = Stats()
    st.add(classify(Line(banner_line(labels=LABELS).encode(), 0.0)))
    for i in range(1, 11):
        st.add(classify(Line(infer_line(i, 24000 + 100 * i, LABELS, [0.9961, 0.0039]).encode(), 0.5 * i)))
    ps = PanelState()
    ps.port, ps.serial, ps.status, ps.pending_input = "/dev/ttyACM0", "E6614C311B7A6B2A", "connected", "hel"
    con = Console(record=True, width=100, file=io.StringIO())
    con.print(render_panel(st, ps, width=100))
    text = con.export_text()
    assert "/dev/ttyACM0" in text and "fire_alarm" in text and "no_fire" in text
    assert "0.9961" in text and "p50 24.50 ms" in text and "p95 25.00 ms" in text and "2.00 inf/s" in text
    assert "█" * 40 in text  # the top class's bar
    assert "> hel" in text and "Ctrl-R reboot" in text


# ---- stop conditions ----------------------------------------------------------------------------------------------
def _inf(n, scores, labels=LABELS):
    return classify(Line(infer_line(n, 100, labels, scores).encode(), 0.0))


def test_expect_label_met_and_mismatched():
    st = Stats()
    c = Conditions(None, (), "fire_alarm", 0.9)
    assert c.check(_inf(1, [0.95, 0.05]), st).code == Exit.OK
    c = Conditions(None, (), "no_fire", None)  # default: judge the first inference
    v = c.check(_inf(1, [0.95, 0.05]), st)
    assert v.code == Exit.MISMATCH and "got fire_alarm 0.9500" in v.reason
    c = Conditions(None, (), "fire_alarm", 0.99)  # right label, score too low
    assert c.check(_inf(1, [0.95, 0.05]), st).code == Exit.MISMATCH


def test_expect_label_any_of_the_first_n():
    st = Stats()
    c = Conditions(3, (), "no_fire", None)
    assert c.check(_inf(1, [0.9, 0.1]), st) is None
    assert c.check(_inf(2, [0.2, 0.8]), st).code == Exit.OK
    c = Conditions(2, (), "no_fire", None)
    assert c.check(_inf(1, [0.9, 0.1]), st) is None
    assert c.check(_inf(2, [0.9, 0.1]), st).code == Exit.MISMATCH


def test_expect_label_not_in_banner_fails_fast_and_firmware_error_is_a_mismatch():
    st = Stats()
    c = Conditions(None, (), "dog", None)
    v = c.check(classify(Line(banner_line(labels=LABELS).encode(), 0.0)), st)
    assert v.code == Exit.MISMATCH and "fire_alarm, no_fire" in v.reason
    c = Conditions(5, (), None, None)
    v = c.check(classify(Line(b"FWT:ERROR AllocateTensors failed", 0.0)), st)
    assert v.code == Exit.FIRMWARE_ERROR and "AllocateTensors" in v.reason
    # without any stop condition FWT:ERROR is only shown (the session's end then exits FIRMWARE_ERROR)
    assert Conditions(None, (), None, None).check(classify(Line(b"FWT:ERROR x", 0.0)), st) is None


def test_count_and_regex_conditions():
    st = Stats()
    c = Conditions(2, (), None, None)
    assert c.check(_inf(1, [0.5, 0.5]), st) is None
    assert c.check(_inf(2, [0.5, 0.5]), st).code == Exit.OK
    c = Conditions(None, (r"^PASS \d+$",), None, None)
    assert c.check(classify(Line(b"PASS x", 0.0)), st) is None
    assert c.check(classify(Line(b"PASS 12", 0.0)), st).code == Exit.OK
    c = Conditions(1, ("never",), None, None)
    assert c.check(_inf(1, [0.5, 0.5]), st).code == Exit.MISMATCH


def test_bad_condition_options_are_usage_errors():
    with pytest.raises(FwtoolError) as e:
        Conditions(None, ("(unclosed",), None, None)
    assert e.value.code == Exit.USAGE
    with pytest.raises(FwtoolError) as e:
        Conditions(None, (), None, 0.5)
    assert e.value.code == Exit.USAGE


# ---- port choice --------------------------------------------------------------------------------------------------
PICO = (0x2E8A, 0x000A)


def _disc(*ports):
    return Discovery(lambda: list(ports))


def _p(dev, sn, vid=0x2E8A, pid=0x000A, loc="1-1:1.0"):
    return FakeListPortInfo(dev, vid, pid, sn, "Pico", loc)


def test_choose_single_match_and_ignore_other_devices():
    d = _disc(_p("/dev/ttyUSB0", "FT1", 0x0403, 0x6001), _p("/dev/ttyACM0", "AAA"))
    p = choose_port(Wanted(usb_ids={PICO: "pico"}), d)
    assert p.device == "/dev/ttyACM0" and p.serial_number == "AAA"
    t = target_for(p)
    assert t.serial_number == "AAA" and t.interface == "1.0"


def test_several_matches_refused_and_listed_unless_one_was_flashed_last():
    d = _disc(_p("/dev/ttyACM0", "AAA"), _p("/dev/ttyACM1", "BBB"))
    with pytest.raises(NoDevice) as e:
        choose_port(Wanted(usb_ids={PICO: "pico"}), d)
    assert e.value.code == Exit.NO_DEVICE
    assert "/dev/ttyACM0" in e.value.cause and "/dev/ttyACM1" in e.value.cause and "--port" in e.value.fix
    assert choose_port(Wanted(usb_ids={PICO: "pico"}, prefer_serial="BBB"), d).device == "/dev/ttyACM1"
    assert choose_port(Wanted(usb_ids={PICO: "pico"}, serial="AAA"), d).device == "/dev/ttyACM0"


def test_none_found_waits_then_says_what_it_looked_for():
    t0 = time.monotonic()
    with pytest.raises(NoDevice) as e:
        choose_port(Wanted(usb_ids={PICO: "pico"}, what="pico"), _disc(_p("/dev/ttyUSB0", "F", 0x0403, 0x6001)),
                    wait_s=0.2, poll_s=0.02)
    assert 0.2 <= time.monotonic() - t0 < 1.0
    assert "2E8A:000A" in e.value.cause and "/dev/ttyUSB0" in e.value.cause


def test_board_appearing_during_the_wait_is_taken():
    ports = []
    d = Discovery(lambda: list(ports))
    t0 = time.monotonic()

    def sleep(s):
        time.sleep(s)
        if time.monotonic() - t0 > 0.1:
            ports.append(_p("/dev/ttyACM3", "CCC"))

    assert choose_port(Wanted(usb_ids={PICO: "pico"}), d, wait_s=2, poll_s=0.02, sleep=sleep).device == "/dev/ttyACM3"


def test_recently_flashed_board_is_waited_for_before_taking_another():
    ports = [_p("/dev/ttyACM0", "OTHER")]
    d = Discovery(lambda: list(ports))
    t0 = time.monotonic()

    def sleep(s):
        time.sleep(s)
        if time.monotonic() - t0 > 0.1 and len(ports) == 1:
            ports.append(_p("/dev/ttyACM1", "FLASHED"))

    w = Wanted(usb_ids={PICO: "pico"}, prefer_serial="FLASHED", prefer_recent=True)
    assert choose_port(w, d, wait_s=2, poll_s=0.02, sleep=sleep).serial_number == "FLASHED"
    # not recent and absent: the only candidate is taken
    w = Wanted(usb_ids={PICO: "pico"}, prefer_serial="GONE", prefer_recent=False)
    assert choose_port(w, _disc(_p("/dev/ttyACM0", "OTHER")), wait_s=2).serial_number == "OTHER"


def test_wanted_ids_from_board_data():
    from fwtool.core.boards import get_board

    w = wanted_for(get_board("pico"))
    assert set(w.usb_ids) == {PICO}
    assert set(wanted_for(get_board("pico"), uart=True).usb_ids) == set(USB_UART_BRIDGES)
    assert PICO in wanted_for(None).usb_ids
    w = wanted_for(None, last_flash={"serial": "X1", "age_s": 3.0})
    assert w.prefer_serial == "X1" and w.prefer_recent


def test_last_flash_file_is_optional_and_tolerant(tmp_path):
    assert read_last_flash(tmp_path / "missing.json") == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert read_last_flash(bad) == {}
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"serial": "E661", "board": "pico", "other": 1}))
    d = read_last_flash(good)
    assert d["serial"] == "E661" and d["board"] == "pico" and "other" not in d and d["age_s"] < 60


def test_portinfo_describe_and_interface():
    p = PortInfo.from_listportinfo(_p("/dev/ttyACM0", "AAA", loc="1-1.4:1.2"))
    assert p.interface == "1.2" and p.usb_id == "2E8A:000A"
    assert "serial AAA" in p.describe()


# ---- keyboard -------------------------------------------------------------------------------------------------------
def test_key_mode_line_editing_and_actions():
    r = InputReader(io.StringIO(), keys=False)
    for ch in "helo\x7flo\x15hi there":
        r.feed_key(ch)
    r.feed_key("\r")
    r.feed_key("\x12")
    r.feed_key("\x02")
    r.feed_key("\x1d")
    ev = [e for e in r.poll() if e[0] != "pending"]
    assert ev == [("line", "hi there"), ("action", "reboot"), ("action", "bootsel"), ("action", "quit")]


def test_line_mode_sends_lines_and_understands_tilde_commands():
    r = InputReader(io.StringIO("hello\n~r\n~b\nbye\n"), keys=True)  # not a terminal: line mode
    assert not r.keys
    r.start()
    deadline = time.monotonic() + 2
    ev = []
    while len(ev) < 4 and time.monotonic() < deadline:
        ev += r.poll()
        time.sleep(0.01)
    r.stop()
    assert ev == [("line", "hello"), ("action", "reboot"), ("action", "bootsel"), ("line", "bye")]


# ---- reboot keys: fwtool.flash's reboot, 1200-baud fallback for BOOTSEL ------------------------------------------
def test_default_reboot_uses_fwtool_flash_and_falls_back_to_1200_baud(monkeypatch):
    from fwtool.monitor import reboot as rb

    calls = []

    class Reader:
        touched = 0

        def touch_1200(self):
            Reader.touched += 1
            return True

    def ok(**kw):
        calls.append(kw)
        return {"how": "reset interface"}

    port = PortInfo("/dev/ttyACM0", 0x2E8A, 0x000A, "E661")
    monkeypatch.setattr(rb.reset, "reboot_board", ok)
    assert rb.default_reboot("app", port, Reader()) == "rebooting (reset interface)"
    assert calls == [{"serial": "E661", "bootsel": False, "wait": False}]

    def denied(**kw):
        raise FwtoolError("access denied sending the USB reset request", "install the udev rule")

    monkeypatch.setattr(rb.reset, "reboot_board", denied)
    assert "1200-baud" in rb.default_reboot("bootsel", port, Reader()) and Reader.touched == 1
    with pytest.raises(FwtoolError, match="access denied"):
        rb.default_reboot("app", port, Reader())
