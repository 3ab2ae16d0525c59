"""``corral replay``: one self-contained HTML file per run, opened in real Chromium.

Everything loads from the file itself (screenshots as ``data:`` URIs, the inline script and
stylesheet allowed by their hashes, nothing else); the arrow keys, Home, End, the timeline and
``#step-N`` step through it; the gated step shows who approved. A page whose words carry markup
runs nothing in it; a record naming a file outside the run's folder gets nothing embedded; the
password the run typed is in no form in it. Through a server the same file is written."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from profiles import BrowserPool
from runtime import Runtime
from runtime.auth import LOCAL_ACTOR
from runtime.demo.portal import USERS, PortalServer
from runtime.review import ApprovalView, RunReview
from runtime.review.replay import render_replay
from tests.support.cli import corral, corral_process
from tests.support.console import served_console
from tests.support.demo import first_unpaid, make_demo_profiles, usd
from tests.support.hostile import run_steps, serve_site
from tests.support.leaks import leak_forms
from tests.support.replay import (
    PAYLOADS,
    assert_inert,
    explained_run,
    hostile_pages,
    hostile_run,
    opened,
    outside_jpeg,
    paid_run,
    screenshot_files,
    shown_step,
)

COMMENT = f"checked against the order {PAYLOADS[0]}"
PASSWORD = USERS["alice"].password


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[PortalServer]:
    """A portal of this test's own: payments here do not change the shared portal."""
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as server:
        yield server


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def inline(text: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)


def sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


async def write_replay(run_id: str, path: Path, **env: str | None) -> str:
    made = await asyncio.to_thread(corral, "replay", run_id, "-o", str(path), env=env)
    assert made.returncode == 0, made.stderr
    return made.stdout


class Markup(HTMLParser):
    """Every element and attribute of a page, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


_LOADS = {"src", "href", "action", "formaction", "srcset", "poster", "data", "background"}


def assert_self_contained(text: str) -> None:
    """Nothing in the file loads from anywhere but the file, and no page text became markup."""
    tags = Markup(text).tags
    for tag, attrs in tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)  # no handlers
        assert tag not in ("iframe", "object", "embed", "base", "frame", "link", "form"), tag
        for name in _LOADS & attrs.keys():
            value = attrs[name] or ""
            if name == "src" and tag == "img":
                assert value.startswith("data:image/"), value[:80]
            elif name == "href" and tag == "a":
                assert value.startswith("#"), value
            else:
                raise AssertionError(f"<{tag} {name}={value[:80]}>")
    names = [t for t, _ in tags]
    assert names.count("script") == names.count("style") == 1
    assert [a.get("http-equiv") for t, a in tags if t == "meta" and "http-equiv" in a] == [
        "Content-Security-Policy"
    ]
    assert "url(" not in "".join(inline(text, "style")) and "@import" not in text
    [style], [script] = inline(text, "style"), inline(text, "script")
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text)
    assert policy, "no Content-Security-Policy"
    assert html.unescape(policy.group(1)) == (
        f"default-src 'none'; img-src data:; style-src '{sha256(style)}'; "
        f"script-src '{sha256(script)}'; base-uri 'none'; form-action 'none'"
    )
    # The policy comes before anything it governs.
    assert text.index("Content-Security-Policy") < text.index("<style>")


async def test_the_replay_file_is_self_contained_and_steps_through_in_chromium(
    rt: Runtime, shop: PortalServer, pool: BrowserPool, tmp_path: Path
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    result = await paid_run(rt, shop.url, inv, COMMENT)
    run_dir = Path(str(result.run_dir))
    review = await rt.services.runs.review(LOCAL_ACTOR, str(result.run_id))
    path = tmp_path / "out" / "replay.html"
    path.parent.mkdir()
    said = await write_replay(str(result.run_id), path)
    assert said.startswith(f"{path} (") and " kB)" in said
    assert path.stat().st_mode & 0o077 == 0  # owner-only: the screenshots show an account
    text = path.read_text()
    assert_self_contained(text)
    shots = screenshot_files(run_dir)
    approvals = sorted((run_dir / "approvals").glob("*.jpg"))
    assert len(shots) == len(review.steps) and len(approvals) == 2
    for shot in [*shots, *approvals]:
        assert text.count(b64(shot)) == 1, shot  # embedded, once
    assert not any(form in path.read_bytes() for form in leak_forms(PASSWORD))

    gated = [s.number for s in review.steps if s.approval is not None]
    pay = next(s for s in review.steps if s.words == f"Click button 'Pay {usd(inv)}'")
    assert gated == [pay.number, pay.number + 1]
    policy_errors: list[str] = []
    async with opened(pool, path.as_uri()) as (page, dialogs):
        page.on("console", lambda m: policy_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: policy_errors.append(str(e)))
        total = len(review.steps)
        assert await shown_step(page) == "1"
        await page.keyboard.press("ArrowRight")
        assert await shown_step(page) == "2"
        await page.keyboard.press("ArrowLeft")
        assert await shown_step(page) == "1"
        await page.keyboard.press("End")
        assert await shown_step(page) == str(total)
        await page.keyboard.press("ArrowRight")
        assert await shown_step(page) == str(total)
        await page.keyboard.press("Home")
        assert await shown_step(page) == "1"
        await page.click("#timeline a[data-step='3']")
        assert await shown_step(page) == "3"
        # Every step's pictures load, shared ones included.
        await page.keyboard.press("Home")
        for _ in range(total):
            broken = await page.eval_on_selector_all(
                "section.step:not([hidden]) img",
                "all => all.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.id)",
            )
            assert broken == [], broken
            await page.keyboard.press("ArrowRight")
        # #step-N opens step N: the gated Pay step shows who approved it, and the comment.
        await page.goto(f"{path.as_uri()}#step-{pay.number}")
        assert await shown_step(page) == str(pay.number)
        section = page.locator(f"section#step-{pay.number}")
        assert "gated" in (await section.get_attribute("class") or "")
        approval = section.locator(".rp-approval")
        assert await approval.locator(".rp-status").inner_text() == "executed"  # approved, done
        assert await approval.locator(".rp-decided-by").inner_text() == "local"
        assert await approval.locator(".rp-comment").inner_text() == COMMENT
        # The target is outlined where it was: the box over the picture, in proportion.
        image = section.locator("figure").first.locator("img")
        box = section.locator("figure").first.locator("svg.rp-box rect")
        shown_img, shown_box = await image.bounding_box(), await box.bounding_box()
        assert shown_img and shown_box and pay.box
        natural = await image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        scale = shown_img["width"] / natural[0]
        assert shown_box["x"] - shown_img["x"] == pytest.approx(pay.box.x * scale, abs=3)
        assert shown_box["y"] - shown_img["y"] == pytest.approx(pay.box.y * scale, abs=3)
        assert shown_box["width"] == pytest.approx(pay.box.width * scale, abs=4)
        assert await page.evaluate("() => window.__pwned") is None and dialogs == []
    assert policy_errors == []


async def test_hostile_page_words_stay_text_in_the_replay(
    rt: Runtime, pool: BrowserPool, tmp_path: Path
) -> None:
    with serve_site() as site:
        goal_run = await hostile_run(rt, site)
        rows = site.url + "/rows"
        scripted = await run_steps(
            rt,
            site,
            [{"goto": rows}, {"extract": {"as": "rows", "table": {"role": "table"}}}],
            output="rows",
        )
    assert scripted.status == "succeeded", scripted.error
    assert [r["Name"] for r in scripted.output] == PAYLOADS  # type: ignore[union-attr]
    paths = {}
    for result in (goal_run, scripted):
        paths[str(result.run_id)] = path = tmp_path / f"{result.run_id}.html"
        await write_replay(str(result.run_id), path)
        text = path.read_text()
        assert_self_contained(text)
        assert not [p for p in PAYLOADS if p in text]  # only escaped
    # The goal run: the title, the link's name and the model's words, as text.
    async with opened(pool, paths[str(goal_run.run_id)].as_uri()) as (page, dialogs):
        await assert_inert(page, dialogs)
    # The scripted run: the extracted cells, as the output's JSON text.
    async with opened(pool, paths[str(scripted.run_id)].as_uri()) as (page, dialogs):
        await page.keyboard.press("End")
        assert await shown_step(page) == "2"
        assert "Extract rows" in await page.locator("section.step:not([hidden])").inner_text()
        shown = await page.locator("#output pre").inner_text()
        assert json.loads(shown) == scripted.output
        assert await page.evaluate("() => window.__pwned") is None and dialogs == []


async def test_record_paths_outside_the_run_folder_are_never_read(
    rt: Runtime, tmp_path: Path
) -> None:
    with serve_site() as site:
        start = hostile_pages(site)
        first = await run_steps(rt, site, [{"goto": start}, {"goto": site.url + "/rows"}])
        elsewhere = site.page("/other", "<!doctype html><title>other</title><h1>Another run</h1>")
        other = await run_steps(rt, site, [{"goto": elsewhere}])
    run_dir, other_dir = Path(str(first.run_dir)), Path(str(other.run_dir))
    outside = outside_jpeg(tmp_path / "outside.jpg", "red")
    (run_dir / "steps" / "link.jpg").symlink_to(outside)
    theirs = screenshot_files(other_dir)[0]
    depth = "../" * len(run_dir.relative_to(tmp_path).parts)
    hostile_paths = [
        f"{depth}outside.jpg",
        str(outside),
        str(theirs),
        f"../{other_dir.name}/steps/{theirs.name}",
        "steps/link.jpg",
        "steps.jsonl",
        "/etc/passwd",
        "../../../../../../../../etc/passwd",
        "steps/\x00.jpg",
    ]
    assert (run_dir / hostile_paths[0]).resolve() == outside.resolve()
    review = await rt.services.runs.review(LOCAL_ACTOR, str(first.run_id))
    own = review.steps[0]
    steps = [own] + [
        own.model_copy(
            update={
                "idx": i + 1,
                "screenshot": p,
                "approval": ApprovalView(
                    id=f"ap-{i}", summary="s", status="approved", screenshot=p
                ),
            }
        )
        for i, p in enumerate(hostile_paths)
    ]
    forged = RunReview.model_validate(
        {**review.model_dump(), "steps": [s.model_dump() for s in steps]}
    )
    text = render_replay(forged, run_dir)
    assert b64(screenshot_files(run_dir)[0]) in text  # the run's own screenshot is there
    for foreign in (outside, theirs):
        assert b64(foreign) not in text
    assert "root:" not in text
    assert text.count("data:image/") == 1


async def test_a_replay_of_a_run_that_typed_a_password_holds_no_form_of_it(
    rt: Runtime, portal: str, tmp_path: Path
) -> None:
    result = await explained_run(rt, portal)
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert any(s.kind == "fill" and "secret:alice.password" in str(s.action) for s in steps)
    path = tmp_path / "replay.html"
    await write_replay(str(result.run_id), path)
    data = path.read_bytes()
    assert b"{{secret:alice.password}}" in data  # what was typed, as its placeholder
    assert not [form for form in leak_forms(PASSWORD) if form in data]


async def test_corral_replay_names_the_file_opens_it_and_goes_through_a_server(
    rt: Runtime, portal: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_console(rt) as console:
        mine = await explained_run(rt, portal, profile="mine")
        theirs = await explained_run(rt, portal, profile="shop")
        run_id = str(mine.run_id)
        here = tmp_path / "here"
        here.mkdir()
        monkeypatch.chdir(here)
        ada = {"CORRAL_TOKEN": console.tokens["ada"]}
        made = await asyncio.to_thread(corral, "replay", run_id[:-2], env=ada)
        assert made.returncode == 0, made.stderr
        local = here / f"replay-{run_id}.html"
        assert made.stdout.startswith(f"{local} (") and local.exists()
        # Through the server, as bob (granted ``mine``): the same file.
        remote_dir = tmp_path / "remote"
        remote_dir.mkdir()
        monkeypatch.chdir(remote_dir)
        bob = {"CORRAL_SERVER": console.url, "CORRAL_TOKEN": console.tokens["bob"]}
        got = await asyncio.to_thread(corral, "replay", run_id, env=bob)
        assert got.returncode == 0, got.stderr
        assert (remote_dir / local.name).read_bytes() == local.read_bytes()
        refused = await asyncio.to_thread(corral, "replay", str(theirs.run_id), env=bob)
        assert refused.returncode == 2 and "no run" in refused.stderr
        assert sorted(p.name for p in remote_dir.iterdir()) == [local.name]
        # --open hands the file to the web browser ($BROWSER here).
        opener = tmp_path / "browser.sh"
        opener.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "opened.txt"}\n')
        opener.chmod(0o700)
        out = tmp_path / "o.html"
        env = {**ada, "BROWSER": str(opener), "CORRAL_HOME": str(rt.settings.home)}
        proc = await asyncio.to_thread(
            corral_process, "replay", run_id, "-o", str(out), "--open", env=env
        )
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "opened.txt").read_text().strip() == out.resolve().as_uri()
        assert os.path.getsize(out) == local.stat().st_size
