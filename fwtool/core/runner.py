"""Every subprocess fwtool starts goes through here: one place for tool lookup, streaming and errors."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable, Sequence

from fwtool.core.errors import FwtoolError, MissingTool, ToolTimeout


def which(tool: str) -> str | None:
    return shutil.which(tool)


def require(tool: str, fix: str) -> str:
    path = which(tool)
    if not path:
        raise MissingTool(f"'{tool}' was not found on PATH", fix)
    return path


def command_line(cmd: Sequence[str]) -> str:
    """How a command is logged: ``$ cmake -S … -B …`` (shell-quoted, so it can be pasted to re-run it)."""
    return "$ " + shlex.join(map(str, cmd))


def capture(cmd: Sequence[str], cwd: Path | None = None, env: dict | None = None, timeout: float | None = 60,
            check: bool = True, on_command: Callable[[str], None] | None = None) -> subprocess.CompletedProcess:
    """Run to completion and capture stdout/stderr as text; ``on_command`` gets the command line first."""
    if on_command:
        on_command(command_line(cmd))
    try:
        proc = subprocess.run(list(map(str, cmd)), cwd=cwd, env=_env(env), capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError as e:
        raise MissingTool(f"'{cmd[0]}' was not found", "install it, then run 'fwtool doctor'") from e
    except subprocess.TimeoutExpired as e:
        raise ToolTimeout(f"'{Path(cmd[0]).name}' did not finish within {timeout:.0f} s") from e
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise FwtoolError(f"'{' '.join(map(str, cmd[:3]))}…' failed (exit {proc.returncode}): {tail[0]}")
    return proc


def stream(cmd: Sequence[str], cwd: Path | None = None, env: dict | None = None,
           on_line: Callable[[str], None] | None = None, timeout: float | None = None,
           on_command: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
    """Run, feeding each output line (stdout and stderr merged) to ``on_line``; return (exit code, all lines).

    ``on_command`` gets the command line (:func:`command_line`) before it starts (build.log, ``-v``)."""
    if on_command:
        on_command(command_line(cmd))
    lines: list[str] = []
    try:
        proc = subprocess.Popen(list(map(str, cmd)), cwd=cwd, env=_env(env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
    except FileNotFoundError as e:
        raise MissingTool(f"'{cmd[0]}' was not found", "install it, then run 'fwtool doctor'") from e
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if on_line:
                on_line(line)
        rc = proc.wait(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return rc, lines


def _env(extra: dict | None) -> dict | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def spawn(cmd: Sequence[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start a long-running helper in its own process group, with pipes for stdin/stdout/stderr (binary).

    The caller owns it: end it with :func:`kill_group` (also on Ctrl-C), so no child outlives fwtool.
    """
    try:
        return subprocess.Popen(list(map(str, cmd)), cwd=cwd, env=_env(env), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError as e:
        raise MissingTool(f"'{cmd[0]}' was not found", "install it, then run 'fwtool doctor'") from e


def kill_group(proc: subprocess.Popen, grace: float = 2.0) -> int | None:
    """SIGTERM the process group started by :func:`spawn`, SIGKILL it after ``grace`` seconds; reap it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.wait(timeout=5)
    return proc.returncode


def stop(proc: subprocess.Popen, grace: float = 2.0) -> int | None:
    """:func:`kill_group`, then close the pipes fwtool held to it (an ended child's pipes are not needed)."""
    code = kill_group(proc, grace)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream:
                stream.close()
        except OSError:
            pass
    return code
