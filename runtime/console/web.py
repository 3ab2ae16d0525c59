"""The console's plumbing: templates, who is signed in, CSRF, security headers, HTML errors.

A page route takes a :data:`Viewing` parameter (the signed-in :class:`Viewer`; without a valid
session the browser is sent to the sign-in page), calls the service layer as ``viewer.actor``
(authorization is the services' business, exactly as for the API and the CLI) and answers
:func:`page`. A form route takes :data:`Posting` instead: the same, once the form's CSRF token
matched the session's. Every template autoescapes: whatever came from a web page (titles,
names, extracted data, summaries) is text, never markup; the Content-Security-Policy allows no
inline script, so even a missed escape could not run one.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from profiles import CorralError
from runtime.app import Runtime
from runtime.auth import ROLES, Actor
from runtime.errors import AuthError, PermissionDeniedError
from runtime.review.replay import seconds_text, usd, when
from runtime.serve import WorkerPool

__all__ = [
    "COOKIE",
    "PREFIX",
    "SECURITY_HEADERS",
    "HtmlErrors",
    "Posted",
    "Posting",
    "Viewer",
    "Viewing",
    "local_path",
    "page",
    "templates",
]

PREFIX = "/console"
COOKIE = "corral_session"
"""The session cookie: HttpOnly, SameSite=Lax, Path=/console (Secure behind HTTPS)."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every console page: no inline script, no framing, nothing cached."""


def _when(value: datetime | str | None) -> str:
    return when(
        datetime.fromisoformat(value) if isinstance(value, str) and value else value or None
    )


def _json(value: Any) -> str:
    """Pretty JSON as text (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader("runtime.console", "templates"),
                jinja2.PackageLoader("runtime.review", "templates"),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, usd=usd, duration=seconds_text, pretty_json=_json)
    env.globals.update(PREFIX=PREFIX)
    return env


templates = _environment()
"""Every console template (and the replay's, which the run page includes); autoescaped."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page: the runtime, the worker pool, the signed-in actor and the
    session's CSRF token (every form carries it)."""

    request: Request
    rt: Runtime
    pool: WorkerPool
    actor: Actor
    csrf: str

    @property
    def is_admin(self) -> bool:
        """Admins decide approvals and see every run; the page shows their controls."""
        return self.actor.level >= ROLES["admin"]


async def _viewer(request: Request) -> Viewer:
    rt: Runtime = request.app.state.rt
    session = await rt.services.users.session(request.cookies.get(COOKIE))
    return Viewer(request, rt, request.app.state.pool, session.actor, session.csrf)


Viewing = Annotated[Viewer, Depends(_viewer)]
"""The parameter of every page route: the signed-in viewer (else: to the sign-in page)."""


@dataclass(frozen=True)
class Posted:
    """A form sent by the signed-in viewer, its CSRF token checked."""

    viewer: Viewer
    form: FormData

    def field(self, name: str) -> str:
        """A text field of the form ('' when absent)."""
        value = self.form.get(name)
        return value if isinstance(value, str) else ""


def same_origin(request: Request) -> bool:
    """The request comes from a page of this server (when the browser says where from)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None  # a browser always sends one on a form POST; "null" is opaque
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


async def _posted(request: Request, viewer: Viewing) -> Posted:
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, viewer.csrf):
        raise PermissionDeniedError("the form's CSRF token is missing or wrong; reload the page")
    if not same_origin(request):
        raise PermissionDeniedError("a form from another site; reload the page and try again")
    return Posted(viewer, form)


Posting = Annotated[Posted, Depends(_posted)]
"""The parameter of every form route: the viewer's form, its CSRF token checked."""


def page(viewer: Viewer | None, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render template ``name`` for ``viewer`` (None: signed out) with the console's headers."""
    html = templates.get_template(name).render(
        viewer=viewer,
        actor=viewer.actor if viewer else None,
        csrf=viewer.csrf if viewer else "",
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def local_path(target: str | None, default: str = f"{PREFIX}/runs") -> str:
    """``target`` if it is a path of the console (never another site: no open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/"):
        return default
    if "\\" in target or target.startswith("//"):
        return default
    return target


class HtmlErrors:
    """corral's errors on console paths, as pages: signed out -> the sign-in page (then back);
    403, 404, 409, 422 -> a page saying why; messages redacted like the API's."""

    prefix = PREFIX

    async def answer(self, request: Request, exc: CorralError, status: int) -> Response:
        """The page (or redirect) for ``exc`` at ``status``."""
        rt: Runtime = request.app.state.rt
        message = rt.redactor.text(str(exc))
        if isinstance(exc, AuthError) and request.method == "GET":
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(
                f"{PREFIX}/login?next={quote(local_path(here), safe='/')}", status_code=303
            )
            response.delete_cookie(COOKIE, path=PREFIX)
            return response
        return page(None, "error.html.j2", status, status=status, message=message)
