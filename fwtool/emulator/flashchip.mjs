// A W25Q16JV-class SPI NOR flash chip for fwtool's virtual RP2040 (byte-level SPI model).
//
// Storage is the emulator's XIP flash array (rp2040js `mcu.flash`), so what the bootrom programs through the SSI
// is what XIP reads execute. Commands: the ones the RP2040 bootrom, boot2 (w25q080) and pico-sdk's hardware_flash
// send (docs/notes/rp2040-flashing.md §4): 0x06/0x04 write enable/disable, 0x05/0x35/0x15 read status 1/2/3,
// 0x01/0x31/0x11 write status, 0x50 volatile SR write enable, 0x02 page program, 0x32 quad page program,
// 0x20 4 KiB sector erase, 0x52 32 KiB / 0xD8 64 KiB block erase, 0x60/0xC7 chip erase, 0x03 read, 0x0B fast
// read, 0x3B/0x6B dual/quad output read, 0xBB/0xEB dual/quad I/O read (with continuous-read mode bits 0x?A),
// 0x9F JEDEC ID, 0x90 manufacturer/device ID, 0xAB release power-down / device ID, 0xB9 power down,
// 0x4B unique ID, 0x5A SFDP (empty), 0x66/0x99 reset, 0xFF continuous-read-mode reset.
// Timing (optional): WIP stays set for the W25Q16JV's typical erase/program times on the emulated clock.
// Faults (for tests): erase that leaves the sector unchanged, WIP stuck busy, corrupted page, power loss after
// N page programs.

const PAGE = 256;
const SECTOR = 4096;
export const TIMING = {
  none: { page: 0, sector: 0, block32: 0, block64: 0, chip: 0, sr: 0 },
  // W25Q16JV datasheet typical values (ns)
  typical: { page: 400e3, sector: 45e6, block32: 120e6, block64: 150e6, chip: 5e9, sr: 10e6 },
};

export class SpiNorFlash {
  constructor(storage, { size = 2 * 1024 * 1024, jedec = [0xef, 0x40, 0x15], uniqueId = null, timing = 'none',
    now = () => 0 } = {}) {
    this.mem = storage; // Uint8Array (rp2040js mcu.flash; only the first `size` bytes are the chip)
    this.size = size;
    this.jedec = jedec;
    this.uniqueId = uniqueId || new Uint8Array([0xe6, 0x60, 0x58, 0x38, 0x83, 0x47, 0x5c, 0x2f]);
    this.timing = TIMING[timing] || TIMING.none;
    this.now = now; // emulated nanoseconds
    this.sr = [0x00, 0x02, 0x60]; // SR1, SR2 (QE set, as on a Pico's W25Q16JV), SR3
    this.wel = false;
    this.busyUntil = 0;
    this.poweredDown = false;
    this.continuous = false; // continuous read mode (0xEB with M5-4 = 10)
    this.selected = false;
    this.faults = { eraseFail: false, stuckBusy: false, corruptPage: null, powerLossAfterPages: null,
      unplugAfterPages: null };
    this.onPowerLoss = null;
    this.stats = { pagePrograms: 0, sectorErases: 0, blockErases: 0, reads: 0, commands: {} };
    this.trace = null; // function(text) for debugging
    this._reset();
  }

  _reset() {
    this.cmd = null;
    this.buf = [];
    this.addr = 0;
    this.phase = 0;
  }

  get busy() {
    return this.faults.stuckBusy || this.now() < this.busyUntil;
  }

  select() {
    if (this.selected) this.deselect();
    this.selected = true;
    this._reset();
  }

  deselect() {
    if (!this.selected) return;
    this.selected = false;
    const { cmd, buf } = this;
    if (cmd !== null && this.trace) this.trace(`cmd 0x${cmd.toString(16)} +${buf.length}`);
    // commands that take effect at CS rising edge
    if (cmd === 0x01 || cmd === 0x31 || cmd === 0x11) this._writeStatus(cmd, buf);
    this._reset();
  }

  _startBusy(ns) {
    this.busyUntil = this.now() + ns;
  }

  _writeStatus(cmd, buf) {
    if (!this.wel || this.busy || !buf.length) return;
    if (cmd === 0x01) {
      this.sr[0] = buf[0] & 0xfc;
      if (buf.length > 1) this.sr[1] = (buf[1] & 0x7f) | (this.sr[1] & 0x80);
    } else if (cmd === 0x31) {
      this.sr[1] = buf[0] & 0x7f;
    } else {
      this.sr[2] = buf[0];
    }
    this.wel = false;
    this._startBusy(this.timing.sr);
  }

  _status(n) {
    if (n === 0) return (this.sr[0] & 0xfc) | (this.wel ? 2 : 0) | (this.busy ? 1 : 0);
    return this.sr[n];
  }

  _addr3(buf) {
    return ((buf[0] << 16) | (buf[1] << 8) | buf[2]) % this.size;
  }

  _erase(addr, len, kind) {
    if (!this.wel || this.busy) return;
    this.wel = false;
    const start = addr - (addr % len);
    if (kind === 'sector') this.stats.sectorErases++;
    else this.stats.blockErases++;
    if (!this.faults.eraseFail) this.mem.fill(0xff, start, Math.min(start + len, this.size));
    this._startBusy(this.timing[kind]);
  }

  _program(byte) {
    // page program: AND into the page, wrapping inside it
    const page = this.addr - (this.addr % PAGE);
    const off = (this.addr + this.phase) % PAGE;
    this.mem[page + off] &= byte;
    this.phase++;
  }

  _programDone() {
    if (this.phase === 0) return;
    this.stats.pagePrograms++;
    const page = this.addr - (this.addr % PAGE);
    if (this.faults.corruptPage !== null && page === this.faults.corruptPage) this.mem[page + 7] ^= 0x10;
    this.wel = false;
    this._startBusy(this.timing.page);
    const limit = this.faults.powerLossAfterPages;
    if (limit !== null && this.stats.pagePrograms >= limit && this.onPowerLoss) {
      this.mem.fill(0xff, page + (PAGE >> 1), page + PAGE); // the page is half programmed when the power goes
      this.onPowerLoss('power-loss');
    }
    const unplugAt = this.faults.unplugAfterPages;
    if (unplugAt != null && this.stats.pagePrograms >= unplugAt && this.onPowerLoss) this.onPowerLoss('unplugged');
  }

  // One byte on the bus (MOSI in, MISO out). Dual/quad phases are byte-serialised by the SSI model.
  transfer(byteIn) {
    if (!this.selected) return 0xff;
    if (this.cmd === null) {
      if (this.continuous) {
        // continuous read mode: the transaction starts with the address (no instruction byte)
        if (byteIn === 0xff && this.buf.length === 0) {
          this.continuous = false; // mode-bit reset (EXIT_XIP's 0xFF)
          this.cmd = 0xff;
          return 0xff;
        }
        this.cmd = 0xeb;
        return this._dataPhase(byteIn);
      }
      this.cmd = byteIn;
      this.stats.commands[byteIn] = (this.stats.commands[byteIn] || 0) + 1;
      return this._command(byteIn);
    }
    return this._dataPhase(byteIn);
  }

  _command(cmd) {
    if (this.poweredDown && cmd !== 0xab) {
      this.cmd = 0x00; // ignored until released
      return 0xff;
    }
    switch (cmd) {
      case 0x06:
        if (!this.busy) this.wel = true;
        break;
      case 0x04:
        if (!this.busy) this.wel = false;
        break;
      case 0x50: // volatile SR write enable
        this.wel = true;
        break;
      case 0xb9:
        this.poweredDown = true;
        break;
      case 0xab:
        this.poweredDown = false;
        break;
      case 0x66:
      case 0x99:
        if (cmd === 0x99) {
          this.continuous = false;
          this.wel = false;
        }
        break;
      case 0x60:
      case 0xc7:
        this._erase(0, this.size, 'chip');
        break;
      default:
        break;
    }
    return 0xff;
  }

  _dataPhase(b) {
    const { cmd, buf } = this;
    switch (cmd) {
      case 0x05:
        return this._status(0);
      case 0x35:
        return this._status(1);
      case 0x15:
        return this._status(2);
      case 0x01:
      case 0x31:
      case 0x11:
        buf.push(b);
        return 0xff;
      case 0x9f: {
        const i = buf.length;
        buf.push(b);
        return i < 3 ? this.jedec[i] : 0xff;
      }
      case 0x90: { // 3 address bytes, then manufacturer / device id alternating
        const i = buf.length;
        buf.push(b);
        if (i < 3) return 0xff;
        return (i - 3 + (buf[2] & 1)) % 2 === 0 ? this.jedec[0] : 0x14;
      }
      case 0xab: { // release power-down / device id: 3 dummy bytes then the id
        const i = buf.length;
        buf.push(b);
        return i < 3 ? 0xff : 0x14;
      }
      case 0x4b: { // 4 dummy bytes then the 64-bit unique id
        const i = buf.length;
        buf.push(b);
        return i < 4 ? 0xff : i < 12 ? this.uniqueId[i - 4] : 0xff;
      }
      case 0x5a: // SFDP: not provided
        return 0xff;
      case 0x20:
      case 0x52:
      case 0xd8:
        buf.push(b);
        if (buf.length === 3) {
          const kind = cmd === 0x20 ? 'sector' : cmd === 0x52 ? 'block32' : 'block64';
          this._erase(this._addr3(buf), cmd === 0x20 ? SECTOR : cmd === 0x52 ? 32768 : 65536, kind);
        }
        return 0xff;
      case 0x02:
      case 0x32:
        if (buf.length < 3) {
          buf.push(b);
          if (buf.length === 3) {
            this.addr = this._addr3(buf);
            this.phase = 0;
            if (!this.wel || this.busy) this.cmd = 0x00; // ignored
            else this._deselectHook = true;
          }
          return 0xff;
        }
        this._program(b);
        return 0xff;
      case 0x03:
      case 0x0b:
      case 0x3b:
      case 0x6b:
      case 0xbb:
      case 0xeb: {
        const addrBytes = 3;
        const extra = { 0x03: 0, 0x0b: 1, 0x3b: 1, 0x6b: 1, 0xbb: 1, 0xeb: 3 }[cmd]; // mode/dummy bytes
        if (buf.length < addrBytes + extra) {
          buf.push(b);
          if (buf.length === addrBytes) {
            this.addr = this._addr3(buf);
            this.phase = 0;
          }
          if (cmd === 0xeb && buf.length === 4) this.continuous = (b & 0x30) === 0x20;
          if (cmd === 0xbb && buf.length === 4) this.continuous = false;
          return 0xff;
        }
        if (this.busy) return 0xff;
        const v = this.mem[(this.addr + this.phase) % this.size];
        this.phase++;
        this.stats.reads++;
        return v;
      }
      default:
        return 0xff;
    }
  }
}

// CS rising edge finishes a page program: wrap deselect for 0x02/0x32.
const plainDeselect = SpiNorFlash.prototype.deselect;
SpiNorFlash.prototype.deselect = function deselect() {
  if (this.selected && (this.cmd === 0x02 || this.cmd === 0x32) && this._deselectHook) {
    this._deselectHook = false;
    this._programDone();
  }
  plainDeselect.call(this);
};
