"""Controls the AI snapshot leaves out: icon-only elements a user clicks (a span with a click
listener, an ``onclick`` or a ``tabindex``, a picture for its only content, no role), found by a
DOM probe.

Playwright's AI snapshot names what the accessibility tree shows; an icon drawn by CSS (a
``content: url(reply.png)``) or an empty ``<span>`` with a click handler shows nothing there, so it
gets no ref (an element with a pointer cursor of its own does, so it is left to the snapshot).
:func:`probe_clickables` finds them where the page cannot interfere: the click listeners come
from the browser (``DOMDebugger.getEventListeners`` over the whole document), the rest
(visibility, text, hints) from a function run in corral's isolated world (see
:mod:`tools.isolated`). Each found element gets a ref ``p1``, ``p2`` ... in document order and a
hint from its ``aria-label``, ``title``, an ``alt``, or its class names (``reply``, ``more``); icons
in the same container (a post's reply, retweet, like buttons) share a line that names the
container by the start of its text (up to 24 characters)::

    icons in "Lia @ipsum · 5h ago Sit…": [p1] reply [p2] retweet [p3] like [p4] more

The refs live in corral, never in the page: each is recorded with the element's path from the
root (``:nth-child`` steps, read in the isolated world), which :func:`probe_locator` turns into
the locator ``Locate(ref="p3")`` resolves to. Nothing is written into the page, so a page script
cannot make an element of its choosing a ``p`` ref, nor read where the refs point; a ref not
given by the last probe of that page matches nothing. Only the main frame is probed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from playwright.async_api import Frame, Locator, Page

from .compact import page_string
from .isolated import Isolated, IsolatedError, unawaited

__all__ = ["Clickable", "is_probe_ref", "probe_clickables", "probe_lines", "probe_locator"]

_PROBE_REF = re.compile(r"^p\d+$")
_CLICK_TYPES = frozenset({"click", "mousedown", "mouseup", "pointerdown", "pointerup"})
_GROUP = "corral-clickables"  # the probe's remote objects, released after each probe
_probes = itertools.count(1)
_MAX_LISTENED = 400  # click-listening elements looked at, at most
_refs: WeakKeyDictionary[Page, dict[str, str]] = WeakKeyDictionary()

# Called on the document, in the isolated world, with the click-listening elements as
# arguments: the icon-only controls, each with its path, hint and container's text.
_FIND = r"""function (...listened) {
  const doc = this;
  const win = doc.defaultView;
  const NATIVE = 'a[href],button,input,select,textarea,summary,label,option,iframe,' +
    '[contenteditable=""],[contenteditable=true],[role=button],[role=link],[role=checkbox],' +
    '[role=radio],[role=switch],[role=tab],[role=menuitem],[role=option],[role=textbox],' +
    '[role=combobox],[role=slider],[role=treeitem]';
  const GENERIC = new Set(['icon', 'icons', 'btn', 'button', 'fa', 'fas', 'far', 'glyphicon',
    'material', 'mat', 'ui', 'js', 'is', 'has', 'active', 'hover', 'img', 'image', 'svg', 'i']);
  const MAX_CONTEXT = 24;  // characters of a container's text that name it
  const clean = (t) => (t || '').replace(/\s+/g, ' ').trim();
  const pointer = (el) => win.getComputedStyle(el).cursor === 'pointer';
  const seen = new Set(listened.filter((el) => el && el.nodeType === 1));
  for (const el of doc.querySelectorAll('[onclick],[tabindex]:not([tabindex^="-"])')) seen.add(el);
  // A pointer cursor of its own: the AI snapshot already gives the element a ref.
  const covered = (el) => pointer(el) && !(el.parentElement && pointer(el.parentElement));
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) return false;
    const style = win.getComputedStyle(el);
    if (style.visibility !== 'visible' || style.display === 'none') return false;
    return el.checkVisibility ? el.checkVisibility({opacityProperty: false}) : true;
  };
  const words = (el) => {
    const found = [];
    for (const part of clean(el.getAttribute('class')).split(/[\s_-]+/)) {
      const word = part.toLowerCase();
      if (word.length > 1 && !GENERIC.has(word) && !/^\d+$/.test(word)) found.push(word);
    }
    return found.join(' ');
  };
  const hint = (el) => {
    const own = el.getAttribute('aria-label') || el.getAttribute('title');
    if (clean(own)) return clean(own);
    const inner = el.querySelector('[alt],[title],[aria-label],svg title');
    if (inner) {
      const text = inner.getAttribute('alt') || inner.getAttribute('title') ||
        inner.getAttribute('aria-label') || inner.textContent;
      if (clean(text)) return clean(text);
    }
    return words(el) || (inner ? words(inner) : '');
  };
  const short = (text) => {
    if (text.length <= MAX_CONTEXT) return text;
    const cut = text.slice(0, MAX_CONTEXT + 1);
    const space = cut.lastIndexOf(' ');
    return (space > MAX_CONTEXT / 2 ? cut.slice(0, space) : cut.slice(0, MAX_CONTEXT)) + '…';
  };
  const path = (el) => {
    const steps = [];
    for (let node = el; node && node !== doc.documentElement; node = node.parentElement) {
      if (!node.parentElement) return null;  // in a shadow root: out of reach of a path
      const index = Array.prototype.indexOf.call(node.parentElement.children, node) + 1;
      steps.unshift(`${node.localName}:nth-child(${index})`);
    }
    return 'html > ' + steps.join(' > ');
  };
  const chosen = [];
  for (const el of seen) {
    if (el === doc.body || el === doc.documentElement || !el.isConnected) continue;
    if (el.closest(NATIVE) || el.querySelector(NATIVE) || covered(el)) continue;
    if (clean(el.innerText) !== '' || !visible(el)) continue;
    chosen.push(el);
  }
  const kept = chosen.filter((el) => !chosen.some((o) => o !== el && o.contains(el)));
  kept.sort((a, b) => a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1);
  return kept.map((el) => {
    let box = el.parentElement;
    while (box && clean(box.innerText) === '') box = box.parentElement;
    const context = box && box !== doc.body ? short(clean(box.innerText)) : '';
    return {path: path(el), hint: hint(el).slice(0, 40), context};
  }).filter((found) => found.path);
}"""


@dataclass(frozen=True)
class Clickable:
    """An icon-only control found by the probe."""

    ref: str
    hint: str
    """From its label, title, an alt, or its class names (page text, not escaped)."""
    context: str
    """The start of the text of the nearest container with text (page text, not escaped)."""


def is_probe_ref(ref: str) -> bool:
    """True if ``ref`` is a probe's (``p3``) rather than the AI snapshot's (``e7``)."""
    return _PROBE_REF.match(ref) is not None


def probe_locator(page: Page, ref: str) -> Locator:
    """The element the last probe of ``page`` gave ``ref`` to; for a ref it did not give (an
    older document's, or one never given), a locator that matches nothing, so the action fails
    as with a stale snapshot ref."""
    path = _refs.get(page, {}).get(ref)
    return page.locator(f"css={path}" if path is not None else "css=:not(*)")


async def _listened(iso: Isolated, page_document: str, group: str) -> list[dict[str, str]]:
    """The elements with a click-like listener, as arguments for a call in the isolated world."""
    # The browser lists a subtree's listeners only for the page's own world's object; no script
    # runs there, the object is only passed to the browser.
    found = await iso.send(
        "DOMDebugger.getEventListeners",
        {"objectId": page_document, "depth": -1, "pierce": False},
    )
    nodes: list[int] = []
    for entry in found.get("listeners", []):
        node = entry.get("backendNodeId")
        if entry.get("type") in _CLICK_TYPES and node and node not in nodes:
            nodes.append(int(node))
    context = await iso.world(await iso.main_frame())
    # Sent together: the browser answers them in one round trip, not one each.
    resolved = await asyncio.gather(
        *(
            iso.send(
                "DOM.resolveNode",
                {"backendNodeId": node, "executionContextId": context, "objectGroup": group},
            )
            for node in nodes[:_MAX_LISTENED]
        )
    )
    return [{"objectId": str(found["object"]["objectId"])} for found in resolved]


async def _find(iso: Isolated, group: str) -> Any:
    """The probe's call on the document (made once per document: :meth:`Isolated.document`)."""
    document, page_document = await iso.document()
    args = await _listened(iso, page_document, group)
    return await iso.send(
        "Runtime.callFunctionOn",
        {
            "objectId": document,
            "functionDeclaration": _FIND,
            "arguments": args,
            "returnByValue": True,
        },
    )


async def probe_clickables(page: Page, iso: Isolated) -> list[Clickable]:
    """The icon-only controls of ``page``'s main frame, given refs ``p1``, ``p2`` ... that
    :func:`probe_locator` resolves until the next probe of the page. Never raises: a page the
    probe cannot read has none."""
    if page not in _refs:
        page.on("framenavigated", lambda frame: _forget(page, frame))
    _refs[page] = {}
    group = f"{_GROUP}-{next(_probes)}"
    try:
        try:
            result = await _find(iso, group)
        except (IsolatedError, KeyError):
            # The kept document may be one that is gone (its navigation not heard yet).
            iso.forget_document()
            result = await _find(iso, group)
    except (IsolatedError, KeyError):
        return []
    finally:
        # The objects made for this probe are let go (no need to wait).
        unawaited(iso.send("Runtime.releaseObjectGroup", {"objectGroup": group}), IsolatedError)
    found: Any = result.get("result", {}).get("value")
    if "exceptionDetails" in result or not isinstance(found, list):
        return []
    refs: dict[str, str] = {}
    out = []
    for i, item in enumerate(found, 1):
        ref = f"p{i}"
        refs[ref] = str(item["path"])
        out.append(Clickable(ref, str(item.get("hint") or ""), str(item.get("context") or "")))
    _refs[page] = refs
    return out


def _forget(page: Page, frame: Frame) -> None:
    """A new document in the main frame: the refs of the old one go."""
    if frame is page.main_frame:
        _refs[page] = {}


def probe_lines(found: list[Clickable]) -> list[str]:
    """The compact text's lines for ``found``: the icons of one container on one line."""
    lines: list[str] = []
    last: str | None = None
    for item in found:
        hint = page_string(item.hint)
        element = f"[{item.ref}] {hint}" if hint else f"[{item.ref}]"
        if lines and item.context == last:
            lines[-1] += " " + element
            continue
        context = page_string(item.context)
        head = f"icons in {_quoted(context)}:" if context else "icons:"
        lines.append(f"{head} {element}")
        last = item.context
    return lines


def _quoted(text: str) -> str:
    # JSON style, but a page's escaped bracket stays as it is, not doubled.
    return json.dumps(text, ensure_ascii=False).replace("\\\\[", "\\[")
