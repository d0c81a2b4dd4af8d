"""The peripheral bus of the virtual PSoC 6: 32-bit registers kept as values, with per-register behaviour.

A block model (srss.py, cpuss.py, ...) registers handlers for the registers whose reads or writes do something;
every other register in a mapped block reads back what was last written (its reset value 0 unless a model sets
one). Each write is recorded (``Bus.written``) so checks.py can compare what the firmware programmed with what the
board file says. Byte and halfword accesses are merged into the 32-bit register.
"""
from __future__ import annotations

from typing import Callable

Reader = Callable[[int], int]          # core id -> value
Writer = Callable[[int, int], None]    # (core id, value) -> None

CM0P, CM4 = 0, 1


class Bus:
    def __init__(self) -> None:
        self.values: dict[int, int] = {}
        self.readers: dict[int, Reader] = {}
        self.writers: dict[int, Writer] = {}
        self.written: dict[int, int] = {}     # address -> last value the firmware wrote
        self.unknown_reads: set[int] = set()  # registers no model sets, read by the firmware (for --trace)

    def on_read(self, addr: int, fn: Reader) -> None:
        self.readers[addr] = fn

    def on_write(self, addr: int, fn: Writer) -> None:
        self.writers[addr] = fn

    def set(self, addr: int, value: int) -> None:
        self.values[addr] = value & 0xFFFFFFFF

    def get(self, addr: int) -> int:
        return self.values.get(addr, 0)

    def read(self, core: int, addr: int, size: int) -> int:
        word = addr & ~3
        fn = self.readers.get(word)
        if fn is not None:
            value = fn(core)
        else:
            if word not in self.values:
                self.unknown_reads.add(word)
            value = self.values.get(word, 0)
        shift = (addr & 3) * 8
        return (value >> shift) & ((1 << (size * 8)) - 1)

    def write(self, core: int, addr: int, size: int, value: int) -> None:
        word = addr & ~3
        if size != 4:
            shift = (addr & 3) * 8
            mask = ((1 << (size * 8)) - 1) << shift
            value = (self.values.get(word, 0) & ~mask) | ((value << shift) & mask)
        value &= 0xFFFFFFFF
        self.written[word] = value
        fn = self.writers.get(word)
        if fn is not None:
            fn(core, value)
        else:
            self.values[word] = value
