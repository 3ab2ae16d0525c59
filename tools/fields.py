"""What a field is, read where the page's scripts cannot change the answer, before a secret is
typed into it.

Every read goes through Playwright's element-handle methods that run in its isolated utility
world (``get_attribute``, ``text_content``, scoped ``query_selector``): a page that replaces
``Element.prototype.getAttribute``, the ``type`` or ``tagName`` getters or ``form.action`` in its
own world changes nothing here. Only DOM state is read (element names, attributes, text), never a
page-defined property, and the same handle is then typed into, so the facts describe the element
that receives the value. The form's targets are worked out from attributes as the browser does
(form owner by ``form=`` or ancestor, ``action`` against the document's ``<base href>``, and the
``formaction`` of every control of the form that has one).
"""

from __future__ import annotations

import json
from urllib.parse import urljoin

from playwright.async_api import ElementHandle, Frame

from profiles import FieldFacts

__all__ = ["field_facts"]

# Input types as the browser knows them; any other value of the attribute means "text".
_INPUT_TYPES = {
    "hidden",
    "text",
    "search",
    "tel",
    "url",
    "email",
    "password",
    "date",
    "month",
    "week",
    "time",
    "datetime-local",
    "number",
    "range",
    "color",
    "checkbox",
    "radio",
    "file",
    "submit",
    "image",
    "reset",
    "button",
}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _attr_selector(name: str, value: str) -> str:
    # A CSS string is JSON-compatible for what matters here (quotes and backslashes escaped).
    return f"[{name}={json.dumps(value)}]"


async def _tag(handle: ElementHandle) -> str:
    for tag in ("input", "textarea", "select"):
        if await handle.query_selector(f"xpath=self::{tag}") is not None:
            return tag
    return "element"


async def _text(handle: ElementHandle | None) -> str:
    if handle is None:
        return ""
    return " ".join((await handle.text_content() or "").split())


async def _labels(handle: ElementHandle, frame: Frame, attrs: dict[str, str | None]) -> list[str]:
    """Accessible labels: aria-label, aria-labelledby, <label for=id>, an enclosing <label>."""
    out: list[str] = []
    if attrs["aria-label"]:
        out.append(attrs["aria-label"])
    for ref in (attrs["aria-labelledby"] or "").split():
        out.append(await _text(await frame.query_selector(_attr_selector("id", ref))))
    if attrs["id"]:
        for label in await frame.query_selector_all("label" + _attr_selector("for", attrs["id"])):
            out.append(await _text(label))
    out.append(await _text(await handle.query_selector("xpath=ancestor::label[1]")))
    return out


async def _form_targets(handle: ElementHandle, frame: Frame, form_id: str | None) -> list[str]:
    """Every URL the field's form could be submitted to."""
    if form_id is not None:
        # The form= attribute wins over the ancestor; naming no form means no form owner.
        form = await frame.query_selector("form" + _attr_selector("id", form_id))
    else:
        form = await handle.query_selector("xpath=ancestor::form[1]")
    if form is None:
        return []
    base_el = await frame.query_selector("base[href]")
    base_href = await base_el.get_attribute("href") if base_el is not None else None
    base = urljoin(frame.url, base_href.strip()) if base_href else frame.url
    action = (await form.get_attribute("action") or "").strip()
    targets = [urljoin(base, action) if action else frame.url]
    controls = await form.query_selector_all("xpath=.//*[@formaction]")
    owner_id = await form.get_attribute("id")
    if owner_id:
        controls += await frame.query_selector_all(
            _attr_selector("form", owner_id) + "[formaction]"
        )
    for control in controls:
        formaction = (await control.get_attribute("formaction") or "").strip()
        targets.append(urljoin(base, formaction) if formaction else targets[0])
    return list(dict.fromkeys(targets))


async def field_facts(handle: ElementHandle, frame: Frame) -> FieldFacts:
    """The facts of the element behind ``handle`` (in ``frame``) that decide which secret fits."""
    names = (
        "type",
        "role",
        "contenteditable",
        "autocomplete",
        "name",
        "id",
        "placeholder",
        "title",
        "aria-label",
        "aria-labelledby",
        "form",
    )
    attrs = {name: await handle.get_attribute(name) for name in names}
    tag = await _tag(handle)
    kind = ""
    if tag == "input":
        raw = (attrs["type"] or "text").translate(_ASCII_LOWER)
        kind = raw if raw in _INPUT_TYPES else "text"
    editable = attrs["contenteditable"]
    labels = await _labels(handle, frame, attrs)
    found = [*labels, attrs["name"], attrs["id"], attrs["placeholder"], attrs["title"]]
    return FieldFacts(
        tag=tag,
        type=kind,
        role=(attrs["role"] or "").strip().lower(),
        contenteditable=editable is not None and editable.strip().lower() != "false",
        autocomplete=attrs["autocomplete"] or "",
        names=tuple(dict.fromkeys(n.strip() for n in found if n and n.strip())),
        form_targets=tuple(await _form_targets(handle, frame, attrs["form"])),
    )
