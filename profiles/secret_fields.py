"""Which fields a secret may be typed into: the facts the browser gives about a field, and the rule.

What a secret may be typed into follows from its kind and fields:

- ``value`` without fields, a *password*: only an ``<input type=password>``;
- ``value`` with fields (``corral secrets set NAME --field LABEL``): only a text-like input whose
  label, name, id or placeholder is one of them (case-insensitive, whole);
- ``totp``: only a one-time-code input (``autocomplete=one-time-code``, or a label, name, id or
  placeholder like code, otp, token, 2fa, mfa, verification), or one of its fields.

Never into a textarea, a contenteditable, a select, or a search box. Where the field's form posts
to is checked by the lease (``profiles.vault``) against the secret's domains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vault import SecretRecord

__all__ = ["FieldFacts", "field_refusal"]


@dataclass(frozen=True)
class FieldFacts:
    """What the browser says about the element a secret would be typed into.

    Read where page scripts cannot change the answer (see ``tools.fields``).
    """

    tag: str
    """Lower-case element name: ``input``, ``textarea``, ``select``, ``div`` ..."""
    type: str = ""
    """For an input, its type as the browser applies it (an unknown type is ``text``)."""
    role: str = ""
    contenteditable: bool = False
    autocomplete: str = ""
    names: tuple[str, ...] = ()
    """Its accessible labels, name, id and placeholder."""
    form_targets: tuple[str, ...] = field(default_factory=tuple)
    """Every URL its form could post to: the form's action and each submit button's formaction."""

    def describe(self) -> str:
        """A short description for messages (no values)."""
        what = f"input type={self.type}" if self.tag == "input" else self.tag
        if self.contenteditable:
            what += " (contenteditable)"
        label = next((n for n in self.names if n), "")
        return f"{what} {label!r}" if label else what


_TEXT_TYPES = {"text", "password", "email", "tel", "number", "url"}
_OTP_TYPES = {"text", "number", "tel", "password"}
_OTP_WORDS = ("code", "otp", "token", "2fa", "mfa", "verification", "verify", "passcode")
# "code" alone would take a postal code or a coupon: these are not one-time codes.
_NOT_OTP = ("postal", "zip", "post code", "postcode", "promo", "coupon", "discount", "country")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _names_match(facts: FieldFacts, wanted: Iterable[str]) -> bool:
    want = {_norm(w) for w in wanted if w.strip()}
    return any(_norm(n) in want for n in facts.names if n.strip())


def _looks_like_otp(facts: FieldFacts) -> bool:
    if "one-time-code" in facts.autocomplete.lower().split():
        return True
    for name in facts.names:
        low = _norm(name)
        if any(w in low for w in _OTP_WORDS) and not any(n in low for n in _NOT_OTP):
            return True
    return False


def field_refusal(record: SecretRecord, facts: FieldFacts) -> str | None:
    """Why ``record`` may not be typed into the element ``facts`` describes, or None."""
    what = facts.describe()
    if facts.contenteditable or facts.tag != "input":
        return f"it may not be typed into a {what}"
    if facts.type == "search" or facts.role == "searchbox":
        return f"it may not be typed into a search box ({what})"
    if facts.type not in _TEXT_TYPES:
        return f"it may not be typed into an {what}"
    if record.kind == "totp":
        if facts.type in _OTP_TYPES and (
            _looks_like_otp(facts) or _names_match(facts, record.fields)
        ):
            return None
        return f"a one-time code goes only into a one-time-code field, not an {what}"
    if record.fields:
        if _names_match(facts, record.fields):
            return None
        return f"it is bound to the fields {', '.join(record.fields)}, not an {what}"
    if facts.type == "password":
        return None
    return f"a password goes only into a password input, not an {what}"
