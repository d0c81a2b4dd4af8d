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
import { readFileSync } from 'node:fs';
import path from 'node:path';

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

/** Apply every patch to one emulated chip. Returns the parts fwtool talks to. */
export function applyPatches(rp, mcu, chip, { bootsel = false, engine = null } = {}) {
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

// ---- self test: `node patches.mjs --self-test <rp2040js dist/esm/index.js> [bootrom.bin]` ---------------------
// With the B1 bootrom (16 KiB, little-endian words) it also runs the bootrom's core-1 launch handshake.
// Checks the pinned version and the upstream behaviour each patch relies on or replaces; prints one JSON line.
async function selfTest(entry, bootromFile) {
  const { pathToFileURL } = await import('node:url');
  const rp = await import(pathToFileURL(entry).href);
  const problems = [];
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
