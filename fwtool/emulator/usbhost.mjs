// The USB host side of fwtool's virtual RP2040: a buffer engine for the chip's USB device controller (double
// buffering, BUFF_CPU_SHOULD_HANDLE, STALL, one completion at a time) and a host that enumerates the device and
// runs control / bulk transfers for fwtool (through bridge.mjs) and for the app's CDC serial port.
//
// Everything runs on the emulated clock: a packet moves when the firmware has armed the buffer (AVAILABLE) and
// has taken the previous completion of that endpoint (its BUFF_STATUS bit is clear). Control transfers wait for
// the firmware to handle SETUP and for the status stage to be consumed before the next SETUP (the bootrom halts
// EP0 OUT when a SETUP overtakes its status stage). Timeouts are wall-clock, like libusb's.

const AVAIL = 1 << 10;
const FULL = 1 << 15;
const STALL = 1 << 11;
const SEL = 1 << 12;
const LEN = 0x3ff;
const DOUBLE = 1 << 30;
const SETUP_REC = 1 << 17;
const MPS = 64;

export class UsbHost {
  constructor(mcu, clock) {
    this.mcu = mcu;
    this.usb = mcu.usbCtrl;
    this.dp = mcu.usbDPRAMView;
    this.clock = clock;
    this.shouldHandle = 0;
    this.hwNext = new Map(); // "ep,in" -> 0/1
    this.packets = []; // pending packets {ep, in, data, cb}
    this.control = []; // queued control transfers
    this.ctl = null; // the one in progress
    this.transfers = new Set(); // bulk transfers in progress (for timeouts / disconnect)
    // (rp2040js's ClockAlarm.scheduled stays true after the alarm fired: keep our own flag)
    this.pumpScheduled = false;
    this.alarm = clock.createAlarm(() => {
      this.pumpScheduled = false;
      this.pump();
    });
    this.resetRaised = false;
    this.resetAlarm = clock.createAlarm(() => { // the host drives a bus reset 10 ms after the pull-up appears
      this.resetRaised = true;
      this.usb.sieStatus |= 1 << 19; // SIE_STATUS.BUS_RESET
      this.usb.sieStatusUpdated();
    });
    this.gone = false;
    this.onEnumerated = null;
    this.onLog = null;
    this.device = null; // {deviceDescriptor, configDescriptor}
    this.trace = process.env.FWTOOL_USB_TRACE ? (t) => this.onLog && this.onLog(`usb: ${t}`) : null;
    this.usb.onUSBEnabled = () => {
      if (this.trace) this.trace('controller enabled: bus reset');
      this.resetAlarm.schedule(10e6);
    };
    this.usb.onResetReceived = () => { // any SIE_STATUS write with BUS_RESET set; only ours counts
      if (!this.resetRaised) return;
      this.resetRaised = false;
      if (this.trace) this.trace('bus reset handled: enumerating');
      this.enumerate();
    };
    this.usb.onEndpointRead = () => {};
    this.usb.onEndpointWrite = () => {};
  }

  kick(delayUs = 4) {
    if (this.gone || this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.alarm.schedule(delayUs * 1000);
  }

  dpramUpdated(offset, value) {
    if (offset >= 0x80 && offset < 0x100 && value & SEL) {
      const ep = (offset - 0x80) >> 3;
      this.hwNext.set(`${ep},${!(offset & 4)}`, 0);
      this.dp.setUint32(offset, value & ~SEL, true);
    }
    this.kick();
  }

  // ---- packets ------------------------------------------------------------------------------------------------
  _packet(ep, isIn, data, cb) {
    this.packets.push({ ep, in: isIn, data, cb });
    this.kick();
  }

  _try(p) {
    const { usb, dp } = this;
    const ctrlOff = 0x80 + p.ep * 8 + (p.in ? 0 : 4);
    let word = dp.getUint32(ctrlOff, true);
    const epCtl = p.ep ? dp.getUint32(0x08 + (p.ep - 1) * 8 + (p.in ? 0 : 4), true) : 0;
    const stalled = p.ep === 0 ? (word & STALL) && (usb.epStallArm & (p.in ? 1 : 2)) : word & STALL;
    if (stalled) return { error: 'pipe' };
    const bit = 1 << (p.ep * 2 + (p.in ? 0 : 1));
    if (usb.buffStatus & bit) return null; // the firmware has not taken the previous buffer yet
    const dbl = p.ep !== 0 && !!(epCtl & DOUBLE);
    const key = `${p.ep},${p.in}`;
    const which = dbl ? this.hwNext.get(key) || 0 : 0;
    const shift = which * 16;
    const half = (word >>> shift) & 0xffff;
    if (!(half & AVAIL)) return null;
    const base = (p.ep ? epCtl & 0xffc0 : 0x100) + which * MPS;
    let result;
    let nh;
    if (p.in) {
      const len = half & LEN;
      result = { data: this.mcu.usbDPRAM.slice(base, base + len) };
      nh = half & ~(AVAIL | FULL);
    } else {
      const len = Math.min(p.data.length, half & LEN);
      this.mcu.usbDPRAM.set(p.data.subarray(0, len), base);
      result = { n: len };
      nh = (half & ~(AVAIL | LEN)) | FULL | len;
    }
    word = ((word & ~(0xffff << shift)) | (nh << shift)) >>> 0;
    dp.setUint32(ctrlOff, word, true);
    if (which) this.shouldHandle |= bit;
    else this.shouldHandle &= ~bit;
    usb.buffStatus |= bit;
    usb.buffStatusUpdated();
    if (dbl) this.hwNext.set(key, which ^ 1);
    return result;
  }

  pump() {
    if (this.gone) return;
    let progress = true;
    while (progress) {
      progress = false;
      for (const p of [...this.packets]) {
        if (!this.packets.includes(p)) continue;
        const r = this._try(p);
        if (r) {
          if (this.trace) this.trace(`ep${p.ep} ${p.in ? 'IN' : 'OUT'} ${r.error || (r.data ? r.data.length : r.n)}`);
          this.packets.splice(this.packets.indexOf(p), 1);
          progress = true;
          p.cb(r);
        }
      }
      if (this.ctl && this.ctl.step()) progress = true;
      if (!this.ctl && this.control.length) {
        this.ctl = this.control.shift();
        this.ctl.start();
        progress = true;
      }
    }
    if (this.ctl) this.kick(20); // SETUP handled / status drained are polled; packets wake on DPRAM writes
  }

  // ---- transfers (callback style: they run inside the emulation loop) -----------------------------------------
  _finish(t, result) {
    if (t.done) return;
    t.done = true;
    this.transfers.delete(t);
    this.packets = this.packets.filter((p) => p.owner !== t);
    if (this.ctl === t) this.ctl = null;
    this.control = this.control.filter((c) => c !== t);
    t.cb(result);
    this.kick();
  }

  _own(t, ep, isIn, data, cb) {
    const p = { ep, in: isIn, data, cb, owner: t };
    this.packets.push(p);
    this.kick();
  }

  bulkOut(ep, data, timeoutMs, cb) {
    const t = { cb, deadline: timeoutMs ? Date.now() + timeoutMs : Infinity, sent: 0 };
    this.transfers.add(t);
    const next = () => {
      const chunk = data.subarray(t.sent, t.sent + MPS);
      this._own(t, ep & 0xf, false, chunk, (r) => {
        if (r.error) return this._finish(t, { error: r.error, n: t.sent });
        t.sent += chunk.length;
        if (t.sent >= data.length) return this._finish(t, { n: t.sent });
        next();
      });
    };
    next();
    return t;
  }

  bulkIn(ep, size, timeoutMs, cb) {
    const t = { cb, deadline: timeoutMs ? Date.now() + timeoutMs : Infinity, got: [] , n: 0 };
    this.transfers.add(t);
    const next = () => {
      this._own(t, ep & 0xf, true, null, (r) => {
        if (r.error) return this._finish(t, { error: r.error });
        t.got.push(r.data);
        t.n += r.data.length;
        if (r.data.length < MPS || t.n >= size) return this._finish(t, { data: Buffer.concat(t.got.map((d) => Buffer.from(d))) });
        next();
      });
    };
    next();
    return t;
  }

  /** setup: 8 bytes; data: Uint8Array for OUT (or null). cb({data}|{n}|{error}) */
  controlTransfer(setup, data, timeoutMs, cb) {
    const host = this;
    const bm = setup[0];
    const wLength = setup[6] | (setup[7] << 8);
    const isIn = !!(bm & 0x80);
    const t = {
      cb, deadline: timeoutMs ? Date.now() + timeoutMs : Infinity, state: 'queued', got: [], n: 0, sent: 0,
      start() {
        if (host.trace) host.trace(`SETUP ${Buffer.from(setup).toString('hex')}`);
        this.state = 'setup';
        host.usb.epStallArm &= ~3; // a SETUP clears the EP0 stall arms
        host.usb.sendSetupPacket(setup);
      },
      step() {
        if (this.state === 'setup') {
          if (host.usb.sieStatus & SETUP_REC) return false; // not handled yet
          this.state = 'data';
          this.dataStage();
          return true;
        }
        if (this.state === 'drain') { // status consumed by the firmware: the next SETUP may go
          if (host.usb.buffStatus & this.statusBit) return false;
          this.state = 'settle';
          this.settleUntil = host.clock.nanos + 50000;
          return true;
        }
        if (this.state === 'settle' && host.clock.nanos >= this.settleUntil) {
          host._finish(this, this.result);
          return true;
        }
        return false;
      },
      dataStage() {
        if (isIn && wLength) this.inPacket();
        else if (!isIn && wLength) this.outPacket();
        else this.status();
      },
      inPacket() {
        host._own(this, 0, true, null, (r) => {
          if (r.error) return host._finish(this, { error: r.error });
          this.got.push(Buffer.from(r.data));
          this.n += r.data.length;
          if (r.data.length < MPS || this.n >= wLength) return this.status();
          this.inPacket();
        });
      },
      outPacket() {
        const chunk = data.subarray(this.sent, this.sent + MPS);
        host._own(this, 0, false, chunk, (r) => {
          if (r.error) return host._finish(this, { error: r.error });
          this.sent += chunk.length;
          if (this.sent >= wLength) return this.status();
          this.outPacket();
        });
      },
      status() {
        const statusIn = !(isIn && wLength);
        this.statusBit = statusIn ? 1 : 2;
        host._own(this, 0, statusIn, statusIn ? null : new Uint8Array(0), (r) => {
          if (r.error) return host._finish(this, { error: r.error });
          this.result = isIn ? { data: Buffer.concat(this.got).subarray(0, wLength) } : { n: this.sent };
          this.state = 'drain';
          host.kick();
        });
      },
    };
    this.transfers.add(t);
    this.control.push(t);
    this.kick();
    return t;
  }

  checkTimeouts() {
    const now = Date.now();
    for (const t of [...this.transfers]) {
      if (now > t.deadline) this._finish(t, { error: 'timeout', n: t.sent || 0 });
    }
  }

  disconnect() {
    this.gone = true;
    for (const t of [...this.transfers]) this._finish(t, { error: 'nodev' });
    this.packets = [];
  }

  // ---- enumeration (what the OS does when the device appears) --------------------------------------------------
  enumerate() {
    const setup = (bm, req, value, index, length) => new Uint8Array([bm, req, value & 0xff, value >> 8,
      index & 0xff, index >> 8, length & 0xff, length >> 8]);
    const fail = (what, r) => this.onLog && this.onLog(`enumeration: ${what} failed (${r.error})`);
    this.controlTransfer(setup(0x00, 5, 1, 0, 0), null, 0, (r) => {
      if (r.error) return fail('SET_ADDRESS', r);
      this.controlTransfer(setup(0x80, 6, 0x100, 0, 18), null, 0, (d) => {
        if (d.error) return fail('GET_DESCRIPTOR(device)', d);
        this.controlTransfer(setup(0x80, 6, 0x200, 0, 9), null, 0, (c9) => {
          if (c9.error) return fail('GET_DESCRIPTOR(config)', c9);
          const total = c9.data[2] | (c9.data[3] << 8);
          this.controlTransfer(setup(0x80, 6, 0x200, 0, total), null, 0, (c) => {
            if (c.error) return fail('GET_DESCRIPTOR(config, full)', c);
            this.controlTransfer(setup(0x00, 9, c.data[5], 0, 0), null, 0, (s) => {
              if (s.error) return fail('SET_CONFIGURATION', s);
              this.device = { device: Buffer.from(d.data), config: Buffer.from(c.data), configuration: c.data[5] };
              if (this.onEnumerated) this.onEnumerated(this.device);
            });
          });
        });
      });
    });
  }
}

/** The CDC-ACM interfaces of a configuration descriptor: {comm, dataIn, dataOut} or null. */
export function findCdc(config) {
  let i = 0;
  let comm = null;
  let inData = false;
  const out = { comm: null, dataIn: null, dataOut: null };
  while (i + 1 < config.length && config[i] >= 2) {
    const len = config[i];
    const type = config[i + 1];
    if (type === 4) {
      const cls = config[i + 5];
      if (cls === 0x02) comm = config[i + 2];
      inData = cls === 0x0a;
      if (inData && out.comm === null) out.comm = comm;
    } else if (type === 5 && inData && (config[i + 3] & 3) === 2) {
      if (config[i + 2] & 0x80) out.dataIn = config[i + 2];
      else out.dataOut = config[i + 2];
    }
    i += len;
  }
  return out.dataIn !== null && out.dataOut !== null ? out : null;
}
