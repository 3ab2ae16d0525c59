"""The agent loop for goal-driven tasks: a small driver over the phases of a turn.

Each turn: *observe* the page (redacted, compact; appended to the planner's append-only
conversation in full, or as the lines that changed when the last action left the page in place:
:mod:`runtime.agent.prompt`, :mod:`runtime.agent.delta`) -> *decide* (the planner picks one tool
call; a shadow planner, if configured, is asked the same and only recorded) -> *validate* the
arguments (pydantic; an invalid call goes back to the model, bounded) -> *check*
(``runtime.run.gate``: risk verdict; a person's approval where needed) -> *act* (tools.execute)
-> *record* (step row, screenshot, model calls with tokens and cost). The phases are
:mod:`runtime.agent.phases`; ``look`` and ``extract_data`` consult a model without acting
(:mod:`runtime.agent.consult`), ``observe`` asks for the whole page next turn, ``remember``
proposes a note for later runs (kept if the run succeeds: :mod:`runtime.memory`).

Stop rules: ``done(result)`` validated against ``output_schema`` (an invalid result goes back to the
model, bounded); ``budget.max_steps``; the spend and token caps (checked before every model call
from an estimate and after it from the real usage); the run's wall time (``budget.timeout_s``,
enforced by the caller); ``budget.max_failures`` consecutive failed actions; and loop detection:
the same action on the same page state ``LOOP_REPEATS`` times.
"""

from __future__ import annotations

from runtime.agent.phases import act, check, consult, decide, observe, record, validate
from runtime.agent.prompt import Conversation
from runtime.agent.toolset import Done, ExtractData, Look, Observe, Remember
from runtime.agent.turn import LOOP_REPEATS, Agent, LoopStop
from runtime.memory import PROMPT_NOTES, notes_text
from runtime.run.context import RunContext

__all__ = ["LOOP_REPEATS", "run_goal"]


async def run_goal(ctx: RunContext) -> None:
    """Pursue ``ctx.task.goal`` until done() or a stop rule; raises StepFailedError on a stop."""
    assert ctx.task.goal is not None and ctx.router is not None
    # Long-term memory: the newest notes of the task and of the profile (runtime.memory).
    notes = await ctx.store.notes.for_run(ctx.task.name, ctx.profile, PROMPT_NOTES)
    conversation = Conversation(
        ctx.task.goal,
        ctx.task.output_schema,
        max_chars=ctx.task.budget.max_prompt_chars,
        notes=notes_text(notes),
    )
    agent = Agent(ctx, ctx.router, conversation)
    if ctx.task.full_page_every is not None:
        agent.full_every = ctx.task.full_page_every
    state, budget = ctx.state, ctx.task.budget
    state.shadow_agreed = state.shadow_total = 0
    try:
        while True:
            if state.idx >= budget.max_steps:
                raise LoopStop(f"stopped: budget max_steps={budget.max_steps} reached")
            turn = await observe(agent)
            await decide(agent, turn)
            call = validate(agent, turn)
            if call is None:
                continue
            if isinstance(call, Done):
                state.result, state.has_result = call.result, True
                return
            if isinstance(call, Look | ExtractData | Observe | Remember):
                await consult(agent, turn, call)
                continue
            verdict = await check(agent, turn, call)
            gated = await act(agent, turn, call, verdict)
            record(agent, call, gated)
    finally:
        agent.watch.close()
        await agent.settle()
