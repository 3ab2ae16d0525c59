"""Egress allowlists: parsing ``allowed_domains`` entries and matching hosts against them.

Shared by the egress proxy (``profiles.egress``) and the risk facts (``tools.facts``: whether a
form or link leads off the allowlist), so both read an allowlist the same way. Hosts are matched
by :mod:`profiles.hosts`.

Allowlist entries (``allowed_domains``):

- ``portal.example`` — that host, any port; ``127.0.0.1``, ``[::1]`` and ``::1`` for IP literals;
- ``*.example.com`` — any subdomain of example.com at any depth, but NOT ``example.com`` itself
  (list both to allow both; the same rule the vault's origin scopes use);
- ``host:8080`` — only that port;
- ``https://portal.example/any/path`` — the host (and port if given) of the URL; the scheme and
  path are dropped, since a CONNECT tunnel does not say which scheme runs inside it.

A malformed entry raises ``InvalidAllowlistError`` (a ``UserError``, exit 2) naming the entry and
what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from .errors import InvalidAllowlistError, UserError
from .hosts import HostRule, is_ip, normal_host, parse_port, split_authority, url_allowed

__all__ = [
    "InvalidAllowlistError",
    "host_resolver_rules",
    "off_allowlist",
    "parse_allowlist",
    "parse_host_map",
]

_SCHEMES = ("http", "https", "ws", "wss")
_EXPECTED = (
    "expected a host name, an IP address or '*.domain', optionally with ':port' or a scheme, "
    "e.g. 'portal.example', '*.example.com', '127.0.0.1:8080', '[::1]', 'https://portal.example'"
)


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


def off_allowlist(url: str | None, entries: Sequence[str]) -> bool:
    """True if ``url`` leads to a host the allowlist ``entries`` refuse (an unreadable allowlist
    refuses everything); False without a URL or without an allowlist."""
    if not url or not entries:
        return False
    try:
        rules = parse_allowlist(entries)
    except UserError:
        return True
    return not url_allowed(url, rules)


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
