"""``/api/secrets``: names and scopes, setting and removing (admin+), and the use audit.

A value travels only in the body of ``PUT /api/secrets/{name}``: it is never answered, logged or
put in an error message (the service's messages never hold it; this route also redacts it from
any error, in every encoding, before the error leaves).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from profiles import CorralError, Redactor, SecretUseRecord
from runtime.api.auth import Authenticated
from runtime.api.schemas import SecretInfo, SecretPut

__all__ = ["router"]

router = APIRouter(prefix="/secrets", tags=["secrets"])

_REDACT_FROM = 8
"""Values this long or longer are redacted from errors; the vault refuses shorter ones with a
message that never quotes them (and redacting one letter would mangle every message)."""


@router.get("", response_model=list[SecretInfo])
async def list_secrets(call: Authenticated) -> list[SecretInfo]:
    """Every secret's name, kind and scope."""
    return [SecretInfo.of(r) for r in await call.rt.services.secrets.list(call.actor)]


@router.get("/uses", response_model=list[SecretUseRecord])
async def secret_uses(
    call: Authenticated,
    run_id: str | None = None,
    secret: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[SecretUseRecord]:
    """Every use of a secret, allowed or refused, newest first (admin+)."""
    return await call.rt.services.secrets.list_uses(call.actor, run_id, limit, secret=secret)


@router.put("/{name}", response_model=SecretInfo)
async def set_secret(name: str, body: SecretPut, call: Authenticated) -> SecretInfo:
    """Store a secret (replacing one of the same name) (admin+)."""
    value = body.value.get_secret_value()
    try:
        record = await call.rt.services.secrets.set(
            call.actor,
            name,
            lambda: value,
            body.domains,
            body.profiles,
            totp=body.kind == "totp",
            fields=body.fields,
        )
    except CorralError as exc:
        if len(value) >= _REDACT_FROM:
            redactor = Redactor()
            redactor.add(value)
            exc.args = (redactor.text(str(exc)),)
        raise
    return SecretInfo.of(record)


@router.delete("/{name}", status_code=204, response_class=Response)
async def remove_secret(name: str, call: Authenticated) -> Response:
    """Delete a secret (admin+)."""
    await call.rt.services.secrets.remove(call.actor, name)
    return Response(status_code=204)
