"""A pyusb backend (``usb.backend.IBackend``) whose one device is the virtual board's USB port.

The device is the real RP2040 bootrom or pico-sdk app running in rp2040js (``bridge.mjs``); this backend only
carries pyusb's calls over the bridge's control socket: control transfers, bulk reads/writes (on the emulated
clock, with libusb-like wall-clock timeouts) and device discovery. fwtool's unchanged PICOBOOT client and reset
code reach it through ``fwtool.devices.usb.extra_backends`` (see :func:`fwtool.emulator.virtual_usb.attached`).

Errors map to what libusb reports: a stalled endpoint is ``USBError`` errno EPIPE, a gone device ENODEV, a
timeout ``USBTimeoutError``. Each chip power-on is a new device (``gen``): a handle of the previous one gets
ENODEV, as a real board that rebooted does.
"""
from __future__ import annotations

import errno
import json
import socket
import threading

import usb.backend
import usb.core

BUS = 250  # a bus number no host controller uses: the virtual board's location is "250-1"
PORT = 1


class BridgeConnection:
    """One JSON-lines connection to bridge.mjs. Thread-safe: one request at a time."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one small request per transfer
        self.file = self.sock.makefile("rwb")
        self.lock = threading.Lock()
        self.next_id = 0

    def request(self, op: str, wait_s: float | None = None, **kw) -> dict:
        with self.lock:
            self.next_id += 1
            rid = self.next_id
            kw.update(op=op, id=rid)
            try:
                self.sock.settimeout(wait_s)
                self.file.write((json.dumps(kw) + "\n").encode())
                self.file.flush()
                while True:
                    line = self.file.readline()
                    if not line:
                        raise usb.core.USBError("virtual board is gone", errno=errno.ENODEV)
                    msg = json.loads(line)
                    if msg.get("id") == rid:
                        return msg
            except (OSError, ValueError) as e:
                if isinstance(e, usb.core.USBError):
                    raise
                raise usb.core.USBError(f"virtual board connection failed: {e}", errno=errno.ENODEV) from e
            finally:
                try:
                    self.sock.settimeout(None)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


class _Desc:
    """A descriptor object with the attributes pyusb reads."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _parse_config(raw: bytes):
    """(config descriptor, {(itf, alt): (interface descriptor, [endpoint descriptors])})."""
    cfg = _Desc(bLength=raw[0], bDescriptorType=raw[1], wTotalLength=raw[2] | raw[3] << 8, bNumInterfaces=raw[4],
                bConfigurationValue=raw[5], iConfiguration=raw[6], bmAttributes=raw[7], bMaxPower=raw[8],
                extra_descriptors=[], interface=None)
    itfs: dict = {}
    order: list = []
    cur = None
    i = raw[0]
    while i + 1 < len(raw) and raw[i] >= 2:
        n, t = raw[i], raw[i + 1]
        d = raw[i:i + n]
        if t == 4 and n >= 9:
            cur = (d[2], d[3])
            itfs[cur] = (_Desc(bLength=n, bDescriptorType=4, bInterfaceNumber=d[2], bAlternateSetting=d[3],
                               bNumEndpoints=d[4], bInterfaceClass=d[5], bInterfaceSubClass=d[6],
                               bInterfaceProtocol=d[7], iInterface=d[8], extra_descriptors=[]), [])
            order.append(cur)
        elif t == 5 and n >= 7 and cur is not None:
            itfs[cur][1].append(_Desc(bLength=n, bDescriptorType=5, bEndpointAddress=d[2], bmAttributes=d[3],
                                      wMaxPacketSize=d[4] | d[5] << 8, bInterval=d[6], bRefresh=0, bSynchAddress=0,
                                      extra_descriptors=[]))
        i += n
    return cfg, itfs, order


class VirtualDevice:
    """What enumerate_devices yields: one enumeration (gen) of the emulated chip's USB port."""

    def __init__(self, gen: int, device: bytes, config: bytes, configuration: int):
        self.gen = gen
        d = device
        self.desc = _Desc(bLength=d[0], bDescriptorType=d[1], bcdUSB=d[2] | d[3] << 8, bDeviceClass=d[4],
                          bDeviceSubClass=d[5], bDeviceProtocol=d[6], bMaxPacketSize0=d[7],
                          idVendor=d[8] | d[9] << 8, idProduct=d[10] | d[11] << 8, bcdDevice=d[12] | d[13] << 8,
                          iManufacturer=d[14], iProduct=d[15], iSerialNumber=d[16], bNumConfigurations=d[17],
                          address=1 + gen % 126, bus=BUS, port_number=PORT, port_numbers=(PORT,), speed=3)
        self.config, self.interfaces, self.order = _parse_config(config)
        self.configuration = configuration


class _Handle:
    def __init__(self, dev: VirtualDevice):
        self.dev = dev


def _error(msg: dict, what: str):
    kind = msg.get("error")
    if kind == "timeout":
        return usb.core.USBTimeoutError(f"{what}: Operation timed out", errno=errno.ETIMEDOUT)
    if kind == "pipe":
        return usb.core.USBError(f"{what}: Pipe error", errno=errno.EPIPE)
    if kind == "nodev":
        return usb.core.USBError(f"{what}: No such device (it may have been disconnected)", errno=errno.ENODEV)
    return usb.core.USBError(f"{what}: Input/Output Error ({kind})", errno=errno.EIO)


class VirtualBackend(usb.backend.IBackend):
    """pyusb backend for one virtual board's bridge (``port``: its control socket)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = BridgeConnection(port)

    def _req(self, op: str, timeout_ms: int | None = None, **kw) -> dict:
        wait = None if not timeout_ms else timeout_ms / 1000 + 30  # the bridge enforces the timeout itself
        return self.conn.request(op, wait_s=wait, **kw)

    def close(self) -> None:
        self.conn.close()

    # -- discovery ---------------------------------------------------------------------------------------------
    def enumerate_devices(self):
        msg = self._req("devices", 5000)
        for d in msg.get("devices", []):
            yield VirtualDevice(d["gen"], bytes.fromhex(d["device"]), bytes.fromhex(d["config"]),
                                d["configuration"])

    def get_device_descriptor(self, dev):
        return dev.desc

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise IndexError("invalid configuration index")
        return dev.config

    def get_interface_descriptor(self, dev, intf, alt, config):
        if (intf, alt) not in dev.interfaces:  # pyusb asks by index; these devices number interfaces 0..n-1
            raise IndexError("invalid interface index")
        return dev.interfaces[(intf, alt)][0]

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        eps = dev.interfaces[(intf, alt)][1]
        if ep >= len(eps):
            raise IndexError("invalid endpoint index")
        return eps[ep]

    def get_parent(self, dev):
        return None

    # -- handles -----------------------------------------------------------------------------------------------
    def open_device(self, dev):
        return _Handle(dev)

    def close_device(self, dev_handle):
        pass

    def set_configuration(self, dev_handle, config_value):
        self.ctrl_transfer(dev_handle, 0x00, 9, config_value, 0, None, 2000)
        dev_handle.dev.configuration = config_value

    def get_configuration(self, dev_handle):
        return dev_handle.dev.configuration

    def set_interface_altsetting(self, dev_handle, intf, altsetting):
        self.ctrl_transfer(dev_handle, 0x01, 11, altsetting, intf, None, 2000)

    def claim_interface(self, dev_handle, intf):
        pass

    def release_interface(self, dev_handle, intf):
        pass

    def is_kernel_driver_active(self, dev_handle, intf):
        return False

    def detach_kernel_driver(self, dev_handle, intf):
        pass

    def attach_kernel_driver(self, dev_handle, intf):
        pass

    def reset_device(self, dev_handle):
        raise usb.core.USBError("port reset is not modelled on the virtual board", errno=errno.ENOSYS)

    # -- transfers ---------------------------------------------------------------------------------------------
    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        is_in = bool(bmRequestType & 0x80)
        n = len(data) if data is not None else 0
        if data is not None and hasattr(data, "itemsize"):
            n = len(data) * data.itemsize
        setup = bytes([bmRequestType, bRequest, wValue & 0xFF, wValue >> 8 & 0xFF, wIndex & 0xFF, wIndex >> 8 & 0xFF,
                       n & 0xFF, n >> 8 & 0xFF])
        out = None if is_in or not n else bytes(data).hex()
        msg = self._req("ctrl", timeout, gen=dev_handle.dev.gen, setup=setup.hex(), data=out, timeout=timeout)
        if "error" in msg:
            raise _error(msg, "control transfer")
        if is_in:
            got = bytes.fromhex(msg.get("data", ""))
            for i, b in enumerate(got[:n]):
                data[i] = b
            return min(len(got), n)
        return msg.get("n", 0)

    def bulk_write(self, dev_handle, ep, intf, data, timeout):
        msg = self._req("write", timeout, gen=dev_handle.dev.gen, ep=ep, data=bytes(data).hex(), timeout=timeout)
        if "error" in msg:
            raise _error(msg, f"bulk write to 0x{ep:02x}")
        return msg["n"]

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        msg = self._req("read", timeout, gen=dev_handle.dev.gen, ep=ep, size=len(buff), timeout=timeout)
        if "error" in msg:
            raise _error(msg, f"bulk read from 0x{ep:02x}")
        got = bytes.fromhex(msg["data"])
        for i, b in enumerate(got[:len(buff)]):
            buff[i] = b
        return min(len(got), len(buff))

    intr_write = bulk_write
    intr_read = bulk_read

    def clear_halt(self, dev_handle, ep):
        # libusb_clear_halt: CLEAR_FEATURE(ENDPOINT_HALT) to the endpoint (the bootrom resets its data toggle)
        self.ctrl_transfer(dev_handle, 0x02, 0x01, 0, ep, None, 2000)

    # -- the bridge's own requests (fault injection, hot-plug) -------------------------------------------------
    def bridge(self, op: str, **kw) -> dict:
        return self._req(op, 5000, **kw)
