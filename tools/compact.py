r"""A compact page text for a planner model, made from Playwright's AI aria snapshot (read by
:mod:`tools.snapshot`).

The AI snapshot (``page.aria_snapshot(mode="ai")``) is a YAML-like tree with a node per element,
wrappers included, and on a table a node per cell. A model needs far less: what the page says and
what it can act on. The compact text has one line per thing and no indentation::

    # Invoices                            a heading, one '#' per level
    87 invoices                           text; short runs of inline text share a line
    [e10] textbox Search [focused]        an element to act on: ref, role, name, states
    [e14] Log out                         a link, a named button, or anything with a pointer
                                          cursor: no role (something to click)
    [e22] textbox Display name: Bob       a value (redacted upstream) after the name, which is
    [e23] textbox "From:": ADQ            quoted if it has a ':', '(' or '"'
    [e1] checkbox Gift wrap [checked]     states in one bracket ([active] is "focused")
    [e5] combobox Plan: Basic, Pro*       a native select's options, the selected one starred
    [e6] textbox Username                 a nameless field, then the short label beside it
    Status: Unpaid                        a term and its definition; "Due:2026-11-30": no space
                                          between a word's colon and a digit (a token)
    table "Invoices"                      a table: its name, its header in pipes, then one
    | Number (INV-…) | Date | Amount ($…) | line per row, cells joined by "|" (a "|" in a cell
    (every row) Status: Unpaid            is escaped), the refs of the row's elements inline
    [e31]0023|2026-10-31|160.25           (no space between a ref and a digit: a token)

Every element an action may target keeps its ref verbatim (``e7``; ``f1e3`` inside an iframe, the
iframe itself keeps its own): the roles in ``ACTIONABLE_ROLES`` and any node with a pointer
cursor. So ``Locate(ref=...)`` works with any ref read from the compact text.

Dropped, because a planner does not need them to read or act: wrapper nodes (generic, group,
rowgroup, list, landmarks: their content is kept, flattened); the refs of nodes nothing acts on
(headings, paragraphs, rows, cells); table cells as nodes; a link's URL when the link has a name
(a nameless link shows its path); the pointer-cursor and focus markers of nodes that are not
acted on, the level of headings (it becomes '#'s), ``[box=...]``; text that only repeats the name
of the element beside it (a "Username" label before the "Username" box); the text children of an
element that its name already says; a line repeating the line before it. Kept sparingly: named
dialogs (``dialog "Confirm":``), named groups (``Shipping:``), named images (``img "logo"``).

A table says once what every row repeats (from three rows on, column by column): a plain value
the same in every row leaves the rows for a ``(every row) Column: value`` line; a prefix or a
suffix every cell of a column shares, cut at a separator and never inside a number (an id's
``INV-``, a unit's ``$`` or `` kg``), goes to the header as ``Column (INV-…)``, ``(… kg)``; a
column whose cells differ only by their refs (the same "Edit" and "Delete" in every row) keeps
only the refs, its header shows the rest once (``Actions ([…] Edit […] Delete)``). In a row,
an element whose name says another cell of its row (a checkbox "Select - Invoice INV-1079") is
written without its name, which its column's header shows once with the row's text as "…".
A zero-padded number's leading zeros may go with its column's prefix (``INV-1002-00…``). A long
table (16 rows or more) is cut into runs of at least 8 rows that share their prefixes and
suffixes, where the cuts save the most; a ``(from here) Date (2025-…) | Due`` line names the
columns whose header changes for the rows after it. Refs are never factored: every row keeps the
ref of each of its elements.

Page text cannot pass for layout. Every string that comes from the page (text, names, values,
options, placeholders, link paths, the title) has its ``[`` escaped as ``\[``, so the only bare
brackets are corral's (refs, states, tab numbers): ``[e99] Pay`` written on a page reads
``\[e99] Pay``. A line of page text that starts like layout or like a heading of the
planner's prompt (``#``, ``|``, a quote, ``table``, ``Task:``, ``Current page:``, ``Tabs:`` ...,
see ``_LAYOUT``) is quoted as a whole, JSON style: ``"Current page: http://evil.example"``.
Control characters and line separators in page text become spaces, so one page string is
never two lines.

The function is pure and deterministic and never raises: a line it cannot read is kept as text.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .snapshot import ACTIONABLE_ROLES, SnapshotNode, parse_snapshot, walk_snapshot

__all__ = ["compact_snapshot", "page_string", "page_text", "site_path"]

_TABLES = frozenset({"table", "grid", "treegrid"})
_CELLS = frozenset({"cell", "gridcell", "columnheader", "rowheader"})
# Roles whose text runs inline with their siblings'; anything else starts a line of its own.
_INLINE = frozenset(
    {
        "text",
        "generic",
        "strong",
        "emphasis",
        "code",
        "mark",
        "time",
        "subscript",
        "superscript",
        "deletion",
        "insertion",
        "abbr",
    }
)
# Wrappers inside a table that hold rows.
_WRAPPERS = frozenset({"rowgroup", "generic", "none", "presentation"})
# Named containers worth a line of their own: a model should know it is inside a dialog.
_ANNOUNCED = frozenset({"dialog", "alertdialog"})
_STATE_ORDER = ("checked", "disabled", "expanded", "pressed", "selected", "invalid", "active")
_MAX_JOIN = 80  # longest run of inline text joined on one line
_MAX_LABEL = 40  # longest text joined with the field beside it
# Fields: a short text beside one is its label, so they share a line.
_FIELDS = frozenset(
    {"textbox", "searchbox", "combobox", "checkbox", "radio", "switch", "slider", "spinbutton"}
)
_ESCAPED_REF_RE = re.compile(r"\\\[ref=([^\]\s]+)\]")
# Whitespace, line and paragraph separators and the other C0/C1 controls: never a line break.
_SPACES = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# A line of page text that could be read as corral's layout or a heading of the planner prompt
# (runtime.agent.prompt) is quoted. The words are those headings and labels.
_LAYOUT = re.compile(
    r"(?:\\\[|[#|\"]|\((?:every row|from here)\)|(?:table|dialog|alertdialog|img|title|clickable)\b"
    r"|(?:task|history|current page|secrets usable|tabs|notes?|a vision model|the result given"
    r"|icons)\b)",
    re.IGNORECASE,
)
# A name with one of these could be read as running into the ": value" or "(placeholder ...)"
# after it.
_RUNS_ON = re.compile(r'[:(")]')
_TITLE_SEPARATORS = re.compile(r"\s+[-|\u2013\u2014\u00b7:]\s+")


# Parsing


def page_string(text: str) -> str:
    """A string from the page as compact text shows it: one line, its ``[`` escaped."""
    return _SPACES.sub(" ", text).strip().replace("[", "\\[")


def _text_line(line: str) -> str:
    """A line of page text, quoted if it could be read as layout or a prompt heading."""
    return _quote(line) if _LAYOUT.match(line) else line


def _parse(snapshot: str) -> list[SnapshotNode]:
    """The snapshot's nodes with every string from the page as compact text shows it."""
    roots = parse_snapshot(snapshot)
    for node in walk_snapshot(roots):
        if node.parsed:
            node.name = page_string(node.name)
            node.text = None if node.text is None else page_string(node.text)
        else:
            # Its refs are Playwright's (bare), everything else is the page's (escaped).
            node.text = _ESCAPED_REF_RE.sub(r"[\1]", page_string(node.line))
        node.url = None if node.url is None else page_string(node.url)
        node.placeholder = None if node.placeholder is None else page_string(node.placeholder)
    return roots


# Rendering


def _norm(text: str) -> str:
    return text.strip().rstrip(":*").strip().casefold()


def _quote(text: str) -> str:
    # JSON style, but a page's escaped bracket stays "\[" (not "\\[").
    return json.dumps(text, ensure_ascii=False).replace("\\\\[", "\\[")


def _short_url(url: str) -> str:
    return re.sub(r"^[a-z][a-z0-9+.-]*://[^/]*", "", url) or url


def _is_inline(node: SnapshotNode) -> bool:
    """Only inline text in this subtree: nothing to act on, no block."""
    if node.actionable or node.role not in _INLINE:
        return False
    return all(_is_inline(child) for child in node.children)


def _text_parts(node: SnapshotNode) -> list[str]:
    parts = [node.name] if node.name and node.role != "generic" and not node.children else []
    if node.text:
        parts.append(node.text)
    for child in node.children:
        parts += _text_parts(child)
    return [p for p in parts if p]


def _inline_text(node: SnapshotNode) -> str:
    return " ".join(_text_parts(node))


def _has_generic(nodes: list[SnapshotNode]) -> bool:
    return any(n.role == "generic" or _has_generic(n.children) for n in nodes)


def _joinable(nodes: list[SnapshotNode], text: str, pieces: int) -> bool:
    """Whether inline pieces may share a line: phrasing (text, strong, ...) always may; pieces
    from generic nodes (a div is as likely as a span) only while the line stays short."""
    return pieces <= 1 or len(text) <= _MAX_JOIN or not _has_generic(nodes)


def _states(node: SnapshotNode) -> str:
    out = []
    for state in _STATE_ORDER:
        if state in node.attrs:
            value = node.attrs[state]
            label = "focused" if state == "active" else state
            out.append(f"{label}={value}" if value else label)
    # One bracket for all: "[checked disabled]" is two tokens fewer than "[checked] [disabled]".
    return f" [{' '.join(out)}]" if out else ""


def _options(node: SnapshotNode) -> tuple[str | None, list[SnapshotNode]]:
    """Options without refs (a native select) as text; the other children stay nodes."""
    if node.role not in ("combobox", "listbox"):
        return None, node.children
    names, rest = [], []
    for child in node.children:
        if child.role == "option" and child.ref is None:
            label = child.name or child.text or ""
            names.append(label + ("*" if "selected" in child.attrs else ""))
        else:
            rest.append(child)
    return (", ".join(names) if names else None), rest


def _element(node: SnapshotNode, named: bool = True) -> str:
    """The one-line form of an element to act on, without its children (and without its name
    if not ``named``)."""
    name = node.name if named else ""
    options, _ = _options(node)
    if node.role == "link" or (node.role == "button" and name):
        # Links and buttons are the commonest elements: "[ref] text" without a role means
        # "click it" (a nameless button keeps its role: it is all its line says).
        head = f"[{node.ref}]"
        if not name and node.url:
            name = _short_url(node.url)
    elif node.role in ACTIONABLE_ROLES:
        head = f"[{node.ref}] {node.role}"
    else:  # clickable for its pointer cursor: named by its own text
        head = f"[{node.ref}]"
        name = (
            name
            or node.text
            or " ".join(" ".join(_text_parts(c)) for c in node.children if _is_inline(c))
        )
        name = name.strip()
        if not name:
            head += " clickable"
    value = node.text if node.text is not None and node.text != name else options
    placeholder = node.placeholder
    if placeholder is not None and _norm(placeholder) == _norm(name):
        placeholder = None
    if name:
        # Quoted only when a value or placeholder follows and the name could run into it.
        follows = value is not None or placeholder
        head += " " + (_quote(name) if follows and _RUNS_ON.search(name) else name)
    head += _states(node)
    if value is not None:
        head += ": " + value
    if placeholder:
        head += f" (placeholder {_quote(placeholder)})"
    return head


def _uncovered(node: SnapshotNode) -> list[SnapshotNode]:
    """The children of an element to act on that its own line does not already say."""
    _, rest = _options(node)
    if node.role not in ACTIONABLE_ROLES and not node.name:
        return [c for c in rest if not _is_inline(c)]  # its text became its name
    said = _norm(node.name)
    return [c for c in rest if not (_is_inline(c) and _norm(_inline_text(c)) in said)]


class _Renderer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, line: str) -> None:
        if line.strip():
            self.lines.append(line.strip())

    def children(self, nodes: list[SnapshotNode]) -> None:
        """A run of siblings: labels dropped, short inline runs joined, terms paired."""
        nodes = self.drop_labels(nodes)
        joined = self.inline_run(nodes)
        if joined is not None and len(nodes) > 1:
            self.emit(_text_line(joined))
            return
        i = 0
        while i < len(nodes):
            node = nodes[i]
            if node.role == "term" and i + 1 < len(nodes) and nodes[i + 1].role == "definition":
                self.emit(_text_line(f"{self.cell(node)}: {self.cell(nodes[i + 1])}"))
                i += 2
                continue
            self.block(node)
            i += 1

    def block(self, node: SnapshotNode) -> None:
        role = node.role
        if role == "text":
            self.emit(_text_line(node.text or ""))
        elif node.actionable:
            self.actionable(node)
        elif role == "heading":
            self.heading(node)
        elif role in _TABLES:
            self.table(node)
        elif _is_inline(node) and _joinable(
            [node], text := _inline_text(node), len(_text_parts(node))
        ):
            self.emit(_text_line(text))
        else:
            name = node.name
            if role in _ANNOUNCED:
                self.emit(f"{role} {_quote(name)}:" if name else f"{role}:")
            elif role in ("group", "radiogroup") and name:
                first = node.children[0] if node.children else None
                if first is None or _norm(self.cell(first)) != _norm(name):
                    self.emit(_text_line(name + ":"))
            elif role == "img" and name:
                self.emit(f"img {_quote(name)}")
            elif name and not node.children and node.text is None and role != "generic":
                self.emit(_text_line(name))
            self.emit(_text_line(node.text or ""))
            self.children(node.children)

    def actionable(self, node: SnapshotNode) -> None:
        line, rest = _element(node), _uncovered(node)
        # A nameless element around one element to act on (a tab around its link): one line.
        if not node.name and len(rest) == 1 and rest[0].actionable and not rest[0].children:
            self.emit(line.removesuffix(" clickable") + " " + _element(rest[0]))
            return
        self.emit(line)
        self.children(rest)

    def heading(self, node: SnapshotNode) -> None:
        level = node.attrs.get("level", "")
        mark = "#" * (int(level) if level.isdigit() else 2)
        title = node.name or node.text or ""
        inline = self.inline_run(node.children, heading=True)
        if inline and _norm(inline) != _norm(title):
            # Children that say more than the name (a link in the heading) take its place.
            title = inline if _norm(title) in _norm(inline) else f"{title} {inline}"
        self.emit(f"{mark} {title}" if title.strip() else "")
        if inline is None:
            self.children(node.children)

    def drop_labels(self, nodes: list[SnapshotNode]) -> list[SnapshotNode]:
        """Text that only repeats the name of the element beside it (a label) is dropped."""
        kept: list[SnapshotNode] = []
        for i, node in enumerate(nodes):
            if _is_inline(node) and not node.children:
                text = _norm(_inline_text(node))
                beside = [nodes[j] for j in (i - 1, i + 1) if 0 <= j < len(nodes)]
                if text and any(n.actionable and _norm(n.name) == text for n in beside):
                    continue
            kept.append(node)
        return kept

    def inline_run(self, nodes: list[SnapshotNode], heading: bool = False) -> str | None:
        """Siblings that read as one line, or None: inline text, with at most one field beside
        a short text (a label and its box); in a heading, any one simple element."""
        parts: list[str] = []
        element: SnapshotNode | None = None
        pieces = 0
        for node in nodes:
            if _is_inline(node):
                found = _text_parts(node)
                pieces += len(found)
                parts += found
            elif (
                node.actionable
                and not node.children
                and element is None
                and (heading or node.role in _FIELDS)
            ):
                element = node
                parts.append(_element(node))
            else:
                return None
        if element is None:
            joined = " ".join(parts)
            return joined if _joinable(nodes, joined, pieces) else None
        label = sum(len(p) for p in parts) - len(_element(element))
        if label > _MAX_LABEL or not (pieces or heading):
            return None
        if heading:
            return " ".join(parts)
        if _LAYOUT.match(" ".join(parts)):
            return None  # a label that reads as layout: on a line of its own, quoted
        if parts[-1] == _element(element):
            # Only a label before the field: the field first ("[e6] textbox Username").
            parts = [parts[-1], *parts[:-1]]
        return " ".join(parts)

    def cell(self, node: SnapshotNode, said: tuple[str, ...] = ()) -> str:
        """Any subtree on one line: its text, its elements in their one-line form. An element
        whose name only repeats one of the texts ``said`` (its row's other cells) is written
        without its name."""
        if node.actionable:
            line = _element(node)
            if node.role != "link" and _repeats(node.name, said):
                line = _element(node, named=False)
            parts = [line] + [self.cell(c, said) for c in _uncovered(node)]
        elif node.role == "text" or not node.children:
            name = node.name if node.role != "generic" and node.text is None else ""
            parts = [node.text or name]
        else:
            parts = [node.text or ""] + [self.cell(c, said) for c in node.children]
        return " ".join(p for p in parts if p)

    def table(self, node: SnapshotNode) -> None:
        if node.name:
            self.emit(f"table {_quote(node.name)}")
        entries: list[_Row | str] = []
        self.table_parts(node.children, node.name, entries)
        rows = [e for e in entries if isinstance(e, _Row) and not e.header]
        headers = [e for e in entries if isinstance(e, _Row) and e.header]
        _factor_columns(rows, headers[0] if len(headers) == 1 else None)
        for entry in entries:
            if isinstance(entry, str):
                self.emit(entry)
            else:
                for line in entry.before:
                    self.emit(line)
                self.emit(entry.line())
                for line in entry.after:
                    self.emit(line)

    def table_parts(self, nodes: list[SnapshotNode], name: str, out: list[_Row | str]) -> None:
        for child in nodes:
            if child.role == "row":
                out.append(self.row(child))
            elif child.role == "caption":
                caption = self.cell(child)
                if _norm(caption) != _norm(name):
                    out.append(_text_line(caption))
            elif child.role in _WRAPPERS and not child.actionable:
                self.table_parts(child.children, name, out)
            else:
                out += self.captured([child])

    def captured(self, nodes: list[SnapshotNode]) -> list[str]:
        """The lines ``nodes`` render to, not emitted."""
        kept, self.lines = self.lines, []
        try:
            self.children(nodes)
            return self.lines
        finally:
            self.lines = kept

    def row(self, row: SnapshotNode) -> _Row:
        """A row: its cells, each on one line (an element naming the row by another cell's text
        is written without its name), and the lines of what is not a cell."""
        cells = [c for c in row.children if c.role in _CELLS]
        header = bool(cells) and all(c.role == "columnheader" for c in cells)
        plain = [_norm(_REF.sub("", self.cell(c))) for c in cells]
        texts = []
        for i, cell in enumerate(cells):
            said = tuple(t for j, t in enumerate(plain) if j != i and len(t) >= _MIN_SAID)
            texts.append(self.cell(cell, () if header else said).replace("|", "\\|"))
        rest = self.captured([c for c in row.children if c.role not in _CELLS])
        ref = row.ref if row.actionable else None
        made = _Row(ref, header, texts, rest)
        for i, cell in enumerate(cells):
            said = tuple(t for j, t in enumerate(plain) if j != i and len(t) >= _MIN_SAID)
            for node in walk_snapshot([cell]):
                if node.actionable and node.role != "link" and _repeats(node.name, said):
                    made.names.setdefault(i, _template(node.name, said))
        return made


_REF_DIGIT = re.compile(r"(?<!\\)(\[(?:f\d+)?e\d+\]) (?=\d)")
# After a word's colon (not a number's: "3: 4" stays), before a digit.
_COLON_DIGIT = re.compile(r"(?<=[^\W\d_]): (?=\d)")
_LEAD_REF = re.compile(r"^(\[[^\]\s]+\] ?)")
_REF = re.compile(r"\[(?:f\d+)?e\d+\]")
_MIN_ROWS = 3  # a column is factored only in a table with this many rows
_MIN_SAID = 4  # a cell's text an element's name must say to be left out
_MIN_RUN = 8  # rows of a long table that share a header of their own, at least


def _template(name: str, said: tuple[str, ...]) -> str:
    """``name`` with the row's own texts it says replaced by "…"."""
    for text in said:
        name = re.sub(re.escape(text), "…", name, flags=re.IGNORECASE)
    return name


def _repeats(name: str, said: tuple[str, ...]) -> bool:
    """True if ``name`` says one of the texts ``said`` (so it only names its row)."""
    norm = _norm(name)
    return bool(norm) and any(t in norm for t in said)


class _Row:
    """A table row before it is written: the header row in pipes, a body row's cells joined by
    "|" (a factored-out prefix, suffix or constant goes to the header)."""

    def __init__(self, ref: str | None, header: bool, cells: list[str], after: list[str]):
        self.ref, self.header, self.cells, self.after = ref, header, cells, after
        self.dropped: set[int] = set()
        self.before: list[str] = []
        """Lines before the row: the header of the run of rows it starts."""
        self.names: dict[int, str] = {}
        """Per cell, the name left out of its element, the row's own text in it as "…"."""

    def line(self) -> str:
        cells = [c for i, c in enumerate(self.cells) if i not in self.dropped]
        if self.header:
            return "| " + " | ".join(cells) + " |"
        line = "|".join(cells)
        return f"[{self.ref}] {line}" if self.ref is not None else _text_line(line)


def _split_lead(cell: str) -> tuple[str, str]:
    """A cell as its leading link ref (``[e7] ``) and the text after it."""
    match = _LEAD_REF.match(cell)
    return (match.group(1), cell[match.end() :]) if match else ("", cell)


def _cut(lo: str, hi: str, shortest: int, zeros: bool, texts: Iterable[str] = ()) -> str:
    """The prefix texts share, from the least (``lo``) and greatest (``hi``) of them, cut at a
    separator (``INV-1002-``, ``$``: not inside a number) and leaving each of them (the shortest
    is ``shortest`` long) a non-empty rest; '' if none. With ``zeros``, the cut may take the
    leading zeros of a number that ends every text (``INV-1002-00`` of ``INV-1002-0087``), in
    ``lo``, ``hi`` and ``texts`` (all of them, for an exact answer)."""
    common = 0
    most = min(len(lo), len(hi))
    while common < most and lo[common] == hi[common]:
        common += 1
    end = common
    while end and (lo[end - 1].isalnum() or lo[end - 1] in ",."):
        end -= 1
    if zeros:
        padded = end
        while padded < common and lo[padded] == "0":
            padded += 1
        if padded > end and all(t[padded:].isdigit() for t in itertools.chain((lo, hi), texts)):
            end = padded
    prefix = lo[:end]
    if prefix.strip() in ("", "-") or shortest <= len(prefix):
        return ""
    return prefix


def _boundary_prefix(texts: list[str]) -> str:
    """The longest prefix all ``texts`` share that ends at a separator (``INV-1002-``, ``$``;
    not inside a number, but maybe after a number's leading zeros) and leaves each of them a
    non-empty rest; '' if none."""
    return _cut(min(texts), max(texts), min(map(len, texts)), zeros=True, texts=texts)


def _boundary_suffix(texts: list[str], prefix: str = "") -> str:
    """The mirror of :func:`_boundary_prefix` (`` kg``, ``%``; never inside a number), leaving a
    rest beside ``prefix``."""
    rev = [t[::-1] for t in texts]
    return _cut(min(rev), max(rev), min(map(len, texts)) - len(prefix), zeros=False)[::-1]


def _factor_columns(rows: list[_Row], header: _Row | None) -> None:
    """Say once in the header what every row repeats in a column: the name of the same element
    in every row, a constant plain value (the column leaves the rows), a shared prefix or suffix
    of plain text (``Amount ($…)``). Every ref stays in its row. A long table is cut into runs
    of rows (at least ``_MIN_RUN``) that share their prefixes and suffixes, each run under a
    header of its own (``Date (2025-…)`` after ``Date (2026-…)``)."""
    if header is None or len(rows) < _MIN_ROWS:
        return
    width = len(header.cells)
    if any(len(r.cells) != width for r in rows):
        return
    plain: list[int] = []
    for col in range(width):
        names = {r.names[col] for r in rows if col in r.names}
        if len(names) == 1:
            header.cells[col] = f"{header.cells[col]} ({names.pop()})".strip()
        leads, bodies = zip(*(_split_lead(r.cells[col]) for r in rows), strict=True)
        name = header.cells[col]
        templates = {_REF.sub("[]", c) for c in (r.cells[col] for r in rows)}
        template = templates.pop() if len(templates) == 1 else ""
        if "[]" in template and template.replace("[]", "").strip():
            header.cells[col] = f"{name} ({template.replace('[]', '[…]')})".strip()
            for r in rows:
                r.cells[col] = " ".join(_REF.findall(r.cells[col]))
            continue
        if any("[" in b.replace("\\[", "") or not b for b in bodies):
            continue
        if not any(leads) and len(set(bodies)) == 1:
            header.after.insert(0, f"(every row) {name}: {bodies[0]}".replace(" : ", ": "))
            for r in (header, *rows):
                r.dropped.add(col)
            continue
        plain.append(col)
    titles = list(header.cells)
    shown: list[str] | None = None
    for run in _runs(rows, plain, len(header.line()) // 2):
        cells = list(titles)
        for col, (prefix, suffix) in run.affixes.items():
            cells[col] = f"{titles[col]} ({prefix}…{suffix})"
            for r in run.rows:
                lead, body = _split_lead(r.cells[col])
                r.cells[col] = lead + body[len(prefix) : len(body) - len(suffix)]
        if shown is None:
            header.cells = cells
        else:
            # Only the columns whose header changes, for the rows from here on.
            changed = [c for i, c in enumerate(cells) if c != shown[i] and i not in header.dropped]
            if changed:
                run.rows[0].before.append("(from here) " + " | ".join(changed))
        shown = cells


@dataclass
class _Run:
    rows: list[_Row]
    affixes: dict[int, tuple[str, str]]


def _affixes(rows: list[_Row], cols: list[int]) -> dict[int, tuple[str, str]]:
    """Per column, the prefix and suffix all ``rows`` share (columns with neither left out)."""
    out = {}
    for col in cols:
        bodies = [_split_lead(r.cells[col])[1] for r in rows]
        prefix = _boundary_prefix(bodies)
        suffix = _boundary_suffix(bodies, prefix)
        if prefix or suffix:
            out[col] = (prefix, suffix)
    return out


def _runs(rows: list[_Row], cols: list[int], header_chars: int) -> list[_Run]:
    """The rows cut into runs (of ``_MIN_RUN`` rows at least) that share their prefixes and
    suffixes, where the cuts save the most: what a run's affixes take out of its rows, less
    the header line each run after the first costs (``header_chars``). A run may start only
    where what ``_MIN_RUN`` rows in a row share changes (a year in a date column), which keeps
    the search short. A short table is one run."""
    n = len(rows)
    if n < 2 * _MIN_RUN or not cols:
        return [_Run(rows, _affixes(rows, cols))]
    bodies = [[_split_lead(r.cells[col])[1] for r in rows] for col in cols]

    def cut(a: int, b: int) -> list[str]:
        """Per column, the prefix and suffix rows ``a`` to ``b`` share, as "prefix…suffix"."""
        out = []
        for texts in bodies:
            part = texts[a:b]
            prefix = _boundary_prefix(part)
            out.append(f"{prefix}…{_boundary_suffix(part, prefix)}")
        return out

    windows = [cut(k, k + _MIN_RUN) for k in range(n - _MIN_RUN + 1)]
    starts = {0}
    for k in range(1, len(windows)):
        if windows[k] != windows[k - 1]:
            starts.update({k, k + _MIN_RUN - 1})
    places = [*sorted(k for k in starts if k == 0 or _MIN_RUN <= k <= n - _MIN_RUN), n]
    best: dict[int, tuple[float, int]] = {0: (0.0, 0)}
    for j in places[1:]:
        for i in places:
            if i >= j or j - i < _MIN_RUN or i not in best:
                continue
            lengths = [len(c) - 1 for c in cut(i, j)]
            saved = sum(c * (j - i) - c - 4 for c in lengths if c)  # the header's " (…)"
            cost = best[i][0] - saved + (header_chars if i else 0)
            if j not in best or cost < best[j][0]:
                best[j] = (cost, i)
    cuts = [n]
    while cuts[-1]:
        cuts.append(best[cuts[-1]][1])
    cuts.reverse()
    return [_Run(rows[a:b], _affixes(rows[a:b], cols)) for a, b in itertools.pairwise(cuts)]


def compact_snapshot(ai_snapshot: str) -> str:
    """Playwright's AI snapshot as compact text; every actionable ref kept (see module doc)."""
    renderer = _Renderer()
    renderer.children(_parse(ai_snapshot))
    out: list[str] = []
    for line in renderer.lines:
        # A text repeated right away (a caption under its heading) is said once.
        if not (out and out[-1] == line and not line.startswith("[")):
            out.append(line)
    # "[e31]0087", not "[e31] 0087"; "Due:2026-11-30", not "Due: 2026-11-30": a space before
    # a digit is a token of its own.
    return _COLON_DIGIT.sub(":", _REF_DIGIT.sub(r"\1", "\n".join(out)))


def page_text(url: str, title: str, compact: str, site: str | None = None) -> str:
    """What a planner reads of a page: a first line of its URL (as a path on ``site``, an
    origin said once elsewhere) and its title after a " · ", unless the text already says all of
    the title (the usual "Page - Site" title repeats the page's heading and the site's name);
    then the text. The title is page text: one line, brackets escaped."""
    title = page_string(title)
    parts = [p.strip() for p in _TITLE_SEPARATORS.split(title) if p.strip()]
    said = compact.casefold()
    head = site_path(url, site)  # a URL needs no label
    if not all(re.search(rf"(?<!\w){re.escape(p.casefold())}(?!\w)", said) for p in parts):
        head += f" · {title.strip()}"
    return f"{head}\n{compact}"


def site_path(url: str, site: str | None) -> str:
    """``url`` as a path (``/invoices?page=2``) when it is on ``site`` (an origin such as
    ``https://example.com``), else whole."""
    rest = url[len(site) :] if site and url.startswith(site) else None
    if rest is None or rest[:1] not in ("/", "?", "#", ""):
        return url  # another origin (or "https://example.com.evil.net")
    return rest if rest.startswith("/") else "/" + rest
