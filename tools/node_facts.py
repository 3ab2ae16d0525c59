"""What an action would activate on a node, and the facts of it, read in an isolated world.

Given the node an action reaches (hit at a click's point, or focused for a key or a select), the
browser picks the element it activates (a label stands for its control; Enter in a text field
submits its form with the default button) and describes it through prototype getters the page
cannot redefine (see :mod:`tools.isolated`): tag, role and name, link target, form method, action
and fields, and the text around it. From these comes the action's real side effect (read, input,
submit), including whether a generic element or a select listens for clicks or changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .isolated import Isolated, IsolatedError, NodeRef

__all__ = ["node_facts"]

_CLICK_EVENTS = frozenset(
    {"click", "mousedown", "mouseup", "pointerdown", "pointerup", "auxclick", "dblclick"}
)
_CHANGE_EVENTS = frozenset({"change", "input"})
_ANCESTORS = 12

# The element a click on `this` activates: the nearest interactive ancestor (a label stands for
# its control), else `this` itself. `mode` "key:<key>": `this` is the focused element; Enter in a
# field of a form submits it with its default button (the first submit button in tree order), or
# without one. Prototype methods only: a form's named elements shadow its own properties.
_PICK = """function (mode) {
  const P = (proto, name) => Object.getOwnPropertyDescriptor(proto, name);
  const closest = P(Element.prototype, 'closest').value;
  const tagOf = P(Element.prototype, 'tagName').get;
  const getAttr = P(Element.prototype, 'getAttribute').value;
  const kind = P(Node.prototype, 'nodeType').get.call(this);
  let el = kind === 1 ? this : P(Node.prototype, 'parentElement').get.call(this);
  if (!el) return null;
  if (mode === 'click') {
    const hit = closest.call(el, 'a[href], area[href], button, input, select, textarea, label, '
      + 'summary, option, [role]:not([role=presentation]):not([role=none]):not([role=generic]), '
      + '[onclick], [contenteditable=""], [contenteditable=true]');
    if (!hit) return el;
    if (tagOf.call(hit) !== 'LABEL') return hit;
    return P(HTMLLabelElement.prototype, 'control').get.call(hit) || hit;
  }
  if (mode.startsWith('key:')) {
    const key = mode.slice(4);
    const tag = tagOf.call(el);
    const type = (getAttr.call(el, 'type') || '').toLowerCase();
    const noText = ['button', 'submit', 'reset', 'image', 'checkbox', 'radio', 'file', 'color',
      'range', 'hidden'];
    if ((key === 'Enter' || key === 'NumpadEnter') && tag === 'INPUT' && !noText.includes(type)) {
      const form = P(HTMLInputElement.prototype, 'form').get.call(el);
      if (!form) return el;
      const elements = P(HTMLFormElement.prototype, 'elements').get.call(form);
      const len = P(HTMLCollection.prototype, 'length').get.call(elements);
      const item = P(HTMLCollection.prototype, 'item');
      for (let i = 0; i < len; i++) {
        const c = item.value.call(elements, i);
        const ct = tagOf.call(c);
        const t = (getAttr.call(c, 'type') || (ct === 'BUTTON' ? 'submit' : '')).toLowerCase();
        if (t === 'submit' || (ct === 'INPUT' && t === 'image')) return c;
      }
      return form;
    }
  }
  return el;
}"""

# Facts about `this` (the element an action reaches), by value. Form target and method as the
# browser submits them: `formaction`/`formmethod` on the submitter win over the form's own.
_DESCRIBE = """function () {
  const P = (proto, name) => Object.getOwnPropertyDescriptor(proto, name);
  const call = (proto, name, obj, ...args) => P(proto, name).value.call(obj, ...args);
  const get = (proto, name, obj) => P(proto, name).get.call(obj);
  const clean = (t) => (t || '').replace(/\\s+/g, ' ').trim();
  const el = this;
  const tag = get(Element.prototype, 'tagName', el);
  const attr = (n) => call(Element.prototype, 'getAttribute', el, n);
  const has = (n) => call(Element.prototype, 'hasAttribute', el, n);
  const type = (attr('type') || (tag === 'BUTTON' ? 'submit' : '')).toLowerCase();
  const text = clean(get(Node.prototype, 'textContent', el)).slice(0, 200);
  const isForm = tag === 'FORM';
  let href = null, form = null, activation = 'generic', submitter = null;
  if ((tag === 'A' || tag === 'AREA') && has('href')) {
    href = get(tag === 'A' ? HTMLAnchorElement.prototype : HTMLAreaElement.prototype, 'href', el);
    activation = 'link';
  } else if (isForm) {
    form = el; activation = 'submit';
  } else if (tag === 'BUTTON' || tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') {
    const proto = {BUTTON: HTMLButtonElement, INPUT: HTMLInputElement, SELECT: HTMLSelectElement,
      TEXTAREA: HTMLTextAreaElement}[tag].prototype;
    form = get(proto, 'form', el);
    if (type === 'submit' || (tag === 'INPUT' && type === 'image')) {
      activation = form ? 'submit' : 'button'; submitter = proto;
    } else if (tag === 'BUTTON' || (tag === 'INPUT' && (type === 'button' || type === 'reset'))) {
      activation = 'button';
    } else if (tag === 'INPUT' && (type === 'checkbox' || type === 'radio')) {
      activation = 'control';
    } else {
      activation = 'field';
    }
  } else if (tag === 'SUMMARY' || tag === 'OPTION' || has('role') || has('onclick')) {
    activation = 'button';
  }
  let method = null, action = null, fields = [], formText = '';
  if (form) {
    action = get(HTMLFormElement.prototype, 'action', form);
    method = get(HTMLFormElement.prototype, 'method', form);
    if (submitter && has('formaction')) action = get(submitter, 'formAction', el);
    if (submitter && has('formmethod')) method = get(submitter, 'formMethod', el);
    const elements = get(HTMLFormElement.prototype, 'elements', form);
    const len = get(HTMLCollection.prototype, 'length', elements);
    for (let i = 0; i < len; i++) {
      const c = call(HTMLCollection.prototype, 'item', elements, i);
      const ct = get(Element.prototype, 'tagName', c);
      const cattr = (n) => call(Element.prototype, 'getAttribute', c, n);
      const ctype = (cattr('type') || '').toLowerCase();
      if (ct === 'FIELDSET' || ct === 'OBJECT' || ct === 'OUTPUT') continue;
      if (ct === 'BUTTON' || ['submit', 'button', 'reset', 'image'].includes(ctype)) continue;
      let value;
      if (ct === 'INPUT') {
        const input = HTMLInputElement.prototype;
        const checked = get(input, 'checked', c);
        value = ['checkbox', 'radio'].includes(ctype)
          ? (checked ? get(input, 'value', c) : null)
          : ctype === 'file' ? null : get(input, 'value', c);
      } else if (ct === 'SELECT') {
        value = get(HTMLSelectElement.prototype, 'value', c);
      } else if (ct === 'TEXTAREA') {
        value = get(HTMLTextAreaElement.prototype, 'value', c);
      } else {
        value = null;
      }
      fields.push([cattr('name') || '', ctype || ct.toLowerCase(), value]);
    }
    formText = clean(get(HTMLElement.prototype, 'innerText', form)).slice(0, 400);
  }
  let box = form;
  if (!box && activation !== 'link') {
    box = call(Element.prototype, 'closest', el, 'dialog, [role=dialog], [role=alertdialog]');
  }
  const boxText = box && box !== form
    ? clean(get(HTMLElement.prototype, 'innerText', box)).slice(0, 400) : formText;
  const own = [attr('aria-label'), attr('title'), attr('alt'), attr('placeholder'),
    submitter ? attr('value') : null, isForm ? null : text].filter(Boolean).map(clean);
  // Plainly clickable: enabled, and neither it nor a parent is being animated.
  let plain = !call(Element.prototype, 'matches', el, ':disabled')
    && !call(Element.prototype, 'closest', el, '[aria-disabled=true]');
  for (let n = el; plain && n; n = get(Node.prototype, 'parentElement', n)) {
    plain = !call(Element.prototype, 'getAnimations', n).some((a) => a.playState === 'running');
  }
  return {
    tag: tag.toLowerCase(), type, activation, href, own: own.join(' | ').slice(0, 400),
    box_text: boxText, form_action: action, form_method: method ? method.toLowerCase() : null,
    fields, onclick: has('onclick'), hidden_text: text, plain,
  };
}"""

_ANCESTOR = """function (n) {
  let el = this;
  const up = Object.getOwnPropertyDescriptor(Node.prototype, 'parentNode').get;
  for (let i = 0; i < n && el; i++) el = up.call(el);
  return el;
}"""


async def _generic_listens(iso: Isolated, node: NodeRef, types: frozenset[str]) -> bool:
    """True if the node or an ancestor (the document included) listens for one of ``types``."""
    object_id = await iso.resolve(node)
    for depth in range(_ANCESTORS):
        ancestor = await iso.call(object_id, _ANCESTOR, depth, by_value=False)
        if ancestor is None:
            return False
        if await iso.listens(ancestor, types):
            return True
    return False


async def node_facts(
    iso: Isolated, node: NodeRef, mode: str, base: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str, str | None]], bool]:
    """Facts of what ``node`` activates in ``mode`` (click, key:<key>, select), its form's
    fields, and whether it is plainly clickable now (enabled, not being animated)."""
    object_id = await iso.resolve(node)
    picked = await iso.call(object_id, _PICK, mode, by_value=False)
    if picked is None:
        raise IsolatedError("the node has no element")
    # Three questions about the picked element, sent together (one round trip, not three).
    element, seen, (role, name) = await asyncio.gather(
        iso.node_of(picked, node.frame_id), iso.call(picked, _DESCRIBE), iso.ax(picked)
    )
    activation = seen["activation"]
    key = mode[4:] if mode.startswith("key:") else None
    side_effect = "submit"
    if mode == "click":
        if activation == "field":
            side_effect = "input"  # focusing a text field
        elif activation == "generic":
            clicky = seen["onclick"] or await _generic_listens(iso, element, _CLICK_EVENTS)
            side_effect = "submit" if clicky else "read"
    elif key is not None:
        activating = key in ("Enter", "NumpadEnter", " ", "Space")
        implicit = element != node  # Enter in a field: its form's default button or the form
        if implicit:
            side_effect = "submit"
        elif activation == "field" and seen["tag"] == "select":
            side_effect = "submit"  # arrows and letters change a select: as a select would
        elif activation == "field" or not activating:
            side_effect = "input"
        elif activation == "generic":
            clicky = seen["onclick"] or await _generic_listens(iso, element, _CLICK_EVENTS)
            side_effect = "submit" if clicky else "input"
        if activation == "link" and not activating:
            side_effect = "input"
    elif mode == "select":
        side_effect = "submit"
    if mode == "select" or (key is not None and seen["tag"] == "select"):
        # A change submits only by script: a POST form, or a change listener, counts as one.
        listens = await _generic_listens(iso, element, _CHANGE_EVENTS)
        if seen["form_method"] != "post" and not listens:
            side_effect = "input"
    if seen["tag"] == "form":
        role = role or "form"
    texts = " | ".join(t for t in (seen["own"], seen["box_text"]) if t)
    facts = {
        **base,
        "side_effect": side_effect,
        "role": role or ("link" if activation == "link" else None),
        "name": name or (seen["own"].split(" | ")[0] if seen["own"] else None),
        "nearby_text": texts[:800] or None,
        "form_method": seen["form_method"],
        "form_action": seen["form_action"],
        "target_url": seen["href"],
        "submits_form": activation == "submit",
        "scripted": activation in ("button", "generic") or bool(seen["onclick"]),
    }
    fields = [(str(n), str(t), None if v is None else str(v)) for n, t, v in seen["fields"]]
    return facts, fields, bool(seen["plain"])
