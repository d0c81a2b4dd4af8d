"""Per-inference latency from the firmware's own ``us=`` values: p50/p95 and the real-time budget check."""
from __future__ import annotations

from dataclasses import dataclass

from fwtool.core.stats import percentile


@dataclass(frozen=True)
class LatencyStats:
    count: int
    p50_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    budget_ms: float | None = None
    source: str = "emulated"  # "emulated" (rp2040js at 125 MHz) or "board"

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_ms is None else self.p95_ms <= self.budget_ms

    def to_dict(self) -> dict:
        return {"count": self.count, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "min_ms": self.min_ms,
                "max_ms": self.max_ms, "mean_ms": self.mean_ms, "budget_ms": self.budget_ms,
                "within_budget": self.within_budget, "source": self.source}

    def summary(self) -> str:
        text = (f"invoke latency ({self.source}, n={self.count}): p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms "
                f"(min {self.min_ms:.2f}, max {self.max_ms:.2f})")
        if self.budget_ms is not None:
            verdict = "within" if self.within_budget else "OVER"
            text += f"; budget {self.budget_ms:g} ms: p95 {verdict}"
        return text


def latency_stats(us_values: list[int], budget_ms: float | None = None, source: str = "emulated") -> LatencyStats | None:
    """Stats of ``Invoke()`` times in microseconds (None when there are none)."""
    if not us_values:
        return None
    ms = [u / 1000.0 for u in us_values]
    return LatencyStats(len(ms), round(percentile(ms, 50), 3), round(percentile(ms, 95), 3), round(min(ms), 3),
                        round(max(ms), 3), round(sum(ms) / len(ms), 3), budget_ms, source)
