"""Facts about an action's target for the risk classifier: role, name, nearby text, form.

Returned as a plain mapping (the fields of ``policies.ActionFacts``), so ``tools`` does not depend
on ``policies``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError

from .actions import AnyAction, Navigate, action_target
from .execute import locate
from .tabs import Tabs

__all__ = ["action_facts"]

# Role, name and the words around the element, read in the page without taking a snapshot:
# a new aria snapshot would renumber the refs the caller is about to act on. The closest form,
# dialog gives the words around a button ("Confirm payment of $120.00 ...").
_FACTS_JS = """(el) => {
  const clean = (t) => (t || '').replace(/\\s+/g, ' ').trim();
  const tag = el.tagName.toLowerCase();
  const type = (el.getAttribute('type') || '').toLowerCase();
  const implicit = {a: el.hasAttribute('href') ? 'link' : null, button: 'button',
    select: 'combobox', textarea: 'textbox', summary: 'button', option: 'option'};
  let role = el.getAttribute('role') || implicit[tag] || null;
  if (!role && tag === 'input') {
    role = ['button', 'submit', 'reset', 'image'].includes(type) ? 'button'
      : ['checkbox', 'radio'].includes(type) ? type : type === 'search' ? 'searchbox' : 'textbox';
  }
  const labelled = (el.getAttribute('aria-labelledby') || '').split(/\\s+/)
    .map((id) => document.getElementById(id)).filter(Boolean).map((n) => n.innerText).join(' ');
  const label = el.labels && el.labels.length ? el.labels[0].innerText : '';
  const name = clean(el.getAttribute('aria-label') || labelled || label || el.innerText
    || (['button', 'submit'].includes(type) ? el.value : '') || el.title || el.alt || '');
  // Links go somewhere, buttons act: only a control inside a form or dialog takes its words.
  const box = role === 'link' ? null : el.closest('form, dialog, [role=dialog]');
  const form = el.form || el.closest('form');
  return {
    role, name: name || null,
    text: clean(box ? box.innerText : '').slice(0, 400),
    method: form ? (form.getAttribute('method') || 'get').toLowerCase() : null,
    action: form ? form.action : null,
    href: el.href || null,
  };
}"""


async def action_facts(
    tabs: Tabs, action: AnyAction, allowed_domains: Sequence[str] = (), timeout_s: float = 2.0
) -> dict[str, Any]:
    """Look at the page (without acting) and describe what ``action`` would touch."""
    page = await tabs.active()
    facts: dict[str, Any] = {
        "kind": action.kind,
        "side_effect": str(type(action).side_effect),
        "page_url": page.url,
        "allowed_domains": list(allowed_domains),
    }
    if isinstance(action, Navigate):
        return {**facts, "target_url": urljoin(page.url, action.url)}
    target = action_target(action)
    if target is None:
        return facts
    try:
        seen = await locate(page, target).first.evaluate(_FACTS_JS, timeout=timeout_s * 1000)
    except PlaywrightError:
        return facts  # the action itself will report the missing element
    return {
        **facts,
        "role": seen.get("role"),
        "name": seen.get("name"),
        "nearby_text": seen.get("text") or None,
        "form_method": seen.get("method"),
        "form_action": seen.get("action"),
        "target_url": seen.get("href"),
    }
