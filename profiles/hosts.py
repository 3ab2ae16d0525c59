"""Hosts and origins: how corral reads a host name, an origin, and whether one matches a rule.

The one matcher behind the egress allowlist (:mod:`profiles.allowlist`, used by the proxy and by
the risk facts), the vault's secret domains (``origin_allowed``) and the session's navigation
checks (``tools.navigation``).

- Hosts compare case-insensitively, without a trailing dot; IP literals compare by value
  (``127.1`` is ``127.0.0.1``, as in the browser's URL parser).
- A wildcard ``*.example.com`` matches any subdomain at any depth, never ``example.com`` itself,
  never an IP address.
- An origin is ``scheme://host:port`` with the port always explicit (``"null"`` if none).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UserError

__all__ = [
    "DEFAULT_PORTS",
    "HostRule",
    "host_matches",
    "is_ip",
    "normal_host",
    "origin_allowed",
    "origin_of",
    "parse_domain",
    "parse_port",
    "split_authority",
    "url_allowed",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
"""The default port of each scheme an origin may have."""
_URL_PORTS = {**DEFAULT_PORTS, "ws": 80, "wss": 443}
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)\Z")


def is_ip(host: str) -> bool:
    """True if ``host`` is an IPv4 or IPv6 address (without brackets)."""
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
    """A port number from 1 to 65535 written in ASCII digits, or None."""
    if not text.isdigit() or not text.isascii():
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def host_matches(host: str, domain: str, *, wildcard: bool = False) -> bool:
    """True if ``host`` is ``domain``, or with ``wildcard`` one of its subdomains (not an IP)."""
    if wildcard:
        return host.endswith("." + domain) and not is_ip(host)
    return host == domain


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
        return host_matches(host, self.host, wildcard=self.wildcard)


def url_allowed(url: str, rules: Iterable[HostRule]) -> bool:
    """True if ``url``'s host and port (default ports filled in) match one of ``rules``."""
    parts = urlsplit(url)
    try:
        port = parts.port or _URL_PORTS[parts.scheme]
    except (KeyError, ValueError):
        return False
    host = parts.hostname or ""
    normal = normal_host(host if ":" not in host else f"[{host}]")
    return normal is not None and any(rule.matches(normal, port) for rule in rules)


# --- origins (the vault's secret domains) ------------------------------------------------------


def parse_domain(spec: str) -> tuple[str, str, int | None]:
    """``https://host:port``, ``host`` (https), ``*.example.com`` -> (scheme, host, port).

    The port is None when the spec gives none: the scheme's default port is meant.
    """
    raw = spec.strip().lower()
    if not raw:
        raise UserError("--domain: an empty domain is not allowed")
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    try:
        port = parts.port
    except ValueError as exc:
        raise UserError(f"--domain {spec!r}: {exc}") from exc
    if parts.username is not None or parts.password is not None:
        raise UserError(f"--domain {spec!r}: give an origin without credentials")
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UserError(
            f"--domain {spec!r}: expected https://host[:port], http://host:port, "
            "host, or *.example.com"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UserError(f"--domain {spec!r}: give an origin only, without a path")
    host = parts.hostname
    if "*" in host and not (host.startswith("*.") and "*" not in host[2:]):
        raise UserError(f"--domain {spec!r}: a wildcard may only be a leading '*.'")
    if host.startswith("*.") and "." not in host[2:]:
        raise UserError(f"--domain {spec!r}: a wildcard must name a domain, e.g. *.example.com")
    return parts.scheme, host, port


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, with the port always explicit; "null" if none."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return "null"
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    return f"{parts.scheme}://{parts.hostname}:{port}"


def origin_allowed(origin: str, domains: Iterable[str]) -> bool:
    """True if ``origin`` (from :func:`origin_of`) matches one of the domain specs."""
    if origin == "null":
        return False
    parts = urlsplit(origin)
    scheme, host = parts.scheme, parts.hostname or ""
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return False
    for spec in domains:
        want_scheme, want_host, want_port = parse_domain(spec)
        if scheme != want_scheme or port != (want_port or DEFAULT_PORTS[want_scheme]):
            continue
        wildcard = want_host.startswith("*.")
        if host_matches(host, want_host.removeprefix("*."), wildcard=wildcard):
            return True
    return False
