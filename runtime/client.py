"""The typed HTTP client of ``corral serve``: one method per route, corral's records back.

The CLI uses it when ``CORRAL_SERVER`` (and ``CORRAL_TOKEN``) are set, so that only the server
opens the store and the master key. An error answer becomes the same corral error the service
raised on the server (the body names its class), falling back on the status: 401
:class:`AuthError`, 403 :class:`PermissionDeniedError`, 404 a not-found error, 409
:class:`ApprovalError`, 422 :class:`UserError`, 503 :class:`ServerDrainingError`; a server that
cannot be reached is a :class:`UserError` naming ``CORRAL_SERVER``. So every command exits with
the same code as in local mode. The token never appears in a message.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import httpx
from pydantic import TypeAdapter

from profiles import (
    CorralError,
    InvalidAllowlistError,
    InvalidProfileError,
    ProfileExistsError,
    ProfileNotFoundError,
    ProfileSettings,
    RunError,
    SecretUseRecord,
    UnknownSecretError,
    UserError,
)
from runtime.api.schemas import (
    CancelResult,
    Health,
    ProfileInfo,
    RunDetailOut,
    RunPending,
    SecretInfo,
    SubmittedRun,
    WhoAmI,
)
from runtime.approvals import ApprovalRequest
from runtime.errors import (
    ApprovalError,
    ApprovalNotFoundError,
    AuthError,
    PermissionDeniedError,
    PolicyFileError,
    RunNotFoundError,
    ScheduleError,
    ScheduleNotFoundError,
    ServerDrainingError,
    StoreBusyError,
    TaskFileError,
    TokenOutlivesError,
)
from runtime.records import RunRecord
from runtime.review import RunReview
from runtime.review.replay import replay_filename
from runtime.run.runner import RunResult
from runtime.schedules import Fire, Schedule
from runtime.services.schedules import ScheduleChanges, ScheduleInput

__all__ = ["ApiClient", "RemoteSchedules", "error_from"]

_ERRORS: dict[str, type[CorralError]] = {
    cls.__name__: cls
    for cls in (
        ApprovalError,
        ApprovalNotFoundError,
        AuthError,
        InvalidAllowlistError,
        InvalidProfileError,
        PermissionDeniedError,
        PolicyFileError,
        ProfileExistsError,
        ProfileNotFoundError,
        RunNotFoundError,
        ScheduleError,
        ScheduleNotFoundError,
        ServerDrainingError,
        StoreBusyError,
        TaskFileError,
        TokenOutlivesError,
        UnknownSecretError,
        UserError,
        RunError,
    )
}
_BY_STATUS: dict[int, type[CorralError]] = {
    401: AuthError,
    403: PermissionDeniedError,
    404: UserError,
    409: ApprovalError,
    422: UserError,
    503: ServerDrainingError,
}


def _message(detail: Any) -> str:
    """A readable line from an error body's ``detail`` (a message, or validation errors)."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_from(response: httpx.Response) -> CorralError:
    """The corral error an error answer stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        message = _message(body["detail"])
        name = body.get("error")
    else:
        message, name = f"HTTP {response.status_code} {response.reason_phrase}", None
    cls = _ERRORS.get(name) if isinstance(name, str) else None
    if cls is None:
        cls = _BY_STATUS.get(response.status_code, RunError)
        if cls is RunError:
            message = f"the server failed ({response.status_code}): {message}"
    return cls(message)


class ApiClient:
    """A client of one server's ``/api`` as one token's user; close it (``async with``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, transport=transport, timeout=timeout_s
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        accept: tuple[int, ...] = (200, 201, 202, 204),
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, f"/api{path}", json=json, params=query)
        except httpx.TimeoutException as exc:
            raise RunError(
                f"CORRAL_SERVER={self.base_url} did not answer in time ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise UserError(f"cannot reach CORRAL_SERVER={self.base_url}: {exc}") from None
        if response.status_code not in accept:
            raise error_from(response)
        return response

    # --- server -----------------------------------------------------------------------------

    async def health(self) -> Health:
        """Whether the server answers, its version, and whether it is draining."""
        return Health.model_validate((await self._call("GET", "/health")).json())

    async def whoami(self) -> WhoAmI:
        """The user the token stands for."""
        return WhoAmI.model_validate((await self._call("GET", "/whoami")).json())

    # --- runs -------------------------------------------------------------------------------

    async def start_runs(
        self,
        task_yaml: str,
        task_path: str,
        profiles: Sequence[str] = (),
        variables: Mapping[str, str] | None = None,
        *,
        lease_timeout_s: float | None = None,
    ) -> list[SubmittedRun]:
        """Start a task file's text on each profile (empty: the task's); their run ids."""
        body = {
            "task_yaml": task_yaml,
            "task_path": task_path,
            "profiles": list(profiles),
            "vars": dict(variables or {}),
            "lease_timeout_s": lease_timeout_s,
        }
        answer = (await self._call("POST", "/runs", json=body)).json()
        return [SubmittedRun.model_validate(r) for r in answer["runs"]]

    async def list_runs(
        self,
        limit: int = 20,
        profile: str | None = None,
        schedule: str | None = None,
        *,
        task: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RunRecord]:
        """The latest runs, newest first (of a task, with a status, started in a span)."""
        params = {
            "limit": limit,
            "profile": profile,
            "schedule": schedule,
            "task": task,
            "status": status,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        }
        return _RUNS.validate_python((await self._call("GET", "/runs", params=params)).json())

    async def show_run(self, run_id: str) -> RunDetailOut:
        """One run with its steps, model calls and artifacts."""
        return RunDetailOut.model_validate((await self._call("GET", f"/runs/{run_id}")).json())

    async def review(self, run_id: str) -> RunReview:
        """The run as a person reviews it: its steps explained, costs, approvals, output."""
        return RunReview.model_validate((await self._call("GET", f"/runs/{run_id}/review")).json())

    async def replay(self, run_id: str) -> tuple[str, str]:
        """The run's replay file: its name (``replay-<run id>.html``) and its HTML."""
        response = await self._call("GET", f"/runs/{run_id}/replay")
        named = _REPLAY_NAME.search(response.headers.get("content-disposition", ""))
        return replay_filename(named.group(1) if named else run_id), response.text

    async def result(self, run_id: str) -> RunResult | RunPending:
        """The run's result once it has ended, else where it is (queued, running, waiting)."""
        response = await self._call("GET", f"/runs/{run_id}/result")
        if response.status_code == 202:
            return RunPending.model_validate(response.json())
        return RunResult.model_validate(response.json())

    async def wait_result(
        self, run_id: str, poll_s: float = 0.5, timeout_s: float | None = None
    ) -> RunResult:
        """Poll ``/result`` every ``poll_s`` seconds until the run has ended."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            answer = await self.result(run_id)
            if isinstance(answer, RunResult):
                return answer
            if deadline is not None and time.monotonic() >= deadline:
                raise RunError(f"run {run_id} is still {answer.status} after {timeout_s:g}s")
            await asyncio.sleep(poll_s)

    async def cancel_run(self, run_id: str, reason: str | None = None) -> CancelResult:
        """Cancel a run (who started it, or an admin); False in the answer if it had ended."""
        answer = await self._call("POST", f"/runs/{run_id}/cancel", json={"reason": reason})
        return CancelResult.model_validate(answer.json())

    # --- approvals --------------------------------------------------------------------------

    async def list_approvals(
        self, status: str = "pending", run_id: str | None = None, limit: int = 50
    ) -> list[ApprovalRequest]:
        """Approval requests, newest first (``status="all"``: every one)."""
        params = {"status": status, "run_id": run_id, "limit": limit}
        answer = await self._call("GET", "/approvals", params=params)
        return _APPROVALS.validate_python(answer.json())

    async def show_approval(self, ref: str) -> ApprovalRequest:
        """One request by id or unique id prefix."""
        answer = await self._call("GET", f"/approvals/{ref}")
        return ApprovalRequest.model_validate(answer.json())

    async def decide(
        self, ref: str, verdict: Literal["approve", "deny"], comment: str | None = None
    ) -> ApprovalRequest:
        """Approve or deny a pending request (admin+); the decided request."""
        answer = await self._call("POST", f"/approvals/{ref}/{verdict}", json={"comment": comment})
        return ApprovalRequest.model_validate(answer.json())

    async def approve(self, ref: str, comment: str | None = None) -> ApprovalRequest:
        """Approve a pending request."""
        return await self.decide(ref, "approve", comment)

    async def deny(self, ref: str, comment: str | None = None) -> ApprovalRequest:
        """Deny a pending request."""
        return await self.decide(ref, "deny", comment)

    # --- profiles ---------------------------------------------------------------------------

    async def list_profiles(self) -> list[ProfileInfo]:
        """Every profile (no saved state, no proxy password)."""
        return _PROFILES.validate_python((await self._call("GET", "/profiles")).json())

    async def create_profile(
        self, name: str, settings: ProfileSettings | None = None
    ) -> ProfileInfo:
        """Create a profile (admin+)."""
        fields = (settings or ProfileSettings()).model_dump(mode="json", exclude_defaults=True)
        answer = await self._call("POST", "/profiles", json={"name": name, **fields})
        return ProfileInfo.model_validate(answer.json())

    async def show_profile(self, name: str) -> ProfileInfo:
        """One profile."""
        return ProfileInfo.model_validate((await self._call("GET", f"/profiles/{name}")).json())

    async def delete_profile(self, name: str) -> None:
        """Delete a profile and everything saved for it (admin+)."""
        await self._call("DELETE", f"/profiles/{name}")

    async def clear_profile(self, name: str) -> ProfileInfo:
        """Forget a profile's saved state (admin+)."""
        answer = await self._call("POST", f"/profiles/{name}/clear")
        return ProfileInfo.model_validate(answer.json())

    # --- secrets ----------------------------------------------------------------------------

    async def list_secrets(self) -> list[SecretInfo]:
        """Every secret's name, kind and scope."""
        return _SECRETS.validate_python((await self._call("GET", "/secrets")).json())

    async def set_secret(
        self,
        name: str,
        value: str,
        domains: Sequence[str],
        profiles: Sequence[str] = (),
        *,
        totp: bool = False,
        fields: Sequence[str] = (),
    ) -> SecretInfo:
        """Store a secret (admin+); the value goes in the request body only."""
        body = {
            "value": value,
            "kind": "totp" if totp else "value",
            "domains": list(domains),
            "profiles": list(profiles),
            "fields": list(fields),
        }
        answer = await self._call("PUT", f"/secrets/{name}", json=body)
        return SecretInfo.model_validate(answer.json())

    async def remove_secret(self, name: str) -> None:
        """Delete a secret (admin+)."""
        await self._call("DELETE", f"/secrets/{name}")

    async def secret_uses(
        self, run_id: str | None = None, secret: str | None = None, limit: int = 50
    ) -> list[SecretUseRecord]:
        """The secret-use audit, newest first (admin+)."""
        params = {"run_id": run_id, "secret": secret, "limit": limit}
        answer = await self._call("GET", "/secrets/uses", params=params)
        return _USES.validate_python(answer.json())

    # --- schedules --------------------------------------------------------------------------

    @property
    def schedules(self) -> RemoteSchedules:
        """The schedule operations, named as the service's (without the actor: the token's)."""
        return RemoteSchedules(self)


class RemoteSchedules:
    """``/api/schedules`` with the method names of :class:`runtime.services.ScheduleService`."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        return (await self._client._call(method, f"/schedules{path}", json=body)).json()

    async def get(self, name: str) -> Schedule:
        return Schedule.model_validate(await self._json("GET", f"/{name}"))

    async def add(self, spec: ScheduleInput) -> Schedule:
        return Schedule.model_validate(await self._json("POST", "", spec.model_dump(mode="json")))

    async def update(self, name: str, changes: ScheduleChanges) -> Schedule:
        body = changes.model_dump(mode="json", exclude_none=True)
        return Schedule.model_validate(await self._json("PATCH", f"/{name}", body))

    async def remove(self, name: str) -> None:
        await self._client._call("DELETE", f"/schedules/{name}")

    async def pause(self, name: str, reason: str | None = None) -> Schedule:
        return Schedule.model_validate(
            await self._json("POST", f"/{name}/pause", {"reason": reason})
        )

    async def resume(self, name: str) -> Schedule:
        return Schedule.model_validate(await self._json("POST", f"/{name}/resume"))

    async def run_now(self, name: str) -> list[Fire]:
        return _FIRES.validate_python(await self._json("POST", f"/{name}/run-now"))

    async def backfill(self, name: str, start: datetime, end: datetime) -> list[Fire]:
        body = {"start": start.isoformat(), "end": end.isoformat()}
        return _FIRES.validate_python(await self._json("POST", f"/{name}/backfill", body))

    async def next_fires(self, name: str, n: int = 5) -> list[datetime]:
        answer = await self._client._call("GET", f"/schedules/{name}/next", params={"n": n})
        return _TIMES.validate_python(answer.json())

    async def fires(self, name: str, limit: int = 50) -> list[Fire]:
        answer = await self._client._call(
            "GET", f"/schedules/{name}/fires", params={"limit": limit}
        )
        return _FIRES.validate_python(answer.json())

    async def list(self) -> list[Schedule]:
        return _SCHEDULES.validate_python(await self._json("GET", ""))


_REPLAY_NAME = re.compile(r'filename="replay-([^"/\\]+)\.html"')
_RUNS = TypeAdapter(list[RunRecord])
_APPROVALS = TypeAdapter(list[ApprovalRequest])
_PROFILES = TypeAdapter(list[ProfileInfo])
_SECRETS = TypeAdapter(list[SecretInfo])
_USES = TypeAdapter(list[SecretUseRecord])
_SCHEDULES = TypeAdapter(list[Schedule])
_FIRES = TypeAdapter(list[Fire])
_TIMES = TypeAdapter(list[datetime])
