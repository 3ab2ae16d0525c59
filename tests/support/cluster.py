"""Many hosts on one machine: ``corral serve`` and ``corral worker`` processes that share one
PostgreSQL store, each with a CORRAL_HOME of its own (its run folders) and the same master key."""

from __future__ import annotations

import asyncio
import contextlib
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

__all__ = ["Cable", "Host", "hosts"]


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

    async def stopped(self) -> int:
        """:meth:`stop` without blocking the event loop (a :class:`Cable` in it keeps carrying
        the host's traffic while it shuts down)."""
        return await asyncio.to_thread(self.stop)

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


class Cable:
    """A TCP hop on 127.0.0.1 between a host and the database, that a test cuts and mends.

    Cut, it carries nothing either way and new connections wait, as when the network between a
    host and the database splits (no reset, no error: the host's calls just get no answer);
    mended, what waited goes through, as TCP retransmission would deliver it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._join, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def cut(self) -> None:
        self.flowing.clear()

    def mend(self) -> None:
        self.flowing.set()

    async def _join(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.flowing.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for pump in (self._pump(reader, up_writer), self._pump(up_reader, writer)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
