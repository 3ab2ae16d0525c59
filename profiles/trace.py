"""Playwright traces at rest: scrubbed before they get their name, nothing to dictionary-attack.

A raw trace holds what the browser saw and sent: session cookies and ``Authorization`` headers in
``trace.network``, typed values in the DOM snapshots, request and response bodies as
``resources/<sha1>.<ext>`` members. :func:`scrub_trace` writes a copy where

- credential headers (``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` and a
  few ``X-*`` token headers) and every ``cookies`` entry have their values replaced, and those
  values (plus any ``extra_secrets``, e.g. the context's cookie values) are redacted from every
  member, bodies and DOM snapshots included;
- every run secret the ``Redactor`` knows is redacted from every member;
- resource members get neutral names (``resources/r00001.html``) and every reference to them is
  rewritten: a SHA-1 of a body that carried a short secret would let anyone holding the trace test
  guesses against it offline;
- with ``bodies=False`` (task ``trace: no_bodies``) no resource member is kept at all, and request
  ``postData`` (text, form params) is dropped.

The caller writes the raw trace under a temporary name and renames the scrubbed copy into place,
so a ``trace.zip`` is never unscrubbed (see ``Session.stop_trace``).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from .private import PRIVATE_FILE
from .redact import Redactor

__all__ = ["REDACTED", "TRACE_MODES", "TraceMode", "scrub_trace", "scrub_zip"]

TraceMode = Literal["on", "off", "no_bodies"]
TRACE_MODES: tuple[TraceMode, ...] = ("on", "off", "no_bodies")
REDACTED = "[redacted]"
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
    }
)
# Credential values shorter than this are replaced where they sit (headers, cookie lists) but not
# searched for elsewhere: blanking every "en" or "1" in a trace would ruin it and protect nothing.
MIN_CREDENTIAL_LENGTH = 8
_RESOURCES = "resources/"
_BODY_FIELDS = ("text", "params", "_file", "_sha1", "encoding")


def _cookie_values(header: str, name: str) -> list[str]:
    if name == "set-cookie":
        pairs = [line.split(";", 1)[0] for line in header.splitlines()]
    elif name == "cookie":
        pairs = header.split(";")
    else:
        # "Bearer abc", "Basic abc": the whole value and its credential part.
        return [header, header.partition(" ")[2]]
    return [p.partition("=")[2].strip() for p in pairs]


class _Scrubber:
    """One trace's rewrite: renames, credential values found, and the body policy."""

    def __init__(self, renames: dict[str, str], bodies: bool) -> None:
        self.renames = renames
        self.bodies = bodies
        self.found: set[str] = set()

    def walk(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return self._mapping(value, key)
        if isinstance(value, list):
            items = [self.walk(v, key) for v in value]
            if key == "resourceOverrides" and not self.bodies:
                # Overrides point at stylesheet bodies, which no_bodies keeps none of.
                items = [i for i in items if not (isinstance(i, dict) and "file" in i)]
            return items
        if isinstance(value, str):
            return self.renames.get(value, value)
        return value

    def _mapping(self, obj: dict[str, Any], key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        name = obj.get("name")
        header = name.lower() if isinstance(name, str) else ""
        for k, v in obj.items():
            lowered = k.lower()
            if (lowered in SENSITIVE_HEADERS or lowered == "password") and isinstance(v, str):
                # Headers given as a mapping (setExtraHTTPHeaders), credentials (httpCredentials).
                self.found.update(_cookie_values(v, lowered))
                out[k] = REDACTED
            elif k == "value" and isinstance(v, str) and (header in SENSITIVE_HEADERS):
                self.found.update(_cookie_values(v, header))
                out[k] = REDACTED
            elif k == "value" and isinstance(v, str) and key == "cookies":
                self.found.add(v)
                out[k] = REDACTED
            else:
                out[k] = self.walk(v, k)
        if not self.bodies and key in ("postData", "content"):
            for field in _BODY_FIELDS:
                out.pop(field, None)
        return out


def _renames(names: Iterable[str]) -> dict[str, str]:
    """Old resource member name (and its bare file name, as older formats cite it) -> new."""
    out: dict[str, str] = {}
    count = 0
    for name in names:
        if not name.startswith(_RESOURCES) or name in out:
            continue
        count += 1
        suffix = Path(name).suffix
        # Only a short alphanumeric extension (the MIME type's) survives; nothing of the content.
        ext = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ".dat"
        new = f"{_RESOURCES}r{count:05d}{ext}"
        out[name] = new
        out[name[len(_RESOURCES) :]] = new[len(_RESOURCES) :]
    return out


def _json_member(text: str, scrubber: _Scrubber) -> str:
    """A JSON-lines (or single JSON) member rewritten; unparsable lines are kept as they are."""
    try:
        return json.dumps(scrubber.walk(json.loads(text)), separators=(",", ":"))
    except ValueError:
        pass
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.dumps(scrubber.walk(json.loads(line)), separators=(",", ":")))
        except ValueError:
            lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def scrub_trace(
    src: Path,
    dst: Path,
    redactor: Redactor,
    *,
    bodies: bool = True,
    extra_secrets: Iterable[str] = (),
) -> None:
    """Write the scrubbed copy of trace ``src`` to the new file ``dst`` (0600); see the module."""
    with zipfile.ZipFile(src) as raw:
        infos = raw.infolist()
        scrubber = _Scrubber(_renames(i.filename for i in infos), bodies)
        texts: dict[str, str] = {}
        for info in infos:
            if not info.filename.startswith(_RESOURCES) and not info.is_dir():
                text = raw.read(info).decode("utf-8", "replace")
                texts[info.filename] = _json_member(text, scrubber)
        credentials = Redactor()
        for value in {*scrubber.found, *extra_secrets}:
            if len(value) >= MIN_CREDENTIAL_LENGTH:
                credentials.add(value, REDACTED)

        def clean_text(text: str) -> bytes:
            return redactor.text(credentials.text(text)).encode()

        def clean_data(data: bytes) -> bytes:
            return redactor.data(credentials.data(data))

        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as out:
            for info in infos:
                name = info.filename
                if name in texts:
                    out.writestr(name, clean_text(texts[name]))
                elif name.startswith(_RESOURCES) and bodies and not info.is_dir():
                    out.writestr(scrubber.renames[name], clean_data(raw.read(info)))


def scrub_zip(path: Path, redactor: Redactor) -> None:
    """Scrub the trace at ``path`` in place (a scrubbed copy atomically replaces it)."""
    tmp = path.with_name(f".{path.name}.scrubbed")
    tmp.unlink(missing_ok=True)
    try:
        scrub_trace(path, tmp, redactor)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
