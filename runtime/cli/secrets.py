"""``corral secrets ...`` and ``corral vault rotate-key``.

Secret values are read from stdin (piped) or a hidden prompt, never from argv or the environment:
there is no option that takes a value.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from profiles import SecretUseRecord, secret_use
from runtime.api.schemas import SecretInfo
from runtime.app import Runtime
from runtime.cli.common import (
    cli_actor,
    out_console,
    print_json,
    read_hidden,
    run_async,
    with_runtime,
)
from runtime.cli.remote import either, local_only, require_admin

if TYPE_CHECKING:
    # The HTTP client loads only when the command goes to a server.
    from runtime.client import ApiClient

__all__ = ["secrets_group", "vault_group"]


@click.group("secrets")
def secrets_group() -> None:
    """The credential vault: scoped, encrypted secrets."""


@secrets_group.command("set")
@click.argument("name")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    required=True,
    help="origin where it may be typed: https://host[:port], http://host:port, host, "
    "or *.example.com (repeatable)",
)
@click.option("--profile", "profiles", multiple=True, help="bind to this profile (repeatable)")
@click.option("--totp", is_flag=True, help="the value is a TOTP seed (base32); codes at fill time")
@click.option(
    "--field",
    "fields",
    multiple=True,
    help="label, name, id or placeholder of a field it may be typed into (repeatable); "
    "without --field a value is a password, typed only into password inputs",
)
@click.argument("stray", nargs=-1)
def set_(
    name: str,
    domains: tuple[str, ...],
    profiles: tuple[str, ...],
    totp: bool,
    fields: tuple[str, ...],
    stray: tuple[str, ...],
) -> None:
    """Store a secret; its value is read from stdin or a hidden prompt.

    Where it may be typed: a password (no --field) only into password inputs; with --field only
    into those fields; a TOTP seed's codes only into one-time-code fields (or its --field ones).
    """
    if stray:
        # Never echo it back: it may be the very value that must not be on a command line.
        raise click.UsageError(
            "secret values are never taken from the command line; pipe the value on stdin "
            "or type it at the prompt (and consider this one exposed: rotate it)"
        )

    prompt = "TOTP seed (base32)" if totp else f"value of {name}"

    def value() -> str:
        return read_hidden(prompt, confirm=sys.stdin.isatty())

    async def local(rt: Runtime) -> SecretInfo:
        # Read by the service only once the actor may set it, so nobody types a secret just to
        # be refused.
        record = await rt.services.secrets.set(
            await cli_actor(rt), name, value, domains, profiles, totp, fields
        )
        return SecretInfo.of(record)

    async def remote(client: ApiClient) -> SecretInfo:
        # What the server would refuse is refused before anyone types the value.
        await require_admin(client, "set secrets")
        for profile in profiles:
            await client.show_profile(profile)
        # The value travels only in the request body, over the server's URL.
        return await client.set_secret(name, value(), domains, profiles, totp=totp, fields=fields)

    info = either(local, remote)
    scope = ", ".join(info.domains)
    bound = f"; profiles {', '.join(info.profiles)}" if info.profiles else ""
    click.echo(
        f"stored secret {info.name} ({info.kind}) for {scope}{bound}; "
        f"typed only into {secret_use(info)}"
    )


@secrets_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """Names, kinds, fields, scopes and use times of the secrets (never values)."""

    async def local(rt: Runtime) -> list[SecretInfo]:
        return [SecretInfo.of(r) for r in await rt.services.secrets.list(await cli_actor(rt))]

    async def remote(client: ApiClient) -> list[SecretInfo]:
        return await client.list_secrets()

    rows: list[dict[str, Any]] = [
        {
            "name": r.name,
            "kind": r.kind,
            "domains": r.domains,
            "profiles": r.profiles,
            "fields": r.fields,
            "typed_into": secret_use(r),
            "created_at": r.created_at.isoformat(),
            "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
        }
        for r in either(local, remote)
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="secrets")
    for col in ("name", "kind", "typed into", "domains", "profiles", "created", "last used"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            row["typed_into"],
            "\n".join(row["domains"]),
            ", ".join(row["profiles"]) or "any",
            str(row["created_at"])[:16],
            str(row["last_used_at"] or "never")[:16],
        )
    out_console().print(table)


@secrets_group.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Delete a secret."""

    async def local(rt: Runtime) -> None:
        await rt.services.secrets.remove(await cli_actor(rt), name)

    async def remote(client: ApiClient) -> None:
        await client.remove_secret(name)

    either(local, remote)
    click.echo(f"deleted secret {name}")


@secrets_group.command("audit")
@click.option("--run", "run_id", help="only this run")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def audit_uses(run_id: str | None, limit: int, as_json: bool) -> None:
    """Every use of a secret, allowed or refused, newest first."""

    async def local(rt: Runtime) -> list[SecretUseRecord]:
        return await rt.services.secrets.list_uses(await cli_actor(rt), run_id, limit)

    async def remote(client: ApiClient) -> list[SecretUseRecord]:
        return await client.secret_uses(run_id, limit=limit)

    entries = either(local, remote)
    if as_json:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    table = Table(title="secret use")
    for col in ("when", "run", "step", "secret", "origin", "allowed", "reason"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e.at.isoformat()[:19],
            e.run_id,
            "" if e.step_idx is None else str(e.step_idx + 1),
            e.secret,
            e.origin,
            "yes" if e.allowed else "NO",
            e.reason or "",
        )
    out_console().print(table)


@click.group("vault")
def vault_group() -> None:
    """The master key."""


@vault_group.command("rotate-key")
def rotate() -> None:
    """Re-encrypt every secret and saved profile state under a new master key (crash-safe)."""
    local_only()

    async def body(rt: Runtime) -> None:
        # With CORRAL_MASTER_KEY set the service asks for the new key (once the actor may).
        report = await rt.services.keys.rotate(
            await cli_actor(rt), lambda: read_hidden("new master key (base64 or hex)")
        )
        click.echo(
            f"rotated to key {report.new_fingerprint}: {report.rows_resealed} stored item(s) "
            f"and {report.archives_resealed} user-data archive(s) re-encrypted"
        )
        if report.key_file is None:
            click.echo(
                "now set CORRAL_MASTER_KEY to the new key (and unset CORRAL_MASTER_KEY_PREVIOUS)"
            )

    run_async(lambda: with_runtime(body))
