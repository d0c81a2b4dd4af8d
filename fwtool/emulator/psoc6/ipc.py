"""IPC: the inter-processor communication structures (locks, data words, notify/release) the CM0+ and CM4 use
for SystemInit's semaphores and pipes (PDL cy_ipc_drv/sema/pipe).

Modelled: per structure, ACQUIRE (a read takes the lock if free: SUCCESS set and the reader's master recorded;
otherwise SUCCESS clear), RELEASE (frees the lock; its INTR_RELEASE bits set the release interrupt of the named
IPC interrupt structures), NOTIFY (sets the notify interrupt bits), DATA/DATA0/DATA1 (stored), LOCK_STATUS
(ACQUIRED + master). Interrupt structures store INTR/INTR_SET/INTR_MASK and compute INTR_MASKED. No interrupt is
delivered to a CPU (the virtual PSoC 6 has no NVIC behaviour)."""
from __future__ import annotations

from fwtool.emulator.psoc6.bus import Bus
from fwtool.emulator.psoc6.regdefs import Device

MASTER_ID = {0: 0, 1: 14}  # CM0+ is bus master 0, CM4 bus master 14 (PDL CPUSS_MS_ID_CM0 / _CM4)


class Ipc:
    def __init__(self, bus: Bus, dev: Device) -> None:
        self.bus, self.dev = bus, dev
        self.locked: dict[int, int | None] = {}
        count = dev.defines.get("CPUSS_IPC_IPC_NR", 16)
        irq = dev.defines.get("CPUSS_IPC_IPC_IRQ_NR", 16)
        _, success = dev.field("IPC_STRUCT_ACQUIRE", "SUCCESS")
        self.success = success
        self.intr = [dev.reg("IPC", f"INTR_STRUCT[{i}].INTR") for i in range(irq)]
        for i in range(count):
            acquire = dev.reg("IPC", f"STRUCT[{i}].ACQUIRE")
            bus.on_read(acquire, lambda core, i=i: self._acquire(core, i))
            bus.on_write(dev.reg("IPC", f"STRUCT[{i}].RELEASE"), lambda core, v, i=i: self._release(i, v))
            bus.on_write(dev.reg("IPC", f"STRUCT[{i}].NOTIFY"), lambda core, v: self._notify(v))
            bus.on_read(dev.reg("IPC", f"STRUCT[{i}].LOCK_STATUS"), lambda core, i=i: self._status(i))
        for i, base in enumerate(self.intr):
            off_set, off_mask = 4, 8
            bus.on_write(base, lambda core, v, b=base: bus.set(b, bus.get(b) & ~v))          # write 1 to clear
            bus.on_write(base + off_set, lambda core, v, b=base: bus.set(b, bus.get(b) | v))  # INTR_SET
            bus.on_read(base + 12, lambda core, b=base: bus.get(b) & bus.get(b + off_mask))   # INTR_MASKED

    def _acquire(self, core: int, i: int) -> int:
        if self.locked.get(i) is None:
            self.locked[i] = core
            return self.success | (MASTER_ID[core] << 8)
        return MASTER_ID[self.locked[i]] << 8

    def _status(self, i: int) -> int:
        owner = self.locked.get(i)
        return 0 if owner is None else self.success | (MASTER_ID[owner] << 8)

    def _release(self, i: int, value: int) -> None:
        self.locked[i] = None
        for n, base in enumerate(self.intr):
            if value & (1 << n):
                self.bus.set(base, self.bus.get(base) | 1 << i)  # INTR_RELEASE bit i (low half)

    def _notify(self, value: int) -> None:
        for n, base in enumerate(self.intr):
            if value & (1 << n):
                self.bus.set(base, self.bus.get(base) | 1 << (16 + 0))
