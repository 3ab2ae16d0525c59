"""``corral profiles ...``: create, list, show, delete, export, import, clear."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError
from rich.table import Table

from profiles import ProfileSettings, describe_errors
from runtime.api.schemas import ProfileInfo
from runtime.app import Runtime
from runtime.cli.common import (
    cli_actor,
    out_console,
    parse_pairs,
    print_json,
    read_hidden,
    run_async,
    with_runtime,
)
from runtime.cli.remote import either, local_only, require_admin

if TYPE_CHECKING:
    # The HTTP client loads only when the command goes to a server.
    from runtime.client import ApiClient

__all__ = ["profiles_group"]


def _profile_json(info: ProfileInfo) -> dict[str, Any]:
    """A profile as printed, here or from a server (never its state or proxy password)."""
    return {
        "name": info.name,
        "settings": info.settings.model_dump(mode="json", exclude={"proxy": {"password"}}),
        "created_at": info.created_at.isoformat(),
        "has_state": info.has_state,
        "state_saved_at": info.state_saved_at.isoformat() if info.state_saved_at else None,
        "leased_by": info.leased_by,
    }


@click.group("profiles")
def profiles_group() -> None:
    """Isolated browser identities."""


@profiles_group.command("create")
@click.argument("name")
@click.option(
    "--mode",
    type=click.Choice(["state", "persistent"]),
    default="state",
    help="state: a context in a shared browser; persistent: its own user-data dir",
)
@click.option("--user-agent")
@click.option("--viewport", help="WIDTHxHEIGHT, e.g. 1280x800")
@click.option("--locale", help="e.g. en-GB")
@click.option("--timezone", help="IANA name, e.g. Europe/Berlin")
@click.option("--geolocation", help="LAT,LON")
@click.option("--color-scheme", type=click.Choice(["light", "dark", "no-preference"]))
@click.option("--proxy", help="proxy server URL, e.g. http://proxy:3128")
@click.option(
    "--allowed-domain",
    "allowed",
    multiple=True,
    help="a host this profile may reach (repeat); every other host is blocked for its runs",
)
@click.option("--var", "vars_", multiple=True, help="NAME=VALUE available as {{var:NAME}}")
def create(
    name: str,
    mode: str,
    user_agent: str | None,
    viewport: str | None,
    locale: str | None,
    timezone: str | None,
    geolocation: str | None,
    color_scheme: str | None,
    proxy: str | None,
    allowed: tuple[str, ...],
    vars_: tuple[str, ...],
) -> None:
    """Create a profile."""
    data: dict[str, Any] = {"mode": mode, "vars": parse_pairs(vars_, "--var")}
    if allowed:
        data["allowed_domains"] = list(allowed)
    for key, value in (
        ("user_agent", user_agent),
        ("locale", locale),
        ("timezone", timezone),
        ("color_scheme", color_scheme),
    ):
        if value is not None:
            data[key] = value
    if viewport:
        width, _, height = viewport.lower().partition("x")
        data["viewport"] = {"width": width, "height": height}
    if geolocation:
        lat, _, lon = geolocation.partition(",")
        data["geolocation"] = {"latitude": lat, "longitude": lon}
    if proxy:
        data["proxy"] = {"server": proxy}
    try:
        settings = ProfileSettings.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(describe_errors(exc, top=""))
        raise click.UsageError(f"profile settings: {detail}") from exc

    async def local(rt: Runtime) -> ProfileInfo:
        record = await rt.services.profiles.create(await cli_actor(rt), name, settings)
        return ProfileInfo.of(record)

    async def remote(client: ApiClient) -> ProfileInfo:
        return await client.create_profile(name, settings)

    info = either(local, remote)
    click.echo(f"created profile {info.name} (mode {info.settings.mode})")


@profiles_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_(as_json: bool) -> None:
    """List profiles."""

    async def local(rt: Runtime) -> tuple[str, list[ProfileInfo]]:
        entries = await rt.services.profiles.list(await cli_actor(rt))
        return str(rt.settings.home), [ProfileInfo.of(r, lease) for r, lease in entries]

    async def remote(client: ApiClient) -> tuple[str, list[ProfileInfo]]:
        return client.base_url, await client.list_profiles()

    where, infos = either(local, remote)
    if as_json:
        print_json([_profile_json(i) for i in infos])
        return
    table = Table(title=f"profiles in {where}")
    for col in ("name", "mode", "saved state", "leased by", "vars"):
        table.add_column(col)
    for i in infos:
        table.add_row(
            i.name,
            i.settings.mode,
            i.state_saved_at.strftime("%Y-%m-%d %H:%M") if i.state_saved_at else "none",
            i.leased_by or "",
            ", ".join(sorted(i.settings.vars)),
        )
    out_console().print(table)


@profiles_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def show(name: str, as_json: bool) -> None:
    """Show a profile's settings (never its saved cookies)."""

    async def local(rt: Runtime) -> ProfileInfo:
        return ProfileInfo.of(*await rt.services.profiles.show(await cli_actor(rt), name))

    async def remote(client: ApiClient) -> ProfileInfo:
        return await client.show_profile(name)

    data = _profile_json(either(local, remote))
    if as_json:
        print_json(data)
        return
    out_console().print_json(data=data)


@profiles_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def delete(name: str, yes: bool) -> None:
    """Delete a profile and its saved state."""

    def confirm() -> None:
        click.confirm(f"delete profile {name} and its saved state?", abort=True)

    async def local(rt: Runtime) -> None:
        await rt.services.profiles.delete(await cli_actor(rt), name, None if yes else confirm)

    async def remote(client: ApiClient) -> None:
        # Who may delete, and that it exists, before anyone is asked.
        await require_admin(client, "delete profiles")
        await client.show_profile(name)
        if not yes:
            confirm()
        await client.delete_profile(name)

    either(local, remote)
    click.echo(f"deleted profile {name}")


@profiles_group.command("clear")
@click.argument("name")
def clear(name: str) -> None:
    """Forget a profile's saved state (cookies, storage): the next run starts logged out."""

    async def local(rt: Runtime) -> None:
        await rt.services.profiles.clear(await cli_actor(rt), name)

    async def remote(client: ApiClient) -> None:
        await client.clear_profile(name)

    either(local, remote)
    click.echo(f"cleared the saved state of {name}")


@profiles_group.command("export")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--with-state",
    is_flag=True,
    help="include the saved state, sealed under a passphrase read from stdin/prompt",
)
def export(name: str, output: Path, with_state: bool) -> None:
    """Export a profile to a file (settings; state only with --with-state)."""
    local_only()

    async def body(rt: Runtime) -> None:
        def passphrase() -> str:
            # Asked by the service only once the actor may export.
            text = read_hidden("passphrase for the bundle", confirm=True)
            if not text:
                raise click.UsageError("an empty passphrase is not allowed")
            return text

        await rt.services.profiles.export(
            await cli_actor(rt), name, output, passphrase if with_state else None
        )
        click.echo(f"exported profile {name} to {output}")

    run_async(lambda: with_runtime(body))


@profiles_group.command("import")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="import under another name")
def import_(bundle: Path, name: str | None) -> None:
    """Import a profile bundle (asks for its passphrase if it holds sealed state or a proxy
    password)."""
    local_only()
    try:
        data = bundle.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"{bundle}: cannot read: {exc.strerror}") from exc

    async def body(rt: Runtime) -> None:
        def passphrase() -> str:
            # Asked by the service only when the bundle holds a sealed part, and the actor may
            # import it.
            return read_hidden("passphrase of the bundle")

        record = await rt.services.profiles.import_(
            await cli_actor(rt), data, str(bundle), passphrase, name
        )
        click.echo(f"imported profile {record.name}")

    run_async(lambda: with_runtime(body))
