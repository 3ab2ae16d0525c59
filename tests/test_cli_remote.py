"""The CLI through ``CORRAL_SERVER``: the same commands and output, the server's store and key,
none on the client's side; auth failures keep their exit codes; commands that need the files say
so. The server is the real HTTP API on loopback; the CLI runs in-process (click's runner)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime import Runtime, Settings
from runtime.api import create_app
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.errors import EXIT_BAD_INPUT, PermissionDeniedError, exit_code_for
from runtime.serve import WorkerPool
from tests.support.api import serving
from tests.support.cli import Outcome, corral
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


@pytest.fixture
async def remote(settings: Settings, tmp_path: Path) -> AsyncIterator[Remote]:
    async with Runtime.open(settings) as rt:
        users = rt.services.users
        admin = await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
        root = Actor("root", "super_admin")
        user = await users.add_user_with_token(root, "bob", "user")
        await rt.services.profiles.create(root, "shop")
        pool = WorkerPool(rt, 1)
        async with serving(create_app(rt, pool)) as url:
            yield Remote(rt, url, admin.value, user.value, tmp_path / "client-home")
            await pool.drain(0)


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
        ("demo",),
    ],
)
async def test_commands_that_need_the_files_say_so(remote: Remote, args: tuple[str, ...]) -> None:
    out = await remote.cli(*args)
    assert out.returncode == EXIT_BAD_INPUT
    assert "CORRAL_SERVER" in out.stderr and "server host" in out.stderr
    assert not remote.nowhere.exists()
