// fwtool's virtual RP2040: runs a flash image in rp2040js (npm, MIT) and bridges its serial output.
//
// Started by fwtool/emulator/session.py, never by hand (but `node runner.mjs --help` lists the options).
// Inputs are files fwtool prepared: the RP2040 B1 bootrom (16 KiB, little-endian words, parsed from the rp2040js
// repository's demo/bootrom.ts) and the flash image (bytes from flash offset 0, boot2 first).
//
// Serial: UART0/1 and USB CDC output go to one stream, either stdout (--serial stdout) or one TCP client on
// 127.0.0.1 (--serial tcp; fwtool monitor attaches with socket://127.0.0.1:PORT). Client bytes go to the USB CDC
// OUT endpoint once the device is enumerated, else to UART0. A client connecting sets DTR (the firmware's
// stdio_usb_connected()), disconnecting clears it, as opening/closing a real board's port does.
//
// Control: one JSON object per line on stderr ({"event": ...}); the last one is {"event": "exit", ...}.
// The process exits when stdin closes (its parent is gone), on SIGTERM/SIGINT, or at a limit.
//
// rp2040js 1.4.1 quirks handled here (see docs/emulator.md):
//  - no core 1 upstream: core1.mjs adds it (a second rp2040js CortexM0Core, SIO FIFOs, per-core SIO/NVIC/SysTick,
//    PSM reset), both cores stepped in lock-step by cycles; the cycle time follows clk_sys as the firmware sets it;
//  - a watchdog reset/reboot spins the simulator at one instant: the watchdog is disarmed and the run stops
//    ("watchdog", or "bootsel" when the firmware asked for the USB bootloader);
//  - USBCDC answers every armed CDC OUT buffer with a 0-byte packet 10 us later (an interrupt storm that slows
//    the firmware ~3x): OUT transfers are held until the host has data;
//  - an access outside the address map reads 0xffffffff and execution goes on: it is a bus error -> HardFault, as
//    on the chip (patches.mjs 7), so the firmware's fault handler prints FWT:FAULT; a lockup ends the run;
//  - power-on boot through the bootrom needs a flash model rp2040js lacks: --boot bootrom / --usb-bridge add one
//    (flashchip.mjs, patches.mjs); the default still starts at boot2 (0x10000000) with the image preloaded.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { pathToFileURL } from 'node:url';

const HELP = `usage: node runner.mjs --rp2040js DIR/dist/esm/index.js --bootrom FILE --flash FILE [options]
  --serial stdout|tcp       where serial output goes (default stdout)
  --port N                  TCP port on 127.0.0.1 for --serial tcp (0: any free port, reported in "listening")
  --start now|on-connect    begin executing at once, or when the first TCP client connects (default now)
  --max-emulated-s S        stop after S seconds of emulated time (0: no limit)
  --max-wall-s S            stop after S wall-clock seconds (0: no limit)
  --until TEXT --count N    stop after the N-th serial line containing TEXT
  --mhz F                   clk_sys in MHz until the firmware programs the PLL (default 125; after that the
                            cycle time follows the clk_sys the firmware set, e.g. 200 MHz)
  --no-out-hold             answer CDC OUT buffers at once, as rp2040js does (for A/B measurements only)
  --boot direct|bootrom     start at boot2 with the image loaded into flash (default), or power on through the
                            bootrom and boot2 reading the emulated SPI NOR flash (flashchip.mjs)
  --usb-bridge              bridge.mjs: USB host on a control socket (--usb-port), chip reboots followed;
                            --bootsel powers on in BOOTSEL, --flash-state FILE keeps the flash between runs,
                            --flash-timing none|typical erase/program busy times`;

function parseArgs(argv) {
  const opts = { serial: 'stdout', port: 0, start: 'now', maxEmulatedS: 0, maxWallS: 0, until: null, count: 0,
    mhz: 125, outHold: true, boot: 'direct', usbBridge: false, bootsel: false, usbPort: 0, flashState: null,
    flashTiming: 'none' };
  const names = { '--rp2040js': 'rp2040js', '--bootrom': 'bootrom', '--flash': 'flash', '--serial': 'serial',
    '--port': 'port', '--start': 'start', '--max-emulated-s': 'maxEmulatedS', '--max-wall-s': 'maxWallS',
    '--until': 'until', '--count': 'count', '--mhz': 'mhz', '--boot': 'boot', '--usb-port': 'usbPort',
    '--flash-state': 'flashState', '--flash-timing': 'flashTiming' };
  const flags = { '--usb-bridge': 'usbBridge', '--bootsel': 'bootsel' };
  const numeric = new Set(['port', 'maxEmulatedS', 'maxWallS', 'count', 'mhz', 'usbPort']);
  for (let i = 0; i < argv.length; i++) {
    if (flags[argv[i]]) {
      opts[flags[argv[i]]] = true;
      continue;
    }
    if (argv[i] === '--no-out-hold') {
      opts.outHold = false;
      continue;
    }
    if (argv[i] === '--help' || argv[i] === '-h') {
      process.stderr.write(HELP + '\n');
      process.exit(0);
    }
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) {
      process.stderr.write(`bad argument ${argv[i]}\n${HELP}\n`);
      process.exit(2);
    }
    opts[key] = numeric.has(key) ? Number(argv[++i]) : argv[++i];
  }
  for (const k of ['rp2040js', 'bootrom', 'flash']) {
    if (!opts[k] && !(k === 'flash' && opts.usbBridge)) {
      process.stderr.write(`missing --${k}\n${HELP}\n`);
      process.exit(2);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const emit = (obj) => process.stderr.write(JSON.stringify(obj) + '\n');

// rp2040js and Node itself log with console.*: keep stdout for serial data only.
for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
  console[level] = (...a) => emit({ event: 'log', level, text: a.map(String).join(' ').slice(0, 500) });
}

const rp = await import(pathToFileURL(opts.rp2040js).href);
const { Simulator, USBCDC, LogLevel } = rp;

const simulator = new Simulator();
const mcu = simulator.rp2040;
const clock = simulator.clock;
const { installCore1 } = await import('./core1.mjs');
const dual = installCore1(mcu); // before loadBootrom: both cores reset from the bootrom's vector table
const { installBusFaults } = await import('./patches.mjs');
// an access outside the RP2040's address map is a bus error -> HardFault (patches.mjs 7); a lockup ends the run
installBusFaults(mcu.core, { onLockup: (core, detail) => finish('lockup', detail) });
mcu.clkSys = opts.mhz * 1e6;
let warnings = 0;
mcu.logger = {
  debug() {},
  info() {},
  warn(component, message) {
    if (++warnings <= 20) emit({ event: 'log', level: 'warn', text: `${component}: ${message}` });
  },
  error(component, message) {
    emit({ event: 'log', level: 'error', text: `${component}: ${message}` });
  },
};
void LogLevel;

// Bootrom first (it resets the core and erases flash), then the image.
const bootromBytes = readFileSync(opts.bootrom);
if (bootromBytes.length !== 16384) {
  emit({ event: 'exit', reason: 'error', detail: `bootrom is ${bootromBytes.length} bytes, expected 16384` });
  process.exit(3);
}
const bootromWords = new Uint32Array(bootromBytes.buffer, bootromBytes.byteOffset, 4096);
if (opts.usbBridge) {
  const { runBridge } = await import('./bridge.mjs');
  await runBridge(opts, rp, emit, bootromWords);
  await new Promise(() => {}); // bridge.mjs owns the process from here (its sockets keep it alive)
}
mcu.loadBootrom(bootromWords);
const flash = readFileSync(opts.flash);
if (flash.length > mcu.flash.length) {
  emit({ event: 'exit', reason: 'error', detail: `image is ${flash.length} bytes, flash holds ${mcu.flash.length}` });
  process.exit(3);
}
mcu.flash.set(flash, 0);
if (opts.boot === 'bootrom') { // power-on: bootrom -> boot2 -> app, all reading the SPI NOR model over the SSI
  const { SpiNorFlash } = await import('./flashchip.mjs');
  const { applyPatches } = await import('./patches.mjs');
  applyPatches(rp, mcu, new SpiNorFlash(mcu.flash, { now: () => clock.nanos }), {});
} else {
  mcu.core.PC = 0x10000000; // boot2
}

// ---- serial plumbing ----
let client = null; // the TCP client, if any
let everConnected = false;
const pending = []; // output produced before the first client connected (start-now mode)
let pendingBytes = 0;
const PENDING_MAX = 1 << 20;
let lineBuf = '';
let matched = 0;

function serialOut(bytes) {
  if (opts.serial === 'stdout') {
    process.stdout.write(bytes);
  } else if (client) {
    client.write(bytes);
  } else if (!everConnected && pendingBytes < PENDING_MAX) {
    pending.push(Buffer.from(bytes));
    pendingBytes += bytes.length;
  }
  if (opts.until) {
    lineBuf += Buffer.from(bytes).toString('latin1');
    let nl;
    while ((nl = lineBuf.indexOf('\n')) >= 0) {
      const line = lineBuf.slice(0, nl);
      lineBuf = lineBuf.slice(nl + 1);
      if (line.includes(opts.until) && ++matched >= opts.count) {
        finish('count');
        return;
      }
    }
    if (lineBuf.length > 65536) lineBuf = lineBuf.slice(-65536);
  }
}

mcu.uart[0].onByte = (b) => serialOut(new Uint8Array([b]));
mcu.uart[1].onByte = (b) => serialOut(new Uint8Array([b]));

const cdc = new USBCDC(mcu.usbCtrl);
const usb = mcu.usbCtrl;
let usbConfigured = false;
cdc.onDeviceConnected = () => {
  usbConfigured = true;
  emit({ event: 'usb', state: 'configured', emulated_us: Math.round(clock.nanos / 1000) });
  // USBCDC raises DTR|RTS as the last enumeration step: output made before a TCP client attaches is kept
  // (up to 1 MiB) and handed to the first client.
};
// Opening/closing the port later: SET_CONTROL_LINE_STATE, issued on the emulated clock (never mid-transfer of
// the enumeration's own control request).
let dtrWanted = null;
const dtrAlarm = clock.createAlarm(() => {
  if (dtrWanted !== null && usbConfigured && !finished) cdc.cdcSetControlLineState(dtrWanted ? 3 : 0);
  dtrWanted = null;
});
function setDtr(on) {
  dtrWanted = on;
  dtrAlarm.schedule(100 * 1000); // 100 us
}
cdc.onSerialData = (buffer) => serialOut(buffer);

// CDC OUT: answer an armed OUT buffer only when the host has bytes (see the header).
const hostQueue = [];
let heldOut = null;
const cdcRead = usb.onEndpointRead;
usb.onEndpointRead = (endpoint, size) => {
  if (endpoint === cdc.outEndpoint && endpoint >= 0 && opts.outHold) {
    while (hostQueue.length && !cdc.txFIFO.full) cdc.txFIFO.push(hostQueue.shift());
    if (cdc.txFIFO.empty) {
      heldOut = size;
      return;
    }
    heldOut = null;
  }
  cdcRead(endpoint, size);
};

function serialIn(bytes) {
  if (usbConfigured) {
    for (const b of bytes) hostQueue.push(b);
    if (heldOut !== null) {
      const size = heldOut;
      heldOut = null;
      usb.onEndpointRead(cdc.outEndpoint, size);
    }
  } else {
    for (const b of bytes) mcu.uart[0].feedByte(b);
  }
}

// ---- quirks: watchdog, breakpoints ----
const watchdog = mcu.peripherals[0x40058];
watchdog.onWatchdogTrigger = () => {
  watchdog.alarm.enable = false;
  watchdog.timer.enable = false;
  watchdog.enable = false;
  const bootsel = watchdog.scratchData[4] === 0xb007c0d3;
  finish(bootsel ? 'bootsel' : 'watchdog',
    bootsel ? 'the firmware rebooted into the USB bootloader (reset_usb_boot)'
      : `watchdog reset (reason ${watchdog.reason === 2 ? 'forced: the firmware rebooted itself' : 'timer expired'})`);
};
mcu.onBreak = (code) => finish('breakpoint', `the firmware hit a breakpoint (bkpt #${code}: panic or assert) at ` +
  `pc 0x${(mcu.core.PC >>> 0).toString(16)}` + (dual.core1Running ? ` (core 1 pc 0x${(dual.cores[1].PC >>> 0).toString(16)})` : ''));

// ---- execution ----
const maxEmulatedNanos = opts.maxEmulatedS > 0 ? opts.maxEmulatedS * 1e9 : Infinity;
const wallStart = Date.now();
let runStartWall = null;
let running = false;
let finished = false;

function finish(reason, detail) {
  if (finished) return;
  finished = true;
  running = false;
  const wall = (Date.now() - (runStartWall ?? wallStart)) / 1000;
  const emulatedUs = Math.round(clock.nanos / 1000);
  emit({ event: 'exit', reason, detail: detail ?? null, emulated_us: emulatedUs,
    cycles: dual.cycles[0], core_cycles: dual.cycles.slice(), core1_resets: dual.resets, clk_sys_hz: mcu.clkSys,
    instructions: dual.instructions, wall_s: Number(wall.toFixed(3)),
    speed: wall > 0 ? Number((clock.nanos / 1e9 / wall).toFixed(3)) : null,
    pc: `0x${(mcu.core.PC >>> 0).toString(16)}` });
  const done = () => process.exit(0);
  if (client) {
    client.end(done);
    setTimeout(done, 500).unref();
  } else if (opts.serial === 'stdout') {
    process.stdout.write('', done);
  } else {
    done();
  }
}

function slice() {
  if (!running || finished) return;
  const t0 = Date.now();
  try {
    // ~10 ms of wall time per slice, then yield to the event loop (sockets, signals, stdin).
    while (running && Date.now() - t0 < 10) {
      for (let i = 0; i < 20000 && running; i++) {
        if (!dual.step()) break; // both cores asleep with nothing scheduled: only host input can wake them
      }
      if (dual.idle) break;
      if (clock.nanos >= maxEmulatedNanos) {
        finish('emulated-limit', `emulated time limit of ${opts.maxEmulatedS} s reached`);
        return;
      }
    }
  } catch (e) {
    finish('error', `emulator error at pc 0x${(mcu.core.PC >>> 0).toString(16)}: ${e && e.message ? e.message : e}`);
    return;
  }
  if (opts.maxWallS > 0 && (Date.now() - wallStart) / 1000 >= opts.maxWallS) {
    finish('wall-limit', `wall-clock limit of ${opts.maxWallS} s reached`);
    return;
  }
  if (dual.idle) setTimeout(slice, 5);
  else setImmediate(slice);
}

function startRunning() {
  if (running || finished) return;
  running = true;
  runStartWall = Date.now();
  emit({ event: 'started' });
  setImmediate(slice);
}

// Wall limit also while waiting for a client, and as a backstop if a slice never returns control.
if (opts.maxWallS > 0) {
  setTimeout(() => finish('wall-limit', `wall-clock limit of ${opts.maxWallS} s reached`),
    opts.maxWallS * 1000 + 250).unref();
}

process.stdin.on('data', () => {});
process.stdin.on('end', () => finish('parent-gone', 'stdin closed'));
process.stdin.on('error', () => finish('parent-gone', 'stdin closed'));
process.on('SIGTERM', () => finish('stopped', 'SIGTERM'));
process.on('SIGINT', () => finish('stopped', 'SIGINT'));
process.stdout.on('error', () => finish('parent-gone', 'stdout closed'));

if (opts.serial === 'tcp') {
  const server = net.createServer((sock) => {
    if (client) { // one host at a time, like a serial port
      sock.end('fwtool emulator: another client is attached\r\n');
      return;
    }
    client = sock;
    sock.setNoDelay(true);
    emit({ event: 'client', connected: true });
    const everConnectedBefore = everConnected;
    if (!everConnected) {
      everConnected = true;
      if (pending.length) sock.write(Buffer.concat(pending));
      pending.length = 0;
    }
    if (usbConfigured && everConnectedBefore) setDtr(true); // DTR | RTS: the host opened the port again
    sock.on('data', (data) => serialIn(data));
    const gone = () => {
      if (client !== sock) return;
      client = null;
      emit({ event: 'client', connected: false });
      if (usbConfigured && !finished) setDtr(false);
    };
    sock.on('close', gone);
    sock.on('error', gone);
    if (opts.start === 'on-connect') startRunning();
  });
  server.on('error', (e) => {
    emit({ event: 'exit', reason: 'error', detail: `cannot listen on 127.0.0.1:${opts.port}: ${e.message}` });
    process.exit(3);
  });
  server.listen(opts.port, '127.0.0.1', () => {
    emit({ event: 'listening', host: '127.0.0.1', port: server.address().port });
    if (opts.start !== 'on-connect') startRunning();
  });
} else {
  startRunning();
}
