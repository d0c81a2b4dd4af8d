// The virtual board with its USB port bridged to Python (`node runner.mjs --usb-bridge ...`, started by
// fwtool/emulator/virtual_usb.py). The RP2040 powers on through the real B1 bootrom: from the emulated SPI NOR
// flash through boot2 into the app, or (CSn strap held low, like holding BOOTSEL) into the USB bootloader.
//
// One chip at a time. A watchdog reboot (PICOBOOT REBOOT, reset_usb_boot, watchdog_reboot) ends it: the device
// disconnects, and a new chip powers on with the same flash contents and watchdog scratch registers and
// re-enumerates, as a real board does.
//
// Control socket (127.0.0.1, --usb-port): one JSON object per line each way; requests carry "id", answers echo it.
//   {"op":"devices"}                                   -> {"devices":[{"gen","device","config","configuration"}]}
//   {"op":"ctrl","gen","setup":HEX,"data":HEX|null,"timeout":MS}  -> {"data":HEX}|{"n"}|{"error":"pipe|timeout|nodev"}
//   {"op":"write","gen","ep","data":HEX,"timeout"}     -> {"n"}|{"error",...}
//   {"op":"read","gen","ep","size","timeout"}          -> {"data":HEX}|{"error"}
//   {"op":"fault","kind":"erase-fail|stuck-busy|corrupt-page|power-loss","page"?:ADDR,"after"?:N}
//   {"op":"unplug"} {"op":"replug","bootsel":BOOL} {"op":"state"} {"op":"save"}
// Serial (--port, as runner.mjs): UART0/1 and the app's USB CDC output; a client's bytes go to the CDC OUT endpoint.
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import net from 'node:net';
import { SpiNorFlash } from './flashchip.mjs';
import { installCore1 } from './core1.mjs';
import { applyPatches } from './patches.mjs';
import { UsbHost, findCdc } from './usbhost.mjs';

export async function runBridge(opts, rp, emit, bootromWords) {
  const FLASH_SIZE = opts.flashSize || 2 * 1024 * 1024;
  const flashState = new Uint8Array(FLASH_SIZE).fill(0xff);
  if (opts.flashState && existsSync(opts.flashState)) flashState.set(readFileSync(opts.flashState).subarray(0, FLASH_SIZE));
  else if (opts.flash) flashState.set(readFileSync(opts.flash).subarray(0, FLASH_SIZE));
  const faults = { eraseFail: false, stuckBusy: false, corruptPage: null, powerLossAfterPages: null,
    unplugAfterPages: null };
  const totals = { pagePrograms: 0, sectorErases: 0, blockErases: 0 }; // over every chip power-on
  let chip = null; // {sim, mcu, clock, host, flash, gen, dead}
  let gen = 0;
  let finished = false;
  let serialClient = null;
  const usbClients = new Set();
  let yieldNow = false;
  let paced = false; // the chip sleeps ahead of real time: wait
  const pace = { emu: 0, wall: Date.now() }; // an answer went out: end the slice so the next request is read at once
  const wallStart = Date.now();

  function save() {
    if (chip) flashState.set(chip.mcu.flash.subarray(0, FLASH_SIZE));
    if (!opts.flashState) return;
    const tmp = `${opts.flashState}.${process.pid}.tmp`;
    writeFileSync(tmp, flashState);
    renameSync(tmp, opts.flashState);
  }

  function serialOut(bytes) {
    if (serialClient) serialClient.write(Buffer.from(bytes));
  }

  function broadcast(obj) {
    const line = JSON.stringify(obj) + '\n';
    for (const c of usbClients) c.write(line);
  }

  function powerOn(bootsel, scratch = null, reason = 0) {
    const sim = new rp.Simulator();
    const mcu = sim.rp2040;
    const clock = sim.clock;
    mcu.logger = { debug() {}, info() {}, warn() {}, error(c, m) { emit({ event: 'log', level: 'error', text: `${c}: ${m}` }); } };
    const dual = installCore1(mcu); // core 1 (before loadBootrom: both cores reset from the bootrom)
    mcu.clkSys = opts.mhz * 1e6;
    mcu.loadBootrom(bootromWords); // resets the core (PC = bootrom reset vector) and fills flash with 0xFF
    mcu.flash.set(flashState, 0);
    const flash = new SpiNorFlash(mcu.flash, { size: FLASH_SIZE, timing: opts.flashTiming, now: () => clock.nanos });
    flash.faults = faults;
    const host = new UsbHost(mcu, clock);
    applyPatches(rp, mcu, flash, { bootsel, engine: host,
      onLockup: (core, detail) => emit({ event: 'log', level: 'warn', text: detail }) });
    const wd = mcu.peripherals[0x40058];
    if (scratch) wd.scratchData.set(scratch);
    wd.reason = reason;
    const me = { sim, mcu, clock, host, flash, dual, gen: ++gen, dead: false, bootsel, cdc: null };
    host.onLog = (text) => emit({ event: 'log', level: 'warn', text });
    host.onEnumerated = (dev) => {
      const vid = dev.device[8] | (dev.device[9] << 8);
      const pid = dev.device[10] | (dev.device[11] << 8);
      emit({ event: 'usb', state: 'connected', gen: me.gen, vid, pid, emulated_us: Math.round(clock.nanos / 1000) });
      broadcast({ event: 'connected', gen: me.gen });
      me.cdc = findCdc(dev.config);
      if (me.cdc) startCdc(me);
    };
    wd.onWatchdogTrigger = () => {
      wd.alarm.enable = false;
      wd.timer.enable = false;
      wd.enable = false;
      const toBootsel = wd.scratchData[4] === 0xb007c0d3;
      emit({ event: 'reboot', gen: me.gen, bootsel_request: toBootsel, emulated_us: Math.round(clock.nanos / 1000) });
      restart(false, new Uint32Array(wd.scratchData), wd.reason);
    };
    flash.onPowerLoss = (kind) => {
      emit({ event: kind, gen: me.gen, pages: flash.stats.pagePrograms });
      faults.powerLossAfterPages = null;
      faults.unplugAfterPages = null;
      setImmediate(() => { if (chip === me) unplug(kind === 'power-loss' ? 'power loss during a page program' : 'unplugged'); });
      me.dead = true;
    };
    mcu.uart[0].onByte = (b) => serialOut([b]);
    mcu.uart[1].onByte = (b) => serialOut([b]);
    mcu.onBreak = (code) => {
      emit({ event: 'log', level: 'warn', text: `breakpoint #${code} at pc 0x${(mcu.core.PC >>> 0).toString(16)}` });
      me.dead = true;
    };
    chip = me;
    pace.emu = 0;
    pace.wall = Date.now();
    emit({ event: 'chip', gen: me.gen, bootsel, boot: bootsel ? 'BOOTSEL (CSn held low)' : 'flash' });
    wake();
    return me;
  }

  function startCdc(me) {
    const { host, cdc } = me;
    const setup = (bm, req, value, index, length) => new Uint8Array([bm, req, value & 0xff, value >> 8, index & 0xff,
      index >> 8, length & 0xff, length >> 8]);
    me.setDtr = (on) => host.controlTransfer(setup(0x21, 0x22, on ? 3 : 0, cdc.comm, 0), null, 0, () => {});
    me.cdcWrite = (bytes) => host.bulkOut(cdc.dataOut, new Uint8Array(bytes), 0, () => {});
    const line = new Uint8Array([0x00, 0xc2, 0x01, 0x00, 0, 0, 8]); // 115200 8N1
    host.controlTransfer(setup(0x21, 0x20, 0, cdc.comm, 7), line, 0, () => {
      if (serialClient) me.setDtr(true);
    });
    const pumpIn = () => {
      if (me.dead || chip !== me) return;
      host.bulkIn(cdc.dataIn, 64, 0, (r) => {
        if (r.error) return;
        if (r.data.length) serialOut(r.data);
        pumpIn();
      });
    };
    pumpIn();
  }

  function stopChip(reason) {
    if (!chip) return;
    for (const k of Object.keys(totals)) totals[k] += chip.flash.stats[k];
    save();
    chip.dead = true;
    chip.host.disconnect();
    chip.sim.stop();
    broadcast({ event: 'disconnected', gen: chip.gen, reason });
    emit({ event: 'usb', state: 'disconnected', gen: chip.gen, reason });
  }

  function restart(bootsel, scratch, reason) {
    stopChip('reboot');
    chip = null;
    setTimeout(() => { if (!finished && !chip) powerOn(bootsel, scratch, reason); }, 20); // replugged 20 ms later
  }

  function unplug(why) {
    stopChip(why);
    chip = null;
  }

  // One slice chain at a time: wake() starts it (now, or after `ms` when the chip sleeps with nothing scheduled).
  let sliceTimer = null;
  let sliceImmediate = null;
  function wake(ms = 0) {
    if (sliceImmediate) return;
    if (ms === 0) {
      if (sliceTimer) clearTimeout(sliceTimer);
      sliceTimer = null;
      sliceImmediate = setImmediate(slice);
    } else if (!sliceTimer) {
      sliceTimer = setTimeout(slice, ms);
    }
  }

  function slice() {
    sliceImmediate = null;
    if (sliceTimer) clearTimeout(sliceTimer);
    sliceTimer = null;
    const me = chip;
    if (!me || me.dead || finished) return;
    const { mcu, clock, host, dual } = me;
    const asleep = () => dual.cores[0].waiting && !(dual.core1Running && !dual.cores[1].waiting);
    const t0 = Date.now();
    try {
      yieldNow = false;
      paced = false;
      while (!paced && Date.now() - t0 < 10 && chip === me && !me.dead && !yieldNow) {
        for (let i = 0; i < 2000 && chip === me && !me.dead && !yieldNow; i++) {
          if (asleep()) {
            const nanos = clock.nanosToNextAlarm;
            if (nanos <= 0) break;
            // A sleeping chip keeps real time: without this a REBOOT's 500 ms delay (or any sleep) passes in an
            // instant and the host's next request finds a rebooted device. Busy code runs as fast as it can.
            const now = Date.now();
            if (clock.nanos - pace.emu < (now - pace.wall) * 1e6) { pace.emu = clock.nanos; pace.wall = now; }
            const budget = pace.emu + (now - pace.wall) * 1e6 + 1e6 - clock.nanos;
            if (nanos > budget) {
              if (budget > 0) clock.tick(budget);
              paced = true;
              break;
            }
            clock.tick(nanos);
          } else {
            dual.step(); // one instruction of the core furthest behind (core1.mjs lock-step)
          }
        }
        if (dual.idle) break;
      }
    } catch (e) {
      emit({ event: 'log', level: 'error', text: `emulator error at pc 0x${(mcu.core.PC >>> 0).toString(16)}: ${e.message}` });
      me.dead = true;
    }
    host.checkTimeouts();
    if (opts.maxWallS > 0 && (Date.now() - wallStart) / 1000 >= opts.maxWallS) return finish('wall-limit');
    if (chip !== me || me.dead) return;
    wake(paced ? 1 : dual.idle ? 2 : 0);
  }

  function finish(reason, detail) {
    if (finished) return;
    finished = true;
    try { save(); } catch (e) { emit({ event: 'log', level: 'error', text: `cannot save flash: ${e.message}` }); }
    if (chip) chip.sim.stop();
    emit({ event: 'exit', reason, detail: detail ?? null, emulated_us: chip ? Math.round(chip.clock.nanos / 1000) : 0,
      wall_s: Number(((Date.now() - wallStart) / 1000).toFixed(3)) });
    setTimeout(() => process.exit(0), 50);
  }

  // ---- control socket ---------------------------------------------------------------------------------------------
  const hex = (b) => Buffer.from(b).toString('hex');
  function handle(sock, req) {
    const reply = (obj) => sock.write(JSON.stringify({ id: req.id, ...obj }) + '\n');
    const live = chip && !chip.dead && chip.host.device ? chip : null;
    const needDev = () => {
      if (!live || req.gen !== live.gen) {
        reply({ error: 'nodev' });
        return null;
      }
      return live;
    };
    const done = (r) => (yieldNow = true) && reply(r.error ? { error: r.error, n: r.n ?? 0 } : r.data !== undefined ? { data: hex(r.data) } : { n: r.n });
    switch (req.op) {
      case 'devices':
        return reply({ devices: live ? [{ gen: live.gen, device: hex(live.host.device.device),
          config: hex(live.host.device.config), configuration: live.host.device.configuration }] : [] });
      case 'ctrl': {
        const c = needDev();
        if (!c) return;
        const data = req.data ? new Uint8Array(Buffer.from(req.data, 'hex')) : null;
        c.host.controlTransfer(new Uint8Array(Buffer.from(req.setup, 'hex')), data, req.timeout || 0, done);
        return wake();
      }
      case 'write': {
        const c = needDev();
        if (!c) return;
        c.host.bulkOut(req.ep, new Uint8Array(Buffer.from(req.data, 'hex')), req.timeout || 0, done);
        return wake();
      }
      case 'read': {
        const c = needDev();
        if (!c) return;
        c.host.bulkIn(req.ep, req.size, req.timeout || 0, done);
        return wake();
      }
      case 'fault':
        if (req.kind === 'erase-fail') faults.eraseFail = true;
        else if (req.kind === 'stuck-busy') faults.stuckBusy = true;
        else if (req.kind === 'corrupt-page') faults.corruptPage = req.page ?? 0;
        else if (req.kind === 'power-loss') faults.powerLossAfterPages = (chip ? chip.flash.stats.pagePrograms : 0) + (req.after ?? 1);
        else if (req.kind === 'unplug') faults.unplugAfterPages = (chip ? chip.flash.stats.pagePrograms : 0) + (req.after ?? 1);
        else if (req.kind === 'clear') Object.assign(faults, { eraseFail: false, stuckBusy: false, corruptPage: null, powerLossAfterPages: null, unplugAfterPages: null });
        else return reply({ error: `unknown fault ${req.kind}` });
        return reply({ ok: true });
      case 'unplug':
        unplug('unplugged');
        return reply({ ok: true });
      case 'replug':
        if (chip) unplug('replugged');
        powerOn(!!req.bootsel);
        return reply({ ok: true });
      case 'peek': // test hooks: the flash chip's storage, as a flash programmer on the SPI pins would see it
        return reply({ data: hex((chip ? chip.mcu.flash : flashState).subarray(req.offset, req.offset + req.size)) });
      case 'poke':
        (chip ? chip.mcu.flash : flashState).set(Buffer.from(req.data, 'hex'), req.offset);
        return reply({ ok: true });
      case 'wipe':
        (chip ? chip.mcu.flash : flashState).fill(0xff, 0, FLASH_SIZE);
        return reply({ ok: true });
      case 'state': {
        const t = { ...totals };
        if (chip) for (const k of Object.keys(t)) t[k] += chip.flash.stats[k];
        return reply({ totals: t, gen: chip ? chip.gen : null, alive: !!(chip && !chip.dead), bootsel: chip ? chip.bootsel : null,
          enumerated: !!(chip && chip.host.device), stats: chip ? chip.flash.stats : null,
          emulated_us: chip ? Math.round(chip.clock.nanos / 1000) : 0 });
      }
      case 'save':
        save();
        return reply({ ok: true });
      default:
        return reply({ error: `unknown op ${req.op}` });
    }
  }

  const usbServer = net.createServer((sock) => {
    usbClients.add(sock);
    sock.setNoDelay(true);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req;
        try { req = JSON.parse(line); } catch { continue; }
        handle(sock, req);
      }
    });
    const gone = () => usbClients.delete(sock);
    sock.on('close', gone);
    sock.on('error', gone);
  });

  const serialServer = net.createServer((sock) => {
    if (serialClient) {
      sock.end('fwtool emulator: another client is attached\r\n');
      return;
    }
    serialClient = sock;
    sock.setNoDelay(true);
    emit({ event: 'client', connected: true });
    if (chip && chip.setDtr) chip.setDtr(true);
    sock.on('data', (d) => {
      if (chip && chip.cdcWrite) chip.cdcWrite(d);
      else if (chip) for (const b of d) chip.mcu.uart[0].feedByte(b);
    });
    const gone = () => {
      if (serialClient !== sock) return;
      serialClient = null;
      emit({ event: 'client', connected: false });
      if (chip && chip.setDtr && !chip.dead) chip.setDtr(false);
    };
    sock.on('close', gone);
    sock.on('error', gone);
  });

  process.stdin.on('data', () => {});
  process.stdin.on('end', () => finish('parent-gone', 'stdin closed'));
  process.on('SIGTERM', () => finish('stopped', 'SIGTERM'));
  process.on('SIGINT', () => finish('stopped', 'SIGINT'));
  if (opts.maxWallS > 0) setTimeout(() => finish('wall-limit'), opts.maxWallS * 1000 + 250).unref();

  await new Promise((resolve) => usbServer.listen(opts.usbPort || 0, '127.0.0.1', resolve));
  await new Promise((resolve) => serialServer.listen(opts.port || 0, '127.0.0.1', resolve));
  emit({ event: 'listening', host: '127.0.0.1', port: serialServer.address().port, usb_port: usbServer.address().port });
  powerOn(opts.bootsel);
}
