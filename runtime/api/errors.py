"""corral's errors as HTTP answers, and every unexpected failure as a bare 500.

=====================================  ======  ==========================================
error                                  status  body
=====================================  ======  ==========================================
AuthError                              401     ``{"detail", "error"}``, ``WWW-Authenticate``
PermissionDeniedError                  403     ``{"detail", "error"}``
a not-found error (run, approval, ...)  404     ``{"detail", "error"}``
ApprovalError, ProfileExistsError      409     ``{"detail", "error"}``
an invalid body, query or path         422     ``{"detail": [{"loc", "msg", "type"}]}``
any other UserError (bad input)        422     ``{"detail", "error"}``
ServerDrainingError, StoreBusyError    503     ``{"detail", "error"}``
any other RunError                     500     ``{"detail", "error"}``
anything else                          500     ``{"detail": "internal server error"}``
=====================================  ======  ==========================================

``error`` is the name of corral's error class, so the client raises the same one (and the CLI
exits with the same code as in local mode). Messages pass through the runtime's redactor; a
validation error never echoes the input (a secret's value travels in a body). Unexpected
exceptions are logged, redacted, and answered without any detail.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from profiles import (
    CorralError,
    ProfileExistsError,
    ProfileNotFoundError,
    RedactorGroup,
    UnknownSecretError,
    UserError,
)
from runtime.errors import (
    ApprovalError,
    ApprovalNotFoundError,
    AuthError,
    PermissionDeniedError,
    RunNotFoundError,
    ScheduleNotFoundError,
    ServerDrainingError,
    StoreBusyError,
)

__all__ = ["NOT_FOUND", "install_error_handlers", "status_for"]

log = logging.getLogger("runtime.api")

NOT_FOUND: tuple[type[CorralError], ...] = (
    RunNotFoundError,
    ApprovalNotFoundError,
    ProfileNotFoundError,
    UnknownSecretError,
    ScheduleNotFoundError,
)
"""Errors that mean "no such thing" (404); a router with its own adds it here."""

_STATUS: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((AuthError,), 401),
    ((PermissionDeniedError,), 403),
    ((ApprovalError, ProfileExistsError), 409),
    ((UserError,), 422),
    ((ServerDrainingError, StoreBusyError), 503),
)


def status_for(exc: CorralError) -> int:
    """The HTTP status of a corral error (first match; not-found before its parents)."""
    if isinstance(exc, NOT_FOUND):
        return 404
    return next((code for classes, code in _STATUS if isinstance(exc, classes)), 500)


def _redactor(request: Request) -> RedactorGroup:
    return request.app.state.rt.redactor  # type: ignore[no-any-return]


async def _corral_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CorralError)
    status = status_for(exc)
    pages = getattr(request.app.state, "html_errors", None)
    if pages is not None and request.url.path.startswith(pages.prefix):
        return await pages.answer(request, exc, status)  # type: ignore[no-any-return]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"detail": _redactor(request).text(str(exc)), "error": type(exc).__name__}
    return JSONResponse(body, status_code=status, headers=headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and what: pydantic's "input" (and "ctx") could hold a secret's value.
    detail: list[dict[str, Any]] = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


class _Contained:
    """Turns an exception no handler took into a bare 500, logged redacted.

    Starlette's own last-resort handler re-raises after answering, and the server then logs the
    traceback unredacted; this middleware sits inside it and never lets one through.
    """

    def __init__(self, app: ASGIApp, redactor: RedactorGroup) -> None:
        self.app = app
        self.redactor = redactor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            details = "".join(traceback.format_exception(exc))
            where = f"{scope.get('method')} {scope.get('path')}"
            log.error(self.redactor.text(f"{where} failed unexpectedly: {details}"))
            if not started:
                response = JSONResponse({"detail": "internal server error"}, status_code=500)
                await response(scope, receive, send)


def install_error_handlers(app: FastAPI, redactor: RedactorGroup) -> None:
    """Answer corral's errors with their status, and contain everything else."""
    app.add_exception_handler(CorralError, _corral_error)  # the console's pages answer in HTML
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(_Contained, redactor=redactor)
