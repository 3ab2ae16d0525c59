"""Which URLs a session may load: ``http:``, ``https:`` and ``about:blank``, nothing else.

One check for every way a page can change: scripted and model navigation (refused before anything
loads), and what a page does by itself (a link, a popup, a redirect, a frame): ``Tabs`` watches
every frame and sends one that ends up elsewhere back to ``about:blank`` (a popup is closed).
``file:`` would read local files (the vault's key among them), ``data:``, ``blob:`` and
``javascript:`` run content no allowlist has seen, ``view-source:``, ``chrome:`` and their kin open
the browser's own pages.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from profiles import is_ip, normal_host

__all__ = ["ALLOWED_SCHEMES", "BLANK", "refused_scheme", "site_allowlist"]

ALLOWED_SCHEMES = frozenset({"http", "https"})
BLANK = "about:blank"
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
# What the browser's URL parser drops before reading a scheme: leading and trailing C0 controls
# and spaces, and tabs and newlines anywhere ("java\tscript:" is "javascript:").
_STRIPPED = "".join(chr(c) for c in range(0x21))
_REMOVED = re.compile(r"[\t\n\r]")


def refused_scheme(url: str, *, frame: bool = False) -> str | None:
    """The scheme of ``url`` (``"file:"``) if it may not be loaded, else None.

    ``about:blank`` is allowed; with ``frame``, ``about:srcdoc`` too (an iframe's inline document).
    A URL without a scheme is refused as ``"(none):"``: it is resolved before this check.
    """
    clean = _REMOVED.sub("", url.strip(_STRIPPED))
    match = _SCHEME.match(clean)
    if match is None:
        return "(none):"
    scheme = match.group(1).lower()
    if scheme in ALLOWED_SCHEMES:
        return None
    if scheme == "about":
        page = clean[len("about:") :].split("#", 1)[0].split("?", 1)[0].lower()
        if page == "blank" or (frame and page == "srcdoc"):
            return None
    return f"{scheme}:"


def site_allowlist(url: str) -> list[str]:
    """``allowed_domains`` entries for ``url``'s site: its host and the host's subdomains, on its
    port; a default port (80, 443) allows both, so an http-to-https upgrade still loads.

    Empty if ``url`` is not ``http(s)`` with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        return []
    try:
        port = parts.port
    except ValueError:
        return []
    host = normal_host(parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]")
    if host is None:
        return []
    name = f"[{host}]" if ":" in host else host
    ports = [80, 443] if port in (None, 80, 443) else [port]
    hosts = [name] if is_ip(host) else [name, f"*.{name}"]
    return [f"{h}:{p}" for h in hosts for p in ports]
