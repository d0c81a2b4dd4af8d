"""The monitor's stop conditions: --count / --expect / --expect-label / --min-score / --expect-transcript, and the
verdict they reach (exit codes: see fwtool.monitor.session)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.protocol import Banner, FirmwareError, FirmwareFault, Inference
from fwtool.image.symbols import decode_fault
from fwtool.monitor.stats import Record, Stats


@dataclass
class Verdict:
    code: Exit
    reason: str
    fix: str | None = None


def firmware_error(parsed: FirmwareError, elf: Path | None = None) -> Verdict:
    """The firmware cannot run and said why (``FWT:ERROR <cause>``): that cause, exit 10. A ``FWT:FAULT`` shows
    its pc and lr as function (file:line) from ``elf`` (the build's ELF)."""
    if isinstance(parsed, FirmwareFault):
        return Verdict(Exit.FIRMWARE_ERROR, "the firmware faulted: " + decode_fault(parsed.raw, elf),
                       "look at the faulting function (pc) and its caller (lr), fix it, rebuild and flash"
                       + ("" if elf else "; pass --elf <out>/firmware.elf to see the functions"))
    return Verdict(Exit.FIRMWARE_ERROR, f"the firmware stopped: {parsed.text or 'FWT:ERROR without a cause'}",
                   "fix what the firmware says (e.g. rebuild with a larger --arena), flash, and retry")


class Conditions:
    """--count / --expect / --expect-label / --min-score. See the module docstring for the rules."""

    def __init__(self, count: int | None, expect: tuple[str, ...], label: str | None, min_score: float | None,
                 transcript: str | None = None):
        try:
            self.patterns = [(p, re.compile(p)) for p in expect]
        except re.error as e:
            raise FwtoolError(f"--expect: invalid regular expression ({e})", "fix the pattern (Python re syntax)",
                              code=Exit.USAGE) from e
        if min_score is not None and label is None:
            raise FwtoolError("--min-score needs --expect-label", "add --expect-label LABEL", code=Exit.USAGE)
        self.matched: set[str] = set()
        self.label, self.min_score = label, min_score
        self.label_met: Inference | None = None
        self.limit = count if count is not None else (1 if label else None)
        self.transcript = transcript  # --expect-transcript (matched by the handoff worker's events)
        self.transcript_met: str | None = None
        self.active = bool(count is not None or expect or label or transcript is not None)
        self.has_expectations = bool(expect or label or transcript is not None)
        self.seen = 0
        self.last_inf: Inference | None = None
        self.fw_error: FirmwareError | None = None  # the first FWT:ERROR line seen
        self.elf: Path | None = None  # the build's ELF (FWT:FAULT decoding)

    def all_met(self) -> bool:
        return (len(self.matched) == len(self.patterns) and (self.label is None or self.label_met is not None)
                and (self.transcript is None or self.transcript_met is not None))

    def satisfied(self) -> bool:
        """The stop conditions are met (so ending now is a success)."""
        if self.has_expectations:
            return self.all_met()
        return self.limit is not None and self.seen >= self.limit

    def _want_label(self) -> str:
        s = f"top label '{self.label}'"
        return s + (f" with score >= {self.min_score:g}" if self.min_score is not None else "")

    def pending(self) -> str:
        bits = [f"--expect '{p}'" for p, _ in self.patterns if p not in self.matched]
        if self.label and self.label_met is None:
            bits.append(self._want_label())
        if self.transcript is not None and self.transcript_met is None:
            bits.append(f"a transcript matching --expect-transcript '{self.transcript}'")
        if not self.has_expectations and self.limit:
            bits.append(f"{self.limit} inferences (got {self.seen})")
        return ", ".join(bits) or "nothing"

    def _got(self, stats: Stats) -> str:
        inf = self.last_inf
        if inf is None:
            return "no inference"
        got = f"got {inf.top} {inf.score:.4f}"
        if self.label and inf.top != self.label:
            scores = dict(stats.class_scores())
            if self.label in scores:
                got += f" ({self.label} {scores[self.label]:.4f})"
        return got

    def check_transcript(self, text: str) -> Verdict | None:
        """A handoff's transcript matched --expect-transcript."""
        self.transcript_met = text
        if self.all_met():
            what = [f"transcript {text!r}"] + ([f"{len(self.patterns)} --expect pattern(s) matched"]
                                              if self.patterns else [])
            return Verdict(Exit.OK, "expectations met: " + "; ".join(what))
        return None

    def check(self, rec: Record, stats: Stats) -> Verdict | None:
        parsed = rec.parsed
        if isinstance(parsed, FirmwareError) and self.fw_error is None:
            self.fw_error = parsed
        if not self.active:  # an interactive session keeps showing it; run() ends with its exit code
            return None
        for p, rx in self.patterns:
            if p not in self.matched and rx.search(rec.text):
                self.matched.add(p)
        if isinstance(parsed, FirmwareError) and not (self.has_expectations and self.all_met()):
            return firmware_error(parsed, self.elf)
        if isinstance(parsed, Banner) and self.label and parsed.labels and self.label not in parsed.labels:
            return Verdict(Exit.MISMATCH, f"--expect-label '{self.label}' is not one of the model's labels "
                                          f"({', '.join(parsed.labels)})", "use one of the labels in the banner")
        if isinstance(parsed, Inference):
            self.seen += 1
            self.last_inf = parsed
            if (self.label and self.label_met is None and parsed.top == self.label
                    and (self.min_score is None or parsed.score >= self.min_score)):
                self.label_met = parsed
        if self.has_expectations and self.all_met():
            what = []
            if self.patterns:
                what.append(f"{len(self.patterns)} --expect pattern(s) matched")
            if self.label_met is not None:
                what.append(f"{self.label_met.top} {self.label_met.score:.4f} at inference n={self.label_met.n}")
            if self.transcript_met is not None:
                what.append(f"transcript {self.transcript_met!r}")
            return Verdict(Exit.OK, "expectations met: " + "; ".join(what))
        if isinstance(parsed, Inference) and self.limit is not None and self.seen >= self.limit:
            if not self.has_expectations:
                return Verdict(Exit.OK, f"{self.seen} inferences received")
            return Verdict(Exit.MISMATCH, f"expected {self.pending()} within {self.limit} inference"
                                          f"{'s' if self.limit != 1 else ''}; {self._got(stats)}",
                           "check the model/input (or allow more inferences with --count N)")
        return None
