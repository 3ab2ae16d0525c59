"""Signing in and out: an API token becomes a session cookie (HttpOnly, SameSite=Lax), never
stored in the browser itself; signing out ends the session on the server."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runtime.app import Runtime
from runtime.console.web import COOKIE, PREFIX, SECURITY_HEADERS, Posting, local_path, page
from runtime.errors import AuthError

__all__ = ["router"]

router = APIRouter()

_LOGIN_COOKIE = "corral_login"
"""A random value the sign-in form also carries (a login form another site posts lacks it)."""


def _login_page(request: Request, next_path: str, message: str | None, status: int) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = page(
        None, "login.html.j2", status, next=local_path(next_path), message=message, nonce=nonce
    )
    response.set_cookie(
        _LOGIN_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=f"{PREFIX}/login",
        max_age=3600,
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in page: paste an API token."""
    return _login_page(request, next or "", None, 200)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Exchange an API token for a session cookie; back to the sign-in page with why if not."""
    expected = request.cookies.get(_LOGIN_COOKIE) or ""
    if not expected or not hmac.compare_digest(expected, nonce):
        return _login_page(request, next, "the sign-in form expired; try again", 403)
    rt: Runtime = request.app.state.rt
    try:
        session = await rt.services.users.open_session(token.strip())
    except AuthError as exc:
        # The message names the token's id at most, never its value.
        return _login_page(request, next, rt.redactor.text(str(exc)), 401)
    response = RedirectResponse(local_path(next), status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        COOKIE,
        session.value,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=PREFIX,
        max_age=max(60, int((session.expires_at - rt.services.users.now()).total_seconds())),
    )
    response.delete_cookie(_LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post("/logout")
async def logout(posted: Posting) -> Response:
    """End the session: its cookie no longer works anywhere."""
    viewer = posted.viewer
    await viewer.rt.services.users.close_session(viewer.request.cookies.get(COOKIE, ""))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
