"""fwtool monitor across simulated reset / re-enumeration cycles: lines lost or duplicated, banners caught.

A fake pico-sdk USB-stdio board on a pty (tests/fakes_serial.py) boots N times. Each boot it waits up to
--connect-wait s for the host (like the firmware's 2.5 s), prints the FWT:BOOT banner, inferences, a garbage line
and an unterminated tail, then resets: vanishes once the host has read everything and re-appears as a new pty under
the same USB serial number. Output written while no host has the port open is dropped (pico-sdk behaviour).

The same board is read by fwtool's monitor (default 50 ms port poll) and by a plain pyserial loop of the kind
people write (open with pyserial defaults, ``read(4096)``, reopen after an error, same 50 ms poll), and the complete
lines each one reports are compared with what the board delivered.

    python benchmarks/monitor_reconnect.py [--cycles 100]
"""
from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import serial  # noqa: E402

from fakes_serial import FakePorts, PtyBoard, run_firmware  # noqa: E402
from fwtool.monitor import MonitorOptions, Session  # noqa: E402
from fwtool.devices.ports import Discovery  # noqa: E402
from fwtool.core.lines import decode_line  # noqa: E402


class TimedBoard(PtyBoard):
    """Also records how long after appearing the host opened the port."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.open_latency: list[float] = []

    def wait_host(self, timeout):
        ok = super().wait_host(timeout)
        if ok:
            self.open_latency.append(time.monotonic() - self.appeared_at)
        return ok


def compare(delivered: list[str], got: list[str]) -> dict:
    from collections import Counter

    d, g = Counter(delivered), Counter(got)
    lost = sum((d - g).values())
    dup = sum((g - d).values())
    return {"delivered": len(delivered), "reported": len(got), "lost": lost, "extra_or_duplicated": dup,
            "in_order": [x for x in got if x in d] == [x for x in delivered if x in g]}


def fwtool_run(cycles: int, connect_wait: float, poll_s: float, linger=None) -> dict:
    ports = FakePorts()
    board = TimedBoard(ports)
    board.appear()
    out, err = io.StringIO(), io.StringIO()
    records = []  # every record the monitor emitted (also printed as JSON to `out`)
    t = threading.Thread(target=run_firmware, args=(board, cycles),
                         kwargs={"connect_wait": connect_wait, "linger": linger}, daemon=True)
    t0 = time.monotonic()
    t.start()
    res = Session(MonitorOptions(view="json", expect=("^END$",), timeout=600, send_input=False, poll_s=poll_s,
                                 last_flash_file=Path("/nonexistent")),
                  discovery=Discovery(ports.comports), out=out, err=err, on_record=records.append).run()
    t.join(10)
    secs = time.monotonic() - t0
    json_lines = [json.loads(x) for x in out.getvalue().splitlines()]  # the --json output must parse
    got = [r.text for r in records if r.line.complete]
    delivered = [decode_line(b) for b in board.delivered]
    r = compare(delivered, got)
    r.update(exit_code=res.exit_code, seconds=round(secs, 2), reconnects=res.stats["reconnects"],
             banners=sum(x.kind == "banner" for x in records), inferences=res.stats["inferences"],
             boots=board.appearances, partial_delivered=len(board.partials),
             partial_reported=sum(x.line.partial for x in records), json_objects=len(json_lines),
             dropped_writes=board.dropped, open_latency_ms=_lat(board.open_latency))
    return r


def _lat(v):
    if not v:
        return None
    s = sorted(v)
    return {"p50": round(1000 * statistics.median(s), 1), "p95": round(1000 * s[int(0.95 * (len(s) - 1))], 1),
            "max": round(1000 * s[-1], 1)}


def naive_run(cycles: int, connect_wait: float, poll_s: float, linger=None) -> dict:
    ports = FakePorts()
    board = TimedBoard(ports)
    board.appear()
    got: list[str] = []
    done = threading.Event()
    t = threading.Thread(target=lambda: (run_firmware(board, cycles, connect_wait=connect_wait, linger=linger),
                                         done.set()), daemon=True)
    t0 = time.monotonic()
    t.start()
    buf = b""
    while not (done.is_set() and "END" in got):
        if time.monotonic() - t0 > 600:
            break
        listed = [p for p in ports.comports() if p.serial_number == board.serial_number]
        if not listed:
            time.sleep(poll_s)
            continue
        try:
            ser = serial.Serial(listed[0].device, 115200, timeout=0.05)
        except (serial.SerialException, OSError):
            time.sleep(poll_s)
            continue
        buf = b""
        try:
            while True:
                data = ser.read(4096)
                buf += data
                *lines, buf = buf.split(b"\n")
                got.extend(decode_line(x.rstrip(b"\r")) for x in lines)
                if "END" in got:
                    break
        except (serial.SerialException, OSError):
            pass
        finally:
            try:
                ser.close()
            except Exception:  # noqa: BLE001
                pass
    t.join(10)
    delivered = [decode_line(b) for b in board.delivered]
    r = compare(delivered, got)
    r.update(seconds=round(time.monotonic() - t0, 2), boots=board.appearances, dropped_writes=board.dropped,
             open_latency_ms=_lat(board.open_latency))
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--connect-wait", type=float, default=2.5, help="how long the fake firmware waits for a host")
    ap.add_argument("--poll", type=float, default=0.05, help="port poll interval for both readers")
    a = ap.parse_args()

    rng = random.Random(1)
    scenarios = [("reset right after the last line (worst case)", None),
                 ("reset 0-100 ms after the last line", lambda: rng.uniform(0.0, 0.1))]
    print(f"{a.cycles} reset/re-enumeration cycles per scenario, fake board waits {a.connect_wait:g} s for the "
          f"host, port poll {a.poll * 1000:.0f} ms")
    ok = True
    for title, linger in scenarios:
        ours = fwtool_run(a.cycles, a.connect_wait, a.poll, linger)
        naive = naive_run(a.cycles, a.connect_wait, a.poll, linger)
        print(f"\n=== {title}")
        for name, r in (("fwtool monitor", ours), ("plain pyserial loop", naive)):
            print(f"{name}:")
            for k, v in r.items():
                print(f"  {k:22} {v}")
        print(f"complete lines lost: fwtool {ours['lost']} / {ours['delivered']} "
              f"(duplicated {ours['extra_or_duplicated']}), plain loop {naive['lost']} / {naive['delivered']} "
              f"({100 * naive['lost'] / max(1, naive['delivered']):.1f} %); banners caught: fwtool "
              f"{ours['banners']} / {ours['boots']}")
        ok &= (ours["lost"] == 0 and ours["extra_or_duplicated"] == 0 and ours["exit_code"] == 0
               and ours["partial_reported"] == ours["partial_delivered"] and ours["banners"] == ours["boots"])
    print("\nRESULT:", "PASS (fwtool: 0 lines lost, 0 duplicated, every banner and partial line reported)" if ok
          else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
