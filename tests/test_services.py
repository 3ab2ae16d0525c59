"""The service layer: every operation refuses an actor without the role (changing nothing), and a
change commits together with its audit row or not at all; the CLI holds no authorization."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from profiles import InvalidProfileError, ProfileSettings, ProxySettings, UserError
from runtime import Runtime, Settings, parse_task
from runtime.auth import LOCAL_ACTOR, Actor, PermissionDeniedError
from runtime.cli.main import cli
from runtime.errors import ApprovalNotFoundError, exit_code_for
from runtime.services import Services, bundle_needs_passphrase

pytestmark = pytest.mark.both_backends

ROOT = Actor("root", "super_admin")
ADA = Actor("ada", "admin")
BOB = Actor("bob", "user")
PASSWORD = "proxy-pass-7Q2x"
POLICY = "rules:\n  - {name: no-pay, match: {name: '^pay$'}, verdict: deny, reason: money}\n"


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime without a browser: nothing here opens a page."""
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.fixture
async def svc(rt: Runtime) -> Services:
    """root, ada and bob; a profile ``shop`` (granted to nobody) and a secret; one approval."""
    s = rt.services
    await s.users.add_user(LOCAL_ACTOR, "root", "super_admin")
    await s.users.add_user(ROOT, "ada", "admin")
    await s.users.add_user(ROOT, "bob", "user")
    await s.profiles.create(ADA, "shop")
    await s.secrets.set(ADA, "shop.password", "hunter2-long-enough", ["https://shop.test"])
    await rt.approvals.create(
        run_id="run-1",
        step_idx=0,
        task_name="pay",
        profile="shop",
        action={"kind": "click", "ref": "e1"},
        summary="Click 'Pay'",
        reasons=["looks like a payment"],
        fingerprint="f",
        idempotency_key="k",
        page_url=None,
        ttl_s=600,
        request_id="ap-00000001",
    )
    return s


async def snapshot(rt: Runtime) -> dict[str, Any]:
    """Everything a refused or failed operation must leave as it was."""

    async def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await rt.store.fetch_all(sql)]

    policy = rt.settings.policy_path
    return {
        "audit": await rows("SELECT id FROM audit_log"),
        "users": await rows("SELECT * FROM users ORDER BY name"),
        "grants": await rows("SELECT user_name, profile FROM grants ORDER BY 1, 2"),
        "tokens": await rows("SELECT id, revoked_at FROM tokens ORDER BY id"),
        "profiles": await rows("SELECT name, settings, state FROM profiles ORDER BY name"),
        "secrets": await rows("SELECT name, ciphertext FROM secrets ORDER BY name"),
        "approvals": await rows("SELECT id, status, decided_by FROM approvals ORDER BY id"),
        "policy": policy.read_bytes() if policy.exists() else None,
        "key": rt.key.current.fingerprint,
        "home": sorted(
            p.name
            for p in rt.settings.home.iterdir()
            if not p.name.startswith(rt.settings.db_path.name)
        ),
    }


def never() -> str:
    raise AssertionError("asked for a value before the actor was authorized")


def refused_calls(s: Services, tmp_path: Path) -> dict[str, list[Callable[[], Awaitable[Any]]]]:
    """Per service area: what a ``user`` may not do."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    bundle = tmp_path / "bundle.json"

    async def import_bundle() -> None:
        await s.profiles.import_(BOB, b'{"format": "x"}', "b.json", never)

    return {
        "profiles": [
            lambda: s.profiles.create(BOB, "mine"),
            lambda: s.profiles.update(BOB, "shop", ProfileSettings(locale="de-DE")),
            lambda: s.profiles.delete(BOB, "shop", never),
            lambda: s.profiles.clear(BOB, "shop"),
            lambda: s.profiles.export(BOB, "shop", bundle, never),
            import_bundle,
        ],
        "secrets": [
            lambda: s.secrets.set(BOB, "x.password", never, ["https://x.test"]),
            lambda: s.secrets.remove(BOB, "shop.password"),
            lambda: s.secrets.list_uses(BOB),
        ],
        "approvals": [lambda: s.approvals.decide(BOB, "ap-00000001", True, "mine")],
        "users": [
            lambda: s.users.add_user(BOB, "eve", "user"),
            lambda: s.users.add_user_with_token(BOB, "eve", "user"),
            lambda: s.users.set_role(BOB, "bob", "super_admin"),
            lambda: s.users.disable_user(BOB, "ada"),
            lambda: s.users.list_users(BOB),
            lambda: s.users.grant(BOB, "bob", "shop"),
            lambda: s.users.revoke_grant(BOB, "ada", "shop"),
            lambda: s.users.create_token(BOB, "ada"),
            lambda: s.users.list_tokens(BOB, "ada"),
        ],
        "policy": [
            lambda: s.policy.set(BOB, policy),
            lambda: s.policy.authorize_check(BOB, "shop"),
        ],
        "keys": [lambda: s.keys.rotate(BOB, never)],
        "audit": [lambda: s.audit.list(BOB), lambda: s.audit.verify(BOB)],
        "runs": [lambda: s.runs.authorize(BOB, ["shop"])],
    }


@pytest.mark.parametrize(
    "area", ["profiles", "secrets", "approvals", "users", "policy", "keys", "audit", "runs"]
)
async def test_a_user_is_refused_and_nothing_changes(
    rt: Runtime, svc: Services, tmp_path: Path, area: str
) -> None:
    before = await snapshot(rt)
    calls = refused_calls(svc, tmp_path)[area]
    for call in calls:
        with pytest.raises(PermissionDeniedError, match=r"^bob \(user\)"):
            await call()
    assert await snapshot(rt) == before
    assert not (tmp_path / "bundle.json").exists()


async def test_the_demo_needs_an_admin(svc: Services) -> None:
    with pytest.raises(PermissionDeniedError, match="bob \\(user\\) may not run the demo"):
        svc.runs.authorize_demo(BOB)
    svc.runs.authorize_demo(ADA)


async def test_a_grant_lets_a_user_run_and_check_but_not_manage(svc: Services) -> None:
    await svc.users.grant(ADA, "bob", "shop")
    await svc.runs.authorize(BOB, ["shop"])
    await svc.policy.authorize_check(BOB, "shop")
    with pytest.raises(PermissionDeniedError):
        await svc.profiles.clear(BOB, "shop")


async def test_running_a_task_as_a_user_needs_a_grant(rt: Runtime, svc: Services) -> None:
    task = parse_task(
        {"name": "look", "profile": "shop", "steps": [{"goto": "http://127.0.0.1:9/"}]},
        "look.yaml",
    )
    with pytest.raises(PermissionDeniedError, match="profile 'shop' is not granted to bob"):
        await svc.runs.run(BOB, task)
    with pytest.raises(PermissionDeniedError, match="profile 'shop' is not granted to bob"):
        await svc.runs.run_many(BOB, task, ["shop"])
    # Refused before anything started: no run row, no run folder.
    assert await rt.store.runs.list_runs() == []
    assert not rt.settings.runs_dir.exists() or not any(rt.settings.runs_dir.iterdir())


def failing_audit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every service's audit write fail after the change was made; returns the actions."""
    tried: list[str] = []

    async def broken(db: Any, actor: Actor, action: str, *args: Any, **kwargs: Any) -> None:
        tried.append(action)
        raise OSError("disk full while writing the audit row")

    monkeypatch.setattr("runtime.services.base.write_audit", broken)
    return tried


async def test_a_change_is_not_kept_when_its_audit_row_fails(
    rt: Runtime, svc: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    out = tmp_path / "shop.json"
    await svc.profiles.export(ADA, "shop", out)
    data = out.read_bytes()
    out.unlink()
    before = await snapshot(rt)
    tried = failing_audit(monkeypatch)
    changes: list[Callable[[], Awaitable[Any]]] = [
        lambda: svc.profiles.create(ADA, "new"),
        lambda: svc.profiles.update(ADA, "shop", ProfileSettings(locale="de-DE")),
        lambda: svc.profiles.delete(ADA, "shop"),
        lambda: svc.profiles.clear(ADA, "shop"),
        lambda: svc.profiles.import_(ADA, data, "shop.json", None, "copy"),
        lambda: svc.secrets.set(ADA, "new.password", "another-long-one", ["https://x.test"]),
        lambda: svc.secrets.remove(ADA, "shop.password"),
        lambda: svc.approvals.decide(ADA, "ap-00000001", False, "no"),
        lambda: svc.users.add_user(ROOT, "eve", "user"),
        lambda: svc.users.add_user_with_token(ROOT, "eve", "user"),
        lambda: svc.users.set_role(ROOT, "bob", "admin"),
        lambda: svc.users.disable_user(ROOT, "bob"),
        lambda: svc.users.grant(ADA, "bob", "shop"),
        lambda: svc.users.create_token(ROOT, "bob", 3600),
        lambda: svc.policy.set(ROOT, policy),
        lambda: svc.keys.rotate(ADA),
    ]
    for change in changes:
        with pytest.raises(OSError, match="disk full"):
            await change()
    assert len(tried) == len(changes)
    after = await snapshot(rt)
    # An interrupted rotation leaves its next key on disk to resume with (and its lock file);
    # nothing else changed.
    assert after.pop("home") == sorted([*before.pop("home"), "master.key.next", "rotate.lock"])
    assert after == before


async def test_grant_revoke_and_token_revoke_roll_back_with_their_audit_row(
    rt: Runtime, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await svc.users.grant(ADA, "bob", "shop")
    record, _ = await svc.users.create_token(ROOT, "bob", 3600)
    before = await snapshot(rt)
    failing_audit(monkeypatch)
    for change in (
        lambda: svc.users.revoke_grant(ADA, "bob", "shop"),
        lambda: svc.users.revoke_token(ROOT, record.id),
    ):
        with pytest.raises(OSError):
            await change()
    assert await snapshot(rt) == before


async def test_each_change_writes_one_row_by_its_actor(rt: Runtime, svc: Services) -> None:
    await svc.profiles.update(ADA, "shop", ProfileSettings(locale="de-DE"))
    await svc.profiles.clear(ADA, "shop")
    await svc.approvals.decide(ADA, "ap-00000001", True, "fine")
    report = await svc.keys.rotate(ADA)
    await svc.secrets.remove(ADA, "shop.password")
    await svc.profiles.delete(ADA, "shop")
    entries = list(reversed(await svc.audit.list(ADA, limit=6)))
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("ada", "profile.update", "shop"),
        ("ada", "profile.clear", "shop"),
        ("ada", "approval.approve", "ap-00000001"),
        ("ada", "vault.rotate_key", "master key"),
        ("ada", "secret.rm", "shop.password"),
        ("ada", "profile.delete", "shop"),
    ]
    assert entries[3].detail == {"fingerprint": report.new_fingerprint, "resealed": 1}
    assert await svc.audit.verify(ROOT) == 3 + 2 + 6  # users, profile and secret, these


# --- profiles import: a bundle with only a sealed proxy password --------------------------------


async def proxy_only_bundle(rt: Runtime, tmp_path: Path) -> Path:
    """An export holding a sealed proxy password and no saved state."""
    proxy = ProxySettings(server="http://proxy.test:3128", username="u", password=PASSWORD)
    await rt.services.profiles.create(LOCAL_ACTOR, "viaproxy", ProfileSettings(proxy=proxy))
    out = tmp_path / "viaproxy.json"
    await rt.services.profiles.export(LOCAL_ACTOR, "viaproxy", out, "a long passphrase")
    return out


async def test_a_bundle_with_only_a_proxy_password_asks_for_the_passphrase(
    rt: Runtime, tmp_path: Path
) -> None:
    data = (await proxy_only_bundle(rt, tmp_path)).read_bytes()
    assert b'"state": null' in data and PASSWORD.encode() not in data
    assert bundle_needs_passphrase(data)
    profiles = rt.services.profiles
    with pytest.raises(InvalidProfileError, match="a passphrase is needed") as missing:
        await profiles.import_(LOCAL_ACTOR, data, "b.json", None, "copy")
    with pytest.raises(InvalidProfileError, match="wrong passphrase") as wrong:
        await profiles.import_(LOCAL_ACTOR, data, "b.json", lambda: "not it", "copy")
    assert exit_code_for(missing.value) == exit_code_for(wrong.value) == 2
    assert [p.record.name for p in await profiles.list(LOCAL_ACTOR)] == ["viaproxy"]
    asked: list[str] = []

    def passphrase() -> str:
        asked.append("yes")
        return "a long passphrase"

    record = await profiles.import_(LOCAL_ACTOR, data, "b.json", passphrase, "copy")
    assert asked == ["yes"]
    proxy = (await rt.profiles.get(record.name)).settings.proxy
    assert proxy is not None and proxy.password == PASSWORD


async def test_a_bundle_without_sealed_parts_never_asks(rt: Runtime, tmp_path: Path) -> None:
    await rt.services.profiles.create(LOCAL_ACTOR, "plain")
    out = tmp_path / "plain.json"
    await rt.services.profiles.export(LOCAL_ACTOR, "plain", out)
    assert not bundle_needs_passphrase(out.read_bytes())
    await rt.services.profiles.import_(LOCAL_ACTOR, out.read_bytes(), "p.json", never, "again")


def test_cli_import_asks_for_the_passphrase_of_a_proxy_only_bundle(
    settings: Settings, tmp_path: Path
) -> None:
    async def export() -> Path:
        async with Runtime.open(settings) as rt:
            return await proxy_only_bundle(rt, tmp_path)

    async def proxy_password(name: str) -> str | None:
        async with Runtime.open(settings) as rt:
            proxy = (await rt.profiles.get(name)).settings.proxy
            return proxy.password if proxy is not None else None

    bundle = asyncio.run(export())
    runner = CliRunner()
    wrong = runner.invoke(cli, ["profiles", "import", str(bundle), "--name", "bad"], "nope\n")
    assert wrong.exit_code == 2, wrong.output
    assert "wrong passphrase" in wrong.stderr and "nope" not in wrong.output
    with pytest.raises(UserError, match="unknown profile 'bad'"):
        asyncio.run(proxy_password("bad"))
    ok = runner.invoke(
        cli, ["profiles", "import", str(bundle), "--name", "copy"], "a long passphrase\n"
    )
    assert ok.exit_code == 0, ok.output
    assert "imported profile copy" in ok.stdout
    assert asyncio.run(proxy_password("copy")) == PASSWORD


# --- the CLI holds no authorization or audit code -----------------------------------------------


def test_cli_modules_hold_no_role_checks_or_audit_writes() -> None:
    forbidden = re.compile(r"\brequire(_profile)?\(|\baudit\(|write_audit|\brt\.auth\b|\.level\b")
    cli_dir = Path(__file__).parents[1] / "runtime" / "cli"
    modules = sorted(cli_dir.glob("*.py"))
    assert len(modules) >= 8
    found = {
        f"{path.name}:{n}": line.strip()
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if forbidden.search(line)
    }
    assert found == {}


async def test_a_user_sees_approval_requests_only_on_granted_profiles(svc: Services) -> None:
    """A waiting request shows a page's URL, its summary and the action: a user without a grant
    on its profile neither lists nor opens it (by id or prefix), as if it did not exist."""
    assert [r.id for r in await svc.approvals.list(ADA)] == ["ap-00000001"]
    assert await svc.approvals.list(BOB) == []
    assert await svc.approvals.list(BOB, status=None, run_id="run-1") == []
    for ref in ("ap-00000001", "ap-0000"):
        with pytest.raises(ApprovalNotFoundError):
            await svc.approvals.get(BOB, ref)
    await svc.users.grant(ROOT, "bob", "shop")
    assert [r.id for r in await svc.approvals.list(BOB)] == ["ap-00000001"]
    assert (await svc.approvals.get(BOB, "ap-0000")).summary == "Click 'Pay'"
