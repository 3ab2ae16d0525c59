"""The guard that keeps tests on this machine: no connection to a real model provider, or to
any host that is not loopback.

It works at the socket layer of this process (name lookups and connects), under every client:
httpx and the model SDKs, asyncio, the stdlib. Unix sockets and pipes (Playwright's driver) are
not touched, and Chromium is another process whose traffic is the egress proxy's business.
A refused connection raises :class:`OffMachineConnectionError` (an ``OSError``, so clients handle
it like a refused connection) and is recorded, so a test whose code swallows the error still
fails when the guard is checked.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

__all__ = ["PROVIDER_KEYS", "NetworkGuard", "OffMachineConnectionError", "is_loopback"]

PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
"""The built-in providers' key variables: unset in every test."""

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class OffMachineConnectionError(ConnectionRefusedError):
    """A test tried to reach a host that is not this machine."""


def is_loopback(host: object) -> bool:
    """Whether ``host`` (a name or an address) is this machine: 127.0.0.0/8, ::1, localhost.
    No host at all (``None``, ``""``: a wildcard lookup for a server to bind) counts as local."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host == "":
        return True
    if not isinstance(host, str):
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


class NetworkGuard:
    """Refuses, and records, every lookup of or connection to a host that is not loopback."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        """``host:port`` of every refused attempt, in order."""

    def _check(self, host: object, port: object) -> None:
        if isinstance(host, bytes):  # anyio looks names up IDNA-encoded
            host = host.decode("ascii", "replace")
        if not is_loopback(host):
            target = f"{host}:{port}"
            self.refused.append(target)
            raise OffMachineConnectionError(
                f"connection to {target} refused: tests never leave this machine "
                "(use a loopback server or httpx.MockTransport)"
            )

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Patch this process's name lookups and socket connects until ``monkeypatch`` undoes it."""
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        check = self._check

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            check(host, port)
            return real_getaddrinfo(host, port, *args, **kwargs)

        def connect(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                check(address[0], address[1])
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                check(address[0], address[1])
            return real_connect_ex(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
