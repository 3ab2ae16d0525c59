"""Artifacts at rest: owner-only files and folders whatever the umask, and traces that are
scrubbed before they are named, with no cookie, credential header or content hash left in them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import profiles.session
from profiles import BrowserPool, ProfileSettings, Redactor, scrub_trace
from runtime import Runtime, Settings, load_task, run_task
from runtime.cli.demo import DEMO_TASK
from tests.support.demo import make_demo_profiles
from tests.support.hostile import APPROVAL_TTL_S, HostileSite, run_steps

pytestmark = pytest.mark.slow

SESSION = "sess-" + "7Qx2Lm9Pz4Kd8Rw1"
TOKEN = "tok-" + "Vb3Nc6Hj0Ty5Ue2W"
BODY_MARKER = "api-body-only-" + "Gs4Fp8Ki2Mo"
TRACE_MEMBER = re.compile(r"trace\.(trace|network|stacks)|resources/r\d{5}\.[A-Za-z0-9]+")

_APP = f"""<!doctype html><title>app</title><p id=s>loading</p>
<script>
fetch('/api', {{headers: {{'Authorization': 'Bearer {TOKEN}'}}}})
  .then(r => r.json()).then(() => {{ document.getElementById('s').textContent = 'loaded'; }});
</script>"""


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[Path, int]:
    out = {root: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[path] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _app_site(site: HostileSite) -> str:
    site.raw(
        "/app",
        200,
        {"Set-Cookie": f"sid={SESSION}; Path=/; HttpOnly"},
        _APP,
    )
    site.raw("/api", 200, {"Content-Type": "application/json"}, json.dumps({"marker": BODY_MARKER}))
    return site.url + "/app"


def _served_hashes(site: HostileSite) -> set[str]:
    bodies = [v if isinstance(v, str) else v[2] for v in site.pages.values()]
    return {hashlib.sha1(b.encode()).hexdigest() for b in bodies}


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


@pytest.mark.parametrize("umask", [0o022, 0o000], indirect=True)
async def test_everything_a_run_writes_is_owner_only(
    settings: Settings, pool: BrowserPool, portal: str, site: HostileSite, umask: int
) -> None:
    quick = settings.model_copy(update={"approval_ttl_s": APPROVAL_TTL_S})
    async with Runtime.open(quick, pool=pool) as rt:
        # A login with a saved session (profile state), a trace, screenshots, a result...
        await make_demo_profiles(rt, portal, "bob")
        done = await run_task(rt, load_task(DEMO_TASK), "bob", {"portal": portal})
        assert done.status == "succeeded", done.error
        # ... a download and an approval request (with its screenshot) that nobody answers, on a
        # persistent profile (its sealed user-data archive).
        await rt.profiles.create("victim", ProfileSettings(mode="persistent"))
        site.raw(
            "/file", 200, {"Content-Disposition": "attachment; filename=statement.csv"}, "a,b\n"
        )
        site.page(
            "/",
            "<a href=/file>Get statement</a>"
            "<form method=post action=/pay><button>Pay $100</button></form>",
        )
        denied = await run_steps(
            rt,
            site,
            [
                {"goto": site.url + "/"},
                {"download": {"role": "link", "name": "Get statement"}},
                {"click": {"role": "button", "name": "Pay $100"}},
            ],
        )
        assert denied.status == "denied", denied.error
        modes = _modes(rt.settings.home)
        # While the store is open its -wal and -shm exist too.
        names = {p.name for p in modes}
        assert {"corral.db", "corral.db-wal", "corral.db-shm", "master.key"} <= names
        assert "user-data.tar.enc" in names
    for run in (done, denied):
        run_dir = Path(str(run.run_dir))
        assert {"steps.jsonl", "result.json", "trace.zip"} <= {p.name for p in run_dir.iterdir()}
        assert list((run_dir / "steps").glob("*.jpg"))
    denied_dir = Path(str(denied.run_dir))
    assert [p.name for p in (denied_dir / "downloads").iterdir()] == ["statement.csv"]
    assert list((denied_dir / "approvals").glob("*.jpg"))
    loose = {
        str(p): oct(m)
        for p, m in modes.items()
        if m != (0o700 if p.is_dir() else 0o600) and p.exists()
    }
    assert not loose, f"umask {umask:#o}: not owner-only: {loose}"
    assert not list(Path(str(denied.run_dir)).glob(".trace-*")), "a raw trace was left behind"


async def test_a_loose_home_is_tightened_when_opened(
    settings: Settings, pool: BrowserPool, caplog: pytest.LogCaptureFixture
) -> None:
    async with Runtime.open(settings, pool=pool):
        pass
    home = settings.home
    os.chmod(home, 0o755)
    os.chmod(home / "corral.db", 0o644)
    os.chmod(home / "master.key", 0o640)
    with caplog.at_level(logging.WARNING):
        async with Runtime.open(settings, pool=pool):
            pass
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "corral.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "master.key").stat().st_mode) == 0o600
    assert "tightened to owner-only" in caplog.text


async def test_the_trace_of_a_portal_login_has_no_session_cookie_or_password(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    result = await run_task(rt, load_task(DEMO_TASK), "alice", {"portal": portal})
    assert result.status == "succeeded", result.error
    state = rt.profiles.open_state(await rt.profiles.get("alice"))
    assert state is not None
    sid = next(c["value"] for c in state["cookies"] if c["name"] == "portal_session")
    from runtime.demo.portal import USERS

    members = _members(Path(str(result.run_dir)) / "trace.zip")
    assert b"portal_session" in members["trace.network"]  # the cookie's traffic is recorded
    for name, data in members.items():
        assert sid.encode() not in data, f"the session cookie is in {name}"
        assert USERS["alice"].password.encode() not in data, f"the password is in {name}"


async def test_the_trace_appears_only_scrubbed_with_neutral_names(
    hrt: Runtime, site: HostileSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = _app_site(site)
    seen: list[dict[str, Any]] = []
    real = profiles.session.scrub_trace

    def watched(src: Path, dst: Path, redactor: Redactor, **kw: Any) -> None:
        seen.append(
            {
                "named": (src.parent / "trace.zip").exists(),
                "src": src.name,
                "mode": stat.S_IMODE(src.stat().st_mode),
            }
        )
        real(src, dst, redactor, **kw)

    monkeypatch.setattr(profiles.session, "scrub_trace", watched)
    result = await run_steps(
        hrt, site, [{"goto": start}, {"wait_for": {"text": "loaded"}}, {"goto": start}]
    )
    assert result.status == "succeeded", result.error
    assert len(seen) == 1 and not seen[0]["named"], seen
    assert re.fullmatch(r"\.trace-.+\.zip\.partial", seen[0]["src"]) and seen[0]["mode"] == 0o600
    run_dir = Path(str(result.run_dir))
    assert [p.name for p in run_dir.iterdir() if "trace" in p.name] == ["trace.zip"]
    members = _members(run_dir / "trace.zip")
    assert any(n.startswith("resources/") for n in members)
    hashes = _served_hashes(site)
    for name, data in members.items():
        assert TRACE_MEMBER.fullmatch(name), f"member name not neutral: {name}"
        assert not any(h in name for h in hashes), name
        for value in (SESSION, TOKEN):
            assert value.encode() not in data, f"{value} is in {name}"
    network = [json.loads(line) for line in members["trace.network"].splitlines()]
    headers = [
        h
        for entry in network
        for part in ("request", "response")
        for h in entry["snapshot"][part]["headers"]
    ]
    credential = ("authorization", "cookie", "set-cookie")
    sensitive = [h for h in headers if h["name"].lower() in credential]
    assert {h["name"].lower() for h in sensitive} == {"authorization", "cookie", "set-cookie"}
    assert all(h["value"] == "[redacted]" for h in sensitive)
    # Every reference to a resource points at a member that exists.
    files = re.findall(rb'"_?file":"(resources/[^"]+)"', members["trace.network"])
    assert files and all(f.decode() in members for f in files)
    assert BODY_MARKER.encode() in b"".join(members.values())  # bodies are kept with trace: on


async def test_trace_off_writes_no_trace(hrt: Runtime, site: HostileSite) -> None:
    start = _app_site(site)
    result = await run_steps(hrt, site, [{"goto": start}], trace="off")
    assert result.status == "succeeded", result.error
    run_dir = Path(str(result.run_dir))
    assert not [p for p in run_dir.iterdir() if "trace" in p.name]
    kinds = {a.kind for a in await hrt.store.runs.list_artifacts(str(result.run_id))}
    assert "trace" not in kinds


async def test_trace_no_bodies_keeps_no_bodies(hrt: Runtime, site: HostileSite) -> None:
    start = _app_site(site)
    result = await run_steps(
        hrt, site, [{"goto": start}, {"wait_for": {"text": "loaded"}}], trace="no_bodies"
    )
    assert result.status == "succeeded", result.error
    members = _members(Path(str(result.run_dir)) / "trace.zip")
    assert "trace.network" in members
    assert not [n for n in members if n.startswith("resources/")]
    assert BODY_MARKER.encode() not in b"".join(members.values())
    assert b"_file" not in members["trace.network"]


async def test_no_bodies_drops_posted_request_bodies(
    pool: BrowserPool, site: HostileSite, tmp_path: Path
) -> None:
    """A raw Playwright trace of a script's POST, scrubbed: with bodies the posted value is in the
    request's postData; without, nowhere (it is no secret the redactor knows)."""
    posted = "posted-value-Qw8Er4Ty"
    # Assembled by the script, so the value is in no page source or DOM snapshot: only sent.
    site.page(
        "/form",
        "<p id=s>sending</p><script>fetch('/done', {method: 'POST', "
        "body: ['posted', 'value', 'Qw8Er4Ty'].join('-')})"
        ".then(() => { document.getElementById('s').textContent = 'sent'; });</script>",
    )
    browser = await pool.browser()
    context = await browser.new_context()
    try:
        await context.tracing.start(snapshots=True)
        page = await context.new_page()
        await page.goto(site.url + "/form")
        await page.get_by_text("sent").wait_for()
        raw = tmp_path / "raw.zip"
        await context.tracing.stop(path=raw)
    finally:
        await context.close()
    assert [h.body for h in site.posts("/done")] == [posted]
    with_bodies, without = tmp_path / "a.zip", tmp_path / "b.zip"
    scrub_trace(raw, with_bodies, Redactor())
    scrub_trace(raw, without, Redactor(), bodies=False)
    assert posted.encode() in b"".join(_members(with_bodies).values())  # the control
    assert stat.S_IMODE(without.stat().st_mode) == 0o600
    for name, data in _members(without).items():
        assert posted.encode() not in data, name
        assert not name.startswith("resources/")


def test_scrub_trace_rewrites_calls_that_carry_credentials(tmp_path: Path) -> None:
    """API calls recorded in trace.trace carry credentials too (extra headers, cookies added to
    the context, HTTP credentials); their values go, wherever else they were copied."""
    body = b"<p>token " + TOKEN.encode() + b" and cookie " + SESSION.encode() + b"</p>"
    sha = hashlib.sha1(body).hexdigest()
    calls = [
        {
            "type": "before",
            "method": "setExtraHTTPHeaders",
            "params": {"headers": [{"name": "Authorization", "value": f"Bearer {TOKEN}"}]},
        },
        {
            "type": "before",
            "method": "addCookies",
            "params": {"cookies": [{"name": "sid", "value": SESSION, "domain": "x.test"}]},
        },
        {
            "type": "before",
            "method": "newContext",
            "params": {"httpCredentials": {"username": "u", "password": "basic-" + TOKEN}},
        },
        {
            "type": "frame-snapshot",
            "snapshot": {"resourceOverrides": [{"url": "u", "sha1": f"{sha}.html"}]},
        },
    ]
    raw = tmp_path / "raw.zip"
    with zipfile.ZipFile(raw, "w") as z:
        z.writestr("trace.trace", "\n".join(json.dumps(c) for c in calls) + "\n")
        z.writestr("trace.network", "")
        z.writestr(f"resources/{sha}.html", body)
    out = tmp_path / "out.zip"
    scrub_trace(raw, out, Redactor())
    members = _members(out)
    assert set(members) == {"trace.trace", "trace.network", "resources/r00001.html"}
    for name, data in members.items():
        assert TOKEN.encode() not in data and SESSION.encode() not in data, name
        assert sha.encode() not in data, name
    assert b'"sha1":"r00001.html"' in members["trace.trace"]
