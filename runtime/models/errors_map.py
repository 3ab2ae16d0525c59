"""Translate SDK exceptions into corral's :class:`ModelError` hierarchy at the adapter boundary.

Both SDKs raise the same shapes (a timeout, a connection failure, or a status error carrying the
HTTP response), so one status table serves both::

    APITimeoutError, HTTP 408           -> ModelTimeoutError
    APIConnectionError, HTTP 409, 5xx   -> ModelUnavailableError
    HTTP 401, 403                       -> ModelAuthError
    HTTP 429                            -> ModelRateLimitError
    any other 4xx (400, 404, 413, 422)  -> ModelRequestError (not retryable: resending won't help)
    response that fails validation      -> InvalidModelOutputError

Messages name ``provider:model`` and the status, and quote the provider's own explanation with
anything that looks like a key masked: providers echo (partly masked) keys back on a 401.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import anthropic
import openai

from runtime.models.types import (
    InvalidModelOutputError,
    ModelAuthError,
    ModelError,
    ModelRateLimitError,
    ModelRequestError,
    ModelTimeoutError,
    ModelUnavailableError,
)

__all__ = ["ModelRequestError", "from_anthropic_error", "from_openai_error", "redact"]

# OpenAI-style keys (sk-..., sk-proj-..., sk-ant-...), also when echoed partly masked with '*'.
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{3,}")
_MAX_DETAIL = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, and anything shaped like an API key, masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _detail(body: object) -> str:
    """The provider's human-readable explanation from an error body, if it has one."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str):
                return message
        elif isinstance(error, str):
            return error
    elif isinstance(body, str):
        return body
    return ""


def _status_error(
    status: int, detail: str, request_id: str | None, *, provider: str, model: str
) -> ModelError:
    label = f"{provider}:{model}"
    suffix = f": {detail[:_MAX_DETAIL]}" if detail else ""
    if request_id:
        suffix += f" (request id {request_id})"
    cls: type[ModelError]
    if status in (401, 403):
        cls, what = ModelAuthError, "refused the credentials"
    elif status == 429:
        cls, what = ModelRateLimitError, "rate limited the request"
    elif status == 408:
        cls, what = ModelTimeoutError, "timed out the request"
    elif status == 409 or status >= 500:
        cls, what = ModelUnavailableError, "is unavailable"
    else:
        cls, what = ModelRequestError, "rejected the request"
    return cls(f"{label} {what} (HTTP {status}){suffix}", provider=provider, model=model)


def _translate(
    exc: Exception,
    *,
    status: int | None,
    body: object,
    request_id: str | None,
    timeout: bool,
    connection: bool,
    validation: bool,
    provider: str,
    model: str,
    secrets: Iterable[str],
) -> ModelError:
    label = f"{provider}:{model}"
    secrets = tuple(secrets)
    if validation:
        return InvalidModelOutputError(
            f"{label} answered with a body that does not match the API schema"
            + (f" (HTTP {status})" if status is not None else ""),
            provider=provider,
            model=model,
        )
    if status is not None:
        detail = redact(_detail(body), secrets)
        return _status_error(status, detail, request_id, provider=provider, model=model)
    if timeout:
        return ModelTimeoutError(f"{label} did not answer in time", provider=provider, model=model)
    if connection:
        cause = exc.__cause__
        reason = redact(f": {type(cause).__name__}: {cause}", secrets) if cause else ""
        return ModelUnavailableError(
            f"{label} could not be reached{reason}", provider=provider, model=model
        )
    return ModelError(
        redact(f"{label} request failed: {type(exc).__name__}: {exc}", secrets),
        provider=provider,
        model=model,
    )


def from_openai_error(
    exc: openai.OpenAIError, *, provider: str, model: str, secrets: Iterable[str] = ()
) -> ModelError:
    """The corral error for an exception raised by the ``openai`` SDK."""
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    return _translate(
        exc,
        status=status,
        body=exc.body if isinstance(exc, openai.APIError) else None,
        request_id=exc.request_id if isinstance(exc, openai.APIStatusError) else None,
        timeout=isinstance(exc, openai.APITimeoutError),
        connection=isinstance(exc, openai.APIConnectionError),
        validation=isinstance(exc, openai.APIResponseValidationError),
        provider=provider,
        model=model,
        secrets=secrets,
    )


def from_anthropic_error(
    exc: anthropic.AnthropicError, *, provider: str, model: str, secrets: Iterable[str] = ()
) -> ModelError:
    """The corral error for an exception raised by the ``anthropic`` SDK."""
    status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else None
    return _translate(
        exc,
        status=status,
        body=exc.body if isinstance(exc, anthropic.APIError) else None,
        request_id=exc.request_id if isinstance(exc, anthropic.APIStatusError) else None,
        timeout=isinstance(exc, anthropic.APITimeoutError),
        connection=isinstance(exc, anthropic.APIConnectionError),
        validation=isinstance(exc, anthropic.APIResponseValidationError),
        provider=provider,
        model=model,
        secrets=secrets,
    )
