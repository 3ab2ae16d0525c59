"""Egress allowlists: parsing ``allowed_domains`` entries and matching hosts against them.

Shared by the egress proxy (``profiles.egress``) and the risk rules (``policies``), so both read an
allowlist the same way.

Allowlist entries (``allowed_domains``):

- ``portal.example`` — that host, any port; ``127.0.0.1``, ``[::1]`` and ``::1`` for IP literals;
- ``*.example.com`` — any subdomain of example.com at any depth, but NOT ``example.com`` itself
  (list both to allow both; the same rule the vault's origin scopes use);
- ``host:8080`` — only that port;
- ``https://portal.example/any/path`` — the host (and port if given) of the URL; the scheme and
  path are dropped, since a CONNECT tunnel does not say which scheme runs inside it.

Hosts compare case-insensitively, without a trailing dot; IP literals compare by value
(``127.1`` is ``127.0.0.1``, as in the browser's URL parser).

A malformed entry raises ``InvalidAllowlistError`` (a ``UserError``, exit 2) naming the entry and
what was expected.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UserError

__all__ = [
    "HostRule",
    "InvalidAllowlistError",
    "host_resolver_rules",
    "is_ip",
    "normal_host",
    "parse_allowlist",
    "parse_host_map",
    "parse_port",
    "split_authority",
    "url_allowed",
]

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)\Z")
_SCHEMES = ("http", "https", "ws", "wss")
_EXPECTED = (
    "expected a host name, an IP address or '*.domain', optionally with ':port' or a scheme, "
    "e.g. 'portal.example', '*.example.com', '127.0.0.1:8080', '[::1]', 'https://portal.example'"
)


class InvalidAllowlistError(UserError):
    """An ``allowed_domains`` or ``host_map`` entry that cannot be parsed."""


@dataclass(frozen=True)
class HostRule:
    """One parsed allowlist entry."""

    host: str
    """Normalised host; for a wildcard, the domain after ``*.``."""
    wildcard: bool = False
    port: int | None = None
    """None: any port."""

    def matches(self, host: str, port: int) -> bool:
        """True if this rule allows ``host`` (normalised) on ``port``."""
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host) and not is_ip(host)
        return host == self.host


# --- parsing ----------------------------------------------------------------------------------


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normal_host(raw: str) -> str | None:
    """The canonical form of a host name or IP literal, or None if it is neither."""
    host = raw.lower()
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1]).compressed
        except ValueError:
            return None
    host = host.removesuffix(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    if _NUMERIC_LABEL.match(labels[-1]):
        # The browser's URL parser reads "127.1" or "0x7f.0.0.1" as IPv4, and so does this.
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return host


def split_authority(authority: str) -> tuple[str, str | None] | None:
    """``host[:port]`` or ``[v6][:port]`` -> (host, port text or None); None if malformed."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[: end + 1], authority[end + 1 :]
        if not rest:
            return host, None
        return (host, rest[1:]) if rest.startswith(":") else None
    host, sep, port = authority.partition(":")
    return host, (port if sep else None)


def parse_port(text: str) -> int | None:
    if not text.isdigit() or not text.isascii():
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def _entry_error(entry: str, why: str = "") -> InvalidAllowlistError:
    detail = f"{why}; " if why else ""
    return InvalidAllowlistError(f"allowed_domains entry {entry!r}: {detail}{_EXPECTED}")


def _parse_entry(entry: str) -> HostRule:
    raw = entry.strip().lower()
    if not raw:
        raise _entry_error(entry, "empty")
    if "://" in raw:
        parts = urlsplit(raw)
        if parts.scheme not in _SCHEMES:
            raise _entry_error(entry, f"scheme {parts.scheme!r} is not one of {_SCHEMES}")
        raw = parts.netloc
    else:
        raw = raw.split("/", 1)[0]
    if "@" in raw:
        raise _entry_error(entry, "credentials are not allowed")
    if raw.count(":") > 1 and not raw.startswith("["):
        raw = f"[{raw}]"  # a bare IPv6 address such as ::1 (it cannot carry a port)
    split = split_authority(raw)
    if split is None:
        raise _entry_error(entry)
    host_text, port_text = split
    port = None
    if port_text is not None:
        port = parse_port(port_text)
        if port is None:
            raise _entry_error(entry, f"port {port_text!r} is not a number from 1 to 65535")
    wildcard = host_text.startswith("*.")
    if wildcard:
        host_text = host_text[2:]
    if host_text == "*":
        raise _entry_error(entry, "'*' would allow everything; leave the allowlist empty instead")
    host = normal_host(host_text)
    if host is None or (wildcard and is_ip(host)):
        raise _entry_error(entry)
    return HostRule(host, wildcard, port)


def parse_allowlist(entries: Iterable[str]) -> tuple[HostRule, ...]:
    """Parse ``allowed_domains`` entries; raises InvalidAllowlistError naming a bad one."""
    if isinstance(entries, str):
        raise InvalidAllowlistError(f"allowed_domains must be a list of hosts, not {entries!r}")
    return tuple(_parse_entry(entry) for entry in entries)


def url_allowed(url: str, rules: Iterable[HostRule]) -> bool:
    """True if ``url``'s host and port (default ports filled in) match one of ``rules``."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}[parts.scheme]
    except (KeyError, ValueError):
        return False
    host = parts.hostname or ""
    normal = normal_host(host if ":" not in host else f"[{host}]")
    return normal is not None and any(rule.matches(normal, port) for rule in rules)


def parse_host_map(host_map: Mapping[str, str] | None) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for name, address in (host_map or {}).items():
        host = normal_host(name.strip())
        target = address.strip().removeprefix("[").removesuffix("]")
        if host is None or not target or (normal_host(target) is None and not is_ip(target)):
            raise InvalidAllowlistError(
                f"host_map entry {name!r} -> {address!r}: expected a host name mapped to an "
                "IP address or host name, e.g. 'portal.test' -> '127.0.0.1'"
            )
        parsed[host] = target
    return parsed


def host_resolver_rules(host_map: Mapping[str, str]) -> str:
    """Chromium's ``--host-resolver-rules`` launch argument for ``host_map`` (``MAP a b,...``)."""
    rules = []
    for name, address in sorted(parse_host_map(host_map).items()):
        # Chromium wants an IPv6 replacement in brackets.
        target = f"[{address}]" if ":" in address else address
        rules.append(f"MAP {name} {target}")
    return "--host-resolver-rules=" + ",".join(rules)
