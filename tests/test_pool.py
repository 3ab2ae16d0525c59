"""The worker pool: a bounded number of runs at once, authorized before anything starts, cancel
by run id or key, and a drain that cancels running runs cleanly (state saved, lease released) and
drops the ones that never got a worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime import PermissionDeniedError, RunResult, Runtime, parse_task
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.errors import ServerDrainingError
from runtime.serve import WorkerPool
from tests.support.demo import make_demo_profiles
from tests.support.wait import until

BOB = Actor("bob", "user")


class Gate:
    """Jobs that end when the test lets them (no browser): what the pool does around them."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    def job(self, run_id: str, status: str = "succeeded") -> Any:
        self.release[run_id] = asyncio.Event()

        async def run() -> RunResult:
            self.started.append(run_id)
            await self.release[run_id].wait()
            code = 0 if status == "succeeded" else 1
            return RunResult(run_id=run_id, task="t", profile="p", status=status, exit_code=code)

        return run


@pytest.fixture
async def bare(rt: Runtime) -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(rt, 2)
    yield pool
    await pool.drain(0)


async def test_at_most_workers_run_at_once_and_results_are_kept(bare: WorkerPool) -> None:
    gate = Gate()
    for i in range(3):
        bare.start(gate.job(f"r{i}"), f"r{i}", "p", key=f"fire-{i}")
    await until(lambda: len(gate.started) == 2, what="two jobs to start")
    assert [bare.status(f"r{i}") for i in range(3)] == ["running", "running", "queued"]
    assert bare.free_slots() == 0
    assert [j.key for j in bare.running()] == ["fire-0", "fire-1", "fire-2"]
    gate.release["r0"].set()
    assert (await bare.wait("r0")) is not None
    await until(lambda: bare.status("r2") == "running", what="the queued job to take the slot")
    assert gate.started == ["r0", "r1", "r2"]
    result = bare.result("r0")
    assert result is not None and result.status == "succeeded"
    assert bare.result("r1") is None  # still going
    assert bare.status("nope") is None and bare.result("nope") is None


async def test_cancel_by_key_before_it_starts_and_by_run_id_while_it_runs(
    bare: WorkerPool,
) -> None:
    gate = Gate()
    bare.start(gate.job("a"), "a", "p")
    bare.start(gate.job("b"), "b", "p")
    bare.start(gate.job("c"), "c", "p", key="fire-c", task_name="nightly")
    await until(lambda: len(gate.started) == 2, what="two jobs to start")
    assert bare.cancel("fire-c", "cancelled by ada")
    queued = await bare.wait("c")
    assert queued is not None
    assert (queued.status, queued.error, queued.task) == (
        "cancelled",
        "cancelled by ada",
        "nightly",
    )
    assert "c" not in gate.started
    assert bare.cancel("a", "cancelled: overlap")
    running = await bare.wait("a")
    assert running is not None and running.status == "cancelled"
    assert running.exit_code == 130
    assert not bare.cancel("a", "again")  # ended: nothing to cancel
    assert not bare.cancel("unknown", "x")


async def test_a_job_that_fails_unexpectedly_is_a_failed_result_not_a_lost_task(
    bare: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> RunResult:
        raise RuntimeError("boom")

    bare.start(broken, "x", "p")
    result = await bare.wait("x")
    assert result is not None and result.status == "failed" and result.exit_code == 1
    assert result.error == "internal error: RuntimeError (see the server log)"
    assert "boom" in caplog.text


async def test_drain_refuses_new_work_and_reports_each_job(bare: WorkerPool) -> None:
    gate = Gate()
    for name in ("slow", "failing", "waiting"):
        bare.start(gate.job(name, "failed" if name == "failing" else "succeeded"), name, "p")
    await until(lambda: len(gate.started) == 2, what="two jobs to start")
    draining = asyncio.create_task(bare.drain(30))
    await until(lambda: bare.draining, what="the drain to begin")
    with pytest.raises(ServerDrainingError, match="draining"):
        bare.start(gate.job("late"), "late", "p")
    await until(lambda: bare.status("waiting") == "finished", what="the queued job to be dropped")
    gate.release["slow"].set()  # both finish within the grace
    gate.release["failing"].set()
    outcomes = {o.run_id: o for o in await draining}
    assert set(outcomes) == {"slow", "failing", "waiting"}
    assert (outcomes["slow"].ended, outcomes["slow"].status) == ("finished", "succeeded")
    assert (outcomes["failing"].ended, outcomes["failing"].status) == ("finished", "failed")
    assert outcomes["waiting"].ended == "not started"
    assert str(outcomes["waiting"]) == "run waiting on p: not started (dropped at the drain)"
    assert gate.started == ["slow", "failing"]


async def test_submit_is_authorized_before_anything_starts(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    await rt.services.users.add_user(LOCAL_ACTOR, "root", "super_admin")
    await rt.services.users.add_user(Actor("root", "super_admin"), "bob", "user")
    pool = WorkerPool(rt, 1)
    task = parse_task({"name": "t", "steps": [{"goto": f"{portal}/login"}]}, "t.yaml")
    with pytest.raises(PermissionDeniedError, match="profile 'alice' is not granted to bob"):
        await pool.submit(BOB, task, ["alice"])
    assert pool.running() == []
    assert await rt.store.runs.list_runs() == []
    await pool.drain(0)
    with pytest.raises(ServerDrainingError):
        await pool.submit(LOCAL_ACTOR, task, ["alice"])


@pytest.mark.slow
async def test_drain_cancels_a_running_run_cleanly_and_drops_the_queued_one(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice", "bob")
    stuck = parse_task(
        {
            "name": "stuck",
            "start_url": f"{portal}/login",
            "step_timeout_s": 600,
            "steps": [{"wait_for": {"text": "a text that never appears", "timeout_s": 600}}],
        },
        "stuck.yaml",
    )
    pool = WorkerPool(rt, 1)
    [running] = await pool.submit(LOCAL_ACTOR, stuck, ["alice"])
    [queued] = await pool.submit(LOCAL_ACTOR, stuck, ["bob"])

    async def waiting_on_the_page() -> bool:
        return len(await rt.store.runs.list_steps(running.run_id)) == 1

    await until(waiting_on_the_page, 60, "the run to wait on its page")
    assert await rt.store.profiles.get_lease("alice") is not None
    assert pool.status(queued.run_id) == "queued"
    outcomes = {o.run_id: o for o in await pool.drain(0.2)}
    reason = "cancelled: the server stopped (drain grace 0.2s passed)"
    assert outcomes[running.run_id].ended == "cancelled at drain"
    assert outcomes[running.run_id].status == "cancelled"
    assert outcomes[queued.run_id].ended == "not started"
    record = await rt.store.runs.get_run(running.run_id)
    assert record is not None and (record.status, record.error) == ("cancelled", reason)
    assert await rt.store.profiles.get_lease("alice") is None
    alice = await rt.profiles.get("alice")
    assert alice.state_saved_at is not None  # the session's state was saved at the cancel
    assert await rt.store.runs.get_run(queued.run_id) is None  # never started: no run row
    result = pool.result(running.run_id)
    assert result is not None and (result.status, result.error) == ("cancelled", reason)
