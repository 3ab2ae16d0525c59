"""The credential vault's scope, end to end: a secret is typed only on its origins and profiles.

Real Chromium and real SQLite against a small fixture site served under two origins
(``http://127.0.0.1:PORT`` and ``http://localhost:PORT``, see ``tests/support/origins.py``):
redirects, iframes and popups that cross origins, the audit of every use, the lease's end,
redaction of what a page echoes back, and the ``corral secrets`` commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from profiles import (
    FieldFacts,
    ProfileSettings,
    ProxySettings,
    Redactor,
    SecretNotAvailableError,
    SecretUseRecord,
    UserError,
    open_session,
    origin_allowed,
    origin_of,
    parse_domain,
)
from runtime import RunResult, Runtime, parse_task, run_task
from runtime.records import StepRecord
from tests.support.cli import Outcome, corral, corral_process
from tests.support.leaks import leak_forms
from tests.support.origins import OriginsServer
from tools import ActionContext, Fill, Tabs, execute, observe

# Values with every character an encoding treats specially, spaces and non-ASCII: a leak in any
# encoding (URL, HTML, JSON, base64) is one the scans below must find.
KEY = "k3y~A!l'p(h)a*9%1&3<7>\"z\\q+ é€ 42"
OTHER = "0ther Br@vo/5520?x=w&y;ß 'ü' \\n"
POLICY = "secret_scope"
FIELDS = ["API key", "Echo"]
"""The fields the value secrets of these tests may be typed into."""
PASSWORD_FIELD = FieldFacts(tag="input", type="password", names=("Password", "pw"))


@pytest.fixture(scope="session")
def origins() -> Iterator[OriginsServer]:
    """The multi-origin fixture site, for the whole session."""
    with OriginsServer() as server:
        yield server


# --- helpers ----------------------------------------------------------------------------------


async def run(rt: Runtime, spec: dict[str, Any], profile: str = "alice") -> RunResult:
    """Run a scripted task given as a mapping (as if read from x.yaml)."""
    return await run_task(rt, parse_task({"name": "scope", **spec}, "x.yaml"), profile)


async def steps_of(rt: Runtime, result: RunResult) -> list[StepRecord]:
    assert result.run_id is not None, result.error
    return await rt.store.runs.list_steps(result.run_id)


async def audit_of(rt: Runtime, run_id: str | None) -> list[SecretUseRecord]:
    """The run's audit entries, oldest first."""
    assert run_id is not None
    return list(reversed(await rt.store.vault.list_uses(run_id)))


def fill_key(secret: str = "k") -> dict[str, Any]:
    return {"fill": {"label": "API key", "value": "{{secret:" + secret + "}}"}}


async def with_profiles(rt: Runtime, *names: str) -> None:
    for name in names:
        await rt.profiles.create(name)


def assert_refused(step: StepRecord, secret: str, origin: str) -> None:
    assert step.kind == "fill" and step.status == "failed"
    assert isinstance(step.detail, dict)
    assert step.detail["policy_violation"] == POLICY
    assert f"'{secret}' cannot be used on {origin}" in step.detail["reason"]
    assert "secret not available here" in str(step.error)


# --- where a secret may be typed --------------------------------------------------------------


async def test_secret_is_typed_on_its_own_origin_and_audited(
    rt: Runtime, origins: OriginsServer
) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    result = await run(
        rt, {"start_url": f"{origins.a}/form", "secrets": ["k"], "steps": [fill_key()]}
    )
    assert result.status == "succeeded" and result.exit_code == 0, result.error
    steps = await steps_of(rt, result)
    assert [(s.kind, s.status) for s in steps] == [("navigate", "ok"), ("fill", "ok")]
    # The step keeps the placeholder; the value is resolved only at typing time.
    assert steps[1].action["value"] == "{{secret:k}}"
    [entry] = await audit_of(rt, result.run_id)
    assert (entry.secret, entry.origin, entry.allowed, entry.reason) == ("k", origins.a, True, None)
    assert entry.step_idx == 1
    record = await rt.store.vault.get_secret("k")
    assert record is not None and record.last_used_at is not None


async def test_allowed_fill_puts_the_value_in_the_field(
    rt: Runtime, origins: OriginsServer, tmp_path: Path
) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    await rt.vault.set("pw", OTHER, [origins.a])
    lease = await rt.vault.lease("run-x", "alice", ["k", "pw"], Redactor())
    ctx = ActionContext(downloads_dir=tmp_path, timeout_s=5, resolve_value=lease.resolve)
    try:
        async with open_session(rt.profiles, await rt.pool(), "alice", "run-x") as session:
            tabs = Tabs(session)
            page = await tabs.active()
            await page.goto(f"{origins.a}/form")
            await execute(tabs, Fill(label="API key", value="{{secret:k}}"), ctx)
            await execute(tabs, Fill(label="Password", value="{{secret:pw}}"), ctx)
            assert await page.input_value("#key") == KEY
            assert await page.input_value("#pw") == OTHER
            # Marked, so screenshots paint the field over.
            assert await page.get_attribute("#key", "data-corral-secret") == ""
    finally:
        await lease.revoke()
    assert [(e.secret, e.allowed) for e in await audit_of(rt, "run-x")] == [
        ("k", True),
        ("pw", True),
    ]


async def test_secret_is_refused_on_another_origin(rt: Runtime, origins: OriginsServer) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    result = await run(
        rt, {"start_url": f"{origins.b}/form", "secrets": ["k"], "steps": [fill_key()]}
    )
    assert result.status == "failed" and result.exit_code == 1
    error = str(result.error)
    assert "secret not available here" in error
    assert f"'k' cannot be used on {origins.b}" in error
    assert f"do not include {origins.b}" in error
    assert "step 2" in error
    assert KEY not in error
    steps = await steps_of(rt, result)
    assert len(steps) == 2 and result.steps_failed == 1
    assert_refused(steps[1], "k", origins.b)
    [entry] = await audit_of(rt, result.run_id)
    assert (entry.secret, entry.origin, entry.allowed) == ("k", origins.b, False)
    assert entry.reason == f"its domains ({origins.a}) do not include {origins.b}"
    assert entry.step_idx == 1
    record = await rt.store.vault.get_secret("k")
    assert record is not None and record.last_used_at is None  # never used


async def test_refused_fill_types_nothing(rt: Runtime, origins: OriginsServer) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    result = await run(
        rt,
        {
            "start_url": f"{origins.b}/echo",
            "secrets": ["k"],
            "steps": [
                {"fill": {"label": "Echo", "value": "{{secret:k}}"}, "optional": True},
                {"extract": {"as": "shown", "text": {"css": "#out"}}},
            ],
        },
    )
    # The optional fill failed; the page never saw an input event, so #out is still empty.
    assert result.status == "succeeded", result.error
    assert result.steps_failed == 1 and result.steps_ok == 2
    assert result.output == {"shown": ""}
    steps = await steps_of(rt, result)
    assert_refused(steps[1], "k", origins.b)


async def test_secret_is_refused_after_a_redirect_to_another_origin(
    rt: Runtime, origins: OriginsServer
) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    target = f"{origins.b}/form"
    result = await run(
        rt,
        {
            "start_url": f"{origins.a}/form",
            "secrets": ["k"],
            "steps": [
                {"goto": "/form"},
                {"goto": f"/redirect?to={quote(target, safe='')}"},
                fill_key(),
            ],
        },
    )
    assert result.status == "failed"
    assert f"'k' cannot be used on {origins.b}" in str(result.error)
    steps = await steps_of(rt, result)
    assert steps[0].url_after == f"{origins.a}/form"
    assert steps[1].url_after == target  # the redirect was followed
    assert_refused(steps[2], "k", origins.b)
    [entry] = await audit_of(rt, result.run_id)
    assert entry.origin == origins.b and not entry.allowed


async def test_iframe_of_another_origin_uses_the_frames_own_origin(
    rt: Runtime, origins: OriginsServer, tmp_path: Path
) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("ka", KEY, [origins.a], fields=FIELDS)
    await rt.vault.set("kb", OTHER, [origins.b], fields=FIELDS)
    lease = await rt.vault.lease("run-x", "alice", ["ka", "kb"], Redactor())
    ctx = ActionContext(downloads_dir=tmp_path, timeout_s=5, resolve_value=lease.resolve)
    try:
        async with open_session(rt.profiles, await rt.pool(), "alice", "run-x") as session:
            tabs = Tabs(session)
            page = await tabs.active()
            await page.goto(f"{origins.a}/frame?src={quote(origins.b + '/form', safe='')}")
            field = page.frame_locator("iframe[title=embedded]").locator("#key")
            await field.wait_for()
            seen = await observe(tabs)
            match = re.search(r'textbox "API key" \[ref=(\w+)\]', seen.snapshot)
            assert match is not None, seen.snapshot
            ref = match.group(1)
            assert ref.startswith("f"), ref  # an element inside a frame
            # The host page is on the first origin, but the field is in the second.
            with pytest.raises(SecretNotAvailableError, match=f"cannot be used on {origins.b}"):
                await execute(tabs, Fill(ref=ref, value="{{secret:ka}}"), ctx)
            assert await field.input_value() == ""
            await execute(tabs, Fill(ref=ref, value="{{secret:kb}}"), ctx)
            assert await field.input_value() == OTHER
    finally:
        await lease.revoke()
    audit = await audit_of(rt, "run-x")
    assert [(e.secret, e.origin, e.allowed) for e in audit] == [
        ("ka", origins.b, False),
        ("kb", origins.b, True),
    ]


@pytest.mark.parametrize("side", ["a", "b"])
async def test_popup_becomes_active_and_its_origin_decides(
    rt: Runtime, origins: OriginsServer, side: str
) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    target = f"{getattr(origins, side)}/form"
    result = await run(
        rt,
        {
            "start_url": f"{origins.a}/popup?url={quote(target, safe='')}",
            "secrets": ["k"],
            "steps": [{"click": {"role": "button", "name": "Open"}}, fill_key()],
        },
    )
    steps = await steps_of(rt, result)
    assert steps[1].detail["opened_tabs"] == 1
    assert steps[1].url_after == target  # the popup is the active tab now
    assert steps[2].url_before == target
    [entry] = await audit_of(rt, result.run_id)
    assert entry.origin == getattr(origins, side)
    if side == "a":
        assert result.status == "succeeded", result.error
        assert entry.allowed and steps[2].status == "ok"
    else:
        assert result.status == "failed"
        assert not entry.allowed
        assert_refused(steps[2], "k", origins.b)


async def test_secret_bound_to_another_profile_is_refused(
    rt: Runtime, origins: OriginsServer
) -> None:
    await with_profiles(rt, "alice", "bob")
    await rt.vault.set("k", KEY, [origins.a], ["alice"], fields=FIELDS)
    spec = {"start_url": f"{origins.a}/form", "secrets": ["k"], "steps": [fill_key()]}
    as_bob = await run(rt, spec, "bob")
    assert as_bob.status == "failed"
    assert "it is not bound to profile 'bob'" in str(as_bob.error)
    assert_refused((await steps_of(rt, as_bob))[1], "k", origins.a)
    [entry] = await audit_of(rt, as_bob.run_id)
    assert not entry.allowed and entry.reason == "it is not bound to profile 'bob'"
    as_alice = await run(rt, spec, "alice")
    assert as_alice.status == "succeeded", as_alice.error


async def test_secret_not_listed_in_the_task_is_refused(
    rt: Runtime, origins: OriginsServer
) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    await rt.vault.set("other", OTHER, [origins.a], fields=FIELDS)
    result = await run(
        rt, {"start_url": f"{origins.a}/form", "secrets": ["other"], "steps": [fill_key()]}
    )
    assert result.status == "failed"
    assert "it is not listed under the task's secrets" in str(result.error)
    assert_refused((await steps_of(rt, result))[1], "k", origins.a)
    [entry] = await audit_of(rt, result.run_id)
    assert entry.secret == "k" and not entry.allowed
    assert entry.reason == "it is not listed under the task's secrets"
    lease = await rt.store.vault.get_credential_lease(str(result.run_id))
    assert lease is not None and lease.secrets == ["other"]


async def test_unknown_secret_in_the_task_is_bad_input(rt: Runtime, origins: OriginsServer) -> None:
    await with_profiles(rt, "alice")
    result = await run(
        rt, {"start_url": f"{origins.a}/form", "secrets": ["nope"], "steps": [fill_key("nope")]}
    )
    assert result.exit_code == 2 and result.run_id is None and result.status == "failed"
    assert "x.yaml: secrets: unknown secret 'nope'" in str(result.error)
    assert "corral secrets set nope --domain" in str(result.error)
    assert await rt.store.runs.list_runs() == []


# --- origins: exact scheme, host and port -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "domains", "allowed"),
    [
        ("http://127.0.0.1:8000/x", ["http://127.0.0.1:8000"], True),
        ("http://127.0.0.1:8001/x", ["http://127.0.0.1:8000"], False),
        ("http://localhost:8000/x", ["http://127.0.0.1:8000"], False),
        ("https://a.com/", ["https://a.com"], True),
        ("https://a.com:443/", ["https://a.com"], True),
        ("https://a.com/", ["https://a.com:443"], True),
        ("https://a.com:8443/", ["https://a.com"], False),
        ("http://a.com/", ["https://a.com"], False),
        ("https://a.com/", ["http://a.com"], False),
        ("http://a.com/", ["http://a.com"], True),
        ("http://a.com:80/", ["http://a.com"], True),
        ("https://a.com/", ["a.com"], True),  # a bare host means https on 443
        ("http://a.com/", ["a.com"], False),
        ("https://a.com:8443/", ["a.com"], False),
        ("https://a.com:8443/", ["a.com:8443"], True),
        ("https://A.COM/", ["a.com"], True),
        ("https://a.example.com/", ["*.example.com"], True),
        ("https://x.y.example.com/", ["*.example.com"], True),
        ("https://example.com/", ["*.example.com"], False),
        ("https://evil-example.com/", ["*.example.com"], False),
        ("https://example.com.evil.net/", ["*.example.com"], False),
        ("http://a.example.com/", ["*.example.com"], False),
        ("https://b.com/", ["a.com", "b.com"], True),
        ("about:blank", ["a.com"], False),
        ("data:text/html,hi", ["a.com"], False),
    ],
)
def test_origin_allowed(url: str, domains: list[str], allowed: bool) -> None:
    assert origin_allowed(origin_of(url), domains) is allowed


def test_origin_of_makes_the_port_explicit() -> None:
    assert origin_of("https://a.com/x?y#z") == "https://a.com:443"
    assert origin_of("http://a.com/") == "http://a.com:80"
    assert origin_of("http://127.0.0.1:8000/form") == "http://127.0.0.1:8000"
    assert origin_of("about:blank") == "null"
    assert origin_of("file:///etc/passwd") == "null"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("https://a.com", ("https", "a.com", None)),
        ("https://a.com/", ("https", "a.com", None)),
        ("a.com", ("https", "a.com", None)),
        ("HTTP://A.com:8080", ("http", "a.com", 8080)),
        ("*.example.com", ("https", "*.example.com", None)),
    ],
)
def test_parse_domain_accepts_origins(spec: str, expected: tuple[str, str, int | None]) -> None:
    assert parse_domain(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("https://a.com/login", "without a path"),
        ("a.com/login", "without a path"),
        ("https://a.com?x=1", "without a path"),
        ("https://a.com#top", "without a path"),
        ("a.*.com", "wildcard"),
        ("*", "wildcard"),
        ("*a.com", "wildcard"),
        ("ftp://a.com", "expected https://host"),
        ("file:///etc", "expected https://host"),
        ("https://", "expected https://host"),
        ("https://a.com:99999", "a.com:99999"),
        ("https://a.com:port", "a.com:port"),
    ],
)
def test_parse_domain_rejects_what_is_not_an_origin(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        parse_domain(spec)


async def test_default_port_origin_accepts_its_secret(rt: Runtime, origins: OriginsServer) -> None:
    """A page on a default port (``window.origin`` has no port) takes a secret scoped to it.

    The fixture server doubles as an HTTP proxy, so ``http://corral.test`` is served on port 80.
    """
    proxied = ProfileSettings(proxy=ProxySettings(server=origins.proxy))
    await rt.profiles.create("proxied", proxied)
    await rt.vault.set("k", KEY, ["http://corral.test"], fields=FIELDS)
    result = await run(
        rt,
        {"start_url": "http://corral.test/form", "secrets": ["k"], "steps": [fill_key()]},
        "proxied",
    )
    steps = await steps_of(rt, result)
    assert steps[0].status == "ok" and steps[0].url_after == "http://corral.test/form"
    assert result.status == "succeeded", result.error
    [entry] = await audit_of(rt, result.run_id)
    assert entry.allowed


async def test_page_cannot_spoof_its_origin_to_get_a_secret(
    rt: Runtime, origins: OriginsServer
) -> None:
    """A page on the second origin that overwrites ``window.origin`` still gets nothing."""
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    result = await run(
        rt,
        {
            "start_url": f"{origins.b}/spoof?as={quote(origins.a, safe='')}",
            "secrets": ["k"],
            "steps": [fill_key()],
        },
    )
    assert result.status == "failed", "a secret scoped to 127.0.0.1 was typed on localhost"
    [entry] = await audit_of(rt, result.run_id)
    assert entry.origin == origins.b and not entry.allowed


# --- the lease --------------------------------------------------------------------------------


async def test_lease_is_revoked_when_the_run_ends(rt: Runtime, origins: OriginsServer) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    for start in (f"{origins.a}/form", f"{origins.b}/form"):  # success, then failure
        result = await run(rt, {"start_url": start, "secrets": ["k"], "steps": [fill_key()]})
        lease = await rt.store.vault.get_credential_lease(str(result.run_id))
        assert lease is not None
        assert lease.profile == "alice" and lease.secrets == ["k"]
        assert lease.origins == [origins.a] and lease.pid == os.getpid()
        assert lease.revoked_at is not None and lease.revoked_at >= lease.granted_at


async def test_revoked_lease_refuses_everything(rt: Runtime, origins: OriginsServer) -> None:
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    lease = await rt.vault.lease("run-x", "alice", ["k"], Redactor())
    api_key = FieldFacts(tag="input", type="text", names=("API key",))
    assert await lease.resolve("{{secret:k}}", origins.a, api_key) == KEY
    record = await rt.store.vault.get_credential_lease("run-x")
    assert record is not None and record.revoked_at is None
    await lease.revoke()
    with pytest.raises(SecretNotAvailableError, match="the run's credential lease is revoked"):
        await lease.resolve("{{secret:k}}", origins.a, api_key)
    record = await rt.store.vault.get_credential_lease("run-x")
    assert record is not None and record.revoked_at is not None
    audit = await audit_of(rt, "run-x")
    assert [(e.allowed, e.reason) for e in audit] == [
        (True, None),
        (False, "the run's credential lease is revoked"),
    ]


async def test_text_without_placeholders_resolves_unchanged_and_unaudited(
    rt: Runtime, origins: OriginsServer
) -> None:
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    lease = await rt.vault.lease("run-x", "alice", ["k"], Redactor())
    assert await lease.resolve("plain text", origins.b, PASSWORD_FIELD) == "plain text"
    assert await rt.store.vault.list_uses("run-x") == []
    await lease.revoke()


async def test_available_on_lists_only_usable_names(rt: Runtime, origins: OriginsServer) -> None:
    await rt.vault.set("any_a", KEY, [origins.a], fields=FIELDS)
    await rt.vault.set("alice_a", KEY + "1", [origins.a], ["alice"], fields=FIELDS)
    await rt.vault.set("bob_a", KEY + "2", [origins.a], ["bob"], fields=FIELDS)
    await rt.vault.set("any_b", KEY + "3", [origins.b], fields=FIELDS)
    await rt.vault.set("both", KEY + "4", [origins.a, origins.b], fields=FIELDS)
    await rt.vault.set("unleased", KEY + "5", [origins.a], fields=FIELDS)
    names = ["any_a", "alice_a", "bob_a", "any_b", "both"]
    alice = await rt.vault.lease("run-a", "alice", names, Redactor())
    bob = await rt.vault.lease("run-b", "bob", names, Redactor())
    try:
        assert alice.available_on(origins.a) == ["any_a", "alice_a", "both"]
        assert alice.available_on(origins.b) == ["any_b", "both"]
        assert bob.available_on(origins.a) == ["any_a", "bob_a", "both"]
        assert alice.available_on("null") == []
        assert alice.available_on(origin_of("https://127.0.0.1/")) == []
    finally:
        await alice.revoke()
        await bob.revoke()


# --- what a page shows ------------------------------------------------------------------------


def files_holding(root: Path, value: str) -> list[str]:
    """Files under ``root`` (and members of zips) holding ``value`` in any of its encodings."""
    forms = leak_forms(value)

    def holds(data: bytes) -> bool:
        return any(form in data for form in forms)

    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if holds(data):
            found.append(str(path))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [
                    f"{path}!{name}" for name in archive.namelist() if holds(archive.read(name))
                ]
    return found


def test_files_holding_sees_every_encoding(tmp_path: Path) -> None:
    """The scan is not blind: each encoding of the value, planted in a file, is found."""
    for i, form in enumerate(sorted(leak_forms(KEY))):
        (tmp_path / f"{i}.txt").write_bytes(b"before " + form + b" after")
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as archive:
        archive.writestr("inner.json", json.dumps({"v": KEY}))
    found = files_holding(tmp_path, KEY)
    assert len(found) == len(leak_forms(KEY)) + 2  # every file, the zip and its member
    assert files_holding(tmp_path, OTHER) == []


async def test_secret_echoed_as_page_text_is_never_recorded(
    rt: Runtime, origins: OriginsServer
) -> None:
    await with_profiles(rt, "alice")
    await rt.vault.set("k", KEY, [origins.a], fields=FIELDS)
    result = await run(
        rt,
        {
            "start_url": f"{origins.a}/echo",
            "secrets": ["k"],
            "steps": [
                {"fill": {"label": "Echo", "value": "{{secret:k}}"}},
                {"extract": {"as": "shown", "text": {"css": "#out"}}},
                {"goto": "/form"},
            ],
        },
    )
    assert result.status == "succeeded", result.error
    # The page showed the value (it was typed), and the output has the placeholder instead.
    assert result.output == {"shown": "{{secret:k}}"}
    steps = await steps_of(rt, result)
    assert [s.kind for s in steps] == ["navigate", "fill", "extract", "navigate"]
    shots = [s.screenshot for s in steps]
    assert shots[1] is None and shots[2] is None, "a screenshot showing the secret was kept"
    assert shots[0] is not None and shots[3] is not None
    run_dir = Path(str(result.run_dir))
    assert sorted(p.name for p in (run_dir / "steps").iterdir()) == ["0000.jpg", "0003.jpg"]
    # The trace held the value (typed text, DOM snapshots) and was scrubbed: the placeholder.
    with zipfile.ZipFile(run_dir / "trace.zip") as trace:
        assert any(b"{{secret:k}}" in trace.read(n) for n in trace.namelist())
    assert files_holding(rt.settings.home, KEY) == []


async def test_totp_code_is_typed_where_allowed_and_redacted(
    rt: Runtime, origins: OriginsServer
) -> None:
    await with_profiles(rt, "alice")
    # The echo box is not a one-time-code field: the secret names it.
    await rt.vault.set("otp", "JBSWY3DPEHPK3PXPJBSWY3DP", [origins.a], totp=True, fields=["Echo"])
    spec: dict[str, Any] = {
        "secrets": ["otp"],
        "steps": [
            {"fill": {"label": "Echo", "value": "{{secret:otp}}"}},
            {"extract": {"as": "shown", "text": {"css": "#out"}}},
        ],
    }
    allowed = await run(rt, {**spec, "start_url": f"{origins.a}/echo"})
    assert allowed.status == "succeeded", allowed.error
    # A 6-digit code was shown; it was redacted like the seed itself.
    assert allowed.output == {"shown": "{{secret:otp}}"}
    assert (await steps_of(rt, allowed))[1].screenshot is None
    refused = await run(rt, {**spec, "start_url": f"{origins.b}/echo"})
    assert refused.status == "failed"
    assert_refused((await steps_of(rt, refused))[1], "otp", origins.b)


# --- the command line -------------------------------------------------------------------------


class Cli:
    """Runs ``corral`` and keeps every output, to check that no value ever reached one. In-process
    unless ``process``: a real process also shows what its Playwright driver and Chromium print,
    and takes its secret from a real pipe."""

    def __init__(self, process: bool = False) -> None:
        self.outputs: list[str] = []
        self.process = process

    def __call__(self, *args: str, stdin: str = "") -> Outcome | subprocess.CompletedProcess[str]:
        proc = corral_process(*args, stdin=stdin) if self.process else corral(*args, stdin=stdin)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def leaked(self, value: str) -> bool:
        return any(value in text for text in self.outputs)


@pytest.mark.slow
def test_cli_secret_values_never_come_from_argv(home: Path) -> None:
    cli = Cli(process=True)
    option = cli("secrets", "set", "k", "--domain", "https://a.com", "--value", KEY)
    assert option.returncode == 2 and "No such option '--value'" in option.stderr
    extra = cli("secrets", "set", "k", KEY, "--domain", "https://a.com")
    assert extra.returncode == 2 and "never taken from the command line" in extra.stderr
    assert KEY not in extra.stdout + extra.stderr  # not even echoed back in the error
    assert cli("secrets", "list", "--json").stdout.strip() == "[]"


def test_cli_secrets_set_list_rm(home: Path) -> None:
    cli = Cli()
    empty = cli("secrets", "set", "k", "--domain", "https://a.com", stdin="\n")
    assert empty.returncode == 2 and "secret 'k': an empty value is not allowed" in empty.stderr
    short = cli("secrets", "set", "k", "--domain", "https://a.com", stdin="abc\n")
    assert short.returncode == 2 and "at least 4 characters" in short.stderr
    bad_domain = cli("secrets", "set", "k", "--domain", "ftp://a.com", stdin=KEY + "\n")
    assert bad_domain.returncode == 2 and "--domain 'ftp://a.com'" in bad_domain.stderr
    no_domain = cli("secrets", "set", "k", stdin=KEY + "\n")
    assert no_domain.returncode == 2 and "--domain" in no_domain.stderr
    totp = cli("secrets", "set", "t", "--domain", "a.com", "--totp", stdin="not base32 !!\n")
    assert totp.returncode == 2 and "base32" in totp.stderr
    no_profile = cli("secrets", "set", "k", "--domain", "a.com", "--profile", "zed", stdin=KEY)
    assert no_profile.returncode == 2 and "zed" in no_profile.stderr
    assert cli("secrets", "list", "--json").stdout.strip() == "[]"  # nothing stored by mistake

    assert cli("profiles", "create", "alice").returncode == 0
    stored = cli("secrets", "set", "k", "--domain", "https://a.com", stdin=KEY + "\n")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.strip() == (
        "stored secret k (value) for https://a.com; typed only into password inputs"
    )
    bound = cli(
        "secrets",
        "set",
        "k2",
        "--domain",
        "*.example.com",
        "--domain",
        "http://127.0.0.1:8000",
        "--profile",
        "alice",
        "--field",
        "API key",
        "--field",
        "token",
        stdin=OTHER + "\n",
    )
    assert bound.returncode == 0, bound.stderr
    assert "typed only into fields API key, token" in bound.stdout
    listing = cli("secrets", "list", "--json")
    assert listing.returncode == 0
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert {n: (r["kind"], r["domains"], r["profiles"], r["fields"]) for n, r in rows.items()} == {
        "k": ("value", ["https://a.com"], [], []),
        "k2": (
            "value",
            ["*.example.com", "http://127.0.0.1:8000"],
            ["alice"],
            ["API key", "token"],
        ),
    }
    assert rows["k"]["typed_into"] == "password inputs"
    assert all(r["last_used_at"] is None for r in rows.values())
    table = cli("secrets", "list")
    assert table.returncode == 0 and "k2" in table.stdout
    audit = cli("secrets", "audit", "--json")
    assert audit.returncode == 0 and audit.stdout.strip() == "[]"

    assert cli("secrets", "rm", "k").returncode == 0
    assert [r["name"] for r in json.loads(cli("secrets", "list", "--json").stdout)] == ["k2"]
    assert cli("secrets", "rm", "k2").returncode == 0
    assert cli("secrets", "list", "--json").stdout.strip() == "[]"
    unknown = cli("secrets", "rm", "k")
    assert unknown.returncode == 2 and "unknown secret 'k'" in unknown.stderr
    assert not cli.leaked(KEY) and not cli.leaked(OTHER)


def test_cli_out_of_range_port_is_a_user_error(home: Path) -> None:
    proc = corral("secrets", "set", "k", "--domain", "https://a.com:99999", stdin=KEY + "\n")
    assert proc.returncode == 2, proc.stderr
    assert "--domain 'https://a.com:99999'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_run_with_unknown_secret_exits_2(home: Path, tmp_path: Path) -> None:
    assert corral("profiles", "create", "alice").returncode == 0
    task = tmp_path / "task.yaml"
    task.write_text(
        "name: x\nstart_url: http://127.0.0.1:1/\nsecrets: [nope]\n"
        "steps:\n  - fill: {label: API key, value: '{{secret:nope}}'}\n"
    )
    proc = corral("run", str(task), "--profile", "alice")
    assert proc.returncode == 2, proc.stderr
    assert "task.yaml: secrets: unknown secret 'nope'" in proc.stderr
    runs = corral("runs", "list", "--json")
    assert runs.stdout.strip() == "[]"


@pytest.mark.slow
def test_cli_run_never_prints_the_value(home: Path, tmp_path: Path, origins: OriginsServer) -> None:
    cli = Cli(process=True)
    assert cli("profiles", "create", "alice").returncode == 0
    stored = cli("secrets", "set", "k", "--domain", origins.a, "--field", "Echo", stdin=KEY + "\n")
    assert stored.returncode == 0, stored.stderr
    task = tmp_path / "echo.yaml"
    task.write_text(
        "name: echo\nstart_url: '{{var:site}}/echo'\nsecrets: [k]\nsteps:\n"
        "  - fill: {label: Echo, value: '{{secret:k}}'}\n"
        "  - extract: {as: shown, text: {css: '#out'}}\n"
    )
    ok = cli("run", str(task), "--profile", "alice", "--var", f"site={origins.a}", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["output"] == {"shown": "{{secret:k}}"}
    refused = cli("run", str(task), "--profile", "alice", "--var", f"site={origins.b}")
    assert refused.returncode == 1
    assert f"secret not available here: 'k' cannot be used on {origins.b}" in refused.stderr
    audit = cli("secrets", "audit", "--json")
    assert [(e["origin"], e["allowed"]) for e in reversed(json.loads(audit.stdout))] == [
        (origins.a, True),
        (origins.b, False),
    ]
    assert cli("runs", "list").returncode == 0
    assert not cli.leaked(KEY)
