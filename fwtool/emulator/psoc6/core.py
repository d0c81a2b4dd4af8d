"""One PSoC 6 CPU (the CM0+ or the CM4) on the Unicorn engine, with the parts of its private peripheral bus the
firmware touches.

Modelled: the instruction set (Unicorn's Cortex-M0 / Cortex-M4 models, FPU included), memory shared with the other
core (SRAM, flash, SFLASH: the same host buffers are mapped into both engines), and in the core's System Control
Space: SCB (VTOR, CPACR, AIRCR reset request, CFSR/HFSR/MMFAR/BFAR), DWT CYCCNT, SysTick (CVR counts down with
the instruction count), CoreDebug DEMCR; NVIC registers are stored but raise nothing.

Not modelled (honest limits): no cycle timing — time is the number of instructions executed, counted in slices
(CYCCNT reads inside a slice return the count at the slice's start, so a measurement is exact to one slice,
``SLICE`` instructions); no exception priorities, preemption or tail-chaining, SysTick never fires, WFI
ends the core's slice and the core sleeps until the other core's event. One peripheral interrupt at a time can be
taken between slices (``take_irq``, used for the PDM-PCM block): only when the core is in thread mode with PRIMASK
clear and the IRQ enabled in NVIC ISER (set/clear-enable registers kept as the bits they set); it stacks the basic
frame (no FP state: the handler must not use the FPU), runs the vector table's handler, and returns on EXC_RETURN;
a fault (unmapped access, undefined
instruction) enters the HardFault handler with a basic stack frame and CFSR/HFSR/BFAR set as a Cortex-M4 would —
without lazy FP stacking, priorities or lockup.
"""
from __future__ import annotations

import ctypes

import unicorn
from unicorn import arm_const as A

from fwtool.emulator.psoc6.bus import CM0P, CM4, Bus

SLICE = 20_000  # instructions a core runs before the scheduler switches (also CYCCNT's resolution)
PPB_BASE, PPB_SIZE = 0xE0000000, 0x00100000
# Cortex-M System Control Space (ARMv7-M / ARMv6-M architecture reference manuals, B3.2)
DWT_CTRL, DWT_CYCCNT = 0xE0001000, 0xE0001004
SYST_CSR, SYST_RVR, SYST_CVR = 0xE000E010, 0xE000E014, 0xE000E018
CPUID, ICSR, VTOR, AIRCR = 0xE000ED00, 0xE000ED04, 0xE000ED08, 0xE000ED0C
CFSR, HFSR, MMFAR, BFAR, CPACR, DEMCR = 0xE000ED28, 0xE000ED2C, 0xE000ED34, 0xE000ED38, 0xE000ED88, 0xE000EDFC
NVIC_ISER, NVIC_ICER, NVIC_WORDS = 0xE000E100, 0xE000E180, 16  # set-enable / clear-enable, 32 IRQs per word
EXCP_EXCEPTION_EXIT = 8  # QEMU's target/arm/cpu.h: a branch to EXC_RETURN in handler mode
CPUIDS = {CM0P: 0x410CC601, CM4: 0x410FC241}
# CFSR bits (ARMv7-M B3.2.15): BusFault PRECISERR | BFARVALID, UsageFault UNDEFINSTR; HFSR FORCED
CFSR_PRECISERR, CFSR_BFARVALID, CFSR_IBUSERR, CFSR_UNDEFINSTR = 1 << 9, 1 << 15, 1 << 8, 1 << 16
HFSR_FORCED = 1 << 30


class Fault(Exception):
    def __init__(self, kind: str, pc: int, address: int | None = None):
        super().__init__(kind)
        self.kind, self.pc, self.address = kind, pc, address


class Core:
    """``Core(CM4, bus, regions)``; ``start(vector_table)`` then ``step(n)`` until ``halted``."""

    def __init__(self, which: int, bus: Bus, regions: list[tuple[int, ctypes.Array, int]],
                 peripherals: list[tuple[int, int]], on_reset_request=lambda: None, count_exact: bool = True) -> None:
        self.which, self.bus = which, bus
        self.name = "CM4" if which == CM4 else "CM0+"
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M4 if which == CM4 else A.UC_CPU_ARM_CORTEX_M0)
        for base, buf, perms in regions:
            self.uc.mem_map_ptr(base, ctypes.sizeof(buf), perms, ctypes.addressof(buf))
        for base, size in peripherals:
            self.uc.mmio_map(base, size, self._pread, base, self._pwrite, base)
        self.uc.mmio_map(PPB_BASE, PPB_SIZE, self._sread, PPB_BASE, self._swrite, PPB_BASE)
        self.uc.hook_add(unicorn.UC_HOOK_MEM_UNMAPPED, self._unmapped)
        self.uc.hook_add(unicorn.UC_HOOK_INTR, self._intr)
        self._block_sizes: dict[int, int] = {}
        self.count_exact = count_exact
        if count_exact:  # the CM4 (its CYCCNT is the app's clock); the CM0+ counts whole slices
            self.uc.hook_add(unicorn.UC_HOOK_BLOCK, self._block)
        self.on_reset_request = on_reset_request
        self.scs: dict[int, int] = {}
        self.instructions = 0     # executed so far (slices)
        self.running = False      # out of reset and not sleeping
        self.halted = ""          # why the core stopped for good ("" while it can run)
        self.pc = 0
        self.sleeping = False
        self._fault_addr: int | None = None
        self._event = ""

    # ---- lifecycle ----
    def start(self, table: int) -> None:
        """Reset into the vector table at ``table`` (initial MSP, reset handler)."""
        sp = int.from_bytes(self.uc.mem_read(table, 4), "little")
        pc = int.from_bytes(self.uc.mem_read(table + 4, 4), "little")
        self.uc.reg_write(A.UC_ARM_REG_MSP, sp)
        self.uc.reg_write(A.UC_ARM_REG_SP, sp)
        self.scs = {VTOR: table, CPUID: CPUIDS[self.which], SYST_CVR: 0}
        self.pc, self.running, self.halted, self.sleeping = pc | 1, True, "", False

    def step(self, count: int = SLICE) -> None:
        """Run up to ``count`` instructions (fewer when the core sleeps, halts or faults)."""
        self._event = ""
        self._fault_addr = None
        try:
            self.uc.emu_start(self.pc, 0xFFFFFFFF, count=count)
            if not self.count_exact:
                self.instructions += count
            self.pc = self.uc.reg_read(A.UC_ARM_REG_PC) | 1
        except unicorn.UcError as exc:
            self.pc = self.uc.reg_read(A.UC_ARM_REG_PC) | 1
            if self.in_irq and self.pc >= 0xFFFFFFF0:  # the handler branched to EXC_RETURN (thread-mode decode)
                self._irq_return()
                return
            self._enter_fault(exc)
            return
        if self._event == "excret" or (self.in_irq and self.pc >= 0xFFFFFFF0):
            self._irq_return()
            return
        if self._event == "wfi":
            self.sleeping = True

    def wake(self) -> None:
        self.sleeping = False

    def _block(self, uc, address, size, data) -> None:
        """Count the instructions of each translated block as it starts (Thumb: a halfword whose top five bits
        are 0b11101/0b11110/0b11111 starts a 32-bit instruction)."""
        key = address << 8 | size
        n = self._block_sizes.get(key)
        if n is None:
            code = bytes(uc.mem_read(address, size))
            n, i = 0, 0
            while i < size:
                hw = code[i] | code[i + 1] << 8 if i + 1 < size else 0
                i += 4 if hw >> 11 in (0x1D, 0x1E, 0x1F) else 2
                n += 1
            self._block_sizes[key] = n
        self.instructions += n

    # ---- faults ----
    def _unmapped(self, uc, access, address, size, value, data) -> bool:
        self._fault_addr = address
        return False

    def _intr(self, uc, intno, data) -> None:
        # EXCP_SWI 2 (SVC), EXCP_BKPT 7, EXCP_HLT (WFI/WFE) 10 (QEMU's target/arm/cpu.h numbering)
        if intno == 10:
            self._event = "wfi"
        elif intno == EXCP_EXCEPTION_EXIT and self.in_irq:
            self._event = "excret"
        elif intno == 7:
            self.halted = f"breakpoint (BKPT) at 0x{uc.reg_read(A.UC_ARM_REG_PC):08X}"
        else:
            self._event = f"exception {intno}"
        uc.emu_stop()

    def _enter_fault(self, exc: unicorn.UcError) -> None:
        """Take the HardFault exception as the CPU would: stack r0-r3, r12, LR, PC, xPSR on the current stack,
        set the fault status registers, continue at the vector table's HardFault entry (a second fault in the
        handler halts the core: lockup)."""
        uc = self.uc
        pc = uc.reg_read(A.UC_ARM_REG_PC)
        if uc.reg_read(A.UC_ARM_REG_IPSR) == 3:
            self.halted = f"lockup: a fault inside the HardFault handler at 0x{pc:08X} ({exc})"
            return
        cfsr, hfsr = self.scs.get(CFSR, 0), self.scs.get(HFSR, 0) | HFSR_FORCED
        if exc.errno in (unicorn.UC_ERR_READ_UNMAPPED, unicorn.UC_ERR_WRITE_UNMAPPED, unicorn.UC_ERR_READ_PROT,
                         unicorn.UC_ERR_WRITE_PROT) and self._fault_addr is not None:
            cfsr |= CFSR_PRECISERR | CFSR_BFARVALID
            self.scs[BFAR] = self._fault_addr
        elif exc.errno in (unicorn.UC_ERR_FETCH_UNMAPPED, unicorn.UC_ERR_FETCH_PROT):
            cfsr |= CFSR_IBUSERR
        else:  # UC_ERR_INSN_INVALID, UC_ERR_EXCEPTION (UDF)
            cfsr |= CFSR_UNDEFINSTR
        self.scs[CFSR], self.scs[HFSR] = cfsr, hfsr
        sp_reg = A.UC_ARM_REG_PSP if uc.reg_read(A.UC_ARM_REG_CONTROL) & 2 else A.UC_ARM_REG_MSP
        sp = uc.reg_read(sp_reg)
        frame = [uc.reg_read(r) for r in (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
                                          A.UC_ARM_REG_R12, A.UC_ARM_REG_LR)] + [pc & ~1,
                                          uc.reg_read(A.UC_ARM_REG_XPSR) | (1 << 24)]
        align = sp & 4
        sp = (sp - 32) & ~7
        uc.mem_write(sp, b"".join(v.to_bytes(4, "little") for v in frame))
        exc_return = 0xFFFFFFFD if sp_reg == A.UC_ARM_REG_PSP else 0xFFFFFFF9
        uc.reg_write(sp_reg, sp)
        uc.reg_write(A.UC_ARM_REG_SP, sp)
        uc.reg_write(A.UC_ARM_REG_LR, exc_return)
        uc.reg_write(A.UC_ARM_REG_IPSR, 3)
        del align
        table = self.scs.get(VTOR, 0)
        handler = int.from_bytes(uc.mem_read(table + 12, 4), "little")
        self.pc = handler | 1
        self.fault = Fault(str(exc), pc, self._fault_addr)

    # ---- peripheral interrupts (one at a time, between slices) ----
    in_irq: int | None = None  # the IRQ being handled

    def irq_enabled(self, n: int) -> bool:
        return bool(self.scs.get(NVIC_ISER + 4 * (n // 32), 0) >> (n % 32) & 1)

    def take_irq(self, n: int) -> bool:
        """Enter IRQ ``n``'s handler now if the core would (thread mode, PRIMASK clear, enabled); True if taken."""
        uc = self.uc
        if (self.in_irq is not None or self.halted or not self.running or not self.irq_enabled(n)
                or uc.reg_read(A.UC_ARM_REG_PRIMASK) & 1 or uc.reg_read(A.UC_ARM_REG_IPSR)):
            return False
        sp_reg = A.UC_ARM_REG_PSP if uc.reg_read(A.UC_ARM_REG_CONTROL) & 2 else A.UC_ARM_REG_MSP
        sp = uc.reg_read(sp_reg)
        xpsr = uc.reg_read(A.UC_ARM_REG_XPSR) | (1 << 24)
        if sp & 4:  # the frame is 8-byte aligned; bit 9 of the stacked xPSR says a word was skipped
            xpsr |= 1 << 9
        frame = [uc.reg_read(r) for r in (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
                                          A.UC_ARM_REG_R12, A.UC_ARM_REG_LR)] + [self.pc & ~1, xpsr]
        sp = (sp - 32) & ~7
        uc.mem_write(sp, b"".join(v.to_bytes(4, "little") for v in frame))
        uc.reg_write(sp_reg, sp)
        uc.reg_write(A.UC_ARM_REG_SP, sp)
        self._irq_sp_reg = sp_reg
        uc.reg_write(A.UC_ARM_REG_LR, 0xFFFFFFFD if sp_reg == A.UC_ARM_REG_PSP else 0xFFFFFFF9)
        uc.reg_write(A.UC_ARM_REG_IPSR, 16 + n)
        handler = int.from_bytes(uc.mem_read(self.scs.get(VTOR, 0) + 4 * (16 + n), 4), "little")
        self.pc = handler | 1
        self.in_irq = n
        self.sleeping = False
        return True

    def _irq_return(self) -> None:
        """Exception return: unstack the basic frame, back to thread mode where the IRQ came in."""
        uc, sp_reg = self.uc, self._irq_sp_reg
        sp = uc.reg_read(sp_reg)
        words = [int.from_bytes(uc.mem_read(sp + 4 * i, 4), "little") for i in range(8)]
        for reg, v in zip((A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3, A.UC_ARM_REG_R12,
                           A.UC_ARM_REG_LR), words):
            uc.reg_write(reg, v)
        xpsr = words[7]
        sp += 32 + (4 if xpsr & (1 << 9) else 0)
        uc.reg_write(A.UC_ARM_REG_IPSR, 0)
        uc.reg_write(A.UC_ARM_REG_XPSR, xpsr & ~((1 << 9) | 0x1FF))
        uc.reg_write(sp_reg, sp)
        uc.reg_write(A.UC_ARM_REG_SP, sp)
        self.pc = words[6] | 1
        self.in_irq = None

    # ---- peripheral bus (shared) and System Control Space (private) ----
    def _pread(self, uc, offset, size, base) -> int:
        return self.bus.read(self.which, base + offset, size)

    def _pwrite(self, uc, offset, size, value, base) -> None:
        self.bus.write(self.which, base + offset, size, value)

    def _sread(self, uc, offset, size, base) -> int:
        addr = base + offset
        word = addr & ~3
        if word == DWT_CYCCNT:
            value = self.instructions & 0xFFFFFFFF
        elif word == SYST_CVR:
            reload = self.scs.get(SYST_RVR, 0) + 1
            value = (reload - 1 - self.instructions % reload) if self.scs.get(SYST_CSR, 0) & 1 else 0
        else:
            value = self.scs.get(word, 0)
        return (value >> ((addr & 3) * 8)) & ((1 << (size * 8)) - 1)

    def _swrite(self, uc, offset, size, value, base) -> None:
        addr = base + offset
        word = addr & ~3
        if size != 4:
            shift = (addr & 3) * 8
            mask = ((1 << (size * 8)) - 1) << shift
            value = (self.scs.get(word, 0) & ~mask) | ((value << shift) & mask)
        if word == AIRCR and (value >> 16) == 0x05FA and value & 4:
            self.on_reset_request()
            uc.emu_stop()
            return
        if NVIC_ISER <= word < NVIC_ISER + 4 * NVIC_WORDS:  # write-one-to-set (NVIC_EnableIRQ)
            self.scs[word] = self.scs.get(word, 0) | value
            return
        if NVIC_ICER <= word < NVIC_ICER + 4 * NVIC_WORDS:  # write-one-to-clear the enable bits
            iser = word - NVIC_ICER + NVIC_ISER
            self.scs[iser] = self.scs.get(iser, 0) & ~value
            self.scs[word] = 0
            return
        if word in (CFSR, HFSR):  # write-one-to-clear
            self.scs[word] = self.scs.get(word, 0) & ~value
            return
        self.scs[word] = value & 0xFFFFFFFF
