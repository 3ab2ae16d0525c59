"""Many hosts on one machine: ``corral serve`` and ``corral worker`` processes that share one
PostgreSQL store, each with a CORRAL_HOME of its own (its run folders) and the same master key."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.support.cli import CORRAL
from tests.support.processes import running_chromium
from tests.support.wait import until

__all__ = ["Host", "hosts"]


class Host:
    """One corral process (``serve`` or ``worker``) as if on a host of its own."""

    def __init__(self, root: Path, name: str, env: dict[str, str], *args: str) -> None:
        self.name = name
        self.home = root / name
        self.log = root / f"{name}.log"
        self._err = self.log.open("w")
        self.proc = subprocess.Popen(
            [*CORRAL, *args],
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            env={**os.environ, **env, "CORRAL_HOME": str(self.home)},
            start_new_session=True,
        )
        self.children: list[psutil.Process] = []

    async def ready(self, marker: str) -> str:
        """Wait for ``marker`` in its log; returns the line."""

        def line() -> str | None:
            for text in self.text().splitlines():
                if marker in text:
                    return text
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.text()}")
            return None

        return await until(line, 90, f"{self.name} to start")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._err.close()

    def kill(self) -> None:
        """``kill -9``, keeping its browser processes to check they end too."""
        self.children = running_chromium(psutil.Process(self.proc.pid).children(recursive=True))
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._err.close()

    def reap(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if not self._err.closed:
            self._err.close()


@contextmanager
def hosts() -> Iterator[list[Host]]:
    """Hosts a test starts; every one still running at the end is killed."""
    started: list[Host] = []
    try:
        yield started
    finally:
        for host in started:
            host.reap()
