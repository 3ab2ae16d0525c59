"""The one reader of Playwright's AI aria snapshot (``page.aria_snapshot(mode="ai")``).

The snapshot is a YAML-like tree, one node per line, nested by indentation::

    - navigation [ref=e3]:
      - link "Invoices" [ref=e4] [cursor=pointer]:
        - /url: /invoices
    - textbox "Display name" [ref=e9]: Bob
    - text: 87 invoices

A line is ``- role "name" [attr] [attr=value]...``, optionally followed by ``: value`` (a text, a
field's value) or ``:`` (children follow, indented); ``/url`` and ``/placeholder`` lines belong to
the node above. :func:`parse_snapshot` turns it into :class:`SnapshotNode` trees; the compact
text for a planner (:mod:`tools.compact`), the marks on screenshots (:mod:`tools.marks`), the
runtime's element counts and the policy dry run all read the snapshot through it.

Refs of the main frame are written short: Playwright prefixes every ref with its frame's number
(``f4e7``; the number changes when a navigation swaps the main frame), which costs a planner two
tokens per ref. :func:`short_refs` gives the main frame's elements short refs of corral's own
(``e7``) and :func:`full_ref` maps them back for ``aria-ref=`` locators; the refs of iframes stay
Playwright's (``f5e3``).

Strings are returned as the page wrote them (names JSON-decoded, values unquoted): escaping page
text for a model is the reader's job. The parser never raises: a line that is not something
Playwright writes becomes a ``text`` node with ``parsed=False`` holding the line as it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

__all__ = [
    "ACTIONABLE_ROLES",
    "SnapshotNode",
    "Spot",
    "full_ref",
    "parse_snapshot",
    "ref_spot",
    "short_refs",
    "snapshot_elements",
    "walk_snapshot",
]

ACTIONABLE_ROLES = frozenset(
    {
        "button",
        "checkbox",
        "combobox",
        "iframe",
        "link",
        "listbox",
        "menuitem",
        "menuitemcheckbox",
        "menuitemradio",
        "option",
        "radio",
        "scrollbar",
        "searchbox",
        "slider",
        "spinbutton",
        "switch",
        "tab",
        "textbox",
        "treeitem",
    }
)
"""Roles an action may target by ref (any node with a pointer cursor also may)."""

_ATTR_RE = re.compile(r"\[([a-z-]+)(?:=([^\]]*))?\]")
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass
class SnapshotNode:
    """One node of the snapshot."""

    role: str
    name: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    """``[ref=e7]``, ``[cursor=pointer]``, ``[checked]`` (empty value), ``[box=x,y,w,h]`` ..."""
    text: str | None = None
    """What follows ``: `` on the node's line (a text node's text, a field's value)."""
    url: str | None = None
    placeholder: str | None = None
    children: list[SnapshotNode] = field(default_factory=list)
    depth: int = 0
    """Indentation of the node's line, in spaces."""
    line: str = ""
    """The node's line without its indentation and leading ``- ``."""
    parsed: bool = True
    """False: not a line Playwright writes, kept as a text node (``text`` is ``line``)."""

    @property
    def ref(self) -> str | None:
        """The node's ref (``e7``, ``f1e3`` inside an iframe), if it has one."""
        return self.attrs.get("ref")

    @property
    def actionable(self) -> bool:
        """True if an action may target this node: a ref, and an actionable role or a pointer."""
        if self.ref is None:
            return False
        return self.role in ACTIONABLE_ROLES or self.attrs.get("cursor") == "pointer"

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        """``(x, y, width, height)`` from ``[box=...]`` (``boxes=True`` snapshots), or None."""
        raw = self.attrs.get("box")
        if raw is None:
            return None
        try:
            x, y, w, h = (int(v) for v in raw.split(","))
        except ValueError:
            return None
        return x, y, w, h


def _unquote_value(raw: str) -> str:
    """A YAML scalar as Playwright writes it: plain, or double-quoted with JSON-like escapes."""
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        try:
            value = json.loads(_HEX_ESCAPE.sub(r"\\u00\1", raw))
            if isinstance(value, str):
                return value
        except ValueError:
            pass
        return raw[1:-1]
    return raw


def _split_entry(body: str) -> tuple[str, str | None]:
    """``key``, ``key:`` or ``key: value`` -> (key, value or None); a key may be single-quoted."""
    if body.startswith("'"):
        i = 1
        while i < len(body):
            if body[i] == "'":
                if body[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                break
            i += 1
        key, rest = body[1:i].replace("''", "'"), body[i + 1 :]
        if rest.startswith(": "):
            return key, rest[2:]
        return key, None
    # A plain key never contains ": " nor ends with ":" (Playwright quotes such keys).
    if ": " in body:
        key, _, value = body.partition(": ")
        return key, value
    return body.removesuffix(":"), None


def _parse_key(key: str) -> SnapshotNode | None:
    """``role "name" [attr] [attr=value]...`` -> a node; None if it does not look like one."""
    match = re.match(r"[a-z]+", key)
    if match is None:
        return None
    node = SnapshotNode(role=match.group(0))
    rest = key[match.end() :].lstrip()
    if rest.startswith('"'):
        try:
            name, end = json.JSONDecoder().raw_decode(rest)
        except ValueError:
            return None
        node.name = str(name)
        rest = rest[end:]
    if _ATTR_RE.sub("", rest).strip():
        return None  # words that are not attributes: not a node Playwright wrote
    for attr, value in _ATTR_RE.findall(rest):
        node.attrs[attr] = value
    return node


def parse_snapshot(snapshot: str) -> list[SnapshotNode]:
    """The snapshot's top-level nodes, each with its children."""
    roots: list[SnapshotNode] = []
    stack: list[SnapshotNode] = []
    # Only "\n" ends a line: splitlines() would also split at a U+2028 in a page string.
    for line in snapshot.split("\n"):
        stripped = line.lstrip(" ")
        if not stripped.strip():
            continue
        depth = len(line) - len(stripped)
        while stack and stack[-1].depth >= depth:
            stack.pop()
        parent = stack[-1] if stack else None
        body = stripped[2:] if stripped.startswith("- ") else stripped
        key, raw_value = _split_entry(body)
        value = _unquote_value(raw_value) if raw_value is not None else None
        if key.startswith("/") and parent is not None:
            if key == "/url":
                parent.url = value
            elif key == "/placeholder":
                parent.placeholder = value
            continue
        node = SnapshotNode(role="text", text=value) if key == "text" else _parse_key(key)
        if node is None:  # not something Playwright writes: keep the line as text
            node = SnapshotNode(role="text", text=body, parsed=False)
        elif node.role != "text":
            node.text = value
        node.depth, node.line = depth, body
        (parent.children if parent is not None else roots).append(node)
        stack.append(node)
    return roots


def walk_snapshot(nodes: Iterable[SnapshotNode]) -> Iterator[SnapshotNode]:
    """Every node of the trees, in document order (a node before its children)."""
    for node in nodes:
        yield node
        yield from walk_snapshot(node.children)


def snapshot_elements(snapshot: str) -> list[SnapshotNode]:
    """The nodes of ``snapshot`` that have a ref, in document order."""
    return [node for node in walk_snapshot(parse_snapshot(snapshot)) if node.ref is not None]


_SHORT_REF = re.compile(r"^e\d+$")
# A frame number no page has: an aria-ref under it fails at once ("Invalid frame in aria-ref
# selector"), which tools.execute reports as a ref from an older snapshot.
_NO_FRAME = "f999999999"


@dataclass(frozen=True)
class Spot:
    """Where an element of the last snapshot was, and what it was: its role and name, and its box
    in the viewport (CSS px, whole numbers) when the snapshot was taken."""

    role: str
    name: str
    box: tuple[int, int, int, int]


@dataclass
class _PageRefs:
    """The short refs :func:`short_refs` gave on one page."""

    given: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(Playwright's ref, role, name) -> the short ref it was given, for the page's life."""
    last: dict[str, str] = field(default_factory=dict)
    """Short ref -> Playwright's ref, in the page's last snapshot."""
    spots: dict[str, Spot] = field(default_factory=dict)
    """Short ref -> where it was, in the page's last snapshot (one taken with boxes)."""


_pages: WeakKeyDictionary[Any, _PageRefs] = WeakKeyDictionary()


def _main_frame_nodes(nodes: list[SnapshotNode]) -> Iterator[SnapshotNode]:
    """The nodes of the main frame (not inside an iframe), in document order."""
    for node in nodes:
        yield node
        if node.role != "iframe":
            yield from _main_frame_nodes(node.children)


def _key_end(line: str) -> int:
    """Where the key of a snapshot line ends (its value, page text, is never rewritten)."""
    body = line.lstrip(" ")
    body = body[2:] if body.startswith("- ") else body
    _, raw_value = _split_entry(body)
    return len(line) - (len(raw_value) + 2 if raw_value is not None else 0)


def short_refs(page: Any, snapshot: str, keep_boxes: bool = True) -> str:
    """``snapshot`` (the AI snapshot of ``page``) with short refs for its main frame's elements
    to act on, which :func:`full_ref` maps back for ``page`` until the next call.

    Playwright's refs carry the frame's number (``f4e31``), which changes when a navigation
    swaps the main frame, and each new document numbers its elements from ``e1`` again. The
    short refs are given in document order (``e1``, ``e2`` ...) and never given twice on a
    page: an element keeps its short ref while its Playwright ref, role and name stay (as the
    same element on the same page does; so does the same link at the same place on the next
    page), any other gets a new one. So a short ref the planner kept from a page it left either
    stands for an element of the same role and name, or resolves to nothing (the action fails
    as with a stale ref), never silently to another element. Other nodes (nothing acts on them)
    keep Playwright's ref behind a ``_`` (``_f4e3``), which no action resolves; an iframe's
    elements keep Playwright's refs (``f5e2``).

    A snapshot taken with boxes (``boxes=True``) also tells where each element to act on was
    (:func:`ref_spot`); ``keep_boxes=False`` leaves the ``[box=...]`` attributes out of the text.
    """
    roots = parse_snapshot(snapshot)
    refs = _pages.setdefault(page, _PageRefs())
    refs.last, refs.spots = {}, {}
    rename: dict[str, str] = {}
    for node in _main_frame_nodes(roots):
        ref = node.ref
        if ref is None:
            continue
        if not node.actionable:
            rename[ref] = f"_{ref}"  # not a ref to act on, never read as a short one
            continue
        key = (ref, node.role, node.name)
        short = refs.given.setdefault(key, f"e{len(refs.given) + 1}")
        refs.last[short] = ref
        rename[ref] = short
        if node.box is not None:
            refs.spots[short] = Spot(node.role, node.name, node.box)
    lines = snapshot.split("\n")
    for i, line in enumerate(lines):
        if "[ref=" not in line and "[box=" not in line:
            continue
        # A line's own ref (and box) is the last one before its value (a name may quote one).
        end = _key_end(line)
        if not keep_boxes:
            box = [None, *_BOX_ATTR.finditer(line, 0, end)][-1]
            if box is not None:
                line = line[: box.start()] + line[box.end() :]
                end -= box.end() - box.start()
        found = [None, *_REF_ATTR.finditer(line, 0, end)][-1]
        if found is not None and found.group(1) in rename:
            new = f" [ref={rename[found.group(1)]}]"
            line = line[: found.start()] + new + line[found.end() :]
        lines[i] = line
    return "\n".join(lines)


_REF_ATTR = re.compile(r" \[ref=([^\]\s]+)\]")
_BOX_ATTR = re.compile(r" \[box=-?\d+,-?\d+,\d+,\d+\]")


def ref_spot(page: Any, ref: str) -> Spot | None:
    """Where the element ``ref`` (a short ref) was in ``page``'s last snapshot, if it was taken
    with boxes and gave that ref."""
    refs = _pages.get(page)
    return refs.spots.get(ref) if refs is not None else None


def full_ref(page: Any, ref: str) -> str:
    """The ref Playwright knows for ``ref`` as :func:`short_refs` last wrote it for ``page``; a
    short ref it did not write there names no frame (the action fails: a stale ref). Other refs
    (an iframe's, any on a page never observed) are returned as they are."""
    refs = _pages.get(page)
    if _SHORT_REF.match(ref) is None or refs is None:
        return ref
    return refs.last.get(ref, _NO_FRAME + ref)
