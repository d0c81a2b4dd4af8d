// Core 1 of the virtual RP2040, as part of fwtool's pinned patch set over rp2040js (patches.mjs self-tests it).
//
// rp2040js 1.4.1 emulates core 0 only. What its maintainers listed for core 1 (wokwi/rp2040js#109) and the pitfall
// named in the review of wokwi/rp2040js#112 (the cores drift apart unless stepped in lock-step by cycles) are
// handled here, with rp2040js's own classes, never a CPU of fwtool's:
//  a. a second instance of rp2040js's CortexM0Core. It sees the chip through a per-core view of the RP2040 object
//     (Object.create: memory, peripherals, flash, SRAM and clock are the same objects) whose own `core`, `ppb` and
//     `sio` are core 1's. So NVIC state (it lives in CortexM0Core), VTOR, SysTick (a second RPPPB) and the SIO
//     registers that are per core on the chip come out per core without touching upstream's code paths.
//  b. SIO per core (a subclass of rp2040js's RPSIO per core): CPUID, the hardware divider and both interpolators
//     are per core (each instance has its own); GPIO and the 32 spinlocks are shared (core 1's instance forwards
//     those offsets to core 0's). The inter-core FIFOs, 8 words each way, with FIFO_ST VLD/RDY/WOF/ROE (WOF/ROE
//     sticky, cleared by writing FIFO_ST) and SIO_IRQ_PROC0/1 = VLD|WOF|ROE of that core's FIFO_ST.
//  c. interrupts: every peripheral line reaches both NVICs (each core's enable mask decides), except SIO_IRQ_PROC0
//     (IRQ 15), core 0 only, and SIO_IRQ_PROC1 (IRQ 16), core 1 only.
//  d. SEV: rp2040js's SEV only logs 'SEV' through core.logger; the per-core logger turns that into the event
//     signal to both cores (a WFE-sleeping core wakes), as the SDK's FIFO and launch code rely on.
//  e. PSM FRCE_OFF.proc1 (what multicore_reset_core1 writes): set = core 1 held in reset; cleared = core 1 leaves
//     reset with a fresh CortexM0Core and NVIC, VTOR 0, and runs the real B1 bootrom's core-1 path (its launch
//     handshake with multicore_launch_core1 over the FIFO runs unchanged).
//  f. lock-step: LockStep.step() runs one instruction of the runnable core that is furthest behind in time, after
//     advancing the simulation clock to that instruction's start, so the cores never drift apart by more than one
//     instruction. A core in WFI/WFE does not run; when it wakes it resumes at the current time. The cycle time
//     follows clk_sys (rp2040js derives RP2040.clkSys from the PLL/CLOCKS registers the firmware programs).
// Not modelled (the emulator's honest limits): bus contention between the cores, XIP cache misses, IO_BANK0's
// PROC1_INTE (GPIO interrupts reach both cores through the one upstream line), per-core NMI masks.

export const SIO_IRQ_PROC0 = 15;
export const SIO_IRQ_PROC1 = 16;
const CPUID = 0x000;
const FIFO_ST = 0x050;
const FIFO_WR = 0x054;
const FIFO_RD = 0x058;
const PER_CORE_FIRST = 0x060; // divider (0x060-0x07c) and interpolators (0x080-0x0fc)
const PER_CORE_LAST = 0x0fc;
const FIFO_DEPTH = 8;
const PSM_FRCE_OFF = 0x04;
const PSM_PROC1 = 1 << 16;
const ST_VLD = 1, ST_RDY = 2, ST_WOF = 4, ST_ROE = 8;

function makeSioClass(RPSIO) {
  return class DualCoreSIO extends RPSIO {
    constructor(rp2040, coreIndex, dual) {
      super(rp2040);
      this.coreIndex = coreIndex;
      this.dual = dual;
    }

    fifoStatus() {
      const d = this.dual;
      const rx = d.fifos[1 - this.coreIndex], tx = d.fifos[this.coreIndex];
      return (rx.length ? ST_VLD : 0) | (tx.length < FIFO_DEPTH ? ST_RDY : 0) | d.sticky[this.coreIndex];
    }

    readUint32(offset) {
      if (offset === CPUID) return this.coreIndex;
      if (offset === FIFO_ST) return this.fifoStatus();
      if (offset === FIFO_RD) {
        const d = this.dual;
        const rx = d.fifos[1 - this.coreIndex];
        const value = rx.length ? rx.shift() : (d.sticky[this.coreIndex] |= ST_ROE, 0);
        d.updateFifoIrqs();
        return value >>> 0;
      }
      if (this.coreIndex !== 0 && !(offset >= PER_CORE_FIRST && offset <= PER_CORE_LAST)) {
        return this.dual.sio0.readUint32(offset); // shared: GPIO, spinlocks (through core 0's, possibly patched, SIO)
      }
      return super.readUint32(offset);
    }

    writeUint32(offset, value) {
      if (offset === FIFO_WR) {
        const d = this.dual;
        const tx = d.fifos[this.coreIndex];
        if (tx.length < FIFO_DEPTH) tx.push(value >>> 0);
        else d.sticky[this.coreIndex] |= ST_WOF;
        d.updateFifoIrqs();
        return;
      }
      if (offset === FIFO_ST) { // WOF/ROE are write-clear
        this.dual.sticky[this.coreIndex] &= ~(value & (ST_WOF | ST_ROE));
        this.dual.updateFifoIrqs();
        return;
      }
      if (offset === CPUID || offset === FIFO_RD) return; // read-only
      if (this.coreIndex !== 0 && !(offset >= PER_CORE_FIRST && offset <= PER_CORE_LAST)) {
        this.dual.sio0.writeUint32(offset, value);
        return;
      }
      super.writeUint32(offset, value);
    }
  };
}

function makeCoreClass(CortexM0Core) {
  return class DualCoreM0 extends CortexM0Core {
    constructor(rp2040, dual) {
      super(rp2040);
      this.dual = dual;
      const core = this;
      this.eventLogger = {
        get base() { return core.rp2040.logger; },
        debug(c, m) { this.base.debug(c, m); },
        info(c, m) {
          if (m === 'SEV') dual.sev();
          else this.base.info(c, m);
        },
        warn(c, m) { this.base.warn(c, m); },
        error(c, m) { this.base.error(c, m); },
      };
    }

    get logger() { return this.eventLogger; }
  };
}

function makePsmClass(RPPSM) {
  return class DualCorePSM extends RPPSM {
    constructor(rp2040, name, dual) {
      super(rp2040, name);
      this.dual = dual;
    }

    writeUint32(offset, value) {
      const before = this.frceOff & PSM_PROC1;
      super.writeUint32(offset, value);
      if (offset !== PSM_FRCE_OFF) return;
      const after = this.frceOff & PSM_PROC1;
      if (after && !before) this.dual.holdCore1();
      if (!after && before) this.dual.releaseCore1();
    }
  };
}

/** Install core 1 on a freshly made rp2040js RP2040 (before loadBootrom). Returns the LockStep that runs both. */
export function installCore1(mcu, { running = true } = {}) {
  const CortexM0Core = Object.getPrototypeOf(mcu.core).constructor;
  const RPSIO = mcu.sio.constructor;
  const RPPPB = mcu.ppb.constructor;
  const RPPSM = mcu.peripherals[0x40010].constructor;
  const DualCoreSIO = makeSioClass(RPSIO);
  const DualCoreM0 = makeCoreClass(CortexM0Core);
  const DualCorePSM = makePsmClass(RPPSM);

  const view1 = Object.create(mcu); // core 1's view of the chip: same memories and peripherals
  const dual = new LockStep(mcu, view1);
  dual.makeCore = (view) => new DualCoreM0(view, dual);
  mcu.core = dual.makeCore(mcu);
  dual.cores[0] = mcu.core;
  view1.core = dual.makeCore(view1);
  dual.cores[1] = view1.core;
  view1.ppb = new RPPPB(view1, 'PPB1'); // SysTick and NVIC registers of core 1
  mcu.addClockListener((hz) => { view1.ppb.systickTimer.frequency = hz; });
  dual.sio0 = mcu.sio = new DualCoreSIO(mcu, 0, dual);
  view1.sio = new DualCoreSIO(view1, 1, dual);
  const psm = mcu.peripherals[0x40010];
  mcu.peripherals[0x40010] = new DualCorePSM(mcu, psm.name, dual);
  mcu.setInterrupt = (irq, value) => { // c: route each line to the NVIC(s) it reaches
    if (irq !== SIO_IRQ_PROC1) dual.cores[0].setInterrupt(irq, value);
    if (irq !== SIO_IRQ_PROC0) dual.cores[1].setInterrupt(irq, value);
  };
  const reset = mcu.reset.bind(mcu);
  mcu.reset = () => { // RP2040.reset() (loadBootrom calls it): both cores from the bootrom's reset vector
    reset();
    dual.cores[1].reset();
  };
  mcu.step = () => dual.step();
  dual.core1Running = running;
  return dual;
}

export class LockStep {
  constructor(mcu, view1) {
    this.mcu = mcu;
    this.view1 = view1;
    this.clock = mcu.clock;
    this.cores = [null, null];
    this.next = [0, 0]; // nanos at which each core's next instruction starts
    this.cycles = [0, 0]; // cycles each core executed (per-core load; waiting cores do not count)
    this.instructions = 0;
    this.fifos = [[], []]; // [0]: core 0 -> core 1, [1]: core 1 -> core 0
    this.sticky = [0, 0]; // WOF|ROE per core
    this.core1Running = true;
    this.resets = 0;
    this.sio0 = null;
  }

  get cycleNanos() { return 1e9 / this.mcu.clkSys; }

  updateFifoIrqs() {
    const st0 = this.sio0.fifoStatus(), st1 = this.view1.sio.fifoStatus();
    this.cores[0].setInterrupt(SIO_IRQ_PROC0, (st0 & (ST_VLD | ST_WOF | ST_ROE)) !== 0);
    this.cores[1].setInterrupt(SIO_IRQ_PROC1, (st1 & (ST_VLD | ST_WOF | ST_ROE)) !== 0);
  }

  sev() { // the event signal reaches both cores (ARMv6-M: SEV also sets the local event register)
    for (let i = 0; i < 2; i++) {
      const core = this.cores[i];
      if (i === 1 && !this.core1Running) continue;
      if (core.waiting) core.waiting = false; // WFE returns; the event is consumed by the wake-up
      else core.eventRegistered = true;
    }
  }

  holdCore1() {
    this.core1Running = false;
  }

  releaseCore1() {
    const fresh = this.makeCore(this.view1);
    this.cores[1] = this.view1.core = fresh;
    fresh.reset(); // VTOR 0: SP and PC from the bootrom's vector table
    this.core1Running = true;
    this.next[1] = this.clock.nanos;
    this.resets++;
    this.updateFifoIrqs();
  }

  /** Any core able to run, or an alarm to wait for. False: both sleep with nothing scheduled (idle). */
  get idle() {
    const c1 = this.core1Running && !this.cores[1].waiting;
    return this.cores[0].waiting && !c1 && this.clock.nanosToNextAlarm <= 0;
  }

  /** One instruction of the core furthest behind (or, both sleeping, a jump to the next alarm). */
  step() {
    const { clock, cores, next } = this;
    const now = clock.nanos;
    const r0 = !cores[0].waiting;
    const r1 = this.core1Running && !cores[1].waiting;
    let i;
    if (r0 && r1) {
      if (next[0] < now) next[0] = now;
      if (next[1] < now) next[1] = now;
      i = next[1] < next[0] ? 1 : 0;
    } else if (r0) {
      i = 0;
      if (next[0] < now) next[0] = now;
    } else if (r1) {
      i = 1;
      if (next[1] < now) next[1] = now;
    } else {
      const nanos = clock.nanosToNextAlarm;
      if (nanos <= 0) return false;
      clock.tick(nanos);
      return true;
    }
    const t = next[i];
    if (t > now) clock.tick(t - now);
    const delta = cores[i].executeInstruction();
    next[i] = t + delta * (1e9 / this.mcu.clkSys);
    this.cycles[i] += delta;
    this.instructions++;
    return true;
  }
}

// ---- self-test (run by patches.mjs --self-test): upstream facts the patch relies on, then each behaviour ----------
const SIO = 0xd0000000;
const RAM = 0x20000000;
const THUMB = { ADDS_R0_1: 0x3001, LDR_R1_R2: 0x6811, WFE: 0xbf20, SEV: 0xbf40, WFI: 0xbf30, B_BACK_2: 0xe7fd,
  B_SELF: 0xe7fe };

function quietChip(rp) {
  const mcu = new rp.RP2040();
  mcu.logger = { debug() {}, info() {}, warn() {}, error() {} };
  return mcu;
}

function program(mcu, addr, halfwords) {
  halfwords.forEach((h, i) => mcu.writeUint16(addr + 2 * i, h));
}

export function selfTestCore1(rp, bootromWords = null) {
  const problems = [];
  const check = (ok, what) => { if (!ok) problems.push(`core 1: ${what}`); };
  // upstream (pinned) facts
  const up = quietChip(rp);
  check(Object.getPrototypeOf(up.core).constructor.name === 'CortexM0Core', 'mcu.core is no longer a CortexM0Core');
  check(up.sio.constructor.name === 'RPSIO' && up.ppb.constructor.name === 'RPPPB', 'RPSIO/RPPPB renamed');
  check(up.peripherals[0x40010].constructor.name === 'RPPSM', 'PSM is no longer RPPSM');
  check(!('cores' in up) && up.readUint32(SIO) === 0, 'upstream has more than one core or a CPUID now (re-check a)');
  check(up.sio.readUint32(FIFO_ST) === 0xffffffff, 'upstream SIO models FIFO_ST now (re-check b)');
  let sevLogged = false;
  up.logger = { debug() {}, info(c, m) { if (m === 'SEV') sevLogged = true; }, warn() {}, error() {} };
  program(up, RAM, [THUMB.SEV]);
  up.core.PC = RAM;
  up.core.executeInstruction();
  check(sevLogged, 'upstream SEV no longer logs "SEV" through core.logger (re-check d)');
  for (const f of ['pendingInterrupts', 'enabledInterrupts', 'interruptPriorities', 'VTOR', 'waiting',
    'eventRegistered']) check(f in up.core, `CortexM0Core.${f} is gone`);
  check(typeof up.clkSys === 'number' && typeof up.addClockListener === 'function', 'RP2040.clkSys/addClockListener gone');

  // patched chip
  const mcu = quietChip(rp);
  const dual = installCore1(mcu);
  const v1 = dual.view1;
  const [c0, c1] = dual.cores;
  check(mcu.readUint32(SIO + CPUID) === 0 && v1.readUint32(SIO + CPUID) === 1, 'CPUID is not 0/1 per core');
  check(c1 !== c0 && Object.getPrototypeOf(Object.getPrototypeOf(c1)).constructor.name === 'CortexM0Core',
    'core 1 is not a second rp2040js CortexM0Core');
  // FIFOs both ways, status bits, IRQs
  check(mcu.readUint32(SIO + FIFO_ST) === ST_RDY && v1.readUint32(SIO + FIFO_ST) === ST_RDY, 'FIFO_ST after reset');
  mcu.writeUint32(SIO + FIFO_WR, 0x11);
  check((v1.readUint32(SIO + FIFO_ST) & ST_VLD) && !(mcu.readUint32(SIO + FIFO_ST) & ST_VLD), 'VLD not on core 1 only');
  check(!!(c1.pendingInterrupts & (1 << SIO_IRQ_PROC1)) && !(c0.pendingInterrupts & (1 << SIO_IRQ_PROC1)),
    'SIO_IRQ_PROC1 not raised on core 1 only');
  check(v1.readUint32(SIO + FIFO_RD) === 0x11, 'core 1 did not pop what core 0 pushed');
  check(!(c1.pendingInterrupts & (1 << SIO_IRQ_PROC1)), 'SIO_IRQ_PROC1 still raised on an empty FIFO');
  v1.writeUint32(SIO + FIFO_WR, 0x22);
  check(!!(c0.pendingInterrupts & (1 << SIO_IRQ_PROC0)) && !(c1.pendingInterrupts & (1 << SIO_IRQ_PROC0)),
    'SIO_IRQ_PROC0 not raised on core 0 only');
  check(mcu.readUint32(SIO + FIFO_RD) === 0x22, 'core 0 did not pop what core 1 pushed');
  for (let i = 0; i < FIFO_DEPTH; i++) mcu.writeUint32(SIO + FIFO_WR, i);
  check(!(mcu.readUint32(SIO + FIFO_ST) & ST_RDY), 'RDY still set with 8 words queued');
  mcu.writeUint32(SIO + FIFO_WR, 99);
  check(!!(mcu.readUint32(SIO + FIFO_ST) & ST_WOF), 'WOF not set by a write to a full FIFO');
  check(!!(c0.pendingInterrupts & (1 << SIO_IRQ_PROC0)), 'WOF does not raise SIO_IRQ_PROC0');
  const popped = [];
  for (let i = 0; i < FIFO_DEPTH; i++) popped.push(v1.readUint32(SIO + FIFO_RD));
  check(popped.join() === '0,1,2,3,4,5,6,7', `FIFO order/depth wrong: ${popped}`);
  v1.readUint32(SIO + FIFO_RD);
  check(!!(v1.readUint32(SIO + FIFO_ST) & ST_ROE), 'ROE not set by a read of an empty FIFO');
  mcu.writeUint32(SIO + FIFO_ST, 0xff);
  v1.writeUint32(SIO + FIFO_ST, 0xff);
  check(mcu.readUint32(SIO + FIFO_ST) === ST_RDY && v1.readUint32(SIO + FIFO_ST) === ST_RDY, 'WOF/ROE not cleared');
  check(!(c0.pendingInterrupts & (1 << SIO_IRQ_PROC0)) && !(c1.pendingInterrupts & (1 << SIO_IRQ_PROC1)),
    'FIFO IRQs still raised after clearing');
  // divider and interpolators per core, spinlocks shared
  mcu.writeUint32(SIO + 0x060, 100); mcu.writeUint32(SIO + 0x064, 7); // core 0: 100 / 7
  v1.writeUint32(SIO + 0x060, 50); v1.writeUint32(SIO + 0x064, 5); // core 1: 50 / 5
  check((mcu.readUint32(SIO + 0x070) >>> 0) === 14 && (mcu.readUint32(SIO + 0x074) >>> 0) === 2 &&
    (v1.readUint32(SIO + 0x070) >>> 0) === 10,
    'hardware divider is not per core');
  mcu.writeUint32(SIO + 0x080, 0x1234); // INTERP0_ACCUM0
  check(v1.readUint32(SIO + 0x080) === 0 && mcu.readUint32(SIO + 0x080) === 0x1234, 'interpolator 0 not per core');
  v1.writeUint32(SIO + 0x0c0, 7); // INTERP1_ACCUM0
  check(mcu.readUint32(SIO + 0x0c0) === 0, 'interpolator 1 not per core');
  check(mcu.readUint32(SIO + 0x114) !== 0, 'core 0 could not claim spinlock 5');
  check(v1.readUint32(SIO + 0x114) === 0, 'core 1 claimed spinlock 5 held by core 0 (not shared)');
  check((v1.readUint32(SIO + 0x05c) & (1 << 5)) !== 0, 'SPINLOCK_ST not shared');
  v1.writeUint32(SIO + 0x114, 0);
  check(mcu.readUint32(SIO + 0x114) !== 0, 'spinlock released by core 1 not free for core 0');
  mcu.writeUint32(SIO + 0x010, 1 << 25); // GPIO_OUT shared
  check(v1.readUint32(SIO + 0x010) === 1 << 25, 'GPIO_OUT not shared');
  // NVIC and SysTick per core; interrupt routing
  v1.writeUint32(0xe000e100, 1 << 3);
  check(c1.enabledInterrupts === 1 << 3 && c0.enabledInterrupts === 0, 'NVIC ISER not per core');
  check(mcu.readUint32(0xe000e100) === 0 && v1.readUint32(0xe000e100) === 1 << 3, 'NVIC reads not per core');
  v1.writeUint32(0xe000e014, 1000); // SYST_RVR
  check(v1.readUint32(0xe000e014) === 1000 && mcu.readUint32(0xe000e014) !== 1000, 'SysTick not per core');
  mcu.setInterrupt(0, true); // TIMER_0 reaches both NVICs
  check(!!(c0.pendingInterrupts & 1) && !!(c1.pendingInterrupts & 1), 'TIMER_0 not routed to both cores');
  mcu.setInterrupt(0, false);
  // core 1 takes an interrupt from the FIFO (SIO_IRQ_PROC1) through its own vector table
  const vt = RAM + 0x1000, handler = RAM + 0x2000;
  mcu.writeUint32(vt + 4 * (16 + SIO_IRQ_PROC1), handler | 1);
  program(mcu, RAM + 0x100, [THUMB.B_SELF]);
  program(mcu, handler, [THUMB.B_SELF]);
  c1.VTOR = vt; c1.SP = RAM + 0x3000; c1.PC = RAM + 0x100;
  c0.PC = RAM + 0x100; c0.SP = RAM + 0x3800;
  v1.writeUint32(0xe000e100, 1 << SIO_IRQ_PROC1);
  mcu.writeUint32(SIO + FIFO_WR, 0x55);
  for (let i = 0; i < 8; i++) dual.step();
  check(c1.IPSR === 16 + SIO_IRQ_PROC1 && (c1.PC & ~1) === handler, `core 1 did not take SIO_IRQ_PROC1 (IPSR ${c1.IPSR})`);
  check(c0.IPSR === 0, 'core 0 took core 1\'s FIFO interrupt');
  v1.readUint32(SIO + FIFO_RD);
  // SEV wakes the other core from WFE
  const fresh = quietChip(rp);
  const d2 = installCore1(fresh);
  program(fresh, RAM, [THUMB.WFE, THUMB.WFE, THUMB.B_SELF]);
  program(fresh, RAM + 0x40, [THUMB.WFI, THUMB.SEV, THUMB.B_SELF]);
  const [e0, e1] = d2.cores;
  e1.PC = RAM; e1.SP = RAM + 0x3000; e0.PC = RAM + 0x40; e0.SP = RAM + 0x3800;
  e1.eventRegistered = false;
  for (let i = 0; i < 6; i++) d2.step();
  check(e1.waiting && e0.waiting, 'WFE/WFI did not put both cores to sleep');
  check(d2.idle && !d2.step(), 'both cores asleep with nothing scheduled is not idle');
  e0.waiting = false; // let core 0 run its SEV
  d2.step();
  check(!e1.waiting && e1.PC === RAM + 2, 'SEV on core 0 did not wake core 1 from WFE');
  d2.step();
  check(e1.waiting && e1.PC === RAM + 4, 'the wake-up did not consume the event (the next WFE must sleep)');
  // lock-step: 1-cycle ADDS loop on core 0, 2-cycle LDR loop on core 1; they stay within one instruction in time
  const ls = quietChip(rp);
  const d3 = installCore1(ls);
  program(ls, RAM, [THUMB.ADDS_R0_1, THUMB.B_BACK_2]);
  program(ls, RAM + 0x40, [THUMB.LDR_R1_R2, THUMB.LDR_R1_R2, THUMB.LDR_R1_R2, 0xe7fb]);
  const [l0, l1] = d3.cores;
  l0.PC = RAM; l1.PC = RAM + 0x40; l1.registers[2] = RAM + 0x800;
  for (let i = 0; i < 200000; i++) d3.step();
  const skewCycles = Math.abs(d3.next[0] - d3.next[1]) / d3.cycleNanos;
  check(skewCycles <= 3, `cores drifted apart by ${skewCycles} cycles in lock-step`);
  check(Math.abs(d3.cycles[0] - d3.cycles[1]) <= 3 && d3.cycles[0] > 100000,
    `per-core cycles diverged: ${d3.cycles}`);
  check(Math.abs(ls.clock.nanos - d3.cycles[0] * d3.cycleNanos) <= 4 * d3.cycleNanos, 'clock does not follow the cores');
  ls.clkSys = 200e6; // the time base follows clk_sys
  const t0 = ls.clock.nanos, k0 = d3.cycles[0];
  for (let i = 0; i < 30000; i++) d3.step();
  const nsPerCycle = (ls.clock.nanos - t0) / (d3.cycles[0] - k0);
  check(Math.abs(nsPerCycle - 5) < 0.01, `cycle time at 200 MHz is ${nsPerCycle} ns, expected 5`);
  // PSM: FRCE_OFF.proc1 holds core 1 in reset; clearing it restarts core 1 at the bootrom's reset vector
  const p = quietChip(rp);
  const d4 = installCore1(p);
  if (bootromWords) p.loadBootrom(bootromWords);
  p.writeUint32(0x40010000 + 0x2000 + PSM_FRCE_OFF, PSM_PROC1); // atomic set alias, as multicore_reset_core1
  check(!d4.core1Running && (p.readUint32(0x40010000 + PSM_FRCE_OFF) & PSM_PROC1), 'FRCE_OFF.proc1 does not hold core 1');
  const old = d4.cores[1];
  p.writeUint32(0x40010000 + 0x3000 + PSM_FRCE_OFF, PSM_PROC1); // atomic clear alias
  check(d4.core1Running && d4.cores[1] !== old && d4.resets === 1, 'clearing FRCE_OFF.proc1 does not restart core 1');
  check(d4.cores[1].PC === (p.readUint32(4) & ~1) && d4.cores[1].VTOR === 0, 'core 1 does not restart at the reset vector');
  if (bootromWords) problems.push(...handshake(p, d4));
  return problems;
}

/** The SDK's multicore_reset_core1 + multicore_launch_core1_raw core-0 side, against the real bootrom on core 1. */
function handshake(mcu, dual) {
  const problems = [];
  const c0 = dual.cores[0];
  program(mcu, RAM + 0x3f00, [THUMB.WFI, THUMB.B_SELF]);
  c0.PC = RAM + 0x3f00; // core 0 asleep: only core 1 (the bootrom) runs; this function plays core 0's part
  const st = () => mcu.readUint32(SIO + FIFO_ST);
  const pop = () => {
    for (let i = 0; i < 200000 && !(st() & ST_VLD); i++) dual.step();
    return st() & ST_VLD ? mcu.readUint32(SIO + FIFO_RD) : null;
  };
  mcu.writeUint32(0x40012000 + PSM_FRCE_OFF, PSM_PROC1);
  mcu.writeUint32(0x40013000 + PSM_FRCE_OFF, PSM_PROC1);
  const first = pop();
  if (first !== 0) problems.push(`core 1: the bootrom did not push 0 after reset (got ${first})`);
  const entry = RAM + 0x2801, sp = RAM + 0x3c00, vt = RAM + 0x1000;
  const seq = [0, 0, 1, vt, sp, entry];
  let s = 0;
  for (let tries = 0; s < seq.length && tries < 20; tries++) {
    if (!seq[s]) {
      while (st() & ST_VLD) mcu.readUint32(SIO + FIFO_RD);
      dual.sev();
    }
    mcu.writeUint32(SIO + FIFO_WR, seq[s]);
    dual.sev();
    const got = pop();
    s = got === seq[s] ? s + 1 : 0;
  }
  if (s !== seq.length) problems.push('core 1: the B1 bootrom launch handshake did not complete');
  program(mcu, entry & ~1, [THUMB.B_SELF]);
  for (let i = 0; i < 100; i++) dual.step();
  const c1 = dual.cores[1];
  if ((c1.PC & ~1) !== (entry & ~1) || c1.VTOR !== vt || c1.SP !== sp) {
    problems.push(`core 1: after the handshake pc 0x${c1.PC.toString(16)} vtor 0x${c1.VTOR.toString(16)} ` +
      `sp 0x${c1.SP.toString(16)}, expected the launched entry/vector table/stack`);
  }
  return problems;
}
