"""Redaction: every active secret value, in every encoding it is likely to take, becomes its
placeholder before any text or file leaves the process.

Variants covered per value: plain, URL-encoded (``quote``, ``quote_plus``), JSON-escaped,
HTML-escaped, and base64 (standard and URL-safe, at each of the three byte alignments, so the value
is found inside the base64 of a longer string too).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = ["MIN_SECRET_LENGTH", "RedactingFilter", "Redactor"]

MIN_SECRET_LENGTH = 4


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


def variants(value: str) -> set[str]:
    """The forms of ``value`` that redaction looks for."""
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value, quote=True),
    }
    forms |= _base64_fragments(value.encode())
    return {f for f in forms if len(f) >= min(MIN_SECRET_LENGTH, len(value))}


class Redactor:
    """Replaces known secret values (all variants) with their placeholders; thread-safe."""

    def __init__(self) -> None:
        self._forms: dict[str, str] = {}
        self._lock = threading.Lock()
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None

    def add(self, value: str, placeholder: str = "{{secret}}") -> None:
        """Start redacting ``value``."""
        if not value:
            return
        with self._lock:
            for form in variants(value):
                self._forms.setdefault(form, placeholder)
            self._text = self._bytes = None

    def __bool__(self) -> bool:
        return bool(self._forms)

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[bytes]]:
        with self._lock:
            if self._text is None or self._bytes is None:
                forms = sorted(self._forms, key=len, reverse=True)
                self._text = re.compile("|".join(map(re.escape, forms)))
                self._bytes = re.compile(b"|".join(re.escape(f.encode()) for f in forms))
            return self._text, self._bytes

    def text(self, value: str) -> str:
        """``value`` with every secret form replaced."""
        if not self._forms or not value:
            return value
        pattern, _ = self._patterns()
        return pattern.sub(lambda m: self._forms[m.group(0)], value)

    def data(self, value: bytes) -> bytes:
        """Bytes with every secret form replaced."""
        if not self._forms or not value:
            return value
        _, pattern = self._patterns()
        return pattern.sub(lambda m: self._forms[m.group(0).decode()].encode(), value)

    def found_in_text(self, value: str) -> bool:
        """True if any secret form occurs in ``value``."""
        return bool(self._forms) and self._patterns()[0].search(value) is not None

    def found_in(self, value: bytes) -> bool:
        """True if any secret form occurs in ``value``."""
        return bool(self._forms) and self._patterns()[1].search(value) is not None


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (and drops its args)."""

    def __init__(self, redactor: Redactor) -> None:
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
