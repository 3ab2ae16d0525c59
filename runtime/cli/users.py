"""``corral users ...``, ``corral tokens ...`` and ``corral audit``.

A token's value is printed exactly once, on stdout, by the command that creates it; lists, the
audit log and error messages only ever show its short public id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

import click
from rich.table import Table

from runtime.app import Runtime
from runtime.auth import ROLES, Actor, TokenRecord, UserRole
from runtime.cli.common import cli_actor, out_console, print_json, run_async, with_runtime
from runtime.services import UserService

__all__ = ["audit_command", "parse_ttl", "tokens_group", "users_group"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_TTL_RE = re.compile(r"(\d+)([smhd])")
_ROLE = click.Choice(list(ROLES))


def parse_ttl(text: str) -> float:
    """``30d``, ``12h``, ``15m`` or ``3600s`` in seconds; ValueError otherwise."""
    m = _TTL_RE.fullmatch(text.strip().lower())
    if not m or int(m[1]) == 0:
        raise ValueError(f"{text!r}: expected a positive duration like 30d, 12h, 15m or 3600s")
    return float(int(m[1]) * _UNITS[m[2]])


class _Duration(click.ParamType[float, Any]):
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_ttl(str(value))
        except ValueError as exc:
            # click names the flag: "Invalid value for '--ttl': ..."
            self.fail(str(exc), param, ctx)


DURATION = _Duration()


def _when(value: datetime | None, empty: str = "") -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else empty


def _change(do: Callable[[UserService, Actor], Awaitable[None]], done: str) -> None:
    """Make one change through the user service as the CLI's actor, then say what was done."""

    async def body(rt: Runtime) -> None:
        await do(rt.services.users, await cli_actor(rt))
        click.echo(done)

    run_async(lambda: with_runtime(body))


def _print_new_token(record: TokenRecord, plain: str, note: str = "") -> None:
    click.echo(
        f"warning: API token {record.id} of {record.user} (expires {_when(record.expires_at)}) "
        f"is printed below once and will not be shown again{note}",
        err=True,
    )
    click.echo(plain)


def _capped(actor: Actor, record: TokenRecord) -> str:
    """A note when the default lifetime was shortened to the acting token's expiry."""
    if actor.token_expires_at is not None and record.expires_at == actor.token_expires_at:
        return f"; it expires with API token {actor.token_id}, which created it"
    return ""


# --- users ------------------------------------------------------------------------------------


@click.group("users")
def users_group() -> None:
    """Users, their roles and the profiles granted to them."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=_ROLE, required=True, help="user, admin or super_admin")
@click.option(
    "--token-ttl",
    type=DURATION,
    help="first token's lifetime [default: 30d, or what is left of the token you act with]",
)
def users_add(name: str, role: str, token_ttl: float | None) -> None:
    """Add a user and print their first API token (once)."""

    async def body(rt: Runtime) -> None:
        actor = await cli_actor(rt)
        new = await rt.services.users.add_user_with_token(
            actor, name, cast(UserRole, role), token_ttl
        )
        note = "; from now on every corral command needs CORRAL_TOKEN" if new.first else ""
        _print_new_token(new.token, new.value, note + _capped(actor, new.token))

    run_async(lambda: with_runtime(body))


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def users_list(as_json: bool) -> None:
    """Users, roles, grants and whether they are disabled."""

    async def body(rt: Runtime) -> None:
        users = await rt.services.users.list_users(await cli_actor(rt))
        if as_json:
            print_json([u.model_dump(mode="json") for u in users])
            return
        table = Table(title="users")
        for col in ("name", "role", "profiles", "created", "disabled"):
            table.add_column(col)
        for u in users:
            table.add_row(
                u.name,
                u.role,
                ", ".join(u.profiles),
                _when(u.created_at),
                _when(u.disabled_at),
            )
        out_console().print(table)

    run_async(lambda: with_runtime(body))


@users_group.command("role")
@click.argument("name")
@click.argument("role", type=_ROLE)
def users_role(name: str, role: str) -> None:
    """Change a user's role."""

    _change(
        lambda users, actor: users.set_role(actor, name, cast(UserRole, role)),
        f"{name} is now {role}",
    )


@users_group.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable a user and revoke all their tokens."""

    _change(
        lambda users, actor: users.disable_user(actor, name),
        f"disabled {name} and revoked their tokens",
    )


@users_group.command("grant")
@click.argument("name")
@click.argument("profile")
def users_grant(name: str, profile: str) -> None:
    """Let a user run tasks on a profile."""

    _change(
        lambda users, actor: users.grant(actor, name, profile),
        f"granted profile {profile} to {name}",
    )


@users_group.command("revoke")
@click.argument("name")
@click.argument("profile")
def users_revoke(name: str, profile: str) -> None:
    """Take a profile away from a user."""

    _change(
        lambda users, actor: users.revoke_grant(actor, name, profile),
        f"revoked profile {profile} from {name}",
    )


# --- tokens -----------------------------------------------------------------------------------


@click.group("tokens")
def tokens_group() -> None:
    """API tokens (CORRAL_TOKEN): random, stored hashed, expiring, revocable."""


@tokens_group.command("create")
@click.argument("user")
@click.option(
    "--ttl",
    type=DURATION,
    help="lifetime [default: 30d, or what is left of the token you act with]",
)
def tokens_create(user: str, ttl: float | None) -> None:
    """Create a token for USER (yourself, or anyone as super_admin) and print it once."""

    async def body(rt: Runtime) -> None:
        actor = await cli_actor(rt)
        record, plain = await rt.services.users.create_token(actor, user, ttl)
        _print_new_token(record, plain, _capped(actor, record))

    run_async(lambda: with_runtime(body))


@tokens_group.command("list")
@click.option("--user", help="only this user's tokens")
@click.option("--json", "as_json", is_flag=True)
def tokens_list(user: str | None, as_json: bool) -> None:
    """Token ids, owners and times (never values); users see their own."""

    async def body(rt: Runtime) -> None:
        tokens = await rt.services.users.list_tokens(await cli_actor(rt), user)
        now = rt.services.users.now()
        if as_json:
            print_json([{**t.model_dump(mode="json"), "status": t.status(now)} for t in tokens])
            return
        table = Table(title="API tokens")
        for col in ("id", "user", "status", "created", "expires", "last used"):
            table.add_column(col)
        for t in tokens:
            table.add_row(
                t.id,
                t.user,
                t.status(now),
                _when(t.created_at),
                _when(t.expires_at),
                _when(t.last_used_at, "never"),
            )
        out_console().print(table)

    run_async(lambda: with_runtime(body))


@tokens_group.command("revoke")
@click.argument("token_id", metavar="ID")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id (your own, or anyone's as super_admin)."""

    _change(lambda users, actor: users.revoke_token(actor, token_id), f"revoked token {token_id}")


# --- audit ------------------------------------------------------------------------------------


@click.command("audit")
@click.option("--limit", default=50, show_default=True, help="newest N rows")
@click.option("--action", help="only this action, or a family of them (e.g. token)")
@click.option("--json", "as_json", is_flag=True)
@click.option("--verify", is_flag=True, help="check the whole hash chain instead of listing")
def audit_command(limit: int, action: str | None, as_json: bool, verify: bool) -> None:
    """The append-only audit log: who decided what, and when (admin)."""

    async def body(rt: Runtime) -> None:
        actor = await cli_actor(rt)
        if verify:
            count = await rt.services.audit.verify(actor)
            click.echo(f"audit log intact: {count} row(s) verified")
            return
        entries = await rt.services.audit.list(actor, limit, action)
        if as_json:
            print_json([e.model_dump(mode="json") for e in entries])
            return
        table = Table(title="audit log")
        for col in ("#", "when", "actor", "role", "action", "subject", "detail"):
            table.add_column(col)
        for e in entries:
            table.add_row(
                str(e.id),
                e.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.role,
                e.action,
                e.subject,
                json.dumps(e.detail, ensure_ascii=False) if e.detail else "",
            )
        out_console().print(table)

    run_async(lambda: with_runtime(body))
