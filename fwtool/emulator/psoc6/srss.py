"""SRSS: the system resources the boot programs — clock paths, CLK_HF0, the FLL, the watchdog, reset cause.

Modelled: CLK_PATH_SELECT / CLK_ROOT_SELECT (stored; CLK_HF0's source path and divider feed ``hf0_hz``), the FLL
(CLK_FLL_CONFIG..CONFIG4 stored; CLK_FLL_STATUS reports CCO_READY once CONFIG4.CCO_ENABLE is set and LOCKED once
CONFIG.FLL_ENABLE is set — immediately, no settling time — unless the machine was built to refuse the lock),
the frequency those registers give (IMO 8 MHz / REF_DIV x MULT, /2 with OUTPUT_DIV, the FLL output only when
BYPASS_SEL picks it and it is locked, as the hardware's AUTO mode does), WDT_CTL/WDT_CNT (stored, the watchdog
never fires), RES_CAUSE (0: a power-on reset), the ECO status (never OK: the kits' boot does not use it).
The PLLs (clock paths 1.., SRSS_NUM_PLL of them; an audio app's CLK_HF1): CLK_PLL_CONFIG stored, CLK_PLL_STATUS
reports LOCKED once CONFIG.ENABLE is set (no settling time), the output IMO x FEEDBACK_DIV / REFERENCE_DIV /
OUTPUT_DIV when BYPASS_SEL picks it (AUTO: once locked); CLK_HFn's frequency from its root select (path, divider).
Not modelled: ILO/WCO/PILO frequencies, a path fed by anything but the IMO, power modes, LVD/BOD, hibernate."""
from __future__ import annotations

from fwtool.emulator.psoc6.bus import Bus
from fwtool.emulator.psoc6.regdefs import Device

IMO_HZ = 8_000_000
BYPASS_AUTO, BYPASS_REF, BYPASS_OUT = 0, 2, 3  # CLK_FLL_CONFIG3.BYPASS_SEL (PDL cy_en_fll_pll_output_mode_t)


class Srss:
    def __init__(self, bus: Bus, dev: Device, fll_locks: bool = True) -> None:
        self.bus, self.dev, self.fll_locks = bus, dev, fll_locks
        r = lambda name: dev.reg("SRSS", name)  # noqa: E731
        self.config, self.config2, self.config3, self.config4 = (r(n) for n in (
            "CLK_FLL_CONFIG", "CLK_FLL_CONFIG2", "CLK_FLL_CONFIG3", "CLK_FLL_CONFIG4"))
        self.status = r("CLK_FLL_STATUS")
        self.root0, self.path = r("CLK_ROOT_SELECT[0]"), [r(f"CLK_PATH_SELECT[{i}]") for i in range(16)]
        self.f = lambda reg, name: dev.field(reg, name)  # noqa: E731
        bus.on_read(self.status, self._status)
        bus.set(self.root0, self.f("SRSS_CLK_ROOT_SELECT", "ENABLE")[1])  # CLK_HF0 is on out of reset
        bus.set(r("CLK_IMO_CONFIG"), 1 << 31)  # IMO enabled
        self.n_pll = dev.defines.get("SRSS_NUM_PLL", 0)
        self.pll_config = [r(f"CLK_PLL_CONFIG[{i}]") for i in range(self.n_pll)]
        for i in range(self.n_pll):
            bus.on_read(r(f"CLK_PLL_STATUS[{i}]"), lambda core, i=i: self._pll_status(i))
        self.roots = [r(f"CLK_ROOT_SELECT[{i}]") for i in range(dev.defines.get("SRSS_NUM_HFROOT", 1))]

    def _bits(self, addr: int, reg: str, name: str) -> int:
        pos, mask = self.f(reg, name)
        return (self.bus.get(addr) & mask) >> pos

    def fll_enabled(self) -> bool:
        return bool(self._bits(self.config, "SRSS_CLK_FLL_CONFIG", "FLL_ENABLE"))

    def fll_locked(self) -> bool:
        return self.fll_locks and self.fll_enabled() and bool(self._bits(self.config4, "SRSS_CLK_FLL_CONFIG4",
                                                                          "CCO_ENABLE"))

    def _status(self, core: int) -> int:
        value = 0
        if self._bits(self.config4, "SRSS_CLK_FLL_CONFIG4", "CCO_ENABLE"):
            value |= self.f("SRSS_CLK_FLL_STATUS", "CCO_READY")[1]
        if self.fll_locked():
            value |= self.f("SRSS_CLK_FLL_STATUS", "LOCKED")[1]
        return value

    def fll_target_hz(self) -> int:
        """What the FLL registers ask for: IMO / REF_DIV x MULT (/2 with OUTPUT_DIV)."""
        mult = self._bits(self.config, "SRSS_CLK_FLL_CONFIG", "FLL_MULT")
        ref = self._bits(self.config2, "SRSS_CLK_FLL_CONFIG2", "FLL_REF_DIV") or 1
        div = 2 if self._bits(self.config, "SRSS_CLK_FLL_CONFIG", "FLL_OUTPUT_DIV") else 1
        return IMO_HZ * mult // ref // div

    def path0_hz(self) -> int:
        """Clock path 0 (the FLL's path): its input (IMO here), through the FLL when it drives the output."""
        bypass = self._bits(self.config3, "SRSS_CLK_FLL_CONFIG3", "BYPASS_SEL")
        if bypass == BYPASS_OUT or (bypass == BYPASS_AUTO and self.fll_locked()):
            return self.fll_target_hz() if self.fll_enabled() else 0
        return IMO_HZ

    def hf0_hz(self) -> int:
        return self.hf_hz(0)

    # ---- PLLs: clock path i + 1 ----
    def pll_enabled(self, i: int) -> bool:
        return bool(self._bits(self.pll_config[i], "SRSS_CLK_PLL_CONFIG", "ENABLE"))

    def _pll_status(self, i: int) -> int:
        return self.f("SRSS_CLK_PLL_STATUS", "LOCKED")[1] if self.pll_enabled(i) else 0

    def pll_hz(self, i: int) -> int:
        """PLL i's output (clock path i + 1): IMO x P / Q / OUTPUT_DIV through the bypass mux (the IMO otherwise)."""
        cfg, reg = self.pll_config[i], "SRSS_CLK_PLL_CONFIG"
        bypass = self._bits(cfg, reg, "BYPASS_SEL")
        if not (bypass == BYPASS_OUT or (bypass == BYPASS_AUTO and self.pll_enabled(i))):
            return IMO_HZ
        if not self.pll_enabled(i):
            return 0
        p, q = self._bits(cfg, reg, "FEEDBACK_DIV"), self._bits(cfg, reg, "REFERENCE_DIV") or 1
        return IMO_HZ * p // q // (self._bits(cfg, reg, "OUTPUT_DIV") or 1)

    def path_hz(self, path: int) -> int:
        if path == 0:
            return self.path0_hz()
        return self.pll_hz(path - 1) if path - 1 < self.n_pll else IMO_HZ  # the other paths: the IMO direct

    def hf_enabled(self, n: int) -> bool:
        return bool(self.bus.get(self.roots[n]) & self.f("SRSS_CLK_ROOT_SELECT", "ENABLE")[1])

    def hf_hz(self, n: int) -> int:
        """CLK_HFn: its root select's path, divided by 1, 2, 4 or 8."""
        root = self.roots[n]
        mux = self._bits(root, "SRSS_CLK_ROOT_SELECT", "ROOT_MUX")
        return self.path_hz(mux) // (1 << self._bits(root, "SRSS_CLK_ROOT_SELECT", "ROOT_DIV"))
