"""How a secret could leak, built with the standard library (never with the Redactor under test)."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote, quote_plus

__all__ = ["leak_forms"]


def leak_forms(value: str) -> set[bytes]:
    """A value as it could leak, built with the standard library (independently of the
    Redactor): plain, URL-encoded (every quoting, either hex case, twice), HTML-escaped,
    JSON-escaped (ASCII and not), base64 at any alignment inside a longer string."""
    raw = value.encode()
    texts = {
        value,
        quote(value, safe=""),
        quote(value, safe="").lower(),
        quote(value),
        quote_plus(value),
        quote(quote(value, safe=""), safe=""),
        html.escape(value),
        html.escape(value).replace("&#x27;", "&#39;"),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    forms = {t.encode() for t in texts}
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(b"x" * shift + raw + b"y")[4:-4])
    return forms
