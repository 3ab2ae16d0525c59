"""Facts about what an action would really touch, for the risk classifier, read where the page
cannot forge them; and the checked target the action then acts on.

Every action that can activate, submit or change something is *probed* before the verdict:

- click and download: Playwright waits until the target is actionable (``trial``), then the browser
  says which node a click at the target's centre reaches (``DOM.getNodeForLocation``, so an overlay
  is what gets classified); the action later clicks that same point, after checking that the same
  node is still there;
- press: the target (if any) is focused, and the focused node is classified: Enter in a text field
  submits its form with the form's default button, so that button and form are classified; the
  key is then pressed on that same focused node;
- select: the select and its form (a change may submit it); the option is then set on that node.

Role and name come from the browser's accessibility tree; everything else from a function run in an
isolated world through prototype getters (see :mod:`tools.isolated`); what the reached node
activates, and its side effect, are read in :mod:`tools.node_facts`. Whether the form or the link
leads off the allowlist is decided here too (:func:`allowlist_facts`, with the egress proxy's
reading of the allowlist), so the classifier needs no allowlist. Facts come back as a plain
mapping (the fields of ``policies.ActionFacts``), so ``tools`` does not depend on ``policies``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import FloatRect, Locator, Page

from profiles import off_allowlist

from .actions import AnyAction, Click, Download, Extract, Locate, Navigate, Press, Select
from .errors import ActionError
from .execute import locate, translate_error
from .isolated import Isolated, IsolatedError, NodeRef, unawaited
from .node_facts import node_facts
from .snapshot import Spot, ref_spot
from .tabs import Tabs

__all__ = ["PROBED_KINDS", "Checked", "action_facts", "allowlist_facts", "probe"]

PROBED_KINDS = frozenset({"click", "download", "press", "select"})
"""Actions that can activate, submit or change something: always probed before they run."""

_SELECT = """function (option) {
  const P = (proto, name) => Object.getOwnPropertyDescriptor(proto, name);
  const options = P(HTMLSelectElement.prototype, 'options').get.call(this);
  const len = P(HTMLCollection.prototype, 'length').get.call(options);
  for (let i = 0; i < len; i++) {
    const o = P(HTMLCollection.prototype, 'item').value.call(options, i);
    const value = P(HTMLOptionElement.prototype, 'value').get.call(o);
    const label = P(HTMLOptionElement.prototype, 'label').get.call(o);
    if (value === option || label === option || label.trim() === option.trim()) {
      P(HTMLOptionElement.prototype, 'selected').set.call(o, true);
      const fire = P(EventTarget.prototype, 'dispatchEvent').value;
      fire.call(this, new Event('input', {bubbles: true, composed: true}));
      fire.call(this, new Event('change', {bubbles: true}));
      return value;
    }
  }
  return null;
}"""


@dataclass
class Checked:
    """A probed target: its facts, and how the action reaches exactly the node that was checked."""

    page: Page
    facts: dict[str, Any]
    how: Literal["point", "focus", "select", "none"] = "none"
    node: NodeRef | None = None
    """The node the action reaches (hit at the point, or focused)."""
    point: tuple[float, float] | None = None
    fields: list[tuple[str, str, str | None]] = field(default_factory=list)
    """The form's field names, types and values (secret values included: redact before use)."""
    error: Exception | None = None
    """Why the facts could not be read: the action must not run."""
    box: dict[str, float] | None = None
    """Where the target was on screen when checked (viewport px: x, y, width, height)."""
    _isolated: Isolated | None = None

    @property
    def ok(self) -> bool:
        """True if the facts were read."""
        return self.error is None

    async def still_there(self) -> bool:
        """True if the action would still reach the node that was checked."""
        if self._isolated is None or self.node is None:
            return self.how == "none"
        try:
            if self.how == "point" and self.point is not None:
                return await self._isolated.hit(*self.point) == self.node
            if self.how in ("focus", "select"):
                return await self._isolated.focused() == self.node
        except IsolatedError:
            return False
        return False

    async def select(self, option: str) -> str | None:
        """Choose ``option`` on the checked select (by value or label): its value, or None."""
        assert self._isolated is not None and self.node is not None
        object_id = await self._isolated.resolve(self.node)
        value = await self._isolated.call(object_id, _SELECT, option)
        return str(value) if value is not None else None


def _base(action: AnyAction, page: Page) -> dict[str, Any]:
    return {
        "kind": action.kind,
        "side_effect": str(type(action).side_effect),
        "page_url": page.url,
    }


def allowlist_facts(facts: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, bool]:
    """Whether the form (``form_action``) and the link or navigation (``target_url``) of
    ``facts`` lead to a host the allowlist ``allowed`` refuses; neither does without one."""
    return {
        "form_off_allowlist": off_allowlist(facts.get("form_action"), allowed),
        "target_off_allowlist": off_allowlist(facts.get("target_url"), allowed),
    }


def _cannot(action: AnyAction, why: str) -> ActionError:
    return ActionError(
        f"{action.kind}: not done: corral could not check what this action would reach ({why}); "
        "observe the page again and retry, or address the element differently"
    )


# In the page's world, so only a hint: whether the element is plainly clickable now at the centre
# of its box (enabled, not moving, and the topmost element there, or holding it), and that centre.
# A page that lies here only sends the probe down the waiting path, or has the element it put at
# the point classified and clicked as what it is: what the click reaches is read by the browser
# either way, at the centre of the box the browser gives (the page's centre must agree with it).
_PLAINLY_CLICKABLE = """(el) => {
  if (window !== window.top) return null;  // a frame's point is not the page's
  if (el.matches(':disabled') || el.closest('[aria-disabled=true]')) return null;
  for (let n = el; n; n = n.parentElement) {
    if (n.getAnimations().some((a) => a.playState === 'running')) return null;
  }
  const r = el.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const root = el.getRootNode();  // inside a shadow root, its own hit test sees through
  const hit = (root.elementFromPoint ? root : el.ownerDocument).elementFromPoint(x, y);
  return !!hit && (hit === el || el.contains(hit)) ? [x, y] : null;
}"""
_AGREE_PX = 0.5


def _numbers(box: FloatRect) -> dict[str, float]:
    return {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}


def _finite(box: FloatRect | None) -> bool:
    return box is not None and all(math.isfinite(float(v)) for v in _numbers(box).values())


async def _point_now(page: Page, loc: Locator, ms: float) -> FloatRect | None:
    """The target's box when a click at its centre would reach it right now, without
    Playwright's waits (scrolling, two animation frames of stability, the hit check): the
    common case. None when it is not plainly so (off screen, in a frame, disabled, moving,
    covered): then the waiting path decides. Raises what locating it raises (not found,
    ambiguous), having waited for it to be attached. The element is found once, then the
    browser's box and the page's hint are read at once."""
    viewport = page.viewport_size
    handle = await loc.element_handle(timeout=ms)
    try:
        box, hint = await asyncio.gather(
            handle.bounding_box(),  # the browser's box, not the page's say
            handle.evaluate(_PLAINLY_CLICKABLE),
        )
    finally:
        unawaited(handle.dispose(), PlaywrightError)  # its answer is not needed
    if viewport is None or box is None or not _finite(box) or not isinstance(hint, list):
        return None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    if not (box["width"] > 0 and box["height"] > 0):
        return None
    if not (0 <= x < viewport["width"] and 0 <= y < viewport["height"]):
        return None
    agree = len(hint) == 2 and all(
        isinstance(v, int | float) and abs(float(v) - c) <= _AGREE_PX
        for v, c in zip(hint, (x, y), strict=True)
    )
    return box if agree else None


def _same_words(a: str | None, b: str | None) -> bool:
    return " ".join((a or "").split()) == " ".join((b or "").split())


async def _at_spot(iso: Isolated, page: Page, spot: Spot, base: dict[str, Any]) -> Checked | None:
    """The check of a click on an element of the last observation where it was then, when a
    click at the centre of that box now reaches an element of the same role and name, plainly
    clickable: none of Playwright's round trips to find the element again. None when not so
    (moved, covered, scrolled, off screen, disabled, animated): then the element is found anew.
    What the click reaches is classified either way: a page that puts another element of that
    role and name there has that element checked and clicked as what it is."""
    viewport = page.viewport_size
    x, y, width, height = spot.box
    point = (x + width / 2, y + height / 2)
    if viewport is None or not (width > 0 and height > 0):
        return None
    if not (0 <= point[0] < viewport["width"] and 0 <= point[1] < viewport["height"]):
        return None
    try:
        node = await iso.hit(*point)
        facts, fields, plain = await node_facts(iso, node, "click", base)
    except IsolatedError:
        return None
    if not (plain and facts["role"] == spot.role and _same_words(facts["name"], spot.name)):
        return None
    shown = {"x": float(x), "y": float(y), "width": float(width), "height": float(height)}
    return Checked(page, facts, "point", node, point, fields, box=shown, _isolated=iso)


async def _probe_click(
    tabs: Tabs, page: Page, action: AnyAction, target: Locate, base: dict[str, Any], ms: float
) -> Checked:
    """Wait for ``target`` to be clickable, then classify what a click at its centre reaches."""
    iso = await tabs.isolated(page)
    spot = ref_spot(page, target.ref) if target.ref is not None and target.nth is None else None
    if spot is not None:
        checked = await _at_spot(iso, page, spot, base)
        if checked is not None:
            return checked
    loc = locate(page, target)
    try:
        box: FloatRect | None = await _point_now(page, loc, ms)
        if box is None:
            await loc.click(trial=True, timeout=ms)
            box = await loc.bounding_box(timeout=ms)
    except PlaywrightError as exc:
        return Checked(page, base, error=await translate_error(exc, tabs, page, action, ms / 1000))
    if box is None or not _finite(box):
        return Checked(page, base, error=_cannot(action, "the element has no box on screen"))
    point = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    try:
        node = await iso.hit(*point)
        facts, fields, _ = await node_facts(iso, node, "click", base)
    except IsolatedError as exc:
        return Checked(page, base, error=_cannot(action, str(exc)))
    # Where it was on screen (viewport pixels, scrolled into view): a replay outlines it.
    shown = {k: round(float(v), 1) for k, v in _numbers(box).items()}
    return Checked(page, facts, "point", node, point, fields, box=shown, _isolated=iso)


async def _probe_focus(
    tabs: Tabs, page: Page, action: Press | Select, base: dict[str, Any], ms: float
) -> Checked:
    iso = await tabs.isolated(page)
    if action.has_target:
        try:
            handle = await locate(page, action.locator_spec()).element_handle(timeout=ms)
            try:
                await handle.focus()
            finally:
                await handle.dispose()
        except PlaywrightError as exc:
            return Checked(
                page, base, error=await translate_error(exc, tabs, page, action, ms / 1000)
            )
    mode = f"key:{action.key}" if isinstance(action, Press) else "select"
    try:
        node = await iso.focused()
        facts, fields, _ = await node_facts(iso, node, mode, base)
    except IsolatedError as exc:
        return Checked(page, base, error=_cannot(action, str(exc)))
    how: Literal["focus", "select"] = "focus" if isinstance(action, Press) else "select"
    return Checked(page, facts, how, node, None, fields, _isolated=iso)


async def probe(
    tabs: Tabs,
    action: AnyAction,
    timeout_s: float,
    allowed: Sequence[str] = (),
    page: Page | None = None,
) -> Checked:
    """Classify what ``action`` would touch on ``page`` (the active one unless given), waiting
    for its target up to ``timeout_s``; ``allowed`` is the allowlist its form and link are
    checked against."""
    page = page or await tabs.active()
    checked = await _probe(tabs, action, page, timeout_s * 1000)
    checked.facts.update(allowlist_facts(checked.facts, allowed))
    return checked


async def _probe(tabs: Tabs, action: AnyAction, page: Page, ms: float) -> Checked:
    base = _base(action, page)
    if isinstance(action, Navigate):
        return Checked(page, {**base, "target_url": urljoin(page.url, action.url)})
    if isinstance(action, Click | Download):
        return await _probe_click(tabs, page, action, action.locator_spec(), base, ms)
    if isinstance(action, Press | Select):
        return await _probe_focus(tabs, page, action, base, ms)
    return Checked(page, await _described(page, action, base, min(ms, 2000)))


# Descriptive facts for actions that do not activate anything (fill, upload, hover): read in the
# page, only for the summary and the upload rule; the action's own checks still apply.
_DESCRIPTIVE_JS = """(el) => {
  const clean = (t) => (t || '').replace(/\\s+/g, ' ').trim();
  const label = el.labels && el.labels.length ? el.labels[0].innerText : '';
  return clean(el.getAttribute('aria-label') || label || el.innerText || el.title || '') || null;
}"""


async def _described(page: Page, action: AnyAction, base: dict[str, Any], ms: float) -> Any:
    target = None if isinstance(action, Extract) else getattr(action, "locator_spec", None)
    if target is None or not getattr(action, "has_target", False):
        return base
    try:
        name = await locate(page, action.locator_spec()).first.evaluate(  # type: ignore[union-attr]
            _DESCRIPTIVE_JS, timeout=ms
        )
    except PlaywrightError:
        return base
    return {**base, "name": name}


async def action_facts(
    tabs: Tabs, action: AnyAction, allowed_domains: Sequence[str] = (), timeout_s: float = 2.0
) -> dict[str, Any]:
    """Look at the page (without acting) and describe what ``action`` would touch."""
    checked = await probe(tabs, action, timeout_s, allowed_domains)
    return checked.facts
