"""The one result type of a virtual-target run (rp2040js and QEMU alike) and the one error for how it ended."""
from __future__ import annotations

from dataclasses import dataclass, field

from fwtool.core import protocol
from fwtool.core.errors import Exit, FwtoolError

# Why a run ended. Wanted: "count" (the count-th line with the marker was seen), "done" (nothing was asked and the
# firmware ended by itself). Anything else is a failure (see failure()): emulated-limit, wall-limit,
# firmware-error, watchdog, bootsel, breakpoint, lockup, stopped, parent-gone, exited, killed, ended-early.
OK_REASONS = ("count", "done")


@dataclass
class RunResult:
    lines: list[str]
    reason: str
    detail: str | None
    emulated_us: int = 0
    wall_s: float = 0.0
    events: list[dict] = field(default_factory=list)
    image: str = ""
    exit_code: int | None = None  # the emulator process's exit status, where it has a meaning (QEMU semihosting)

    @property
    def ok(self) -> bool:
        return self.reason in OK_REASONS

    @property
    def records(self) -> list:
        return [r for r in (protocol.parse_line(ln) for ln in self.lines) if r is not None]

    @property
    def invoke_us(self) -> list[int]:
        """The ``us=`` of every FWT:INFER / FWT:OUT line (each output tensor of a vector counts once)."""
        out = []
        for line in self.lines:
            p = protocol.parse_line(line)
            us = getattr(p, "us", None)
            if us is not None and getattr(p, "t", 0) == 0:
                out.append(int(us))
        return out

    def to_dict(self) -> dict:
        return {"image": self.image, "reason": self.reason, "detail": self.detail, "emulated_us": self.emulated_us,
                "wall_s": self.wall_s, "lines": self.lines}


def failure(reason: str, detail: str | None, what: str = "the virtual board", hint: str | None = None) -> FwtoolError:
    """The FwtoolError for a run that ended for ``reason`` (not one of OK_REASONS). ``hint``: the target's own
    fix for a run that ran out of time or ended early (e.g. the QEMU command line to run by hand)."""
    d = f" ({detail})" if detail else ""
    if reason == "firmware-error" and detail and detail.startswith(protocol.PREFIX_FAULT):
        return FwtoolError(f"{what}'s firmware faulted: {detail}",
                           "look at the faulting function (pc) and its caller (lr), fix it, rebuild and retry "
                           "(docs/faults.md)", Exit.FIRMWARE_ERROR)
    if reason == "firmware-error":
        return FwtoolError(f"{what}'s firmware stopped: {detail or 'FWT:ERROR without a cause'}",
                           "fix what the firmware says (e.g. rebuild with a larger --arena, or a model the host "
                           "check accepts) and retry", Exit.FIRMWARE_ERROR)
    if reason in ("emulated-limit", "wall-limit"):
        return FwtoolError(f"{what} did not print the expected output in time{d}",
                           hint or "raise --timeout / --max-emulated-s, or check the firmware with 'fwtool emulate'",
                           Exit.TIMEOUT)
    if reason in ("watchdog", "bootsel"):
        return FwtoolError(f"{what} rebooted{d}; the emulator cannot follow a reboot",
                           "check the firmware for watchdog_reboot()/reset_usb_boot() or a watchdog that is not fed")
    if reason == "lockup":
        return FwtoolError(f"{what} locked up{d}",
                           "the CPU faulted while taking or handling a HardFault (a corrupt stack pointer?); check "
                           "the stack size and the fault handler", Exit.FIRMWARE_ERROR)
    if reason == "breakpoint":
        return FwtoolError(f"{what} stopped at a breakpoint{d}",
                           "the firmware panicked or asserted; see the serial lines above")
    if reason in ("stopped", "parent-gone"):
        return FwtoolError(f"{what} was stopped{d}", None, Exit.INTERRUPTED)
    if reason == "exited":
        return FwtoolError(f"{what}'s emulator process ended without reporting why{d}",
                           hint or "re-run with FWTOOL_DEBUG=1; check 'node --version' (>= 18) and 'fwtool doctor'")
    if reason == "ended-early":
        return FwtoolError(f"{what} ended before the expected output{d}",
                           hint or "check the build ('fwtool build') and the firmware's last lines above")
    return FwtoolError(f"{what} failed: {reason}{d}", "re-run; if it persists, report it with the image")
