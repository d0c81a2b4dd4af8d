"""What the monitor knows about the running model: last banner, last inference, latency percentiles, rate."""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from fwtool.core.protocol import (AudioBanner, AudioInference, Banner, Detection, FirmwareError, Inference,
                                  parse_line)
from fwtool.core.lines import Line
from fwtool.core.stats import percentile


@dataclass
class Record:
    """One line from the board, classified: banner | inference | error | other."""

    line: Line
    parsed: Banner | Inference | FirmwareError | None

    @property
    def kind(self) -> str:
        if isinstance(self.parsed, Banner):
            return "banner"
        if isinstance(self.parsed, Inference):
            return "inference"
        if isinstance(self.parsed, FirmwareError):
            return "error"
        if self.parsed is not None and hasattr(self.parsed, "to_dict"):  # records other apps print (FWT:OUT ...)
            return str(self.parsed.to_dict().get("type", "other"))
        return "other"

    @property
    def text(self) -> str:
        return self.line.text

    def to_json(self) -> dict:
        if self.parsed is not None:
            d = self.parsed.to_dict()
        else:
            d = {"type": "other", "text": self.line.text}
            if self.line.partial:
                d["partial"] = True  # the board went away before the end of this line
            if self.line.split:
                d["split"] = True  # an over-long line: continues in the next record
        d["t"] = round(self.line.t, 3)
        return d


def classify(line: Line) -> Record:
    """Only complete lines are parsed: a line cut by a disconnect could look like a valid, wrong record."""
    return Record(line, parse_line(line.text) if line.complete else None)



class Stats:
    def __init__(self, window: int = 500, rate_window: int = 20):
        self.banner: Banner | None = None
        self.last: Inference | None = None
        self.last_error: FirmwareError | None = None
        self.inferences = 0  # inference lines received
        self.lines = 0  # complete lines received
        self.partial_lines = 0
        self.boots = 0  # banners seen (the firmware also re-prints it when a host re-attaches)
        self.missed = 0  # gaps in the firmware's inference counter n (output it printed while nobody listened)
        self.disconnects = 0
        self.latencies_us: deque[int] = deque(maxlen=window)
        self.arrivals: deque[tuple[float, int]] = deque(maxlen=rate_window)  # (host time, firmware n)
        self.top_counts: Counter[str] = Counter()
        self.audio = AudioStats(window)

    @property
    def labels(self) -> list[str]:
        return self.banner.labels if self.banner else []

    def add(self, rec: Record) -> None:
        if rec.line.complete:
            self.lines += 1
        elif rec.line.partial:
            self.partial_lines += 1
        p = rec.parsed
        if isinstance(p, Banner):
            if self.banner is not None and self.banner.fields.get("sha256") != p.fields.get("sha256"):
                self.latencies_us.clear()  # another model: old latencies mean nothing
                self.top_counts.clear()
            self.banner = p
            self.boots += 1
        elif isinstance(p, Inference):
            if self.last is not None and p.n > self.last.n + 1:
                self.missed += p.n - self.last.n - 1
            elif self.last is not None and p.n <= self.last.n:
                self.arrivals.clear()  # the counter restarted: the board rebooted
            self.last = p
            self.inferences += 1
            self.latencies_us.append(p.us)
            self.arrivals.append((rec.line.t, p.n))
            self.top_counts[p.top] += 1
        elif isinstance(p, FirmwareError):
            self.last_error = p
        else:
            self.audio.add(p, rec.line.t)

    def on_disconnect(self) -> None:
        self.disconnects += 1
        self.arrivals.clear()

    def latency_ms(self, q: float) -> float | None:
        v = percentile(self.latencies_us, q)
        return None if v is None else v / 1000.0

    def rate(self) -> float | None:
        """Inferences per second the board runs: firmware counter n over host time, last few arrivals (counting
        n, not lines, keeps it right when several lines arrive in one read or some were missed)."""
        if len(self.arrivals) < 2:
            return None
        (t0, n0), (t1, n1) = self.arrivals[0], self.arrivals[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 and n1 > n0 else None

    def class_scores(self) -> list[tuple[str, float]]:
        """(label, score) of the last inference, labels from the banner (class_i when unknown)."""
        if self.last is None:
            return []
        labels = self.labels
        names = labels if len(labels) == len(self.last.scores) else [f"class_{i}" for i in range(len(self.last.scores))]
        return list(zip(names, self.last.scores))

    def summary(self) -> dict:
        return {"inferences": self.inferences, "lines": self.lines, "partial_lines": self.partial_lines,
                "boots": self.boots, "missed": self.missed, "disconnects": self.disconnects,
                "latency_ms": {"last": None if self.last is None else self.last.us / 1000.0,
                               "p50": self.latency_ms(50), "p95": self.latency_ms(95)},
                "rate_per_s": self.rate(), "top_counts": dict(self.top_counts),
                **({"audio": self.audio.summary()} if self.audio.inferences else {})}


class AudioStats:
    """The audio apps' lines (FWT:AUDIO, FWT:AINF, FWT:DETECT): last scores, detection history, DSP vs invoke time
    and the share of the real-time budget (samples per inference / rate) one hop uses."""

    def __init__(self, window: int = 500, history: int = 8):
        self.banner: AudioBanner | None = None
        self.last: AudioInference | None = None
        self.inferences = 0
        self.detections: deque[tuple[float, Detection]] = deque(maxlen=history)  # (host time, detection)
        self.detection_count = 0
        self.dsp_us: deque[int] = deque(maxlen=window)
        self.invoke_us: deque[int] = deque(maxlen=window)
        self.hop_us: deque[int] = deque(maxlen=window)

    def add(self, p, t: float) -> None:
        if isinstance(p, AudioBanner):
            self.banner = p
        elif isinstance(p, AudioInference):
            self.last = p
            self.inferences += 1
            self.dsp_us.append(p.dsp_us)
            self.invoke_us.append(p.invoke_us)
            self.hop_us.append(p.us)
        elif isinstance(p, Detection):
            self.detections.append((t, p))
            self.detection_count += 1

    @property
    def budget_us(self) -> int | None:
        """Real-time budget of one inference: shift * hop samples at the rate (None before the FWT:AUDIO line)."""
        b = self.banner
        if b is None or not b.rate:
            return None
        return int(round(1e6 * b.shift * b.hop / b.rate))

    def budget_use(self, q: float = 95) -> float | None:
        v = percentile(self.hop_us, q)
        return None if v is None or not self.budget_us else v / self.budget_us

    def summary(self) -> dict:
        def ms(values, q):
            v = percentile(values, q)
            return None if v is None else v / 1000.0
        return {"inferences": self.inferences, "detections": self.detection_count,
                "source": self.banner.source if self.banner else None,
                "dsp_ms": {"p50": ms(self.dsp_us, 50), "p95": ms(self.dsp_us, 95)},
                "invoke_ms": {"p50": ms(self.invoke_us, 50), "p95": ms(self.invoke_us, 95)},
                "hop_ms": {"p50": ms(self.hop_us, 50), "p95": ms(self.hop_us, 95)},
                "budget_ms": None if self.budget_us is None else self.budget_us / 1000.0,
                "budget_use_p95": self.budget_use(95),
                "dropped": self.last.dropped if self.last else 0}
