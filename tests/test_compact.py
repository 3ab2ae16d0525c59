"""tools/compact.py: the compact page text keeps every actionable ref, in real Chromium and on
snapshot strings."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from profiles import open_session
from runtime import Runtime
from runtime.demo.portal import USERS
from runtime.demo.portal.data import invoices_for
from tests.support.demo import make_demo_profiles
from tools import (
    ActionContext,
    Click,
    Fill,
    Navigate,
    Tabs,
    execute,
    observe,
    parse_boxes,
    parse_snapshot,
    snapshot_elements,
    walk_snapshot,
)
from tools.compact import compact_snapshot, page_text
from tools.snapshot import Spot, full_ref, ref_spot, short_refs

# The roles whose refs must survive compaction (an action may target any of them).
ACTIONABLE = (
    "button|link|textbox|checkbox|radio|combobox|option|menuitem|tab|searchbox|spinbutton"
    "|slider|switch"
)
ACTIONABLE_REF = re.compile(rf"^\s*- '?(?:{ACTIONABLE})\b.*?\[ref=(\w+)\]", re.MULTILINE)


def actionable_refs(snapshot: str) -> list[str]:
    return ACTIONABLE_REF.findall(snapshot)


def ref_in(compact: str, pattern: str) -> str:
    """The ref at the start of the compact line matching ``pattern``."""
    match = re.search(rf"^\[(\w+)\] {pattern}", compact, re.MULTILINE)
    assert match, f"no line {pattern!r} in:\n{compact}"
    return match.group(1)


@asynccontextmanager
async def browse(
    rt: Runtime, portal: str, tmp_path: Path
) -> AsyncIterator[tuple[Tabs, ActionContext]]:
    """A fresh session on the shared portal, signed out."""
    await make_demo_profiles(rt, portal, "bob")
    async with open_session(rt.profiles, await rt.pool(), "bob", run_id="compact") as session:
        yield Tabs(session), ActionContext(downloads_dir=tmp_path / "dl", base_url=portal)


async def sign_in(tabs: Tabs, ctx: ActionContext, user: str) -> None:
    await execute(tabs, Navigate(url="/login"), ctx)
    await execute(tabs, Fill(label="Username", value=user), ctx)
    await execute(tabs, Fill(label="Password", value=USERS[user].password), ctx)
    await execute(tabs, Click(role="button", name="Sign in"), ctx)


# 1. On the real portal, in real Chromium


async def test_every_actionable_ref_of_every_portal_page_is_kept(
    rt: Runtime, portal: str, tmp_path: Path
) -> None:
    invoice = invoices_for("bob")[0].number
    pages = [
        "/dashboard",
        "/invoices",
        "/invoices?per_page=100",
        f"/invoices/{invoice}",
        f"/invoices/{invoice}/pay",
        "/settings",
        "/settings/delete",
        "/documents",
    ]
    async with browse(rt, portal, tmp_path) as (tabs, ctx):
        await execute(tabs, Navigate(url="/login"), ctx)
        seen = [await observe(tabs)]
        await sign_in(tabs, ctx, "bob")
        for path in pages:
            await execute(tabs, Navigate(url=path), ctx)
            seen.append(await observe(tabs))
    for obs in seen:
        refs = actionable_refs(obs.snapshot)
        assert refs, obs.snapshot
        missing = [ref for ref in refs if f"[{ref}]" not in obs.compact]
        assert not missing, f"{obs.url}: refs {missing} lost in:\n{obs.compact}"
        assert obs.compact == compact_snapshot(obs.snapshot)
        assert len(obs.compact) < len(obs.snapshot) / 2, obs.url
        assert "[ref=" not in obs.compact and "/url:" not in obs.compact


async def test_refs_read_from_the_compact_text_sign_in_and_open_an_invoice(
    rt: Runtime, portal: str, tmp_path: Path
) -> None:
    async with browse(rt, portal, tmp_path) as (tabs, ctx):
        await execute(tabs, Navigate(url="/login"), ctx)
        login = (await observe(tabs)).compact
        assert "# Sign in" in login
        await execute(tabs, Fill(ref=ref_in(login, "textbox Username"), value="bob"), ctx)
        password = USERS["bob"].password
        await execute(tabs, Fill(ref=ref_in(login, "textbox Password"), value=password), ctx)
        result = await execute(tabs, Click(ref=ref_in(login, "Sign in")), ctx)
        assert result.url_after == f"{portal}/dashboard"

        dashboard = (await observe(tabs)).compact
        assert "# Welcome, Bob Brown" in dashboard
        # The main frame's refs are short whatever frame number Playwright gave it.
        assert not re.search(r"\[f\d+e\d+\]", dashboard), dashboard
        result = await execute(tabs, Click(ref=ref_in(dashboard, "View unpaid invoices")), ctx)
        assert result.url_after.endswith("/invoices?status=unpaid")

        # A table row carries the ref of its invoice link inline; what every row repeats (the
        # number's prefix, the amount's unit, the status of this filtered list) is said once.
        table = (await observe(tabs)).compact
        # (A zero-padded number's leading zeros go with its prefix; a ref before a digit has no
        # space after it.)
        assert "| Number (INV-1002-00…) | Date | Due | Description | Amount ($…) |" in table
        assert "(every row) Status: Unpaid" in table
        row = re.search(r"^\[(\w+)\](\d{2})\|[-\d]+\|[-\d]+\|[^|]+\|[\d,.]+$", table, re.M)
        assert row, table
        number = f"INV-1002-00{row.group(2)}"
        result = await execute(tabs, Click(ref=row.group(1)), ctx)
        assert result.url_after == f"{portal}/invoices/{number}"
        invoice = await observe(tabs)
        assert f"# Invoice {number}" in invoice.compact
        assert re.search(r"^\[\w+\] Pay \$[\d,]+\.\d\d$", invoice.compact, re.MULTILINE)


def expand_table(compact: str) -> list[list[str]]:
    """The rows of the (one) table of ``compact`` with every cell written out again: what its
    run's header factored out put back (a "(from here)" line changes it for the rows after it),
    the row's leading ref left out."""
    rows: list[list[str]] = []
    titles: list[str] = []
    affixes: dict[int, tuple[str, ...]] = {}

    def head(title: str) -> tuple[str, tuple[str, ...] | None]:
        found = re.search(r"^(.*) \((.*)…(.*)\)$", title)
        return (found.group(1), found.groups()[1:]) if found else (title, None)

    for line in compact.splitlines():
        if line.startswith("| "):
            heads = [head(h) for h in line[2:-2].split(" | ")]
            titles = [t for t, _ in heads]
            affixes = {i: a for i, (_, a) in enumerate(heads) if a is not None}
        elif line.startswith("(from here) "):
            for title, affix in map(head, line.removeprefix("(from here) ").split(" | ")):
                col = titles.index(title)
                affixes.pop(col, None)
                if affix is not None:
                    affixes[col] = affix
        elif affixes and re.match(r"\[\w+\]", line):
            cells = re.sub(r"^\[\w+\] ?", "", line).split("|")
            rows.append(
                [
                    affixes[i][0] + c + affixes[i][1] if i in affixes else c
                    for i, c in enumerate(cells)
                ]
            )
    return rows


async def test_bobs_87_invoices_are_87_row_lines(rt: Runtime, portal: str, tmp_path: Path) -> None:
    async with browse(rt, portal, tmp_path) as (tabs, ctx):
        await sign_in(tabs, ctx, "bob")
        await execute(tabs, Navigate(url="/invoices?per_page=100"), ctx)
        obs = await observe(tabs)
    lines = obs.compact.splitlines()
    rows = [line for line in lines if re.match(r"\[\w+\]\d+\|", line)]
    assert len(rows) == len(invoices_for("bob")) == 87
    # Each row has all six cells on its line, and no cell is a line (or a node) of its own.
    assert all(row.count("|") == 5 for row in rows), rows[:3]
    assert not any(line.startswith(("cell", "row", "- ")) for line in lines)
    # Runs of rows share a header that says what they repeat: the number's prefix, the year;
    # a "(from here)" line says which columns change for the next run.
    headers = [line for line in lines if line.startswith("| Number")]
    assert headers == [
        "| Number (INV-1002-00…) | Date (2026-…) | Due (2026-…) | Description (… 2026) "
        "| Amount ($…) | Status |"
    ], headers
    runs = [line for line in lines if line.startswith("(from here) ")]
    assert "(from here) Date (2025-…) | Due | Description (… 2025)" in runs
    assert 1 <= len(runs) <= 87 // 8
    assert len(lines) < 87 + 25
    assert len(obs.compact) < len(obs.snapshot) / 3
    # Every cell of every invoice can be read back whole, each row under its own run's header.
    expanded = expand_table(obs.compact)
    for invoice, cells in zip(invoices_for("bob"), expanded, strict=True):
        assert cells[:4] == [
            invoice.number,
            invoice.issued.isoformat(),
            invoice.due.isoformat(),
            invoice.description,
        ]
        assert cells[4] == f"${invoice.amount_cents / 100:,.2f}"


async def test_observation_compact_is_made_after_redaction(
    rt: Runtime, portal: str, tmp_path: Path
) -> None:
    async with browse(rt, portal, tmp_path) as (tabs, ctx):
        await execute(tabs, Navigate(url="/login"), ctx)
        await execute(tabs, Fill(label="Password", value="hunter2-secret"), ctx)
        plain = await observe(tabs)
        assert "hunter2-secret" in plain.compact  # Playwright prints a password's value
        scrubbed = await observe(tabs, redact=lambda t: t.replace("hunter2-secret", "{{secret}}"))
    assert "hunter2-secret" not in scrubbed.compact
    line = r"^\[\w+\] textbox Password( \[focused\])?: \{\{secret\}\}$"
    assert re.search(line, scrubbed.compact, re.M), scrubbed.compact


FIXTURE = """
<h1>Shop</h1>
<label>Plan <select><option>Basic</option><option selected>Pro</option></select></label>
<label><input type="checkbox" checked> Gift wrap</label>
<label><input type="radio" name="r"> Air</label>
<input type="search" aria-label="Find">
<input type="number" aria-label="Qty" value="2">
<input type="range" aria-label="Volume">
<div role="switch" aria-checked="false" tabindex="0">Dark mode</div>
<ul role="listbox" aria-label="Sizes"><li role="option" aria-selected="true">S</li>
<li role="option">M</li></ul>
<div role="tablist"><div role="tab" aria-selected="true">One</div><div role="tab">Two</div></div>
<div role="menu"><div role="menuitem">Copy</div></div>
<div onclick="document.title = 'card'" style="cursor: pointer">Open the card</div>
<iframe srcdoc="<p>Framed</p><button onclick=&quot;document.body.append('pressed')&quot;>In
frame</button>"></iframe>
"""


async def test_every_role_and_iframe_ref_is_kept_and_clickable(
    rt: Runtime, portal: str, tmp_path: Path
) -> None:
    async with browse(rt, portal, tmp_path) as (tabs, ctx):
        page = await tabs.active()
        await page.set_content(FIXTURE)
        await page.frames[-1].wait_for_load_state()
        obs = await observe(tabs)
        refs = actionable_refs(obs.snapshot)
        assert len(refs) >= 13, obs.snapshot
        assert not [r for r in refs if f"[{r}]" not in obs.compact], obs.compact
        assert re.search(r"^\[\w+\] combobox Plan: Basic, Pro\*$", obs.compact, re.M)
        assert re.search(r"^\[\w+\] checkbox Gift wrap \[checked\]$", obs.compact, re.M)
        framed = ref_in(obs.compact, "In frame")
        main = ref_in(obs.compact, "combobox")
        # A ref inside the iframe carries that frame's prefix (f1e3 beside e4).
        assert framed.rsplit("e", 1)[0] != main.rsplit("e", 1)[0], obs.compact
        assert re.search(r"^\[\w+\] iframe$", obs.compact, re.M)
        await execute(tabs, Click(ref=framed), ctx)
        assert "pressed" in await page.frames[-1].inner_text("body")
        await execute(tabs, Click(ref=ref_in(obs.compact, "Open the card")), ctx)
        assert await page.title() == "card"


TABLES = Path(__file__).parent / "support" / "tables"


async def test_table_heavy_pages_say_each_row_once_and_keep_every_ref(
    rt: Runtime, portal: str, tmp_path: Path
) -> None:
    async with browse(rt, portal, tmp_path) as (tabs, ctx):
        page = await tabs.active()
        # An admin change list: a checkbox per row named after its order, filters, bulk actions.
        await page.set_content((TABLES / "admin_list.html").read_text())
        admin = await observe(tabs)
        refs = actionable_refs(admin.snapshot)
        assert len(refs) >= 80 + 15, admin.snapshot
        assert not [r for r in refs if f"[{r}]" not in admin.compact], admin.compact
        rows = re.findall(r"^\[(\w+)\]\|\[\w+\](\d{4})\|", admin.compact, re.M)
        assert len(rows) == 40, admin.compact
        assert "Select this object for an action - Order …" in admin.compact
        assert admin.compact.count("Select this object") == 1
        assert "(every row) Channel: Web" in admin.compact
        box, number = rows[7]
        await execute(tabs, Click(ref=box), ctx)
        assert await page.locator(f"input[value='{number}']").is_checked()
        assert (await page.locator("input:checked").count()) == 1

        # A role=grid data grid: the same two buttons in every row, units in the cells.
        await page.set_content((TABLES / "data_grid.html").read_text())
        grid = await observe(tabs)
        refs = actionable_refs(grid.snapshot)
        assert not [r for r in refs if f"[{r}]" not in grid.compact], grid.compact
        lines = re.findall(r"^88\d{3}\|.*\|\[\w+\] \[\w+\]$", grid.compact, re.M)
        assert len(lines) == 30, grid.compact
        assert "| SKU (SKU-…) | Item (… mm) |" in grid.compact
    assert len(admin.compact) < len(admin.snapshot) / 4
    assert len(grid.compact) < len(grid.snapshot) / 4


# 2. On snapshot strings


def test_wrappers_are_flattened_and_labels_not_repeated() -> None:
    snapshot = """- generic [active] [ref=e1]:
  - banner [ref=e2]:
    - strong [ref=e3]: Acme Billing
  - main [ref=e4]:
    - heading "Sign in" [level=1] [ref=e5]
    - generic [ref=e6]:
      - generic [ref=e7]: Username
      - textbox "Username" [ref=e8]
      - generic [ref=e9]: Password
      - textbox "Password" [ref=e10]: S3cr3t
      - button "Sign in" [ref=e12] [cursor=pointer]"""
    assert compact_snapshot(snapshot) == (
        "Acme Billing\n"
        "# Sign in\n"
        "[e8] textbox Username\n"
        "[e10] textbox Password: S3cr3t\n"
        "[e12] Sign in"
    )


def test_table_rows_are_lines_with_inline_refs() -> None:
    snapshot = """- table "Invoices" [ref=e18]:
  - caption [ref=e19]: Invoices
  - rowgroup [ref=e20]:
    - row [ref=e21]:
      - columnheader "Number" [ref=e22]
      - columnheader "Amount" [ref=e23]
      - columnheader "Note" [ref=e24]
  - rowgroup [ref=e28]:
    - row [ref=e29]:
      - cell [ref=e30]:
        - link "INV-1" [ref=e31] [cursor=pointer]:
          - /url: /invoices/INV-1
      - cell "$160.25" [ref=e35]
      - cell "a|b" [ref=e36]
    - row [ref=e37] [cursor=pointer]:
      - cell [ref=e38]:
        - checkbox "Pick INV-2" [checked] [ref=e39]
      - cell "$5.00" [ref=e40]
      - cell [ref=e41]"""
    assert compact_snapshot(snapshot) == (
        'table "Invoices"\n'
        "| Number | Amount | Note |\n"
        "[e31] INV-1|$160.25|a\\|b\n"
        "[e37] [e39] checkbox Pick INV-2 [checked]|$5.00|"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An AI snapshot of a table; a cell is its text, or its snapshot lines (indented 6)."""
    lines = ["- table [ref=e1]:", "  - row [ref=e2]:"]
    lines += [f'    - columnheader "{h}" [ref=e{3 + i}]' for i, h in enumerate(header)]
    ref = 100
    for row in rows:
        lines.append(f"  - row [ref=e{ref}]:")
        for cell in row:
            ref += 1
            if cell.startswith("- "):
                lines.append(f"    - cell [ref=e{ref}]:")
                lines += ["      " + part for part in cell.split("\n")]
            else:
                lines.append(f'    - cell "{cell}" [ref=e{ref}]')
        ref += 10
    return "\n".join(lines)


def test_what_every_row_repeats_is_said_once_in_the_header() -> None:
    # An admin list: a checkbox per row named after the row, a number prefix, a unit, a
    # constant status, the same two actions in every row.
    def check(n: int, ref: int, state: str = "") -> str:
        return (
            f'- checkbox "Select this object for an action - Order ORD-7-{n}"{state} [ref=e{ref}]'
        )

    def actions(ref: int) -> str:
        return (
            f'- link "Edit" [ref=e{ref}] [cursor=pointer]:\n  - /url: /e\n'
            f'- button "Delete" [ref=e{ref + 1}]'
        )

    rows = [
        [
            check(n, 500 + 10 * n, " [checked]" if n == 2 else ""),
            f"ORD-7-{n}",
            f"{n}.5 kg",
            "Open",
            actions(600 + 10 * n),
        ]
        for n in (1, 2, 3)
    ]
    text = compact_snapshot(_table(["", "Order", "Weight", "State", "Actions"], rows))
    assert text.splitlines() == [
        "| (Select this object for an action - Order …) | Order (ORD-7-…) | Weight (… kg) "
        "| Actions ([…] Edit […] Delete) |",
        "(every row) State: Open",
        "[e510] checkbox|1|1.5|[e610] [e611]",
        "[e520] checkbox [checked]|2|2.5|[e620] [e621]",
        "[e530] checkbox|3|3.5|[e630] [e631]",
    ]


def test_a_long_table_is_cut_into_runs_under_headers_of_their_own() -> None:
    rows = [[f"2026-{m:02d}-{m + 10}", f"{m} kg"] for m in range(12, 0, -1)]
    rows += [[f"2025-{m:02d}-{m + 10}", f"{m} kg"] for m in range(12, 0, -1)]
    rows += [["2024-12-01", "5 kg"], ["2024-11-01", "6 kg"]]  # a short tail joins its run
    lines = compact_snapshot(_table(["Date", "Weight"], rows)).splitlines()
    assert [line for line in lines if line.startswith("|")] == ["| Date (2026-…) | Weight (… kg) |"]
    assert lines[1:3] == ["12-22|12", "11-21|11"]
    # The next run's header says only what changes: its dates are written whole.
    assert lines[13:15] == ["(from here) Date", "2025-12-22|12"]
    assert lines[-1] == "2024-11-01|6"
    assert len(lines) == 2 + len(rows)


def test_runs_are_cut_where_they_save_the_most() -> None:
    # Ten rows of 2026, then twelve of 2025: the cut falls where the year changes (not after a
    # fixed number of rows), and the second run's header says only what changes.
    rows = [[f"2026-{m:02d}-{m + 3}", f"{m}.5 kg", "a"] for m in range(12, 2, -1)]
    rows += [[f"2025-{m:02d}-{m + 3}", f"{m}.5 kg", "b"] for m in range(12, 0, -1)]
    lines = compact_snapshot(_table(["Issued", "Weight", "Note"], rows)).splitlines()
    assert lines[0] == "| Issued (2026-…) | Weight (… kg) | Note |"
    assert lines[11:13] == ["(from here) Issued (2025-…)", "12-15|12.5|b"]
    assert len(lines) == 2 + len(rows)


def test_columns_are_not_factored_in_short_tables_nor_inside_numbers() -> None:
    two = compact_snapshot(_table(["Id", "State"], [["A-1", "Open"], ["A-2", "Open"]]))
    assert two.splitlines() == ["| Id | State |", "A-1|Open", "A-2|Open"]
    amounts = [["1,500"], ["1,250"], ["1.75"]]
    assert compact_snapshot(_table(["Sum"], amounts)).splitlines() == [
        "| Sum |",
        "1,500",
        "1,250",
        "1.75",
    ]
    # A zero-padded number's leading zeros go with the prefix, the zeros of a date part do not.
    ids = compact_snapshot(
        _table(["Id", "Day"], [["A-007", "05-01"], ["A-012", "06-02"], ["A-010", "07-01"]])
    )
    assert ids.splitlines() == ["| Id (A-0…) | Day |", "07|05-01", "12|06-02", "10|07-01"]
    # A prefix that would leave a cell empty is not factored.
    ids = compact_snapshot(_table(["Id"], [["A-"], ["A-1"], ["A-2"]]))
    assert ids.splitlines() == ["| Id |", "A-", "A-1", "A-2"]
    # A row's text still cannot pass for layout once its cells are shortened.
    rows = [["A-table"], ["A-tabs"], ["A-title x"]]
    assert compact_snapshot(_table(["Note"], rows)).splitlines() == [
        "| Note (A-…) |",
        '"table"',
        '"tabs"',
        '"title x"',
    ]


def test_yaml_quoting_and_escapes_are_read() -> None:
    snapshot = """- 'link "Tab #1" [ref=f4e7] [cursor=pointer]':
  - /url: "#tabs-1"
- 'tabpanel "It''s: here" [ref=f4e12]':
  - paragraph [ref=f4e13]: "Last reward: \\"-\\" \\x41"
- generic [ref=f4e14]: "-"
- text: "Time left: 3600 / 3600sec"
"""
    assert compact_snapshot(snapshot) == (
        '[f4e7] Tab #1\nLast reward: "-" A\n-\nTime left:3600 / 3600sec'
    )


def test_states_values_options_and_placeholders() -> None:
    snapshot = """- combobox "Plan" [ref=e12]:
  - option "Basic"
  - option "Pro" [selected]
- listbox "Tags" [ref=e14]:
  - option "a" [ref=e15]
  - option "b" [selected] [ref=e16]
- textbox "Email" [ref=e18]:
  - /placeholder: you@example.com
- textbox "Search" [ref=e19]:
  - /placeholder: Search
- checkbox "Remember me" [checked] [disabled] [ref=e21]
- button "Menu" [expanded] [ref=e23]
- slider "Volume" [ref=e25]: "30"
- textbox [active] [ref=e26]
- link [ref=e27] [cursor=pointer]:
  - /url: https://example.com/a/b?c=1"""
    assert compact_snapshot(snapshot).splitlines() == [
        "[e12] combobox Plan: Basic, Pro*",
        "[e14] listbox Tags",
        "[e15] option a",
        "[e16] option b [selected]",
        '[e18] textbox Email (placeholder "you@example.com")',
        "[e19] textbox Search",
        "[e21] checkbox Remember me [checked disabled]",
        "[e23] Menu [expanded]",
        "[e25] slider Volume:30",
        "[e26] textbox [focused]",
        "[e27] /a/b?c=1",
    ]


def test_buttons_read_like_links_and_names_are_quoted_only_when_they_could_run_on() -> None:
    snapshot = """- button "Save" [ref=e1] [cursor=pointer]
- button [ref=e2]
- button "Send" [disabled] [ref=e3]
- textbox "Display name" [ref=e4]: Bob Brown
- textbox "From:" [ref=e5]: ADQ
- textbox "Note (optional)" [ref=e6]:
  - /placeholder: Short
- textbox "To:" [ref=e7]
- text: "Due: 2026-11-30 Chapter 3: 4 ways"
- spinbutton "Qty" [ref=e8]: "2"
- link "Pay" [ref=e9] [cursor=pointer]:
  - /url: /pay"""
    assert compact_snapshot(snapshot).splitlines() == [
        "[e1] Save",  # no role, as a link: something to click
        "[e2] button",  # nameless: the role is all its line says
        "[e3] Send [disabled]",
        "[e4] textbox Display name: Bob Brown",
        '[e5] textbox "From:": ADQ',  # the name's colon is not the value's
        '[e6] textbox "Note (optional)" (placeholder "Short")',
        "[e7] textbox To:",  # nothing follows: nothing to run into
        # A space between a word's colon and a digit is a token: left out ("3: 4" stays).
        "Due:2026-11-30 Chapter 3: 4 ways",
        "[e8] spinbutton Qty:2",
        "[e9] Pay",
    ]


def test_clickables_tabs_iframes_terms_and_headings() -> None:
    snapshot = """- heading [level=2] [ref=e1]:
  - text: Widgets
  - link "help" [ref=e2] [cursor=pointer]:
    - /url: /help
- tablist [ref=e3]:
  - tab [expanded] [selected] [ref=e4]:
    - link "Tab #2" [ref=e5]:
      - /url: "#tabs-2"
- menu [ref=e6]:
  - listitem [ref=e7] [cursor=pointer]:
    - menuitem "Copy" [ref=e8]
- generic [ref=e9] [cursor=pointer]:
  - generic [ref=e10]: Livia
  - generic [ref=e11]: Lunch?
- generic [ref=e12] [cursor=pointer]
- generic [ref=e13]:
  - term [ref=e14]: Status
  - definition [ref=e15]: Unpaid
- iframe [ref=e16]:
  - generic [ref=f1e1]:
    - button "Inside" [ref=f1e2]
- dialog "Confirm" [ref=e17]:
  - paragraph [ref=e18]: Sure?
  - button "Yes" [ref=e19]"""
    assert compact_snapshot(snapshot).splitlines() == [
        "## Widgets [e2] help",
        "[e4] tab [expanded selected] [e5] Tab #2",
        "[e7] [e8] menuitem Copy",
        "[e9] Livia Lunch?",
        "[e12] clickable",
        "Status: Unpaid",
        "[e16] iframe",
        "[f1e2] Inside",
        'dialog "Confirm":',
        "Sure?",
        "[e19] Yes",
    ]


def test_inline_text_joins_but_blocks_stay_apart() -> None:
    snapshot = """- paragraph [ref=e1]:
  - text: "Price:"
  - strong [ref=e2]: $5
  - text: only today
- generic [ref=e3]:
  - text: Barker @annis
  - generic [ref=e4]: ·
  - text: 9h ago
- paragraph [ref=e5]:
  - text: Username
  - textbox [ref=e6]
- list [ref=e7]:
  - listitem [ref=e8]: First
  - listitem [ref=e9]: Second"""
    assert compact_snapshot(snapshot).splitlines() == [
        "Price: $5 only today",
        "Barker @annis · 9h ago",
        "[e6] textbox Username",
        "First",
        "Second",
    ]


def test_never_raises_and_is_deterministic() -> None:
    odd = [
        "",
        "not yaml at all: [ref=e5] here",
        '- button "unterminated [ref=e1]',
        "- 'broken quote [ref=e2]",
        "      - deeply indented orphan [ref=e3]",
        "- /url: /orphan",
        '- textbox "Password" [ref=e4]: {{secret:acme.password}}',
        "- button [ref=e5] [box=1,2,3,4]",
        "- UPPER case line",
    ]
    text = "\n".join(odd)
    out = compact_snapshot(text)
    assert out == compact_snapshot(text)
    assert "[e5]" in out and "{{secret:acme.password}}" in out
    assert "not yaml at all: [e5] here" in out  # an unreadable line stays, as text
    for line in odd:
        compact_snapshot(line)


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        ("Invoice INV-1 - Acme Billing", False),  # heading + site name already on the page
        ("Click Button Task", True),
        ("Acme Billing", False),
        ("", False),
        ("Acme Billing | Invoices", True),
    ],
)
def test_page_text_leaves_out_a_title_the_page_already_says(title: str, shown: bool) -> None:
    url = "http://127.0.0.1:8765/invoices/INV-1"
    text = page_text(url, title, "Acme Billing\n# Invoice INV-1")
    assert text.splitlines()[0] == (f"{url} · {title}" if shown else url)
    assert text.endswith("Acme Billing\n# Invoice INV-1")
    # On the site the planner was told of, the URL is a path; elsewhere it stays whole.
    site = "http://127.0.0.1:8765"
    assert page_text(url, "", "x", site=site) == "/invoices/INV-1\nx"
    assert page_text(f"{site}?q=1", "", "x", site=site) == "/?q=1\nx"
    assert page_text(f"{site}.evil.example/a", "", "x", site=site).startswith(f"{site}.evil")
    assert page_text("https://other.example/a", "", "x", site=site).startswith("https://")


SNAPSHOT = """\
- navigation [ref=e3]:
  - link "Invoices \\"2026\\"" [ref=e4] [cursor=pointer]:
    - /url: /invoices
  - textbox "Name" [ref=e9] [box=10,20,200,24]: Bob
  - button "Hidden" [ref=e10] [box=0,0,0,0]
- text: 87 invoices
- something Playwright never writes
"""


def test_the_snapshot_parser_reads_nesting_names_refs_and_attributes() -> None:
    roots = parse_snapshot(SNAPSHOT)
    assert [n.role for n in roots] == ["navigation", "text", "text"]
    nav = roots[0]
    link, box, hidden = nav.children
    assert hidden.box == (0, 0, 0, 0)
    assert (link.name, link.ref, link.url, link.depth) == ('Invoices "2026"', "e4", "/invoices", 2)
    assert link.actionable and not nav.actionable
    assert (box.text, box.box) == ("Bob", (10, 20, 200, 24))
    assert roots[1].text == "87 invoices" and roots[1].parsed
    assert not roots[2].parsed and roots[2].text == "something Playwright never writes"
    assert [n.ref for n in snapshot_elements(SNAPSHOT)] == ["e3", "e4", "e9", "e10"]
    assert [n.role for n in walk_snapshot(roots)][:3] == ["navigation", "link", "textbox"]
    # Only visible boxes of interactive elements get a mark.
    assert parse_boxes(SNAPSHOT) == [("e9", 10, 20, 200, 24)]


def test_the_main_frames_refs_are_short_and_map_back() -> None:
    class Page:  # only its identity matters
        pass

    page, other = Page(), Page()
    snapshot = """- generic [ref=f4e1]:
  - text: "[ref=f9e1] is page text"
  - 'button "Go [ref=f4e12]" [ref=f4e12] [cursor=pointer]'
  - heading "Title" [level=1] [ref=f4e15]
  - iframe [ref=f4e13]:
    - button "Inside" [ref=f5e2]
- button "Last" [ref=f4e140]: x [ref=f4e140]"""
    short = short_refs(page, snapshot)
    # Short refs in document order for what can be acted on; the other refs marked as not
    # Playwright's; page text (a name, a value) as it was; an iframe's elements keep theirs.
    assert short.splitlines() == [
        "- generic [ref=_f4e1]:",
        '  - text: "[ref=f9e1] is page text"',
        "  - 'button \"Go [ref=f4e12]\" [ref=e1] [cursor=pointer]'",
        '  - heading "Title" [level=1] [ref=_f4e15]',
        "  - iframe [ref=e2]:",
        '    - button "Inside" [ref=f5e2]',
        '- button "Last" [ref=e3]: x [ref=f4e140]',
    ]
    assert compact_snapshot(short).splitlines()[3:] == [
        "[e2] iframe [f5e2] Inside",
        "[e3] Last: x \\[ref=f4e140]",
    ]
    assert full_ref(page, "e1") == "f4e12"
    assert full_ref(page, "e3") == "f4e140"
    assert full_ref(page, "f5e2") == "f5e2"  # an iframe's ref, as it is
    assert full_ref(page, "p3") == "p3"
    assert full_ref(other, "e12") == "e12"  # a page never observed

    # The next document numbers its elements from e1 again. The same ref, role and name keep
    # their short ref; another element never gets one the planner was given for something else.
    again = short_refs(page, '- button "Pay" [ref=f6e12]\n- button "Last" [ref=f4e140]')
    assert again.splitlines() == ['- button "Pay" [ref=e4]', '- button "Last" [ref=e3]']
    assert full_ref(page, "e4") == "f6e12"
    # The planner's old e1 ("Go") does not reach Pay: it names no frame, so the action fails.
    assert full_ref(page, "e1") == "f999999999e1"


def test_where_each_element_was_is_kept_and_left_out_of_the_text() -> None:
    class Page:
        pass

    page = Page()
    # Page text can spell a box anywhere (a name, a value): only the attribute Playwright wrote
    # after the name is the element's box, and only it leaves the text.
    snapshot = """- generic [ref=f4e1] [box=0,0,1280,300]:
  - button "Pay [box=0,0,5,5]" [ref=f4e2] [cursor=pointer] [box=100,200,50,20]
  - textbox "Note" [ref=f4e3] [box=-4,10,200,30]: "[ref=f4e3] [box=9,9,9,9]"
  - text: "[box=1,1,1,1] is text"
"""
    text = short_refs(page, snapshot.strip("\n"), keep_boxes=False)
    assert text.splitlines() == [
        "- generic [ref=_f4e1]:",
        '  - button "Pay [box=0,0,5,5]" [ref=e1] [cursor=pointer]',
        '  - textbox "Note" [ref=e2]: "[ref=f4e3] [box=9,9,9,9]"',
        '  - text: "[box=1,1,1,1] is text"',
    ]
    assert ref_spot(page, "e1") == Spot("button", "Pay [box=0,0,5,5]", (100, 200, 50, 20))
    assert ref_spot(page, "e2") == Spot("textbox", "Note", (-4, 10, 200, 30))
    assert ref_spot(page, "_f4e1") is None  # nothing acts on it
    assert ref_spot(Page(), "e1") is None  # a page never observed
    # A snapshot without boxes says nowhere: the element is found anew.
    again = '- button "Pay [box=0,0,5,5]" [ref=f4e2]'
    assert short_refs(page, again) == '- button "Pay [box=0,0,5,5]" [ref=e1]'
    assert ref_spot(page, "e1") is None
