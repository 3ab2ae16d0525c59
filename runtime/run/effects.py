"""Idempotent submissions across the attempts of a schedule's fire.

A fire is retried when its run failed, or was interrupted because its host or worker died; the
retry runs the task again from the start. A submission an earlier attempt already sent must not be
sent twice (a second payment, a duplicate order). So every submission of a fire's run gets an
idempotency key:

- the task, the profile and the fire;
- the target as the gate checked it (kind, role, accessible name, the form's action and method);
- the form's values as a person would see them in the run's record (redacted: a secret stands as
  its placeholder, so a one-time code typed afresh gives the same key); hidden fields (tokens a
  page makes anew for every visit) and buttons are left out;
- and which occurrence of that key in the run it is (a run may add the same line twice).

The key is a SHA-256 of that material; it never holds a secret's value. Before the action runs,
its row is taken in the store (:class:`runtime.store.effects.EffectRepository`). The wire guard
(:mod:`profiles.wire`) then records ``sent`` in its own committed transaction before the first
state-changing request of the action leaves the browser, and holds the request if that write
fails. So after a crash the store says whether the submission reached (or may have reached) the
server. A later attempt that meets a ``sent`` row does not act: its step is recorded ``skipped``
with the earlier run, attempt and time, and the run goes on. A ``started`` or ``unsent`` row (the
earlier attempt stopped before anything state-changing left, or the action sent nothing) is taken
over and the action runs.

Not keyed: a sign-in (a form holding one of the run's own secrets, posting where that secret may
go: the gate's ``secret_login`` fact), which a retry must repeat to get a session and which changes
nothing; and runs started by hand, which have no fire and no retries.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from profiles import WireRequest
from runtime.store.effects import EffectRow
from tools import AnyAction, Checked

if TYPE_CHECKING:
    from runtime.run.context import RunContext

__all__ = ["Submission", "Submissions", "effect_key", "skipped_note"]

_TARGET_FACTS = ("kind", "role", "name", "form_action", "form_method")
_KEYLESS_TYPES = frozenset({"hidden", "submit", "image", "button", "reset", "file"})


def effect_key(
    task: str,
    profile: str,
    fire_id: str,
    facts: dict[str, Any],
    fields: list[tuple[str, str, str | None]],
    redact: Any,
) -> str:
    """The idempotency key of a submission (hex SHA-256; ``redact`` scrubs the form's values)."""
    values = sorted(
        [name, kind, redact(value)]
        for name, kind, value in fields
        if value is not None and kind not in _KEYLESS_TYPES
    )
    material = {
        "task": task,
        "profile": profile,
        "fire": fire_id,
        "target": {k: facts.get(k) for k in _TARGET_FACTS},
        "values": values,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


@dataclass
class Submission:
    """One submission of this run, taken in the store before its action runs."""

    ctx: RunContext
    key: str
    n: int
    sent: bool = False

    async def on_send(self, _: WireRequest) -> bool:
        """The wire guard's hook: ``sent`` is committed before the first request leaves."""
        if not self.sent:
            source = self.ctx.source
            assert source is not None
            self.sent = await self.ctx.store.effects.sent(
                source.fire_id, self.key, self.n, self.ctx.run_id
            )
        return self.sent

    async def end(self) -> None:
        """After the action: if nothing state-changing was sent, a retry may do it again."""
        source = self.ctx.source
        if not self.sent and source is not None:
            await self.ctx.store.effects.unsent(source.fire_id, self.key, self.n, self.ctx.run_id)


@dataclass
class Submissions:
    """The keys one run of a fire has used, and how often."""

    seen: Counter[str] = field(default_factory=Counter)

    async def begin(
        self, ctx: RunContext, action: AnyAction, checked: Checked, step: int
    ) -> Submission | EffectRow | None:
        """Before ``action`` (checked as ``checked``): None if it is not a fire's submission;
        the earlier attempt's row if that attempt sent it (do not act); else this run's
        :class:`Submission`."""
        source = ctx.source
        if source is None or not checked.ok or checked.facts.get("side_effect") != "submit":
            return None
        if checked.facts.get("secret_login"):
            # Signing in changes nothing, and a retry must do it again (its session is new).
            return None
        redact = ctx.redactor.text if ctx.redactor else (lambda text: text)
        key = effect_key(
            ctx.task.name, ctx.profile, source.fire_id, checked.facts, checked.fields, redact
        )
        self.seen[key] += 1
        n = self.seen[key]
        name = checked.facts.get("name")
        target = f"{checked.facts.get('role') or action.kind} {redact(str(name))}" if name else None
        prior = await ctx.store.effects.begin(
            source.fire_id,
            key,
            n,
            run_id=ctx.run_id,
            attempt=source.attempt,
            step=step,
            target=target[:200] if target else None,
        )
        if prior is not None:
            return prior
        return Submission(ctx, key, n)


def skipped_note(prior: EffectRow) -> dict[str, Any]:
    """What a skipped step's record says of the earlier submission."""
    return {
        "skipped": "already sent by an earlier attempt of this fire; not repeated",
        "key": prior.key[:16],
        "run": prior.run_id,
        "attempt": prior.attempt,
        "step": prior.step + 1,
        "sent_at": prior.sent_at.isoformat() if prior.sent_at else None,
    }
