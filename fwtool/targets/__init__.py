"""Targets: the places where a firmware image runs and prints ``FWT:`` lines (fwtool/core/protocol.py).

* :mod:`.base` — the interface (:class:`~fwtool.targets.base.Target`) and what a target declares about itself
  (:class:`~fwtool.targets.base.TargetInfo`). It imports fwtool.core only, so every implementation can use it.
* :mod:`.registry` — ``by_name("rp2040js")`` and the choice for a command (``for_board``): a family names its
  virtual target as data (``Family.virtual_target``).
* :mod:`.physical` — a real board behind its serial port (flashed by fwtool.flash).
* Virtual targets live beside their emulators in fwtool/emulator/ (``rp2040js``: the virtual RP2040;
  ``qemu-mps2-an386``: the virtual Cortex-M4); the labgrid place is fwtool/lab/target.py (it needs labgrid).

A new target is one file implementing ``Target`` plus one entry in ``registry.TARGETS``.
"""
