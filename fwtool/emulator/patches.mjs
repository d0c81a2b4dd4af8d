// Every runtime patch fwtool applies to rp2040js internals, in one place (tests/test_virtual_flash.py runs
// `node patches.mjs --self-test` and fails loudly when an rp2040js upgrade changes what is patched here).
//
// Pinned: rp2040js 1.4.1 (fwtool/emulator/node.py RP2040JS_VERSION). What rp2040js lacks for a power-on boot and
// for flashing through the real bootrom (docs/notes/rp2040-flashing.md §4), and what replaces it:
//  1. SSI (0x18000000) is a stub with no flash behind it -> FlashSSI: standard and dual/quad (EEPROM-read) frames
//     shifted through the SPI NOR model of flashchip.mjs; chip select from the SSI or from IO_QSPI's SS override.
//  2. IO_QSPI (0x40018000) is unimplemented (reads 0xffffffff) -> IoQspi: CTRL registers kept, SS OUTOVER drives
//     the flash chip select.
//  3. The CSn strap the bootrom samples at reset (SIO GPIO_HI_IN bit 1): high = boot from flash, low = BOOTSEL.
//  4. VREG_AND_CHIP_RESET (0x40064000) is unimplemented: CHIP_RESET reads 0xffffffff, so the bootrom's reset
//     handler sees PSM_RESTART_FLAG ("rescue") and halts -> a register file that reads 0 (no rescue, no reset cause).
//  5. USB device controller: DPRAMUpdated completes buffers at once, always in buffer 0, with
//     BUFF_CPU_SHOULD_HANDLE stuck at 0 and no STALL -> the buffer engine in usbhost.mjs takes over DPRAMUpdated;
//     BUFF_CPU_SHOULD_HANDLE reads the engine's value; BUFF_STATUS clears wake the engine.
//  6. No core 1 -> core1.mjs: a second rp2040js CortexM0Core with its own NVIC/SysTick/SIO view, the inter-core
//     FIFOs and IRQs, per-core divider/interpolators, shared spinlocks, PSM reset of core 1, SEV between the cores,
//     lock-step by cycles (installCore1; runner.mjs installs it on every virtual board).
//  7. An access outside the RP2040's address map reads 0xffffffff (writes are dropped) with a log line, and the
//     core goes on -> installBusFaults: a bus error as the chip's bus fabric gives it (datasheet 2.2: it decodes
//     ROM 0x0, XIP 0x1, SRAM 0x2, APB 0x4, AHB-Lite 0x5, SIO 0xD and the core's PPB 0xE; every other region
//     answers with an error), which the Cortex-M0+ takes as a HardFault: the faulting instruction does not complete
//     (the registers as before it, the first faulting access counted), the stacked PC is that instruction's (or
//     the fetched address), and the core enters the HardFault vector. A fault while stacking or handling a
//     HardFault is the M0+'s lockup: the core stops and onLockup is called. Holes inside a decoded region (e.g.
//     an unmodelled peripheral) still read 0xffffffff as upstream does; unaligned accesses are not faulted.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { installCore1 } from './core1.mjs';

export const PINNED_VERSION = '1.4.1';

const SSI_KEY = 0x18000;
const IO_QSPI_KEY = 0x40018;
const VREG_KEY = 0x40064;
const SIO_GPIO_HI_IN = 0x008;
const USB_BUFF_STATUS = 0x58;
const USB_BUFF_CPU_SHOULD_HANDLE = 0x5c;

export function packageVersion(entry) {
  // entry: .../node_modules/rp2040js/dist/esm/index.js
  const pkg = path.resolve(path.dirname(entry), '..', '..', 'package.json');
  return JSON.parse(readFileSync(pkg, 'utf8')).version;
}

export function makeFlashSSI(BasePeripheral) {
  return class FlashSSI extends BasePeripheral {
    constructor(rp2040, name, chip) {
      super(rp2040, name);
      this.chip = chip;
      this.regs = new Map();
      this.rx = [];
      this.txq = []; // dual/quad: instruction + address frames waiting for the read phase
      this.pendingRx = 0; // standard-SPI EEPROM-read frames still to clock in
      this.csByForce = false; // IO_QSPI holds CS low
      this.ssiCs = false; // the SSI itself asserted CS for a transfer
    }

    get ctrlr0() { return this.regs.get(0x00) || 0; }
    get dfsBytes() { return (((this.ctrlr0 >>> 16) & 0x1f) + 1) >> 3 || 1; }
    get tmod() { return (this.ctrlr0 >>> 8) & 3; }
    get frf() { return (this.ctrlr0 >>> 21) & 3; }

    forceCs(level) { // IO_QSPI SS OUTOVER: 'low', 'high' or null (SSI controls CS)
      if (level === 'low') {
        if (!this.csByForce) this.chip.select();
        this.csByForce = true;
      } else {
        this.finishSsiTransfer();
        if (this.csByForce) this.chip.deselect();
        this.csByForce = false;
      }
      this.forced = level;
    }

    _beginSsi() {
      if (this.forced === 'high') return false;
      if (this.forced !== 'low' && !this.ssiCs) {
        this.chip.select();
        this.ssiCs = true;
      }
      return true;
    }

    finishSsiTransfer() {
      this._flushRead();
      if (this.ssiCs) {
        this.chip.deselect();
        this.ssiCs = false;
      }
    }

    _frame(value, send) {
      let out = 0;
      const n = this.dfsBytes;
      for (let i = n - 1; i >= 0; i--) out = (out << 8) | this.chip.transfer(send ? (value >>> (8 * i)) & 0xff : 0);
      return out >>> 0;
    }

    _flushRead() {
      if (this.frf !== 0 && this.txq.length) {
        const spi = this.regs.get(0xf4) || 0;
        const instL = [0, 4, 8, 16][(spi >>> 8) & 3];
        const addrBits = ((spi >>> 2) & 0xf) * 4;
        const wait = (spi >>> 11) & 0x1f;
        const q = this.txq;
        this.txq = [];
        if (this._beginSsi()) {
          let i = 0;
          if (instL) this.chip.transfer(q[i++] & 0xff);
          if (addrBits) {
            const a = q[i++] || 0;
            for (let b = addrBits / 8 - 1; b >= 0; b--) this.chip.transfer((a >>> (8 * b)) & 0xff);
          }
          const bitsPerClock = this.frf === 2 ? 4 : 2;
          for (let d = 0; d < (wait * bitsPerClock) / 8; d++) this.chip.transfer(0);
          const frames = ((this.regs.get(0x04) || 0) & 0xffff) + 1;
          for (let f = 0; f < frames && this.tmod !== 1; f++) this.rx.push(this._frame(0, false));
        }
        if (this.ssiCs) {
          this.chip.deselect();
          this.ssiCs = false;
        }
      }
      if (this.pendingRx) {
        const n = this.pendingRx;
        this.pendingRx = 0;
        for (let f = 0; f < n; f++) this.rx.push(this._frame(0, false));
      }
    }

    readUint32(offset) {
      switch (offset) {
        case 0x20: // TXFLR: frames leave the FIFO at once
          return 0;
        case 0x24: // RXFLR
          this._flushRead();
          return Math.min(this.rx.length, 16);
        case 0x28: // SR: TFE | TFNF | RFNE, never BUSY; polling it ends an SSI-driven transfer
          this.finishSsiTransfer();
          return 0x6 | (this.rx.length ? 0x8 : 0);
        case 0x58:
          return 0x51535049;
        case 0x5c:
          return 0x3430312a;
        case 0x60: {
          this._flushRead();
          return this.rx.length ? this.rx.shift() : 0;
        }
        default:
          if (offset >= 0x60 && offset < 0xf0) return this.rx.length ? this.rx.shift() : 0;
          return this.regs.get(offset) || 0;
      }
    }

    writeUint32(offset, value) {
      if (offset === 0x60 || (offset > 0x60 && offset < 0xf0)) {
        if (!(this.regs.get(0x08) & 1)) return; // SSI disabled
        if (this.frf !== 0) {
          this.txq.push(value >>> 0);
          return;
        }
        this._beginSsi(); // CS forced high: the SSI still clocks the frame, the chip just does not listen
        const got = this._frame(value, true);
        if (this.tmod === 0) this.rx.push(got);
        if (this.tmod === 3) this.pendingRx = ((this.regs.get(0x04) || 0) & 0xffff) + 1;
        if (this.rx.length > 64) this.rx.splice(0, this.rx.length - 64);
        return;
      }
      if (offset === 0x08 && !(value & 1)) { // disabling the SSI clears the FIFOs
        this.finishSsiTransfer();
        this.rx = [];
        this.txq = [];
      }
      this.regs.set(offset, value >>> 0);
    }
  };
}

export function makeIoQspi(BasePeripheral) {
  return class IoQspi extends BasePeripheral {
    constructor(rp2040, name, ssi) {
      super(rp2040, name);
      this.ssi = ssi;
      this.ctrl = new Uint32Array(6);
    }

    readUint32(offset) {
      if (offset < 0x30) {
        const pin = offset >> 3;
        if (offset & 4) return this.ctrl[pin];
        return 0; // STATUS
      }
      return 0; // interrupt registers: none raised
    }

    writeUint32(offset, value) {
      if (offset < 0x30 && offset & 4) {
        const pin = offset >> 3;
        this.ctrl[pin] = value >>> 0;
        if (pin === 1) { // SS
          const over = (value >>> 8) & 3;
          this.ssi.forceCs(over === 2 ? 'low' : over === 3 ? 'high' : null);
        }
      }
    }
  };
}

export function makeRegisterFile(BasePeripheral) {
  return class RegisterFile extends BasePeripheral {
    constructor(rp2040, name) {
      super(rp2040, name);
      this.regs = new Map();
    }

    readUint32(offset) { return this.regs.get(offset) || 0; }

    writeUint32(offset, value) { this.regs.set(offset, value >>> 0); }
  };
}

// 7: the regions the RP2040's bus fabric decodes (address >>> 28); any other region is a bus error
const DECODED_REGIONS = [0x0, 0x1, 0x2, 0x4, 0x5, 0xd, 0xe];
const EXC_HARDFAULT = 3;

/** Bus errors -> HardFault on every core made by installCore1 (its per-chip core class; upstream's is untouched:
 * a chip without core1.mjs is left as it is, false).
 * ``onLockup(core, detail)``: a fault during HardFault entry or inside the handler (the M0+ locks up). */
export function installBusFaults(core0, { onLockup = () => {} } = {}) {
  if (!core0 || !('dual' in core0)) return false; // only a core1.mjs core class: never upstream's CortexM0Core
  const proto = Object.getPrototypeOf(core0);
  const upstream = Object.getPrototypeOf(proto);
  if (Object.prototype.hasOwnProperty.call(proto, 'fwtoolBusFaults')) return true; // this chip has it already
  const decoded = new Uint8Array(16);
  for (const r of DECODED_REGIONS) decoded[r] = 1;
  const fault = (core, address, write) => {
    if (core.lockedUp) return;
    if (core.faultEntry || core.IPSR === EXC_HARDFAULT) {
      core.lockedUp = true;
      core.waiting = true; // never woken: lockup
      core.busFault = null;
      onLockup(core, `lockup: a bus error at 0x${(address >>> 0).toString(16)} while taking or handling a HardFault ` +
        `(pc 0x${(core.PC >>> 0).toString(16)})`);
      return;
    }
    if (core.busFault) return; // the first faulting access of the instruction decides
    const pc = core.PC & ~1;
    const fetch = address === pc || address === pc + 2; // executeInstruction fetches before it advances PC
    core.busFault = { address: address >>> 0, write, fetch, pc: (fetch ? pc : pc - 2) >>> 0,
      regs: Uint32Array.from(core.registers), apsr: core.APSR };
    core.interruptsUpdated = true; // taken at the start of the next executeInstruction
  };
  proto.readUint32 = function (a) {
    if (!decoded[a >>> 28]) { fault(this, a, false); return 0; }
    return this.rp2040.readUint32(a);
  };
  proto.readUint16 = function (a) {
    if (!decoded[a >>> 28]) { fault(this, a, false); return 0; }
    return this.rp2040.readUint16(a);
  };
  proto.readUint8 = function (a) {
    if (!decoded[a >>> 28]) { fault(this, a, false); return 0; }
    return this.rp2040.readUint8(a);
  };
  proto.writeUint32 = function (a, v) {
    if (!decoded[a >>> 28]) fault(this, a, true);
    else this.rp2040.writeUint32(a, v);
  };
  proto.writeUint16 = function (a, v) {
    if (!decoded[a >>> 28]) fault(this, a, true);
    else this.rp2040.writeUint16(a, v);
  };
  proto.writeUint8 = function (a, v) {
    if (!decoded[a >>> 28]) fault(this, a, true);
    else this.rp2040.writeUint8(a, v);
  };
  proto.checkForInterrupts = function () {
    if (this.lockedUp) return false;
    const f = this.busFault;
    if (!f) return upstream.checkForInterrupts.call(this);
    this.busFault = null;
    this.registers.set(f.regs); // the faulting instruction did not happen
    this.APSR = f.apsr;
    this.PC = f.pc;
    this.faultEntry = true;
    this.exceptionEntry(EXC_HARDFAULT);
    this.faultEntry = false;
    this.busFaults = (this.busFaults || 0) + 1;
    this.lastBusFault = f;
    return true;
  };
  proto.fwtoolBusFaults = true;
  return true;
}

/** Apply every patch to one emulated chip. Returns the parts fwtool talks to. */
export function applyPatches(rp, mcu, chip, { bootsel = false, engine = null, onLockup } = {}) {
  installBusFaults(mcu.core, { onLockup }); // 7 (a no-op when runner.mjs installed it already)
  const FlashSSI = makeFlashSSI(rp.BasePeripheral);
  const IoQspi = makeIoQspi(rp.BasePeripheral);
  const ssi = new FlashSSI(mcu, 'SSI', chip);
  mcu.peripherals[SSI_KEY] = ssi; // 1
  mcu.peripherals[IO_QSPI_KEY] = new IoQspi(mcu, 'IO_QSPI_BASE', ssi); // 2
  mcu.peripherals[VREG_KEY] = new (makeRegisterFile(rp.BasePeripheral))(mcu, 'VREG_AND_CHIP_RESET_BASE'); // 4
  const sioRead = mcu.sio.readUint32.bind(mcu.sio); // 3
  mcu.sio.readUint32 = (offset) => {
    if (offset === SIO_GPIO_HI_IN) return (sioRead(offset) & ~2) | (bootsel ? 0 : 2);
    return sioRead(offset);
  };
  if (engine) { // 5
    const usb = mcu.usbCtrl;
    usb.DPRAMUpdated = (offset, value) => engine.dpramUpdated(offset, value);
    const usbRead = usb.readUint32.bind(usb);
    usb.readUint32 = (offset) => (offset === USB_BUFF_CPU_SHOULD_HANDLE ? engine.shouldHandle : usbRead(offset));
    const usbWrite = usb.writeUint32.bind(usb);
    usb.writeUint32 = (offset, value) => {
      usbWrite(offset, value);
      if (offset === USB_BUFF_STATUS) engine.kick();
    };
  }
  return { ssi };
}

/** Patch 7's self test: upstream's behaviour, then a faulting LDR, STR and fetch on a patched chip. */
function selfTestBusFaults(rp) {
  const problems = [];
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const stock = new rp.RP2040();
  stock.logger = quiet;
  if (stock.core.readUint32(0x30000000) !== 0xffffffff) problems.push('upstream reads of 0x30000000 changed (re-check patch 7)');
  const RAM = 0x20000000, VT = RAM + 0x100, HANDLER = RAM + 0x200, CODE = RAM + 0x300, STACK = RAM + 0x1000;
  const run = (program, setup) => {
    const mcu = new rp.RP2040();
    mcu.logger = quiet;
    const dual = installCore1(mcu, { running: false });
    let locked = null;
    installBusFaults(mcu.core, { onLockup: (c, d) => { locked = d; } });
    const core = mcu.core;
    mcu.writeUint32(VT + 4 * EXC_HARDFAULT, HANDLER | 1);
    mcu.writeUint16(HANDLER, 0xe7fe); // b . (the handler spins)
    program.forEach((op, i) => mcu.writeUint16(CODE + 2 * i, op));
    core.VTOR = VT;
    core.SP = STACK;
    core.PC = CODE;
    setup(core);
    for (let i = 0; i < program.length + 2; i++) dual.step();
    const frame = [];
    for (let i = 0; i < 8; i++) frame.push(mcu.readUint32(core.SP + 4 * i));
    return { core, frame, locked };
  };
  // ldr r0, [r1] with r1 = 0x30000000, r0 = 0x1234: HardFault, stacked pc = the ldr, r0 untouched
  const ld = run([0x6808, 0x46c0], (c) => { c.registers[0] = 0x1234; c.registers[1] = 0x30000000; });
  if (ld.core.IPSR !== EXC_HARDFAULT) problems.push(`patched: a load from 0x30000000 did not enter HardFault (IPSR ${ld.core.IPSR})`);
  if (ld.frame[6] !== CODE) problems.push(`patched: stacked pc 0x${ld.frame[6].toString(16)}, expected the ldr at 0x${CODE.toString(16)}`);
  if (ld.frame[0] !== 0x1234) problems.push('patched: the faulting ldr changed r0');
  if ((ld.core.PC & ~1) !== HANDLER) problems.push('patched: the core is not in the HardFault handler');
  // str r0, [r1] to 0xf0000000: a fault too, and the write is dropped
  const st = run([0x6008, 0x46c0], (c) => { c.registers[1] = 0xf0000000; });
  if (st.core.IPSR !== EXC_HARDFAULT || st.frame[6] !== CODE) problems.push('patched: a store to 0xf0000000 did not fault at the str');
  // blx r1 to 0x30000000: the fetch faults, stacked pc = 0x30000000, lr = after the blx
  const fx = run([0x4788, 0x46c0], (c) => { c.registers[1] = 0x30000001; });
  if (fx.frame[6] !== 0x30000000 || fx.frame[5] !== ((CODE + 2) | 1)) {
    problems.push(`patched: a fetch from 0x30000000 stacked pc 0x${fx.frame[6].toString(16)} lr 0x${fx.frame[5].toString(16)}`);
  }
  // a good load still works: ldr r0, [r1] from SRAM
  const ok = run([0x6808, 0x46c0], (c) => { c.registers[1] = STACK - 0x800; c.rp2040.writeUint32(STACK - 0x800, 0xcafe); });
  if (ok.core.IPSR !== 0 || ok.core.registers[0] !== 0xcafe) problems.push('patched: a load from SRAM faulted or read wrong');
  // a fault with the stack pointer in no memory: lockup
  const lk = run([0x6808, 0x46c0], (c) => { c.registers[1] = 0x30000000; c.SP = 0x30001000; });
  if (!lk.locked) problems.push('patched: a fault while stacking did not lock up');
  return problems;
}

// ---- self test: `node patches.mjs --self-test <rp2040js dist/esm/index.js> [bootrom.bin]` ---------------------
// With the B1 bootrom (16 KiB, little-endian words) it also runs the bootrom's core-1 launch handshake.
// Checks the pinned version and the upstream behaviour each patch relies on or replaces; prints one JSON line.
async function selfTest(entry, bootromFile) {
  const { pathToFileURL } = await import('node:url');
  const rp = await import(pathToFileURL(entry).href);
  const problems = [];
  const { checkForInterrupts: upstreamCheck, readUint32: upstreamRead } = rp.CortexM0Core ? rp.CortexM0Core.prototype
    : Object.getPrototypeOf(new rp.RP2040().core);
  const version = packageVersion(entry);
  if (version !== PINNED_VERSION) problems.push(`rp2040js is ${version}, patches are written for ${PINNED_VERSION}`);
  const mcu = new rp.RP2040();
  mcu.logger = { debug() {}, info() {}, warn() {}, error() {} };
  const ssi = mcu.peripherals[SSI_KEY];
  if (!ssi || ssi.constructor.name !== 'RPSSI') problems.push('peripherals[0x18000] is no longer RPSSI');
  const qspi = mcu.peripherals[IO_QSPI_KEY];
  if (!qspi || qspi.constructor.name !== 'UnimplementedPeripheral') {
    problems.push('IO_QSPI is no longer an UnimplementedPeripheral: rp2040js may model it now (re-check patch 2)');
  }
  const vreg = mcu.peripherals[VREG_KEY];
  if (!vreg || vreg.constructor.name !== 'UnimplementedPeripheral' || (vreg.readUint32(8) & 0x01000000) === 0) {
    problems.push('VREG_AND_CHIP_RESET changed upstream (re-check patch 4)');
  }
  const usb = mcu.usbCtrl;
  for (const fn of ['DPRAMUpdated', 'buffStatusUpdated', 'sieStatusUpdated', 'sendSetupPacket']) {
    if (typeof usb[fn] !== 'function') problems.push(`RPUSBController.${fn} is gone (usbhost.mjs calls it)`);
  }
  if (!(mcu.usbDPRAMView instanceof DataView)) problems.push('mcu.usbDPRAMView changed');
  // upstream's USB buffer handling (what usbhost.mjs replaces): an armed IN buffer completes by itself
  let wrote = null;
  usb.onEndpointWrite = (ep, buf) => { wrote = [ep, buf.length]; };
  mcu.usbDPRAMView.setUint32(0x80, 0x8000 | 0x400 | 3, true);
  usb.DPRAMUpdated(0x80, 0x8000 | 0x400 | 3);
  mcu.clock.tick(1e6);
  if (!wrote || wrote[0] !== 0 || wrote[1] !== 3) problems.push('stock USB IN buffer handling changed (re-check patch 5)');
  // rp2040js ClockAlarm.scheduled stays true after firing (usbhost.mjs keeps its own flag because of it)
  const al = mcu.clock.createAlarm(() => {});
  al.schedule(10);
  mcu.clock.tick(100);
  if (!al.scheduled) problems.push('ClockAlarm.scheduled is reset after firing now: usbhost.mjs workaround is moot');
  if (usb.readUint32(USB_BUFF_CPU_SHOULD_HANDLE) !== 0) problems.push('BUFF_CPU_SHOULD_HANDLE is modelled upstream now');
  if (!('buffStatus' in usb) || !('sieStatus' in usb) || !('epStallArm' in usb)) {
    problems.push('RPUSBController fields buffStatus/sieStatus/epStallArm renamed');
  }
  if (!(mcu.flash instanceof Uint8Array) || mcu.flash.length < 2 * 1024 * 1024) problems.push('mcu.flash changed');
  if (typeof mcu.sio.readUint32 !== 'function') problems.push('SIO readUint32 missing');
  const wd = mcu.peripherals[0x40058];
  if (!wd || !('scratchData' in wd) || !('onWatchdogTrigger' in wd)) problems.push('watchdog scratchData/onWatchdogTrigger changed');
  // behaviour: stock SSI answers a JEDEC ID read with no flash behind it; patched, the W25Q16 id comes back
  const { SpiNorFlash } = await import('./flashchip.mjs');
  const chip = new SpiNorFlash(mcu.flash);
  applyPatches(rp, mcu, chip, {});
  const s = mcu.peripherals[SSI_KEY];
  mcu.writeUint32(0x18000000, 7 << 16); // CTRLR0: 8-bit frames, TX+RX, standard SPI
  mcu.writeUint32(0x18000008, 1);
  mcu.writeUint32(0x4001800c, 2 << 8); // CS low
  const id = [0x9f, 0, 0, 0].map((b) => { mcu.writeUint32(0x18000060, b); return mcu.readUint32(0x18000060); });
  mcu.writeUint32(0x4001800c, 3 << 8);
  if (id[1] !== 0xef || id[2] !== 0x40 || id[3] !== 0x15) problems.push(`patched SSI JEDEC read gave ${id}`);
  if (s !== mcu.findPeripheral(0x18000000)) problems.push('findPeripheral does not route 0x18000000 to the SSI slot');
  // 7: bus errors. Upstream: a load from 0x30000000 reads 0xffffffff and nothing else happens.
  problems.push(...selfTestBusFaults(rp));
  const upstreamCore = Object.getPrototypeOf(new rp.RP2040().core); // CortexM0Core.prototype
  if (upstreamCore.checkForInterrupts !== upstreamCheck || upstreamCore.readUint32 !== upstreamRead) {
    problems.push('patch 7 changed upstream CortexM0Core itself (it must patch core1.mjs\'s per-chip class only)');
  }
  // 6: core 1 (core1.mjs): upstream facts and every behaviour, with the real bootrom's handshake when given
  const { selfTestCore1 } = await import('./core1.mjs');
  let rom = null;
  if (bootromFile) {
    const b = readFileSync(bootromFile);
    rom = new Uint32Array(b.buffer, b.byteOffset, 4096);
  }
  problems.push(...selfTestCore1(rp, rom));
  process.stdout.write(JSON.stringify({ version, pinned: PINNED_VERSION, ok: problems.length === 0, problems,
    core1_handshake: !!bootromFile }) + '\n');
  process.exit(problems.length ? 1 : 0);
}

if (process.argv[2] === '--self-test') await selfTest(process.argv[3], process.argv[4]);
