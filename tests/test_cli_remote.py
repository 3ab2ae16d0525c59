"""The CLI through ``CORRAL_SERVER``: the same commands and output, the server's store and key,
none on the client's side; auth failures keep their exit codes; commands that need the files say
so. The server is the real HTTP API on loopback; the CLI runs in-process (click's runner)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from profiles import BrowserPool
from runtime import Runtime, Settings
from runtime.api import create_app
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.demo.portal import USERS
from runtime.errors import EXIT_BAD_INPUT, AuthError, PermissionDeniedError, exit_code_for
from runtime.serve import WorkerPool
from tests.support.api import serving
from tests.support.cli import Outcome, corral
from tests.support.demo import signed_in
from tests.support.sites import free_port

SECRET = "remote-secret-9Zq!"


@dataclass
class Remote:
    rt: Runtime
    url: str
    admin: str
    user: str
    nowhere: Path

    async def cli(self, *args: str, token: str | None = "", stdin: str | None = None) -> Outcome:
        env = {
            "CORRAL_SERVER": self.url,
            "CORRAL_TOKEN": self.admin if token == "" else token,
            "CORRAL_HOME": str(self.nowhere),
        }
        return await asyncio.to_thread(corral, *args, stdin=stdin, env=env)

    async def local(self, *args: str) -> Outcome:
        """The same command in local mode, on the server's own home, as the same admin."""
        env = {
            "CORRAL_SERVER": None,
            "CORRAL_TOKEN": self.admin,
            "CORRAL_HOME": str(self.rt.settings.home),
        }
        return await asyncio.to_thread(corral, *args, env=env)


@contextlib.asynccontextmanager
async def _served(
    settings: Settings, client_home: Path, browsers: BrowserPool | None = None
) -> AsyncIterator[Remote]:
    """The API on loopback with root (super_admin), bob (user) and a profile ``shop``."""
    async with Runtime.open(settings, pool=browsers) as rt:
        users = rt.services.users
        admin = await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
        root = Actor("root", "super_admin")
        user = await users.add_user_with_token(root, "bob", "user")
        await rt.services.profiles.create(root, "shop")
        pool = WorkerPool(rt, 1)
        async with serving(create_app(rt, pool)) as url:
            yield Remote(rt, url, admin.value, user.value, client_home)
            await pool.drain(0)


@pytest.fixture
async def remote(settings: Settings, tmp_path: Path) -> AsyncIterator[Remote]:
    async with _served(settings, tmp_path / "client-home") as served:
        yield served


def same(local: Outcome, remote: Outcome) -> str:
    """Both succeeded with the same output; that output."""
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    return remote.stdout


async def _request(rt: Runtime, request_id: str) -> None:
    await rt.approvals.create(
        run_id=f"run-{request_id}",
        step_idx=2,
        task_name="pay",
        profile="shop",
        action={"kind": "click", "target": {"role": "button", "name": "Pay"}},
        summary="Click 'Pay' on /invoices/7",
        reasons=["payment"],
        fingerprint=f"f-{request_id}",
        idempotency_key=f"k-{request_id}",
        page_url="http://127.0.0.1:9/invoices/7",
        ttl_s=3600,
        request_id=request_id,
    )


async def test_profiles_secrets_and_approvals_go_through_the_server(remote: Remote) -> None:
    created = await remote.cli("profiles", "create", "alice", "--var", "user=alice")
    assert created.returncode == 0, created.stderr
    assert "created profile alice (mode state)" in created.stdout
    listed = json.loads((await remote.cli("profiles", "list", "--json")).stdout)
    assert [p["name"] for p in listed] == ["alice", "shop"]
    assert set(listed[0]) == {
        "name",
        "settings",
        "created_at",
        "has_state",
        "state_saved_at",
        "leased_by",
    }
    shown = json.loads((await remote.cli("profiles", "show", "alice", "--json")).stdout)
    assert shown["settings"]["vars"] == {"user": "alice"}
    # A secret set through the server: the value on stdin, then only in the PUT body.
    stored = await remote.cli(
        "secrets",
        "set",
        "alice.password",
        "--domain",
        "https://portal.example",
        "--profile",
        "alice",
        stdin=SECRET + "\n",
    )
    assert stored.returncode == 0, stored.stderr
    assert "typed only into password inputs" in stored.stdout
    assert (await remote.rt.vault.list())[0].name == "alice.password"
    secrets = json.loads((await remote.cli("secrets", "list", "--json")).stdout)
    assert secrets[0]["typed_into"] == "password inputs" and secrets[0]["profiles"] == ["alice"]
    uses = await remote.cli("secrets", "audit", "--json")
    assert uses.returncode == 0 and json.loads(uses.stdout) == []
    approvals = await remote.cli("approvals", "list", "--json")
    assert approvals.returncode == 0 and json.loads(approvals.stdout) == []
    missing = await remote.cli("approvals", "approve", "nope")
    assert missing.returncode == EXIT_BAD_INPUT and "nope" in missing.stderr
    cleared = await remote.cli("profiles", "clear", "alice")
    assert cleared.returncode == 0 and "cleared the saved state of alice" in cleared.stdout
    assert (await remote.cli("secrets", "rm", "alice.password")).returncode == 0
    assert (await remote.cli("profiles", "delete", "alice", "--yes")).returncode == 0
    assert [p.name for p, _ in await remote.rt.services.profiles.list(LOCAL_ACTOR)] == ["shop"]
    # Every change was audited on the server, as root.
    actions = {e.action for e in await remote.rt.store.audit.list(limit=100) if e.actor == "root"}
    assert {"profile.create", "secret.set", "secret.rm", "profile.delete"} <= actions
    # No output ever held the value, and nothing was made on the client's side.
    outputs = [created, stored, uses, approvals, missing, cleared]
    assert not any(SECRET in o.stdout + o.stderr for o in outputs)
    assert not remote.nowhere.exists()


async def test_a_user_token_is_refused_before_typing_a_secret(remote: Remote) -> None:
    refused = await remote.cli(
        "secrets",
        "set",
        "x",
        "--domain",
        "https://a.example",
        token=remote.user,
        stdin=SECRET + "\n",
    )
    assert refused.returncode == exit_code_for(PermissionDeniedError("x"))
    assert "needs admin" in refused.stderr and SECRET not in refused.stderr
    assert await remote.rt.vault.list() == []
    made = await remote.cli("profiles", "create", "evil", token=remote.user)
    assert made.returncode == exit_code_for(PermissionDeniedError("x"))


async def test_auth_and_reachability_failures_keep_their_exit_codes(remote: Remote) -> None:
    no_token = await remote.cli("profiles", "list", token=None)
    assert no_token.returncode == EXIT_BAD_INPUT and "CORRAL_TOKEN" in no_token.stderr
    bad = await remote.cli("profiles", "list", token="crl_forged")
    assert bad.returncode == EXIT_BAD_INPUT and "not a valid API token" in bad.stderr
    env = {
        "CORRAL_SERVER": f"http://127.0.0.1:{free_port()}",
        "CORRAL_TOKEN": remote.admin,
        "CORRAL_HOME": str(remote.nowhere),
    }
    down = await asyncio.to_thread(corral, "runs", "list", env=env)
    assert down.returncode == EXIT_BAD_INPUT and "cannot reach CORRAL_SERVER" in down.stderr
    assert remote.admin not in down.stderr + bad.stderr
    assert not remote.nowhere.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("users", "list"),
        ("tokens", "list"),
        ("audit",),
        ("policy", "show"),
        ("vault", "rotate-key"),
        ("profiles", "export", "shop", "-o", "x.json"),
        ("profiles", "import", "bundle.json"),
        ("demo",),
        ("users", "add", "eve", "--role", "user"),
        ("users", "grant", "bob", "shop"),
        ("tokens", "create", "root"),
        ("tokens", "revoke", "tok-1"),
        ("audit", "--verify"),
        ("policy", "set", "policy.yaml"),
        ("policy", "check", "http://127.0.0.1:9/"),
    ],
)
async def test_commands_that_need_the_files_say_so(remote: Remote, args: tuple[str, ...]) -> None:
    out = await remote.cli(*args)
    assert out.returncode == EXIT_BAD_INPUT
    assert "CORRAL_SERVER" in out.stderr and "server host" in out.stderr
    assert not remote.nowhere.exists()


async def test_every_listing_prints_exactly_what_local_mode_prints(remote: Remote) -> None:
    made = await remote.cli(
        "profiles", "create", "alice", "--var", "user=alice", "--locale", "en-GB"
    )
    assert made.returncode == 0, made.stderr
    stored = await remote.cli(
        "secrets",
        "set",
        "alice.totp",
        "--totp",
        "--domain",
        "https://a.example",
        "--profile",
        "alice",
        "--field",
        "Code",
        stdin="JBSWY3DPEHPK3PXP\n",
    )
    assert stored.returncode == 0, stored.stderr
    await _request(remote.rt, "ap-11111111")
    await _request(remote.rt, "ap-22222222")
    for args in [
        ("profiles", "list", "--json"),
        ("profiles", "show", "alice", "--json"),
        ("profiles", "show", "alice"),
        ("secrets", "list", "--json"),
        ("secrets", "list"),
        ("approvals", "list", "--json"),
        ("approvals", "list", "--all", "--run", "run-ap-11111111", "--json"),
        ("approvals", "show", "ap-1111", "--json"),
    ]:
        out = same(await remote.local(*args), await remote.cli(*args))
        if "--json" in args:
            assert json.loads(out), args  # something was compared, not two empty lists
    listed = json.loads((await remote.cli("profiles", "list", "--json")).stdout)
    [alice] = [p for p in listed if p["name"] == "alice"]
    assert alice["leased_by"] is None and alice["settings"]["locale"] == "en-GB"
    [totp] = json.loads((await remote.cli("secrets", "list", "--json")).stdout)
    assert (totp["kind"], totp["fields"]) == ("totp", ["Code"])
    assert "JBSWY3DPEHPK3PXP" not in stored.stdout + stored.stderr
    # Deciding: a user is refused (exit 3) and nothing is decided; an admin's decision prints
    # the same shape here and through the server.
    refused = await remote.cli("approvals", "approve", "ap-11111111", token=remote.user)
    assert refused.returncode == exit_code_for(PermissionDeniedError("x"))
    assert "bob (user) cannot approve" in refused.stderr
    assert (await remote.rt.approvals.get("ap-11111111")).status == "pending"
    denied = await remote.cli("approvals", "deny", "ap-11111111", "--comment", "no", "--json")
    approved = await remote.local("approvals", "approve", "ap-22222222", "--json")
    assert denied.returncode == 0 and approved.returncode == 0, denied.stderr + approved.stderr
    by_server, here = json.loads(denied.stdout), json.loads(approved.stdout)
    assert set(by_server) == set(here)
    assert (by_server["status"], by_server["decided_by"]) == ("denied", "root")
    assert (here["status"], here["decided_by"]) == ("approved", "root")
    # Once decided, a request's text no longer depends on the clock ("N min left").
    shown = same(*[await f("approvals", "show", "ap-11111111") for f in (remote.local, remote.cli)])
    assert "denied by root (no)" in shown
    again = await remote.cli("approvals", "approve", "ap-11111111")
    assert again.returncode == EXIT_BAD_INPUT and "already denied by root" in again.stderr
    assert not remote.nowhere.exists()


async def test_a_user_is_refused_before_being_asked_anything(remote: Remote) -> None:
    asked = "delete profile shop and its saved state?"
    refused = await remote.cli("profiles", "delete", "shop", token=remote.user, stdin="y\n")
    assert refused.returncode == exit_code_for(PermissionDeniedError("x"))
    assert "bob (user) cannot delete profiles" in refused.stderr
    assert asked not in refused.stdout + refused.stderr
    assert [p.name for p, _ in await remote.rt.services.profiles.list(LOCAL_ACTOR)] == ["shop"]
    kept = await remote.cli("profiles", "delete", "shop", stdin="n\n")
    assert kept.returncode != 0 and asked in kept.stdout
    assert [p.name for p, _ in await remote.rt.services.profiles.list(LOCAL_ACTOR)] == ["shop"]
    unknown = await remote.cli(
        "secrets",
        "set",
        "x",
        "--domain",
        "https://a.example",
        "--profile",
        "ghost",
        stdin=SECRET + "\n",
    )
    assert unknown.returncode == EXIT_BAD_INPUT and "ghost" in unknown.stderr
    assert SECRET not in unknown.stdout + unknown.stderr
    assert await remote.rt.vault.list() == []


async def test_a_bad_token_is_the_auth_error_exit_code(remote: Remote) -> None:
    for args in [("approvals", "list"), ("secrets", "list"), ("profiles", "show", "shop")]:
        bad = await remote.cli(*args, token="crl_forged")
        assert bad.returncode == exit_code_for(AuthError("x")), args
        assert "not a valid API token" in bad.stderr and "crl_forged" not in bad.stderr
    assert not remote.nowhere.exists()


@pytest.mark.slow
async def test_a_secret_set_through_the_server_is_used_by_a_run_and_never_shown(
    settings: Settings, pool: BrowserPool, portal: str, tmp_path: Path
) -> None:
    alice = USERS["alice"]
    task = tmp_path / "dashboard.yaml"
    task.write_text(
        yaml.safe_dump(
            signed_in(
                "dashboard",
                portal,
                {"extract": {"as": "greeting", "text": {"role": "heading", "name": "Welcome"}}},
                output="greeting",
            )
        )
    )
    async with _served(settings, tmp_path / "client-home", pool) as remote:
        outputs = [
            await remote.cli("profiles", "create", "alice", "--var", f"user={alice.username}"),
            await remote.cli(
                "secrets",
                "set",
                "alice.password",
                "--domain",
                portal,
                "--profile",
                "alice",
                stdin=alice.password + "\n",
            ),
        ]
        ran = await remote.cli("run", str(task), "--profile", "alice", "--json")
        outputs.append(ran)
        assert ran.returncode == 0, ran.stderr
        [result] = json.loads(ran.stdout)
        assert result["status"] == "succeeded", result["error"]
        assert result["output"] == f"Welcome, {alice.full_name}"
        outputs.append(await remote.cli("runs", "show", result["run_id"], "--json"))
        outputs.append(await remote.cli("runs", "show", result["run_id"]))
        args = ("secrets", "audit", "--run", result["run_id"], "--json")
        local, through = await remote.local(*args), await remote.cli(*args)
        outputs += [local, through]
        uses = json.loads(same(local, through))
        assert uses and all(u["secret"] == "alice.password" and u["allowed"] for u in uses)
        assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
        assert not any(alice.password in o.stdout + o.stderr for o in outputs)
        assert not remote.nowhere.exists()
