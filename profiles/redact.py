"""Redaction: every active secret value, in every encoding it is likely to take, becomes its
placeholder before any text or file leaves the process.

Each secret becomes one regular expression in which every character may appear as itself or in
any of its encodings, independently of its neighbours, so mixed and partial encodings match too:

- percent-encoding of its UTF-8 bytes (and of its Latin-1 byte, and ``%uXXXX``), hex digits in
  either case, ``%25`` for a double (or deeper) encoding, ``+`` for a space;
- HTML character references: decimal and hex (any case, leading zeros, with or without ``;``),
  every HTML5 named reference of the character, and ``&amp;`` for an escaped ``&``;
- JSON and JavaScript escapes: ``\\uXXXX`` (surrogate pairs above U+FFFF), the short escapes
  (``\\"``, ``\\\\``, ``\\/``, ``\\n`` ...), with any number of backslashes (JSON inside JSON),
  and Python's ``\\xNN`` for each UTF-8 byte (``repr`` of bytes);
- base64 (standard and URL-safe, at each of the three byte alignments, so the value is found
  inside the base64 of a longer string too).
"""

from __future__ import annotations

import base64
import html.entities
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "Redactor",
    "RedactorGroup",
    "looks_secret",
    "redact_strings",
]

MIN_SECRET_LENGTH = 4

# Named references by the character they stand for (HTML5 list: "amp;", "AMP", "apos;" ...).
_ENTITY_NAMES: dict[str, list[str]] = {}
for _name, _char in html.entities.html5.items():
    if len(_char) == 1:
        _ENTITY_NAMES.setdefault(_char, []).append(_name)
_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r"}
_SHORT_ESCAPES["\t"] = "t"
_SHORT_ESCAPES["'"] = "'"  # JavaScript and Python string literals


def _hex(value: int, width: int) -> str:
    """``value`` as hex digits of at least ``width``, each letter matching either case."""
    digits = f"{value:0{width}x}"
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


def _utf16_units(cp: int) -> list[int]:
    if cp < 0x10000:
        return [cp]
    cp -= 0x10000
    return [0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)]


def _pct(byte: int) -> str:
    """A percent-encoded byte, at any depth (``%25`` is an encoded ``%``)."""
    return "%(?:25){0,4}" + _hex(byte, 2)


# The characters that escapes are made of may be encoded in turn (a JSON escape inside a URL is
# ``%5Cu00e9``, inside HTML ``\&quot;``; an HTML reference inside a URL is ``%26%2339%3B``).
#
# Every repetition is bounded (up to 8 backslashes before an escape, 4 times `%25` or
# `&amp;`, 6 leading zeros): the work per position stays constant, so no page content (a long
# run of backslashes, `%25` or zeros) can make redaction slower than linear.
_DEPTH = "{1,8}"
_BS = r"(?:\\|%(?:25){0,4}5[cC]|&(?:amp;){0,4}(?:#0{0,6}92;?|#[xX]0{0,6}5[cC];?|bsol;))"
_AMP = "(?:&|%(?:25){0,4}26)"
_HASH = "(?:#|%(?:25){0,4}23)"
_SEMI = "(?:;|%(?:25){0,4}3[bB])"
_AMPS = f"{_AMP}(?:amp{_SEMI}){{0,4}}"


def _references(ch: str) -> list[str]:
    """HTML character references to ``ch``: numeric (any case, zeros, ``;`` optional), named."""
    cp = ord(ch)
    out = [f"{_AMPS}{_HASH}(?:0{{0,6}}{cp}|[xX]0{{0,6}}{_hex(cp, 1)}){_SEMI}?"]
    for name in _ENTITY_NAMES.get(ch, ()):
        if name.endswith(";"):
            out.append(_AMPS + re.escape(name[:-1]) + _SEMI)
        else:
            out.append(_AMPS + re.escape(name))
    return out


def _simple(ch: str) -> str:
    """``ch`` as itself, percent-encoded or as an HTML reference (the letter of an escape)."""
    utf8 = ch.encode("utf-8", "surrogatepass")
    alts = [re.escape(ch), "".join(_pct(b) for b in utf8), *_references(ch)]
    return "(?:" + "|".join(alts) + ")"


def _char_pattern(ch: str) -> str:
    """A regex matching ``ch`` as itself or in any of its encodings."""
    cp = ord(ch)
    utf8 = ch.encode("utf-8", "surrogatepass")
    alts = [re.escape(ch)]
    # Percent-encoding (any depth), Latin-1 and JavaScript's escape().
    alts.append("".join(_pct(b) for b in utf8))
    if 128 <= cp < 256:
        alts.append(_pct(cp))
    if cp >= 128:
        alts.append("".join("%(?:25){0,4}[uU]" + _hex(u, 4) for u in _utf16_units(cp)))
    if ch == " ":
        alts.append(r"\+")
    alts.extend(_references(ch))
    # JSON / JavaScript / Python escapes, with any number of backslashes (escaped again).
    alts.append("".join(f"{_BS}{_DEPTH}u" + _hex(u, 4) for u in _utf16_units(cp)))
    if ch in _SHORT_ESCAPES:
        alts.append(f"{_BS}{_DEPTH}" + _simple(_SHORT_ESCAPES[ch]))
    alts.append("".join(f"{_BS}{_DEPTH}x" + _hex(b, 2) for b in utf8))
    return "(?:" + "|".join(alts) + ")"


def _first_chars(ch: str) -> set[str]:
    """Characters a match of ``_char_pattern(ch)`` can start with."""
    first = {ch, "%", "&", "\\"}
    if ch == " ":
        first.add("+")
    return first


def _base64_fragments(raw: bytes) -> set[str]:
    """Substrings that appear in the base64 of any text containing ``raw``."""
    out = set()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            enc = encode(b"\x00" * shift + raw).decode()
            # Skip the characters touched by the padding bytes and by what follows the value.
            start = (shift * 4 + 2) // 3
            end = (shift + len(raw)) * 4 // 3
            fragment = enc[start:end]
            if len(fragment) >= MIN_SECRET_LENGTH:
                out.add(fragment)
    return out


def secret_pattern(value: str) -> str:
    """The regex source matching ``value`` in any encoding redaction knows."""
    forms = ["".join(_char_pattern(ch) for ch in value)]
    forms += sorted(map(re.escape, _base64_fragments(value.encode("utf-8", "surrogatepass"))))
    return "|".join(forms)


class Redactor:
    """Replaces known secret values (in every encoding) with their placeholders; thread-safe.

    Make one per run: a TOTP code one run typed must not blank numbers in another run's text.
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()
        self._compiled: tuple[re.Pattern[str], re.Pattern[bytes], list[str]] | None = None

    def add(self, value: str, placeholder: str = "{{secret}}") -> None:
        """Start redacting ``value``."""
        if not value:
            return
        with self._lock:
            if value not in self._values:
                self._values[value] = placeholder
                self._compiled = None

    def __bool__(self) -> bool:
        return bool(self._values)

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[bytes], list[str]]:
        with self._lock:
            if self._compiled is None:
                # Longer values first: a value containing another is replaced whole.
                values = sorted(self._values, key=len, reverse=True)
                groups = [f"(?P<s{i}>{secret_pattern(v)})" for i, v in enumerate(values)]
                first: set[str] = set()
                for value in values:
                    first |= _first_chars(value[0])
                    raw = value.encode("utf-8", "surrogatepass")
                    first |= {f[0] for f in _base64_fragments(raw)}
                # A cheap look at the first character skips most positions without backtracking.
                ascii_first = sorted(c for c in first if ord(c) < 128)
                wide_first = sorted(c for c in first if ord(c) >= 128)
                text_lead = "[" + "".join(re.escape(c) for c in ascii_first + wide_first) + "]"
                wide_bytes = sorted({c.encode("utf-8", "surrogatepass")[:1] for c in wide_first})
                bytes_lead = (
                    b"["
                    + b"".join(re.escape(c).encode() for c in ascii_first)
                    + b"".join(b"\\x%02x" % b[0] for b in wide_bytes)
                    + b"]"
                )
                body = "|".join(groups)
                text = re.compile(f"(?={text_lead})(?:{body})")
                data = re.compile(
                    b"(?=" + bytes_lead + b")(?:" + body.encode("utf-8", "surrogatepass") + b")"
                )
                self._compiled = (text, data, [self._values[v] for v in values])
            return self._compiled

    def text(self, value: str) -> str:
        """``value`` with every secret form replaced."""
        if not self._values or not value:
            return value
        pattern, _, placeholders = self._patterns()
        return pattern.sub(lambda m: placeholders[int(str(m.lastgroup)[1:])], value)

    def data(self, value: bytes) -> bytes:
        """Bytes with every secret form replaced."""
        if not self._values or not value:
            return value
        _, pattern, placeholders = self._patterns()
        return pattern.sub(lambda m: placeholders[int(str(m.lastgroup)[1:])].encode(), value)

    def found_in_text(self, value: str) -> bool:
        """True if any secret form occurs in ``value``."""
        return bool(self._values) and self._patterns()[0].search(value) is not None

    def found_in(self, value: bytes) -> bool:
        """True if any secret form occurs in ``value``."""
        return bool(self._values) and self._patterns()[1].search(value) is not None


class RedactorGroup:
    """The redactors of the runs alive in a process, as one (for text that belongs to no run,
    such as log lines); each run keeps its own :class:`Redactor` for its own records."""

    def __init__(self) -> None:
        self._members: list[Redactor] = []
        self._lock = threading.Lock()

    def attach(self, redactor: Redactor) -> None:
        """Include a run's redactor (while the run lives)."""
        with self._lock:
            self._members.append(redactor)

    def detach(self, redactor: Redactor) -> None:
        """Leave a finished run's redactor out again."""
        with self._lock:
            self._members = [m for m in self._members if m is not redactor]

    def __bool__(self) -> bool:
        return any(self._members)

    def text(self, value: str) -> str:
        """``value`` with every live run's secrets replaced."""
        with self._lock:
            members = list(self._members)
        for member in members:
            value = member.text(value)
        return value


def redact_strings(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` (JSON-like: dicts, lists, scalars) with ``redact`` applied to every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_strings(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_strings(v, redact) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (and drops its args)."""

    def __init__(self, redactor: Redactor | RedactorGroup) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            record.msg = self.redactor.text(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redactor.text(
                    logging.Formatter().formatException(record.exc_info)
                )
                record.exc_info = None
        return True


_SECRET_SHAPES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
)


def looks_secret(text: str) -> bool:
    """True if ``text`` holds a string shaped like a credential (a private key, an API key or
    token of a known shape, a JWT), whatever secrets corral holds: for what must never carry
    one (a run's result, a note)."""
    return any(shape.search(text) for shape in _SECRET_SHAPES)
