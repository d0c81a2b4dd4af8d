"""How the monitor shows what it reads.

* ``live``  (stdout is a terminal): a compact panel redrawn in place (rich Live): per-class score bars, top label,
  invoke latency last/p50/p95, inferences/s; every non-inference line scrolls by above it.
* ``plain`` (stdout is not a terminal, or --plain): every line as text, events as ``-- ... --`` lines.
* ``json``  one JSON object per line (banner, inference, error, other) and per event, for scripts.
* ``raw``   the bytes exactly as they came; events go to stderr.

A :class:`LogTee` copies everything to ``--log FILE`` (text with timestamps, or JSON lines with --json).
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fwtool.monitor.stats import Record, Stats

MAX_CLASSES_SHOWN = 10
KEYS_HELP = "Ctrl-R reboot · Ctrl-B BOOTSEL · Ctrl-C quit"


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def _fmt_ms(v: float | None) -> str:
    return "–" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}")


def score_bar(score: float, lo: float, hi: float, width: int) -> str:
    frac = 0.0 if hi <= lo else min(1.0, max(0.0, (score - lo) / (hi - lo)))
    eighths = int(round(frac * width * 8))
    full, rem = divmod(eighths, 8)
    return ("█" * full + ("▏▎▍▌▋▊▉"[rem - 1] if rem else "")).ljust(width, "·")


class PanelState:
    """What the live panel shows besides the statistics."""

    def __init__(self):
        self.port = ""
        self.serial = ""
        self.status = "starting"
        self.pending_input: str | None = None  # None: input not enabled
        self.note = ""


def render_panel(stats: Stats, st: PanelState, width: int = 100, bar_width: int | None = None):
    """The live view's panel (also used for the text screenshot in docs/monitor.md)."""
    title_bits = ["fwtool monitor", st.port or "?"]
    if st.serial:
        title_bits.append(f"serial {st.serial}")
    status_style = {"connected": "green", "disconnected": "red", "waiting": "yellow"}.get(st.status.split()[0],
                                                                                        "yellow")
    title = Text(" · ".join(title_bits) + " · ")
    title.append(st.status, style=status_style)

    rows: list = []
    b = stats.banner
    if b is not None:
        f = b.fields
        head = Text()
        head.append(str(f.get("model", "?")), style="bold")
        head.append(f" {f.get('sha256', '')} on {f.get('board', '?')}   fwtool {f.get('fwtool', '?')}", style="dim")
        rows.append(head)
        bits = []
        if isinstance(f.get("arena_used"), int) and isinstance(f.get("arena"), int):
            bits.append(f"arena {f['arena_used']:,}/{f['arena']:,} B")
        if "ops" in f:
            bits.append(f"{f['ops']} ops")
        bits.append(f"in {f.get('in', '?')} → out {f.get('out', '?')}")
        rows.append(Text(" · ".join(bits), style="dim"))
    else:
        rows.append(Text("no FWT:BOOT banner yet (it is printed at boot and when the port is opened)", style="dim"))

    cs = stats.class_scores()
    last = stats.last
    if last is not None and cs:
        top_idx = max(range(len(cs)), key=lambda i: cs[i][1])
        shown = list(range(len(cs)))
        if len(cs) > MAX_CLASSES_SHOWN:
            shown = sorted(shown, key=lambda i: cs[i][1], reverse=True)[:MAX_CLASSES_SHOWN]
        values = [s for _, s in cs]
        lo, hi = min(0.0, min(values)), max(1.0, max(values))
        name_w = min(24, max(len(cs[i][0]) for i in shown))
        bw = bar_width or max(10, width - name_w - 20)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1)
        grid.add_column(width=name_w, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", width=8)
        grid.add_column(no_wrap=True)
        for i in shown:
            name, score = cs[i]
            is_top = i == top_idx
            grid.add_row("▶" if is_top else "", Text(name, style="bold" if is_top else ""), f"{score:.4f}",
                         Text(score_bar(score, lo, hi, bw), style="cyan" if is_top else "blue"))
        rows.append(Text(""))
        rows.append(grid)
        if len(cs) > len(shown):
            rows.append(Text(f"  … {len(cs) - len(shown)} more classes", style="dim"))
        rows.append(Text(""))
        rate = stats.rate()
        line = Text()
        line.append("top     ", style="dim")
        line.append(f"{last.top} {last.score:.4f}", style="bold cyan")
        line.append("   n=", style="dim")
        line.append(str(last.n))
        line.append("   rate ", style="dim")
        line.append("–" if rate is None else f"{rate:.2f} inf/s")
        if stats.missed:
            line.append(f"   missed {stats.missed}", style="yellow")
        rows.append(line)
        line = Text()
        line.append("invoke  ", style="dim")
        line.append(f"last {_fmt_ms(last.us / 1000)} ms · p50 {_fmt_ms(stats.latency_ms(50))} ms · "
                    f"p95 {_fmt_ms(stats.latency_ms(95))} ms")
        line.append(f"   ({len(stats.latencies_us)} samples)", style="dim")
        rows.append(line)
    elif stats.audio.last is not None:
        rows.extend(audio_rows(stats, width, bar_width))
    elif stats.last_error is None:
        rows.append(Text("waiting for FWT:INFER lines…", style="dim"))
    if stats.last_error is not None:
        rows.append(Text(f"firmware error: {stats.last_error.text}", style="bold red"))
    if st.note:
        rows.append(Text(st.note, style="dim"))
    if st.pending_input is not None:
        grid = Table.grid(expand=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(Text("> " + st.pending_input + "▏"), Text(KEYS_HELP, style="dim"))
        rows.append(grid)
    return Panel(Group(*rows), title=title, title_align="left", width=width, padding=(0, 1))


def audio_rows(stats: Stats, width: int = 100, bar_width: int | None = None) -> list:
    """The audio apps' part of the panel: score bar, detection history, DSP vs invoke time, budget use."""
    a = stats.audio
    last = a.last
    rows: list = [Text("")]
    if a.banner is not None:
        b = a.banner
        rows.append(Text(f"audio   {b.app} · {b.source} · {b.rate} Hz · {b.frames}x{b.bins} · hop {b.hop} · "
                         f"{b.shift} frames per inference", style="dim"))
    bw = bar_width or max(10, width - 36)
    line = Text()
    line.append("score   ", style="dim")
    line.append(f"{last.top[:16]:<16} {last.score:.4f} ", style="bold cyan")
    line.append(score_bar(last.score, 0.0, 1.0, bw), style="cyan")
    rows.append(line)
    budget = a.budget_us
    line = Text()
    line.append("per hop ", style="dim")
    line.append(f"DSP {last.dsp_us / 1000:.2f} ms + invoke {last.invoke_us / 1000:.2f} ms = {last.us / 1000:.2f} ms")
    if budget:
        use = a.budget_use(95)
        line.append(f"   p95 {use:.0%} of {budget / 1000:g} ms" if use is not None else "",
                    style="bold red" if use is not None and use > 1 else "green")
    rows.append(line)
    line = Text()
    line.append("n       ", style="dim")
    line.append(f"{last.n}   detections {a.detection_count}")
    if last.dropped:
        line.append(f"   dropped {last.dropped} samples", style="yellow")
    rows.append(line)
    if a.detections:
        hist = "  ".join(f"{stamp(t)} #{d.n} {d.label} {d.score:.2f}" for t, d in list(a.detections)[-4:])
        rows.append(Text(f"history {hist}", style="dim"))
    return rows


class View:
    """Base: subclasses override what they show."""

    wants_bytes = False

    def __init__(self, out: TextIO, err: TextIO, timestamps: bool = False):
        self.out, self.err, self.timestamps = out, err, timestamps

    def start(self, stats: Stats, st: PanelState) -> None:
        self.stats, self.st = stats, st

    def data(self, chunk: bytes) -> None:
        pass

    def record(self, rec: Record) -> None:
        pass

    def event(self, kind: str, text: str, t: float, extra: dict | None = None) -> None:
        pass

    def tick(self, force: bool = False) -> None:
        pass

    def stop(self) -> None:
        pass


def _line_suffix(rec: Record) -> str:
    if rec.line.partial:
        return "  [line cut off: board disconnected]"
    if rec.line.split:
        return "  [line continues]"
    return ""


class PlainView(View):
    def __init__(self, out, err, timestamps=False):
        super().__init__(out, err, timestamps)
        self.console = Console(file=out, highlight=False, soft_wrap=True, emoji=False)

    def _prefix(self, t: float) -> str:
        return stamp(t) + " " if self.timestamps else ""

    def record(self, rec: Record) -> None:
        self.console.print(Text(self._prefix(rec.line.t) + rec.text + _line_suffix(rec)))

    def event(self, kind, text, t, extra=None):
        self.console.print(Text(f"{self._prefix(t)}-- {text} --", style="dim"))


class RawView(View):
    """Bytes exactly as they came on stdout; events on stderr."""

    wants_bytes = True

    def __init__(self, out, err, timestamps=False):
        super().__init__(out, err, timestamps)
        self.buffer = getattr(out, "buffer", None)
        self.errc = Console(file=err, highlight=False, soft_wrap=True, emoji=False)

    def data(self, chunk: bytes) -> None:
        if self.buffer is not None:
            self.buffer.write(chunk)
            self.buffer.flush()
        else:
            self.out.write(chunk.decode("utf-8", errors="backslashreplace"))
            self.out.flush()

    def event(self, kind, text, t, extra=None):
        self.errc.print(Text(f"-- {text} --", style="dim"))


class JsonView(View):
    def emit(self, obj: dict) -> None:
        self.out.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
        self.out.flush()

    def record(self, rec: Record) -> None:
        self.emit(rec.to_json())

    def event(self, kind, text, t, extra=None):
        self.emit({"type": kind, "message": text, **(extra or {}), "t": round(t, 3)})


class LiveView(View):
    """Panel redrawn in place; other lines and events print above it."""

    def __init__(self, out, err, timestamps=False, refresh_hz: float = 10.0, console: Console | None = None):
        super().__init__(out, err, timestamps)
        self.console = console or Console(file=out, highlight=False, emoji=False)
        self.min_interval = 1.0 / refresh_hz
        self._last = 0.0
        self._dirty = True
        self.live = None

    def start(self, stats, st):
        super().start(stats, st)
        self.live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stdout=False,
                         redirect_stderr=False, get_renderable=self._render)
        self.live.start()

    def _render(self):
        return render_panel(self.stats, self.st, width=min(self.console.width, 110))

    def _print(self, text: Text, t: float) -> None:
        if self.timestamps:
            text = Text(stamp(t) + " ", style="dim") + text
        self.console.print(text)

    def record(self, rec: Record) -> None:
        self._dirty = True
        if rec.kind in ("inference", "audio_inference", "feature", "ack"):
            return  # shown in the panel (feature rows and stream acks are too many to scroll by)
        if rec.kind == "banner":
            f = rec.parsed.fields
            self._print(Text(f"-- FWT:BOOT {f.get('model', '?')} {f.get('sha256', '')} on {f.get('board', '?')}, "
                             f"labels {f.get('labels', '?')} --", style="dim"), rec.line.t)
        elif rec.kind == "error":
            self._print(Text(rec.text, style="bold red"), rec.line.t)
        else:
            self._print(Text(rec.text + _line_suffix(rec)), rec.line.t)

    def event(self, kind, text, t, extra=None):
        self._dirty = True
        self._print(Text(f"-- {text} --", style="dim"), t)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.live is not None and (force or (self._dirty and now - self._last >= self.min_interval)):
            self.live.refresh()
            self._last = now
            self._dirty = False

    def mark_dirty(self) -> None:
        self._dirty = True

    def stop(self):
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None


class LogTee:
    """--log FILE: every line and event, flushed as it comes (text with timestamps, or JSON lines)."""

    def __init__(self, path, as_json: bool):
        self.f = open(path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()
        self.as_json = as_json

    def record(self, rec: Record) -> None:
        if self.as_json:
            self.f.write(json.dumps(rec.to_json(), separators=(",", ":")) + "\n")
        else:
            self.f.write(f"{stamp(rec.line.t)} {rec.text}{_line_suffix(rec)}\n")

    def event(self, kind, text, t, extra=None):
        if self.as_json:
            self.f.write(json.dumps({"type": kind, "message": text, **(extra or {}), "t": round(t, 3)},
                                    default=str) + "\n")
        else:
            self.f.write(f"{stamp(t)} -- {text} --\n")

    def close(self):
        self.f.close()


def make_view(mode: str, out: TextIO | None = None, err: TextIO | None = None, timestamps: bool = False) -> View:
    out = out or sys.stdout
    err = err or sys.stderr
    if mode == "auto":
        mode = "live" if getattr(out, "isatty", lambda: False)() else "plain"
    return {"live": LiveView, "plain": PlainView, "json": JsonView, "raw": RawView}[mode](out, err, timestamps)
