"""The console served for real, and browsers-without-a-browser signed in to it (httpx with the
session cookie): what the console's page tests share."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from runtime import Runtime
from runtime.api import create_app
from runtime.auth import LOCAL_ACTOR, Actor, UserRole
from runtime.serve import WorkerPool
from tests.support.api import serving

__all__ = ["ROOT", "Console", "console_users", "csrf_of", "served_console", "sign_in"]

ROOT = Actor("root", "super_admin")

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a console page's forms carry."""
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Console:
    """A served app (API and console) with users: root (super_admin), ada (admin) and bob
    (user, granted profile ``mine``); profiles ``shop`` and ``mine``."""

    rt: Runtime
    pool: WorkerPool
    url: str
    tokens: dict[str, str]


async def console_users(rt: Runtime) -> dict[str, str]:
    """Create root, ada, bob and the profiles ``shop`` and ``mine`` (bob granted ``mine``)."""
    users = rt.services.users
    tokens = {"root": (await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")).value}
    roles: tuple[tuple[str, UserRole], ...] = (("ada", "admin"), ("bob", "user"))
    for name, role in roles:
        tokens[name] = (await users.add_user_with_token(ROOT, name, role)).value
    for profile in ("shop", "mine"):
        if not await rt.store.profiles.get_profile(profile):
            await rt.services.profiles.create(ROOT, profile)
    await users.grant(ROOT, "bob", "mine")
    return tokens


@asynccontextmanager
async def served_console(rt: Runtime, workers: int = 2) -> AsyncIterator[Console]:
    """The app served on a free port, with the users of :func:`console_users`."""
    tokens = await console_users(rt)
    pool = WorkerPool(rt, workers)
    try:
        async with serving(create_app(rt, pool)) as url:
            yield Console(rt, pool, url, tokens)
    finally:
        await pool.drain(0)


@asynccontextmanager
async def sign_in(url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client signed in to the console with ``token``."""
    async with httpx.AsyncClient(base_url=url, follow_redirects=False) as http:
        form = await http.get("/console/login")
        nonce = _NONCE.search(form.text)
        assert nonce, form.text
        answer = await http.post(
            "/console/login", data={"token": token, "nonce": nonce.group(1), "next": ""}
        )
        assert answer.status_code == 303, answer.text
        yield http
