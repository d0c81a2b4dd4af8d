"""``fwtool monitor``: find the board's serial port, follow it across resets, understand FWT: lines.

Entry point for other commands (``fwtool run``): :func:`run_monitor` with :class:`MonitorOptions`.
"""
from fwtool.monitor.session import MonitorOptions, MonitorResult, Session, run_monitor

__all__ = ["MonitorOptions", "MonitorResult", "Session", "run_monitor"]
