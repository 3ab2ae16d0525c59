"""Alerts as an actor deals with them: list, show, acknowledge, lift a freeze, resume or stop a
paused run.

Seeing an alert needs its run's profile (a grant, or admin). Lifting a freeze (it holds for every
run of the task) and resuming or stopping a paused run (a decision on its resume request, as for
any approval) need admin.
"""

from __future__ import annotations

from profiles import UserError
from runtime.alerts import Alert, AlertState
from runtime.auth import Actor
from runtime.services.base import Service

__all__ = ["AlertNotFoundError", "AlertService"]


class AlertNotFoundError(UserError):
    """No alert with that id (or one the actor may not see)."""


class AlertService(Service):
    """Alerts raised by runs, and what a person does about them."""

    async def list(
        self,
        actor: Actor,
        *,
        state: AlertState | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts the actor may see, newest first."""
        found = await self._store.alerts.find(run_id=run_id, state=state, limit=limit)
        return [a for a in found if await self._authz.may_use_profile(actor, a.profile)]

    async def show(self, actor: Actor, alert_id: str) -> Alert:
        """One alert."""
        alert = await self._store.alerts.get(alert_id)
        if alert is None or not await self._authz.may_use_profile(actor, alert.profile):
            raise AlertNotFoundError(f"no alert '{alert_id}' (corral alerts list shows them)")
        return alert

    async def acknowledge(self, actor: Actor, alert_id: str) -> Alert:
        """Mark an open alert seen (a freeze stays until lifted; a pause until decided)."""
        alert = await self.show(actor, alert_id)
        if alert.then != "continue":
            what = "lift it" if alert.then == "freeze" else "resume or stop the run"
            raise UserError(f"alert {alert.id} {alert.then}s the run's task: {what} instead")
        await self._resolve(actor, alert, "acknowledged", "alert.acknowledge")
        return await self.show(actor, alert_id)

    async def lift(self, actor: Actor, alert_id: str) -> Alert:
        """End a freeze: the task's actions are decided by the policy again."""
        alert = await self.show(actor, alert_id)
        self._authz.require(actor, "admin", "lift a freeze")
        if alert.then != "freeze":
            raise UserError(f"alert {alert.id} froze nothing (it says: {alert.then})")
        await self._resolve(actor, alert, "lifted", "alert.lift")
        return await self.show(actor, alert_id)

    async def decide(
        self, actor: Actor, alert_id: str, resume: bool, comment: str | None = None
    ) -> Alert:
        """Resume (or stop) a run an alert paused: the decision on its resume request."""
        alert = await self.show(actor, alert_id)
        if alert.then != "pause" or alert.approval_id is None:
            raise UserError(f"alert {alert.id} paused no run (it says: {alert.then})")
        await self._rt.services.approvals.decide(actor, alert.approval_id, resume, comment)
        return await self.show(actor, alert_id)

    async def _resolve(self, actor: Actor, alert: Alert, state: AlertState, action: str) -> None:
        async with self._store.tx() as db:
            if not await self._store.alerts.resolve(alert.id, state, actor.name, self._now()):
                raise UserError(f"alert {alert.id} is {alert.state} already")
            await self._audit(db, actor, action, alert.id, {"task": alert.task, "kind": alert.kind})
