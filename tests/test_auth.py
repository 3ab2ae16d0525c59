"""Roles, API tokens, profile grants and the append-only audit log: the Python API and the CLI."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from profiles import UserError
from runtime import Runtime, Settings
from runtime.auth import (
    LOCAL_ACTOR,
    Actor,
    AuditTamperedError,
    AuthError,
    Authorizer,
    PermissionDeniedError,
)
from runtime.cli.users import parse_ttl
from runtime.services import Services, UserService
from runtime.store.audit import write_audit
from tests.support.cli import Outcome
from tests.support.cli import corral as run_corral
from tests.support.stores import DATABASE_ERRORS, raw_connect

pytestmark = pytest.mark.both_backends

ROOT = Actor("root", "super_admin")
ADA = Actor("ada", "admin")
BOB = Actor("bob", "user")
DAY = 86_400.0


class Clock:
    """An injectable clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime without a browser: nothing here opens a page."""
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(rt: Runtime, clock: Clock) -> Services:
    return Services(rt, now=clock)


@pytest.fixture
def auth(svc: Services) -> UserService:
    return svc.users


async def team(auth: UserService) -> dict[str, str]:
    """root (super_admin), ada (admin), bob (user) and a token for each."""
    await auth.add_user(LOCAL_ACTOR, "root", "super_admin")
    await auth.add_user(ROOT, "ada", "admin")
    await auth.add_user(ROOT, "bob", "user")
    return {name: (await auth.create_token(ROOT, name, DAY))[1] for name in ("root", "ada", "bob")}


async def append_audit(
    rt: Runtime,
    actor: Actor,
    action: str,
    subject: str,
    detail: dict[str, str] | None = None,
    at: datetime | None = None,
) -> None:
    """One audit row in its own transaction."""
    async with rt.store.tx() as db:
        await write_audit(db, actor, action, subject, detail, at=at)


async def audit_count(rt: Runtime) -> int:
    row = await rt.store.fetch_one("SELECT COUNT(*) AS n FROM audit_log")
    assert row is not None
    return int(row["n"])


# --- who is acting ------------------------------------------------------------------------------


async def test_single_user_mode_acts_as_local_super_admin(auth: UserService) -> None:
    actor = await auth.actor(None)
    assert actor == LOCAL_ACTOR and actor.level == 100
    Authorizer.require(actor, "super_admin", "anything")  # no exception


async def test_first_user_must_be_a_super_admin(auth: UserService) -> None:
    with pytest.raises(UserError, match="first user must be a super_admin"):
        await auth.add_user(LOCAL_ACTOR, "bob", "user")
    assert await auth.list_users(LOCAL_ACTOR) == []
    await auth.add_user(LOCAL_ACTOR, "root", "super_admin")
    assert [(u.name, u.role) for u in await auth.list_users(ROOT)] == [("root", "super_admin")]
    # From now on the local actor is gone: a token is needed.
    with pytest.raises(AuthError, match="set CORRAL_TOKEN"):
        await auth.actor(None)


async def test_token_create_use_expire_with_clock(auth: UserService, clock: Clock) -> None:
    await auth.add_user(LOCAL_ACTOR, "root", "super_admin")
    record, token = await auth.create_token(ROOT, "root", 3600)
    assert token.startswith("crl_") and len(token) > 40
    assert record.expires_at == clock.now + timedelta(hours=1)
    assert await auth.actor(token) == ROOT
    [listed] = await auth.list_tokens(ROOT, "root")
    assert listed.id == record.id and listed.last_used_at == clock.now
    clock.advance(3599)
    assert await auth.actor(token) == ROOT
    clock.advance(1)
    with pytest.raises(AuthError, match=f"API token {record.id} of root expired") as info:
        await auth.actor(token)
    assert token not in str(info.value)
    assert (await auth.list_tokens(ROOT, "root"))[0].status(clock.now) == "expired"


async def test_revoked_and_unknown_tokens_fail_without_echoing_them(auth: UserService) -> None:
    tokens = await team(auth)
    [bob_token] = await auth.list_tokens(ROOT, "bob")
    await auth.revoke_token(BOB, bob_token.id)  # the owner may revoke their own
    with pytest.raises(AuthError, match="was revoked") as revoked:
        await auth.actor(tokens["bob"])
    forged = tokens["bob"][:-4] + "AAAA"
    with pytest.raises(AuthError, match="not a valid API token") as unknown:
        await auth.actor(forged)
    with pytest.raises(AuthError, match="start with crl_") as shapeless:
        await auth.actor("hunter2-not-a-token")
    for info, value in ((revoked, tokens["bob"]), (unknown, forged), (shapeless, "hunter2")):
        assert value not in str(info.value)
    with pytest.raises(UserError, match="already revoked"):
        await auth.revoke_token(ROOT, bob_token.id)
    with pytest.raises(UserError, match="no token 'nope'"):
        await auth.revoke_token(ROOT, "nope")


async def test_disabled_users_token_fails_and_all_tokens_are_revoked(auth: UserService) -> None:
    tokens = await team(auth)
    second = (await auth.create_token(BOB, "bob", DAY))[1]  # users may create their own
    await auth.disable_user(ROOT, "bob")
    for token in (tokens["bob"], second):
        with pytest.raises(AuthError, match="bob is disabled"):
            await auth.actor(token)
    assert all(t.revoked_at is not None for t in await auth.list_tokens(ROOT, "bob"))
    with pytest.raises(UserError, match="disabled"):
        await auth.create_token(ROOT, "bob", DAY)
    assert await auth.actor(tokens["ada"]) == ADA


async def test_token_values_never_listed_or_audited(
    rt: Runtime, auth: UserService, svc: Services
) -> None:
    tokens = await team(auth)
    await auth.revoke_token(ROOT, (await auth.list_tokens(ROOT, "ada"))[0].id)
    dumped = json.dumps(
        [
            *(u.model_dump(mode="json") for u in await auth.list_users(ROOT)),
            *(t.model_dump(mode="json") for t in await auth.list_tokens(ROOT)),
            *(e.model_dump(mode="json") for e in await svc.audit.list(ROOT)),
        ]
    )
    rows = await rt.store.fetch_all("SELECT * FROM audit_log")
    raw = json.dumps([dict(r) for r in rows])
    for token in tokens.values():
        assert token not in dumped and token not in raw
        assert token[4:20] not in dumped + raw


# --- roles and grants ---------------------------------------------------------------------------


async def test_user_cannot_manage_users_or_grants(auth: UserService, rt: Runtime) -> None:
    await team(auth)
    await rt.profiles.create("shop")
    with pytest.raises(PermissionDeniedError) as info:
        await auth.add_user(BOB, "eve", "user")
    assert str(info.value) == "bob (user) may not add users: that needs the super_admin role"
    with pytest.raises(
        PermissionDeniedError, match=r"bob \(user\) may not grant profiles: .*admin"
    ):
        await auth.grant(BOB, "bob", "shop")
    with pytest.raises(PermissionDeniedError, match="may not create tokens for ada"):
        await auth.create_token(BOB, "ada", DAY)
    with pytest.raises(PermissionDeniedError, match="may not revoke tokens of ada"):
        await auth.revoke_token(BOB, (await auth.list_tokens(ROOT, "ada"))[0].id)


async def test_admin_can_grant_but_not_change_roles(auth: UserService, rt: Runtime) -> None:
    await team(auth)
    await rt.profiles.create("shop")
    await auth.grant(ADA, "bob", "shop")
    assert (await auth.list_users(ROOT))[1].profiles == ["shop"]  # ada, bob, root
    with pytest.raises(PermissionDeniedError, match=r"ada \(admin\) may not change roles"):
        await auth.set_role(ADA, "bob", "admin")
    with pytest.raises(PermissionDeniedError, match="super_admin"):
        await auth.disable_user(ADA, "bob")
    with pytest.raises(UserError, match="already granted"):
        await auth.grant(ADA, "bob", "shop")
    with pytest.raises(UserError, match="no profile 'nope'"):
        await auth.grant(ADA, "bob", "nope")
    with pytest.raises(UserError, match="no user 'eve'"):
        await auth.grant(ADA, "eve", "shop")
    await auth.revoke_grant(ADA, "bob", "shop")
    with pytest.raises(UserError, match="not granted to bob"):
        await auth.revoke_grant(ADA, "bob", "shop")


async def test_profile_needs_a_grant_for_users_not_admins(
    auth: UserService, rt: Runtime, svc: Services
) -> None:
    await team(auth)
    await rt.profiles.create("shop")
    with pytest.raises(PermissionDeniedError) as info:
        await svc.authorizer.require_profile(BOB, "shop", "run tasks on profile 'shop'")
    assert "profile 'shop' is not granted to bob" in str(info.value)
    assert "corral users grant bob shop" in str(info.value)
    await svc.authorizer.require_profile(ADA, "shop", "run")  # admins pass without a grant
    await auth.grant(ROOT, "bob", "shop")
    await svc.authorizer.require_profile(BOB, "shop", "run")


async def test_last_super_admin_cannot_be_demoted_or_disabled(auth: UserService) -> None:
    await team(auth)
    with pytest.raises(UserError, match="cannot demote root: they are the last super_admin"):
        await auth.set_role(ROOT, "root", "admin")
    with pytest.raises(UserError, match="cannot disable root"):
        await auth.disable_user(ROOT, "root")
    await auth.set_role(ROOT, "ada", "super_admin")
    await auth.set_role(ROOT, "root", "admin")
    roles = {u.name: u.role for u in await auth.list_users(ROOT)}
    assert roles == {"ada": "super_admin", "bob": "user", "root": "admin"}


async def test_bad_names_roles_and_lifetimes_are_user_errors(auth: UserService) -> None:
    await auth.add_user(LOCAL_ACTOR, "root", "super_admin")
    with pytest.raises(UserError, match="already exists"):
        await auth.add_user(ROOT, "root", "user")
    with pytest.raises(UserError, match="unknown role 'god'"):
        await auth.add_user(ROOT, "eve", "god")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="user name 'a b'"):
        await auth.add_user(ROOT, "a b", "user")
    with pytest.raises(UserError, match="reserved"):
        await auth.add_user(ROOT, "local", "user")
    with pytest.raises(UserError, match="no user 'eve'"):
        await auth.set_role(ROOT, "eve", "admin")
    with pytest.raises(UserError, match="token lifetime"):
        await auth.create_token(ROOT, "root", 0)
    with pytest.raises(UserError, match="no user 'eve'"):
        await auth.list_tokens(ROOT, "eve")


def test_parse_ttl() -> None:
    assert [parse_ttl(t) for t in ("30d", "12h", "15m", "3600s")] == [
        30 * DAY,
        12 * 3600.0,
        900.0,
        3600.0,
    ]
    for bad in ("", "30", "3x", "0d", "-1h", "1.5h"):
        with pytest.raises(ValueError, match="expected a positive duration"):
            parse_ttl(bad)


# --- the audit log ------------------------------------------------------------------------------


async def test_every_mutation_leaves_exactly_one_row_with_its_actor(
    auth: UserService, rt: Runtime, clock: Clock, svc: Services
) -> None:
    await rt.profiles.create("shop")
    steps = [
        (
            LOCAL_ACTOR,
            "user.add",
            "root",
            lambda: auth.add_user(LOCAL_ACTOR, "root", "super_admin"),
        ),
        (ROOT, "user.add", "bob", lambda: auth.add_user(ROOT, "bob", "user")),
        (ROOT, "user.add", "ada", lambda: auth.add_user(ROOT, "ada", "user")),
        (ROOT, "user.role", "ada", lambda: auth.set_role(ROOT, "ada", "admin")),
        (ADA, "grant.add", "bob", lambda: auth.grant(ADA, "bob", "shop")),
        (ADA, "grant.revoke", "bob", lambda: auth.revoke_grant(ADA, "bob", "shop")),
        (BOB, "token.create", "bob", lambda: auth.create_token(BOB, "bob", DAY)),
        (ROOT, "token.create", "ada", lambda: auth.create_token(ROOT, "ada", DAY)),
        (ROOT, "user.disable", "bob", lambda: auth.disable_user(ROOT, "bob")),
        (
            ADA,
            "approval.approve",
            "ap-1",
            lambda: append_audit(rt, ADA, "approval.approve", "ap-1", at=clock.now),
        ),
    ]
    for i, (actor, action, subject, call) in enumerate(steps, start=1):
        clock.advance(1)
        await call()
        assert await audit_count(rt) == i, action
        [latest] = await svc.audit.list(ROOT, limit=1)
        assert (latest.actor, latest.role, latest.action, latest.subject) == (
            actor.name,
            actor.role,
            action,
            subject,
        )
        assert latest.at == clock.now
    [grant] = await svc.audit.list(ROOT, action="grant.add")
    assert grant.detail == {"profile": "shop"}
    assert [e.action for e in await svc.audit.list(ROOT, action="grant")] == [
        "grant.revoke",
        "grant.add",
    ]
    ada_token = (await auth.list_tokens(ROOT, "ada"))[0].id
    await auth.revoke_token(ROOT, ada_token)
    [revoked] = await svc.audit.list(ROOT, limit=1)
    assert (revoked.action, revoked.subject, revoked.detail) == (
        "token.revoke",
        "ada",
        {"token_id": ada_token},
    )
    # Refused and failed calls write nothing.
    before = await audit_count(rt)
    for refused in (
        auth.add_user(BOB, "eve", "user"),
        auth.set_role(ROOT, "nobody", "admin"),
        auth.grant(ADA, "bob", "missing-profile"),
    ):
        with pytest.raises(UserError):
            await refused
    assert await audit_count(rt) == before
    assert await svc.audit.verify(ROOT) == before


async def test_audit_row_shares_the_callers_transaction(
    auth: UserService, rt: Runtime, svc: Services
) -> None:
    with pytest.raises(RuntimeError):
        async with rt.store.tx() as db:
            await write_audit(db, ADA, "approval.approve", "ap-1", {"comment": "ok"})
            raise RuntimeError("the decision failed")
    assert await audit_count(rt) == 0
    async with rt.store.tx() as db:
        await write_audit(db, ADA, "approval.deny", "ap-2")
    [entry] = await svc.audit.list(ROOT)
    assert (entry.actor, entry.action, entry.detail) == ("ada", "approval.deny", None)


async def test_audit_log_refuses_update_and_delete(
    auth: UserService, rt: Runtime, svc: Services
) -> None:
    await append_audit(rt, ROOT, "policy.set", "global", {"sha256": "x"})
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DATABASE_ERRORS, match="append-only"):
            async with rt.store.tx() as db:
                await db.execute(sql)
    [entry] = await svc.audit.list(ROOT)
    assert entry.actor == "root"


def _tamper(where: Path | str, *statements: str) -> None:
    """Edit the log behind corral's back: drop the triggers in a raw connection first."""
    conn = raw_connect(where)
    try:
        on = "" if isinstance(where, Path) else " ON audit_log"
        conn.execute(f"DROP TRIGGER audit_log_no_update{on}")
        conn.execute(f"DROP TRIGGER audit_log_no_delete{on}")
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("UPDATE audit_log SET subject = 'mallory' WHERE id = 2", "row 2 .* was changed"),
        (
            'UPDATE audit_log SET detail = \'{"role":"super_admin"}\' WHERE id = 2',
            "row 2 .* was changed",
        ),
        ("DELETE FROM audit_log WHERE id = 2", "row 3 does not follow row 1"),
    ],
)
async def test_verify_audit_detects_tampering(
    auth: UserService, rt: Runtime, statement: str, expected: str, svc: Services
) -> None:
    await team(auth)
    count = await svc.audit.verify(ROOT)
    assert count == 6  # three users, three tokens
    _tamper(rt.settings.store_location, statement)
    with pytest.raises(AuditTamperedError, match=expected):
        await svc.audit.verify(ROOT)


# --- the command line ---------------------------------------------------------------------------


def corral(*args: str, token: str | None = None, stdin: str | None = None) -> Outcome:
    """``corral ARGS`` in-process as the holder of ``token`` (none: ``CORRAL_TOKEN`` unset)."""
    return run_corral(*args, stdin=stdin, env={"CORRAL_TOKEN": token})


def new_token(proc: Outcome) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "will not be shown again" in proc.stderr
    token = proc.stdout.strip()
    assert token.startswith("crl_") and "\n" not in token
    return token


def test_cli_users_tokens_and_a_revoked_token(home: Path) -> None:
    refused = corral("users", "add", "bob", "--role", "user")
    assert refused.returncode == 2 and "first user must be a super_admin" in refused.stderr
    first = corral("users", "add", "root", "--role", "super_admin", "--token-ttl", "1d")
    root = new_token(first)
    assert "from now on every corral command needs CORRAL_TOKEN" in first.stderr

    no_token = corral("users", "list")
    assert no_token.returncode == 2 and "set CORRAL_TOKEN" in no_token.stderr
    bob = new_token(corral("users", "add", "bob", "--role", "user", token=root))
    bob2 = new_token(corral("tokens", "create", "bob", "--ttl", "2h", token=bob))
    bad_ttl = corral("tokens", "create", "bob", "--ttl", "2 weeks", token=root)
    assert bad_ttl.returncode == 2 and "Invalid value for '--ttl'" in bad_ttl.stderr

    listed = corral("tokens", "list", "--json", token=root)
    assert listed.returncode == 0, listed.stderr
    tokens = json.loads(listed.stdout)
    assert sorted(t["user"] for t in tokens) == ["bob", "bob", "root"]
    own = json.loads(corral("tokens", "list", "--json", token=bob).stdout)
    assert {t["user"] for t in own} == {"bob"}
    denied = corral("users", "add", "eve", "--role", "user", token=bob)
    assert denied.returncode == 2
    assert "bob (user) may not add users: that needs the super_admin role" in denied.stderr

    bob_id = next(t["id"] for t in own if t["last_used_at"] is not None)
    assert corral("tokens", "revoke", bob_id, token=root).returncode == 0
    revoked = corral("runs", "list", token=bob)
    assert revoked.returncode == 2 and f"API token {bob_id} of bob was revoked" in revoked.stderr
    assert corral("runs", "list", token=bob2).returncode == 0  # the other token still works

    outputs = [
        revoked,
        corral("users", "list", token=root),
        corral("users", "list", "--json", token=root),
        corral("tokens", "list", token=root),
        corral("tokens", "list", "--json", token=root),
        corral("audit", "--json", token=root),
        corral("audit", token=root),
        corral("runs", "list", token=bob + "x"),
    ]
    for proc in outputs:
        for token in (root, bob, bob2):
            assert token not in proc.stdout + proc.stderr
    audit = json.loads(corral("audit", "--json", token=root).stdout)
    assert [(e["actor"], e["action"], e["subject"]) for e in reversed(audit)] == [
        ("local", "user.add", "root"),
        ("local", "token.create", "root"),
        ("root", "user.add", "bob"),
        ("root", "token.create", "bob"),
        ("bob", "token.create", "bob"),
        ("root", "token.revoke", "bob"),
    ]
    verified = corral("audit", "--verify", token=root)
    assert verified.returncode == 0 and "6 row(s) verified" in verified.stdout
    assert corral("audit", token=bob2).returncode == 2  # users do not read the audit log


@pytest.mark.slow
def test_cli_policy_set_is_super_admin_only_validated_and_used_by_check(
    home: Path, tmp_path: Path, portal: str
) -> None:
    root = new_token(corral("users", "add", "root", "--role", "super_admin"))
    ada = new_token(corral("users", "add", "ada", "--role", "admin", token=root))
    good = tmp_path / "good.yaml"
    good.write_text(
        "tasks:\n  look:\n"
        "    - {name: no-sign-in, match: {name: '^sign in$'}, verdict: deny, reason: read only}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: x, match: {rolez: [button]}, verdict: deny, reason: r}\n")

    assert corral("policy", "show", token=ada).stdout.startswith("built-in defaults")
    denied = corral("policy", "set", str(good), token=ada)
    assert denied.returncode == 2
    assert "ada (admin) may not set the global policy" in denied.stderr
    assert not (home / "policy.yaml").exists()

    assert corral("policy", "set", str(good), token=root).returncode == 0
    assert (home / "policy.yaml").read_text() == good.read_text()
    broken = corral("policy", "set", str(bad), token=root)
    assert broken.returncode == 2
    assert f"{bad}: rules.0.match.rolez: unknown field" in broken.stderr
    assert (home / "policy.yaml").read_text() == good.read_text()
    shown = corral("policy", "show", token=ada).stdout
    assert "no-sign-in" in shown and shown.startswith("# ")

    entries = json.loads(corral("audit", "--action", "policy", "--json", token=root).stdout)
    assert len(entries) == 1 and entries[0]["actor"] == "root"
    assert entries[0]["detail"]["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert entries[0]["detail"]["previous_sha256"] is None

    # policy check uses the global policy, and a task file gives the page and the task's name.
    task = tmp_path / "look.yaml"
    task.write_text(
        "name: look\nstart_url: '{{var:portal}}/login'\n"
        f"vars: {{portal: '{portal}'}}\nsteps:\n  - goto: /login\n"
    )

    def verdicts(target: str) -> dict[str, str]:
        proc = corral("policy", "check", target, "--json", token=ada)
        assert proc.returncode == 0, proc.stderr
        return {row["name"]: row["verdict"] for row in json.loads(proc.stdout)}

    assert verdicts(str(task))["Sign in"] == "deny"
    assert verdicts(f"{portal}/login")["Sign in"] == "allow"  # no task: no task override


@pytest.mark.slow
def test_cli_run_needs_a_grant_on_the_profile(home: Path, tmp_path: Path, portal: str) -> None:
    root = new_token(corral("users", "add", "root", "--role", "super_admin"))
    ada = new_token(corral("users", "add", "ada", "--role", "admin", token=root))
    bob = new_token(corral("users", "add", "bob", "--role", "user", token=root))
    assert corral("profiles", "create", "shop", token=bob).returncode == 2
    assert corral("profiles", "create", "shop", token=ada).returncode == 0
    task = tmp_path / "look.yaml"
    task.write_text(f"name: look\nprofile: shop\nstart_url: {portal}\nsteps:\n  - goto: /login\n")

    refused = corral("run", str(task), token=bob)
    assert refused.returncode == 2
    assert "bob (user) may not run tasks on profile 'shop'" in refused.stderr
    assert "not granted to bob" in refused.stderr
    assert corral("runs", "list", "--json", token=bob).stdout.strip() == "[]"  # nothing started

    granted = corral("users", "grant", "bob", "shop", token=bob)
    assert granted.returncode == 2 and "admin" in granted.stderr
    assert corral("users", "grant", "bob", "shop", token=ada).returncode == 0
    ran = corral("run", str(task), token=bob)
    assert ran.returncode == 0, ran.stderr
    parallel = corral("run", str(task), "--parallel", "shop,other", token=bob)
    assert parallel.returncode == 2 and "profile 'other' is not granted" in parallel.stderr
