"""The local cluster's processes: started in a session of their own (they outlive ``up``), known by the process
ids written in the state directory, stopped by those ids (never by name), each one's output in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from herd_local.errors import LocalClusterError

__all__ = ["Supervisor", "alive"]


def alive(pid: int, binary: str) -> bool:
    """Whether ``pid`` is still a process of ``binary`` (not a recycled id)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(cmdline).name == binary


class Supervisor:
    """Starts, watches and stops the processes of one cluster.

    Attributes:
        directory: the cluster's state directory (``pids/`` and ``logs/`` in it).
        bin: where the binaries are, or a callable giving it (found only when a process starts).
    """

    def __init__(self, directory: Path, bin_dir: Callable[[], Path]) -> None:
        self.directory = directory
        self._bin = bin_dir

    def pid_file(self, name: str) -> Path:
        return self.directory / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    def pid(self, name: str) -> int | None:
        f = self.pid_file(name)
        return int(f.read_text()) if f.exists() else None

    def running(self, names: Iterable[str]) -> dict[str, int]:
        """The processes among ``names`` still alive, by name."""
        out = {}
        for name in names:
            pid = self.pid(name)
            if pid is not None and alive(pid, name):
                out[name] = pid
        return out

    def spawn(self, name: str, args: list[str], wrap: list[str] | None = None) -> None:
        """Start ``name`` (through ``wrap``, a command that ends by exec'ing it, so the pid stays its own)."""
        log = self.log_file(name).open("ab")
        proc = subprocess.Popen(
            [*(wrap or []), str(self._bin() / name), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `up`; `down` stops it by its pid
            cwd=self.directory,
        )
        self.pid_file(name).write_text(str(proc.pid))
        time.sleep(0.2)
        if proc.poll() is not None:
            raise LocalClusterError(self.died(name))

    def died(self, name: str) -> str:
        """The one line that says ``name`` ended: the last line of its log."""
        log = self.log_file(name)
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        last = lines[-1] if lines else "no output"
        return f"{name} exited at start: {last[:300]} (log: {log})"

    def check_alive(self, names: Iterable[str]) -> None:
        """Raise the first of ``names`` that is no longer running, with its last words."""
        running = self.running(names)
        for name in names:
            if name not in running:
                raise LocalClusterError(self.died(name))

    def wait_http(self, url: str, name: str, ssl_context: ssl.SSLContext | None, timeout: float = 120.0) -> None:
        """Until ``url`` answers 200, while ``name`` lives."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive([name])
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=5, context=ssl_context) as answer,
            ):
                if answer.status == 200:
                    return
            if time.monotonic() > deadline:
                raise LocalClusterError(f"{name} did not answer {url} within {timeout:.0f} s")
            time.sleep(0.3)

    def stop(self, name: str, timeout: float = 20.0) -> bool:
        """SIGTERM ``name`` by its pid, SIGKILL after ``timeout``; whether it was running."""
        pid = self.pid(name)
        if pid is None or not alive(pid, name):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid, name) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if alive(pid, name):
            os.kill(pid, signal.SIGKILL)
        return True
