"""Asking a person: the approval request for an action the gate will not do on its own, and the
wait for a decision (a policy's auto-approval, a person's, in any process, or expiry).

While it waits the run is ``waiting_approval`` and its own time limit stops: a person's time is
not the run's. A wait that ends without a decision (cancelled, timed out) cancels the request, so
nothing acts on it later.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from policies import Policy, Verdict
from runtime.approvals import ApprovalRequest, new_approval_id
from runtime.run.state import SERVER_STOPPED, RunEvent
from runtime.run.summary import fingerprint, idempotency_key, summarize
from tools import AnyAction, Checked, action_target, highlighted_screenshot

if TYPE_CHECKING:
    from runtime.run.context import RunContext

__all__ = ["ApprovalAsker", "shown_fields", "target_of"]

_HIDDEN = "(hidden: password field)"
_PLACEHOLDER = re.compile(r"\{\{secret(:[^{}]+)?\}\}")


def shown_fields(
    fields: list[tuple[str, str, str | None]], redact: Callable[[str], str]
) -> list[dict[str, Any]]:
    """A form's fields as a person is shown them before approving: each name, kind and the
    value that will be sent, secrets as their placeholders; a password field's value is never
    shown (it may have been typed from the task, not from the vault)."""
    shown = []
    for name, kind, value in fields:
        text = redact(value) if value else value
        if kind == "password" and text and not _PLACEHOLDER.fullmatch(text):
            text = _HIDDEN
        shown.append({"name": redact(name), "kind": kind, "value": text})
    return shown


def target_of(action: AnyAction, facts: dict[str, Any]) -> dict[str, Any] | None:
    """The element an action reaches, as a person reads it: role and accessible name (and the
    ref a model used), from the checked facts or else from the action itself."""
    target = action_target(action)
    out: dict[str, Any] = {}
    if target is not None:
        spec = target.model_dump(exclude_none=True)
        if spec.get("ref"):
            out["ref"] = spec["ref"]
        out.update({k: spec[k] for k in ("role", "name") if spec.get(k)})
    out.update({k: facts[k] for k in ("role", "name") if facts.get(k)})
    return out or None


# What the webhook announces of a request (never its action's arguments or screenshot).
_ANNOUNCED = {
    "id",
    "run_id",
    "step_idx",
    "task_name",
    "profile",
    "summary",
    "reasons",
    "page_url",
    "created_at",
    "expires_at",
    "prior",
}


class ApprovalAsker:
    """Creates one run's approval requests and waits for their decisions."""

    def __init__(
        self, ctx: RunContext, policy: Policy, ttl_s: float, *, poll_s: float = 0.25
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.auto_used: dict[str, int] = {}
        """How often each auto-approval entry was used in this run."""
        self.last_webhook: str | None = None
        """How the webhook for the last request went."""

    async def request(
        self, action: AnyAction, verdict: Verdict, checked: Checked
    ) -> ApprovalRequest:
        """Persist a request for ``action`` as ``checked``, with its screenshot; or, in a
        scheduled run, take over the one an earlier attempt of the same fire left waiting for
        this very action (a server stopped while a person had not decided yet)."""
        ctx = self.ctx
        facts = checked.facts
        recorder = ctx.recorder
        redact = recorder.redact
        key = idempotency_key(ctx.task.name, ctx.profile, action, facts)
        bound_to = fingerprint(action, checked, ctx.redactor)
        if ctx.source is not None:
            held = await ctx.approvals.adopt(
                ctx.source.fire_id, ctx.run_id, ctx.state.idx, key, bound_to
            )
            if held is not None:
                return held
        request_id = new_approval_id()
        # The screenshot first: a request is never seen without it.
        shot = await highlighted_screenshot(ctx.tabs, action, ctx.shows_secret)
        path = None
        if shot is not None:
            path = recorder.run_dir / "approvals" / f"{request_id}.jpg"
            recorder.write_file(path, shot)
            await recorder.artifact("approval", path, ctx.state.idx)
        return await self.create(
            request_id=request_id,
            screenshot=str(path) if path else None,
            run_id=ctx.run_id,
            step_idx=ctx.state.idx,
            task_name=ctx.task.name,
            profile=ctx.profile,
            action=recorder.scrub(action.model_dump(mode="json", by_alias=True, exclude_none=True)),
            summary=redact(summarize(action, facts)),
            reasons=verdict.reasons,
            fingerprint=bound_to,
            idempotency_key=key,
            page_url=redact(str(facts.get("page_url") or "")) or None,
            ttl_s=self.ttl_s,
            target=recorder.scrub(target_of(action, facts)),
            fields=shown_fields(checked.fields, redact),
        )

    async def create(
        self,
        request_id: str | None = None,
        after: Callable[[str], Awaitable[Any]] | None = None,
        **fields: Any,
    ) -> ApprovalRequest:
        """Persist a pending request (``fields`` as for :meth:`Approvals.create`), then run
        ``after(request_id)``; if the run is stopped meanwhile, before :meth:`wait` takes over,
        the request is closed as :meth:`wait` would close it (not left pending)."""
        request_id = request_id or new_approval_id()
        try:
            request = await self.ctx.approvals.create(request_id=request_id, **fields)
            if after is not None:
                await after(request_id)
        except BaseException as exc:
            await self._unanswered(request_id, exc)
            raise
        return request

    async def _unanswered(self, request_id: str, exc: BaseException) -> None:
        """Close a request the run stopped waiting for: held for the fire's next attempt when a
        server's drain stopped it (a decision made meanwhile counts), else cancelled."""
        approvals = self.ctx.approvals
        stop = exc.args[0] if isinstance(exc, asyncio.CancelledError) and exc.args else ""
        why = stop if isinstance(stop, str) else ""
        if self.ctx.source is not None and why.startswith(SERVER_STOPPED):
            await asyncio.shield(
                approvals.hold(
                    request_id,
                    "held: the server stopped while waiting; the fire's next attempt "
                    "takes this request over",
                )
            )
        else:
            await asyncio.shield(approvals.cancel(request_id, "the run ended while waiting"))

    async def _auto(self, request: ApprovalRequest, verdict: Verdict) -> bool:
        ctx = self.ctx
        if any(p["status"] in ("unconfirmed", "executing") for p in request.prior):
            return False  # an earlier one may or may not have happened: a person must look
        by_person = [
            p
            for p in request.prior
            if p["status"] == "executed" and not str(p["decided_by"]).startswith("policy:")
        ]
        for entry in self.policy.auto_approve:
            if not entry.covers(verdict, ctx.task.name, ctx.profile):
                continue
            if len(by_person) < entry.after_approvals:
                continue
            if self.auto_used.get(entry.name, 0) >= entry.max_per_run:
                continue
            self.auto_used[entry.name] = self.auto_used.get(entry.name, 0) + 1
            await ctx.approvals.auto_approve(request.id, entry.name)
            return True
        return False

    async def _announce(self, request: ApprovalRequest) -> None:
        ctx = self.ctx
        ctx.emit(
            RunEvent(
                ctx.run_id,
                ctx.profile,
                "approval",
                ctx.state.idx + 1,
                text=f"waiting for approval {request.id}: {request.summary}",
                status="waiting_approval",
            )
        )
        if ctx.webhook is not None:
            event: dict[str, Any] = {
                "event": "approval.requested",
                **request.model_dump(mode="json", include=_ANNOUNCED),
                "approve": f"corral approvals approve {request.id}",
                "deny": f"corral approvals deny {request.id} --comment TEXT",
            }
            if ctx.public_url:
                # The request's page in the console: all of it, and the buttons to decide.
                event["url"] = f"{ctx.public_url}/console/approvals/{request.id}"
            self.last_webhook = await ctx.webhook.send(event)

    async def wait(self, request: ApprovalRequest, verdict: Verdict) -> ApprovalRequest:
        """The decision on ``request``: a policy's auto-approval, or a person's, or expiry."""
        ctx = self.ctx
        approvals = ctx.approvals
        self.last_webhook = None
        if request.status != "pending":
            return request  # taken over from an earlier attempt, decided meanwhile
        decided: ApprovalRequest | None = None
        timer = ctx.timer
        deadline = timer.when() if timer is not None else None
        paused: float | None = None
        # From here on the request is closed whatever stops the run, even a cancel that comes
        # while it is announced (before anyone could decide).
        try:
            if await self._auto(request, verdict):
                decided = await approvals.get(request.id)
                return decided
            await self._announce(request)
            # A person's time is not the run's: the run's own time limit stops while it waits.
            if timer is not None and deadline is not None:
                timer.reschedule(None)
                paused = time.monotonic()
            while decided is None:
                current = await approvals.get(request.id, with_prior=False)
                if current.status != "pending":
                    decided = current
                elif current.expires_at <= approvals.now():
                    await approvals.expire(request.id)
                else:
                    # A decision taken in this process (the server's console or API) wakes
                    # the wait at once; one taken elsewhere is read on the next poll.
                    await approvals.changed(request.id, self.poll_s)
        except BaseException as exc:
            # Cancelled, timed out, failed, or a server's drain (the fire runs again after the
            # restart, and that attempt takes the request over): nothing here will act on it.
            await self._unanswered(request.id, exc)
            raise
        finally:
            if decided is not None:
                await asyncio.shield(ctx.store.runs.set_run_status(ctx.run_id, "running"))
            if timer is not None and deadline is not None and paused is not None:
                timer.reschedule(deadline + (time.monotonic() - paused))
        return decided
