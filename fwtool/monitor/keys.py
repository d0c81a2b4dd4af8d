"""What the user types goes to the board, a line at a time; a few keys control the monitor.

On a terminal (live view) the keyboard is read key by key (cbreak mode; Ctrl-C still interrupts):

* Enter sends the typed line (plus the end-of-line, CRLF by default); Backspace / Ctrl-U edit it;
* **Ctrl-R** reboots the board, **Ctrl-B** reboots it into BOOTSEL, **Ctrl-]** or Ctrl-C quits.

Otherwise (piped stdin, or the plain/json/raw views) stdin is read line by line and each line is sent; the lines
``~r``, ``~b`` and ``~.`` do what Ctrl-R, Ctrl-B and Ctrl-] do.

The reader runs on a daemon thread and only queues events; the session's loop acts on them.
"""
from __future__ import annotations

import codecs
import os
import queue
import select
import threading

try:
    import termios
    import tty
except ImportError:  # Windows: line mode only
    termios = None
    tty = None

KEY_ACTIONS = {"\x12": "reboot", "\x02": "bootsel", "\x1d": "quit"}
LINE_ACTIONS = {"~r": "reboot", "~b": "bootsel", "~.": "quit"}
EOLS = {"crlf": "\r\n", "lf": "\n", "cr": "\r"}


class InputReader:
    """Events from ``poll()``: ("line", text), ("action", "reboot"|"bootsel"|"quit"), ("pending", text)."""

    def __init__(self, stdin, keys: bool):
        self.stdin = stdin
        self.q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved = None
        self.fd = None
        try:
            self.fd = stdin.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None
        self.keys = bool(keys and termios is not None and self.fd is not None and os.isatty(self.fd))
        self.pending = ""

    def start(self) -> None:
        if self.keys:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
            target = self._run_keys
        else:
            target = self._run_lines
        self._thread = threading.Thread(target=target, name="fwtool-monitor-input", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except (termios.error, OSError):
                pass
            self._saved = None
        if self._thread is not None and self.keys:
            self._thread.join(timeout=0.5)

    def poll(self) -> list[tuple[str, str]]:
        out = []
        while True:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                return out

    # ---- line mode --------------------------------------------------------------------------------------------
    def _run_lines(self) -> None:
        while not self._stop.is_set():
            try:
                line = self.stdin.readline()
            except (OSError, ValueError):
                return
            if not line:  # EOF: nothing more to send
                return
            if isinstance(line, bytes):
                line = line.decode("utf-8", errors="replace")
            line = line.rstrip("\r\n")
            if line.strip() in LINE_ACTIONS:
                self.q.put(("action", LINE_ACTIONS[line.strip()]))
            else:
                self.q.put(("line", line))

    # ---- key mode ---------------------------------------------------------------------------------------------
    def _run_keys(self) -> None:
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        in_escape = False
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(self.fd, 64)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            for ch in dec.decode(chunk):
                if in_escape:  # skip terminal escape sequences (arrow keys ...): ESC [ params final
                    if ch != "[" and ("@" <= ch <= "~"):
                        in_escape = False
                    continue
                self.feed_key(ch)
                if ch == "\x1b":
                    in_escape = True

    def feed_key(self, ch: str) -> None:
        """One typed character (public for tests)."""
        if ch in KEY_ACTIONS:
            self.q.put(("action", KEY_ACTIONS[ch]))
            return
        if ch in ("\r", "\n"):
            line, self.pending = self.pending, ""
            if line.strip() in LINE_ACTIONS:
                self.q.put(("action", LINE_ACTIONS[line.strip()]))
            else:
                self.q.put(("line", line))
        elif ch in ("\x7f", "\x08"):
            self.pending = self.pending[:-1]
        elif ch == "\x15":  # Ctrl-U
            self.pending = ""
        elif ch == "\t" or ch >= " ":
            self.pending += ch
        else:
            return
        self.q.put(("pending", self.pending))
