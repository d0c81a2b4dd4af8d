"""AUDIOSS PDM-PCM: the hardware PDM-to-PCM block as the firmware sees it, with a clip as its microphone.

Modelled: CTL / CLOCK_CTL / MODE_CTL / DATA_CTL / TR_CTL (stored), CMD.STREAM_EN (starts and stops the stream),
RX_FIFO_CTL (TRIGGER_LEVEL; CLEAR empties the FIFO), RX_FIFO_STATUS.USED, RX_FIFO_RD (pops a sample; an empty FIFO
reads 0 and sets RX_UNDERFLOW), INTR (write one to clear) / INTR_SET / INTR_MASK / INTR_MASKED with RX_TRIGGER
(more words than TRIGGER_LEVEL), RX_NOT_EMPTY and RX_OVERFLOW (a sample arriving at a full FIFO is lost). The FIFO
holds 254 words in mono, 253 in stereo (cy_pdm_pcm.h, CY_PDM_PCM_IS_TRIG_LEVEL).

The samples are the clip's PCM, one per 1/fs of CM4 time (instructions at the board clock), where fs is what the
firmware's clocks give: CLK_HF1 / ((CLK_CLOCK_DIV + 1)(MCLKQ_CLOCK_DIV + 1)(CKO_CLOCK_DIV + 1)) / (2 x SINC_RATE)
(the PDL's "F(MCLK_L_R) = Fs x 2 x sincDecRate x mclkDiv"), so a wrong PLL, CLK_HF1 or divider changes the rate
checks.py compares with the app's 16 kHz. Not modelled: the PDM bit stream, the CIC/high-pass filters, gain, soft
mute, word lengths other than 16 bits (the clip *is* the block's output), DMA triggers, stereo interleaving. After
the clip the microphone hears silence.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from fwtool.emulator.psoc6.bus import Bus
from fwtool.emulator.psoc6.regdefs import Device

FIFO_MONO, FIFO_STEREO = 254, 253


class Pdm:
    def __init__(self, bus: Bus, dev: Device, block: str, now: Callable[[], int], clock_hz: int,
                 hf1_hz: Callable[[], int], pcm: np.ndarray | None = None) -> None:
        self.bus, self.dev, self.now, self.clock_hz, self.hf1_hz = bus, dev, now, clock_hz, hf1_hz
        self.pcm = np.asarray(pcm if pcm is not None else np.zeros(0, np.int16), np.int16)
        r = lambda name: dev.reg(block, name, "PDM_Type")  # noqa: E731
        self.f = lambda reg, name: dev.field(f"PDM_{reg}", name)  # noqa: E731
        self.clock_ctl, self.mode_ctl, self.fifo_ctl = r("CLOCK_CTL"), r("MODE_CTL"), r("RX_FIFO_CTL")
        self.mask_reg, self.cmd = r("INTR_MASK"), r("CMD")
        self.fifo: deque[int] = deque()
        self.intr = 0
        self.started_at: int | None = None  # CM4 instructions at STREAM_EN
        self.produced = 0  # samples the stream has produced since STREAM_EN (delivered or lost)
        self.overflows = 0
        self.reads = 0
        bus.on_write(self.cmd, self._cmd)
        bus.on_write(self.fifo_ctl, self._fifo_ctl)
        bus.on_read(r("RX_FIFO_STATUS"), lambda core: (self.update(), min(len(self.fifo), 0xFF))[1])
        bus.on_read(r("RX_FIFO_RD"), self._rd)
        bus.on_read(r("RX_FIFO_RD_SILENT"), lambda core: (self.update(), self.fifo[0] & 0xFFFF if self.fifo else 0)[1])
        bus.on_read(r("INTR"), lambda core: (self.update(), self.intr)[1])
        bus.on_write(r("INTR"), lambda core, v: setattr(self, "intr", self.intr & ~v))
        bus.on_write(r("INTR_SET"), lambda core, v: setattr(self, "intr", self.intr | v))
        bus.on_read(r("INTR_MASKED"), lambda core: (self.update(), self.intr & self.bus.get(self.mask_reg))[1])
        self.m_trigger = self.f("INTR", "RX_TRIGGER")[1]
        self.m_not_empty = self.f("INTR", "RX_NOT_EMPTY")[1]
        self.m_overflow = self.f("INTR", "RX_OVERFLOW")[1]
        self.m_underflow = self.f("INTR", "RX_UNDERFLOW")[1]

    def _field(self, addr: int, reg: str, name: str) -> int:
        pos, mask = self.f(reg, name)
        return (self.bus.get(addr) & mask) >> pos

    def sample_rate(self) -> float:
        """fs the firmware's clock set-up gives (0 when CLK_HF1 or the dividers make none)."""
        divs = [self._field(self.clock_ctl, "CLOCK_CTL", n) + 1 for n in ("CLK_CLOCK_DIV", "MCLKQ_CLOCK_DIV",
                                                                          "CKO_CLOCK_DIV")]
        sinc = self._field(self.clock_ctl, "CLOCK_CTL", "SINC_RATE")
        if not sinc:
            return 0.0
        return self.hf1_hz() / (divs[0] * divs[1] * divs[2]) / (2 * sinc)

    def streaming(self) -> bool:
        return self.started_at is not None

    def _cmd(self, core: int, value: int) -> None:
        self.bus.set(self.cmd, value)
        on = bool(value & self.f("CMD", "STREAM_EN")[1])
        if on and self.started_at is None:
            self.started_at, self.produced = self.now(), 0
        elif not on:
            self.update()
            self.started_at = None

    def _fifo_ctl(self, core: int, value: int) -> None:
        if value & self.f("RX_FIFO_CTL", "CLEAR")[1]:
            self.fifo.clear()
        self.bus.set(self.fifo_ctl, value)

    def _capacity(self) -> int:
        return FIFO_STEREO if self._field(self.mode_ctl, "MODE_CTL", "PCM_CH_SET") == 3 else FIFO_MONO

    def update(self) -> None:
        """The samples due by now into the FIFO; the interrupt causes from its level."""
        if self.started_at is not None:
            fs = self.sample_rate()
            due = int((self.now() - self.started_at) * fs / self.clock_hz) if fs else 0
            cap = self._capacity()
            for k in range(self.produced, due):
                s = int(self.pcm[k]) if k < len(self.pcm) else 0
                if len(self.fifo) >= cap:
                    self.overflows += 1
                    self.intr |= self.m_overflow
                else:
                    self.fifo.append(s)
            self.produced = max(self.produced, due)
        if self.fifo:
            self.intr |= self.m_not_empty
        if len(self.fifo) > self._field(self.fifo_ctl, "RX_FIFO_CTL", "TRIGGER_LEVEL"):
            self.intr |= self.m_trigger

    def _rd(self, core: int) -> int:
        self.update()
        if not self.fifo:
            self.intr |= self.m_underflow
            return 0
        self.reads += 1
        return self.fifo.popleft() & 0xFFFFFFFF  # sign-extended 16-bit word (DATA_CTL BIT_EXTENSION)

    def pending(self) -> bool:
        """The block's interrupt line: a masked cause is set."""
        self.update()
        return bool(self.intr & self.bus.get(self.mask_reg))
