"""Leases across hosts: the store's clock decides, a lost lease stops its run, and the claim of an
approved action is fenced by the lease (real store files, real processes where it matters)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from profiles import (
    CredentialLeaseRecord,
    LeaseHolder,
    LeaseLostError,
    hold_lease,
    identity_is_gone,
)
from runtime import Runtime, Settings, Store, parse_task, run_task
from runtime.approvals import Approvals
from runtime.auth import LOCAL_ACTOR
from runtime.demo.portal import PortalServer
from runtime.demo.portal.store import Store as PortalStore
from runtime.records import RunRecord, RunStatus
from runtime.schedules import Fire, Schedule, SchedulePolicy, Timing
from runtime.schedules.scheduler import Outcome, Scheduler
from runtime.services import ScheduleInput, Services
from tests.support.approvals import next_request
from tests.support.demo import first_unpaid, make_demo_profiles, pay_task
from tests.support.wait import until

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# The store a test process opens. PostgreSQL's clock is its server's; on SQLite the store's clock
# is read from SQLite itself (its 'now', read in C from the OS) so that, as on PostgreSQL, a
# process's time.time() does not move it.
_OPEN = """
class DbClockStore(Store):
    async def clock(self) -> float:
        row = await self.fetch_one("SELECT (julianday('now') - 2440587.5) * 86400.0")
        assert row is not None
        return float(row[0])

async def open_store(where: str) -> Store:
    if "://" in where:
        return await Store.open(where)
    return await DbClockStore.open(Path(where))
"""

# A process that waits for ``go``, tries once for the lease on "p", prints what it got, and
# keeps running (its pid stays alive) until ``done`` exists. ``skew`` moves its host clock.
_TAKER = (
    """
import asyncio, json, sys, time
from pathlib import Path
from profiles import LeaseHolder
from runtime import Store
"""
    + _OPEN
    + """
db, run_id, skew = sys.argv[1], sys.argv[2], float(sys.argv[5])
go, done = Path(sys.argv[3]), Path(sys.argv[4])
if skew:
    real = time.time
    time.time = lambda: real() + skew

async def main() -> None:
    store = await open_store(db)
    while not go.exists():
        await asyncio.sleep(0.005)
    won, lease = await store.profiles.acquire_lease("p", LeaseHolder.current(run_id, 60), 60)
    got = {"won": won, "run_id": lease.run_id, "generation": lease.generation}
    print(json.dumps(got), flush=True)
    while not done.exists():
        await asyncio.sleep(0.02)
    await store.close()

asyncio.run(main())
"""
)

# A process that holds the lease on "p" for ``run_id`` as a host named ``host`` (so its pid means
# nothing to this test's process: only the heartbeat can free the lease), and never lets go.
_HOLDER = (
    """
import asyncio, socket, sys
from pathlib import Path
from profiles import hold_lease
from runtime import Store
"""
    + _OPEN
    + """
db, run_id, host, ttl = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
socket.gethostname = lambda: host

async def main() -> None:
    store = await open_store(db)
    async with hold_lease(store.profiles, "p", run_id, 0, ttl) as lease:
        print("held", lease.generation, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""
)


def run(run_id: str, status: RunStatus = "running") -> RunRecord:
    return RunRecord(
        id=run_id,
        task_name="t",
        task_path="tasks/t.yaml",
        profile="p",
        status=status,
        started_at=T0,
        run_dir=f"/runs/{run_id}",
        pid=os.getpid(),
    )


@pytest.fixture
async def store(store_where: Path | str) -> AsyncIterator[Store]:
    async with await Store.open(store_where) as opened:
        yield opened


@pytest.fixture
def where(store_where: Path | str) -> str:
    """The store's place as a test process is given it."""
    return str(store_where)


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", *args, stdout=asyncio.subprocess.PIPE, env=os.environ.copy()
    )


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    assert line, f"the process ended early (exit {await proc.wait()})"
    return line.decode().strip()


async def _waiting_run(store: Store, run_id: str, status: RunStatus = "running") -> Approvals:
    """A run row with a credential lease and an approval request waiting for a person."""
    await store.runs.create_run(run(run_id, status))
    await store.vault.grant_credential_lease(
        CredentialLeaseRecord(
            run_id=run_id, profile="p", secrets=[], origins=[], pid=1, granted_at=T0
        )
    )
    approvals = Approvals(store)
    await approvals.create(
        request_id=f"ap-{run_id}",
        run_id=run_id,
        step_idx=0,
        task_name="t",
        profile="p",
        action={"click": "Pay"},
        summary="Click 'Pay'",
        reasons=["a payment"],
        fingerprint="f",
        idempotency_key=f"k-{run_id}",
        page_url=None,
        ttl_s=3600,
    )
    return approvals


async def _approve(approvals: Approvals, request_id: str) -> None:
    assert await approvals.repo.move(request_id, "pending", "approved", decided_by="alice")


async def test_two_processes_race_one_wins_and_a_fast_host_clock_takes_nothing(
    tmp_path: Path, store: Store, where: str
) -> None:
    go, done = tmp_path / "go", tmp_path / "done"
    db = where
    racers = [await _spawn(_TAKER, db, f"run-{i}", str(go), str(done), "0") for i in (1, 2)]
    try:
        go.touch()
        results = [json.loads(await _line(p)) for p in racers]
        assert sorted(r["won"] for r in results) == [False, True]
        winner = next(f"run-{i}" for i, r in zip((1, 2), results, strict=True) if r["won"])
        # The loser saw the winner's row, token and all.
        assert {r["run_id"] for r in results} == {winner}
        lease = await store.profiles.get_lease("p")
        assert lease is not None and (lease.run_id, lease.generation) == (winner, 1)

        # A taker whose host clock is an hour ahead: by its clock the winner's heartbeat is an
        # hour old, by the store's it is fresh, and the winner's process lives. It takes nothing.
        skewed = await _spawn(_TAKER, db, "run-skewed", str(go), str(done), "3600")
        result = json.loads(await _line(skewed))
        assert result == {"won": False, "run_id": winner, "generation": 1}
        racers.append(skewed)
        lease = await store.profiles.get_lease("p")
        assert lease is not None and (lease.run_id, lease.generation) == (winner, 1)
    finally:
        done.touch()
        for proc in racers:
            assert await proc.wait() == 0


async def test_a_killed_holder_loses_its_lease_after_the_ttl_and_its_run_is_interrupted(
    store: Store, where: str
) -> None:
    approvals = await _waiting_run(store, "run-dead")
    holder = await _spawn(_HOLDER, where, "run-dead", "worker-b", "2")
    try:
        assert (await _line(holder)).startswith("held ")
        # Alive (heartbeating) on another host: neither taken over nor swept.
        won, current = await store.profiles.acquire_lease("p", LeaseHolder.current("run-2"), 2)
        assert not won and current.run_id == "run-dead" and current.host == "worker-b"
        assert await store.interrupt_stale_runs() == []
        # The pid check is for this host only: the run holds a lease on another, so its pid
        # (dead here or not) is not judged.
        assert await store.mark_orphaned_runs(lambda _pid: False) == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()

    # Nobody renews it now; once its heartbeat is older than its TTL by the store's clock, the
    # sweep marks the run interrupted and closes what it left.
    swept = await until(store.interrupt_stale_runs, what="the sweep to find the dead run")
    assert swept == ["run-dead"]
    dead = await store.runs.get_run("run-dead")
    assert dead is not None and dead.status == "interrupted"
    assert "stopped renewing the profile lease" in (dead.error or "")
    assert (await approvals.get("ap-run-dead")).status == "cancelled"
    credential = await store.vault.get_credential_lease("run-dead")
    assert credential is not None and credential.revoked_at is not None

    # And another process takes the profile over, with a higher token.
    won, lease = await store.profiles.acquire_lease("p", LeaseHolder.current("run-2"), 2)
    assert won and (lease.run_id, lease.generation) == ("run-2", 2)


async def test_a_take_over_interrupts_the_displaced_run_in_the_same_transaction(
    store: Store,
) -> None:
    approvals = await _waiting_run(store, "run-old")
    await _approve(approvals, "ap-run-old")
    # The holder was on another host and stopped renewing long ago (by the store's clock).
    gone = LeaseHolder("run-old", "worker-b", 4242, 1.0, 0.0, 0.0)
    assert await store.profiles.take_lease("p", gone, 1) is None
    async with store.tx() as conn:
        await conn.execute("UPDATE leases SET heartbeat_at = heartbeat_at - 5 WHERE profile = 'p'")

    won, lease = await store.profiles.acquire_lease("p", LeaseHolder.current("run-new"), 1)
    assert won and lease.generation == 2
    old = await store.runs.get_run("run-old")
    assert old is not None and old.status == "interrupted"
    assert "taken over by run run-new" in (old.error or "")
    # Approved but never claimed: closed, so nothing acts on it.
    assert (await approvals.get("ap-run-old")).status == "cancelled"


class _Partition:
    """The holder's view of the store: renewals fail (``raise``) or never answer (``hang``)
    once cut; everything else goes through."""

    def __init__(self, store: Store, mode: str) -> None:
        self.store, self.mode = store.profiles, mode
        self.cut = asyncio.Event()

    async def acquire_lease(
        self, profile: str, holder: LeaseHolder, ttl_s: float
    ) -> tuple[bool, LeaseHolder]:
        return await self.store.acquire_lease(profile, holder, ttl_s)

    async def renew_lease(self, profile: str, run_id: str, generation: int | None = None) -> bool:
        if self.cut.is_set():
            if self.mode == "hang":
                await asyncio.Event().wait()
            raise ConnectionError("the database is unreachable")
        return await self.store.renew_lease(profile, run_id, generation)

    async def release_lease(self, profile: str, run_id: str, generation: int | None = None) -> None:
        if self.cut.is_set():
            raise ConnectionError("the database is unreachable")
        await self.store.release_lease(profile, run_id, generation)


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_a_holder_cut_off_from_the_store_stops_before_anyone_may_take_over(
    store: Store, mode: str
) -> None:
    partition = _Partition(store, mode)
    acted: list[int] = []
    at_stop: dict[str, Any] = {}

    async def session() -> None:
        async with hold_lease(partition, "p", "run-cut", 0, ttl_s=2) as lease:
            assert lease.generation == 1
            try:
                while True:
                    acted.append(len(acted))
                    if len(acted) == 3:
                        partition.cut.set()
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                # The moment it stops: by the store's clock the lease is still live, so no
                # other worker could have taken it over yet (the margin, see profiles.lease).
                at_stop["acted"] = len(acted)
                at_stop["taker"] = await store.profiles.acquire_lease(
                    "p", LeaseHolder.current("run-taker"), 2
                )
                raise

    with pytest.raises(LeaseLostError) as info:
        await asyncio.create_task(session())
    assert "lease on profile 'p' lost: no renewal reached the store" in str(info.value)
    won, current = at_stop["taker"]
    assert not won and current.run_id == "run-cut"
    # Nothing acted after the stop.
    assert len(acted) == at_stop["acted"] >= 3


async def test_a_holder_whose_lease_was_taken_over_stops_and_cannot_claim(store: Store) -> None:
    approvals = await _waiting_run(store, "run-a")
    await _approve(approvals, "ap-run-a")
    rewritten = asyncio.Event()

    async def session() -> int:
        async with hold_lease(store.profiles, "p", "run-a", 0, ttl_s=2) as lease:
            # Another run took the profile over (its host decided after this one was cut off),
            # with a higher token.
            async with store.tx() as conn:
                await conn.execute(
                    "UPDATE leases SET run_id = 'run-b', generation = generation + 1 "
                    "WHERE profile = 'p'"
                )
            rewritten.set()
            await asyncio.Event().wait()
        return lease.generation

    task = asyncio.create_task(session())
    await rewritten.wait()
    # Its claim of the approved action is refused in the store, and nothing changes.
    with pytest.raises(LeaseLostError, match="run run-a no longer holds it"):
        await approvals.claim("ap-run-a", token=1)
    with pytest.raises(LeaseLostError):
        await approvals.claim("ap-run-a")
    assert (await approvals.get("ap-run-a")).status == "approved"
    # Its next heartbeat finds the row rewritten: the session stops.
    with pytest.raises(LeaseLostError, match=r"run run-a \(token 1\) no longer holds it"):
        await task
    # Leaving, it did not release the other run's lease.
    lease = await store.profiles.get_lease("p")
    assert lease is not None and (lease.run_id, lease.generation) == ("run-b", 2)


async def test_the_claim_of_a_run_holding_its_lease_goes_through_once(store: Store) -> None:
    approvals = await _waiting_run(store, "run-a")
    await _approve(approvals, "ap-run-a")
    async with hold_lease(store.profiles, "p", "run-a", 0, ttl_s=2) as lease:
        with pytest.raises(LeaseLostError):
            await approvals.claim("ap-run-a", token=lease.generation + 1)  # not its token
        assert await approvals.claim("ap-run-a", token=lease.generation)
        assert not await approvals.claim("ap-run-a", token=lease.generation)
    assert (await approvals.get("ap-run-a")).status == "executing"


async def test_a_run_waiting_for_approval_with_a_live_heartbeat_is_not_swept(
    store: Store,
) -> None:
    await _waiting_run(store, "run-w", status="running")
    waiting = await store.runs.get_run("run-w")
    assert waiting is not None and waiting.status == "waiting_approval"
    async with hold_lease(store.profiles, "p", "run-w", 0, ttl_s=1) as lease:
        # Wait until more than a TTL has passed since it took the lease (by the store's
        # clock), with its heartbeat renewed meanwhile.
        async def renewed_past_a_ttl() -> bool:
            current = await store.profiles.get_lease("p")
            return current is not None and current.heartbeat_at > lease.acquired_at + lease.ttl_s

        await until(renewed_past_a_ttl, what="heartbeats past one TTL")
        assert await store.interrupt_stale_runs() == []
    after = await store.runs.get_run("run-w")
    assert after is not None and after.status == "waiting_approval"


class _Launcher:
    """The launcher side as the scheduler sees it: every fire starts (nothing runs here)."""

    def __init__(self) -> None:
        self.launched: list[Fire] = []

    def free_slots(self) -> int:
        return 10

    def launch(self, fire: Fire, schedule: Schedule) -> None:
        self.launched.append(fire)

    def cancel(self, fire_id: str, reason: str) -> bool:
        return False


async def test_a_fire_whose_run_died_on_another_host_is_retried_once(settings: Settings) -> None:
    now = [T0]
    async with Runtime.open(settings) as rt:
        svc = Services(rt, now=lambda: now[0])
        await svc.profiles.create(LOCAL_ACTOR, "p")
        await svc.schedules.add(
            LOCAL_ACTOR,
            ScheduleInput(
                name="s",
                task_yaml="name: check\nsteps:\n  - goto: http://portal.test/\n",
                task_source="check.yaml",
                profiles=["p"],
                timing=Timing(every_s=60),
                policy=SchedulePolicy(retries=1, backoff_s=10),
            ),
        )
        # A server on another host (its identity cannot be judged from here) runs the fire.
        there = Scheduler(rt.store.schedules, rt.store.schedules, "worker-b:7:1.0", lambda: now[0])
        here = Scheduler(rt.store.schedules, rt.store.schedules, "worker-a:8:1.0", lambda: now[0])
        now[0] += timedelta(seconds=60)
        [fire] = (await there.tick(_Launcher())).started
        await there.started(fire, "run-b")
        await rt.store.runs.create_run(run("run-b"))
        gone = LeaseHolder("run-b", "worker-b", 7, 1.0, 0.0, 0.0)
        assert await rt.store.profiles.take_lease("p", gone, 1) is None

        # While its heartbeat is live, nothing is recovered.
        assert await rt.store.interrupt_stale_runs() == []
        lost = await rt.store.interrupted_fire_runs()
        assert await here.recover(identity_is_gone, lost.__contains__) == []

        # Then worker-b's host dies: its heartbeat goes stale by the store's clock.
        async with rt.store.tx() as conn:
            await conn.execute("UPDATE leases SET heartbeat_at = heartbeat_at - 5")
        assert await rt.store.interrupt_stale_runs() == ["run-b"]
        lost = await rt.store.interrupted_fire_runs()
        [recovered] = await here.recover(identity_is_gone, lost.__contains__)
        assert recovered.status == "queued" and "run run-b was interrupted" in (
            recovered.note or ""
        )
        now[0] += timedelta(seconds=10)
        [again] = (await here.tick(_Launcher())).started
        assert again.id == fire.id and again.attempt == 2

        # worker-b was only cut off: its late report of attempt 1 settles nothing now.
        late = await there.finished(fire, Outcome("interrupted", 1, "lease on profile 'p' lost"))
        assert (late.status, late.attempt, late.claimed_by) == ("running", 2, "worker-a:8:1.0")


async def test_a_real_run_whose_lease_is_taken_over_ends_interrupted_and_pays_nothing(
    rt: Runtime, tmp_path: Path
) -> None:
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as shop:
        await make_demo_profiles(rt, shop.url, "alice")
        task = parse_task(pay_task(shop.url, first_unpaid()), "pay.yaml")
        run_ = asyncio.create_task(run_task(rt, task, "alice"))
        pay = await next_request(rt)
        # While it waits, another worker takes the profile over (its host judged this one
        # gone), and a person approves, in one transaction: whichever the run meets first (its
        # claim of the approved payment, or its next heartbeat), it must not pay.
        async with rt.store.tx() as conn:
            await conn.execute(
                "UPDATE leases SET run_id = 'run-b', generation = generation + 1 "
                "WHERE profile = 'alice'"
            )
            assert await rt.approvals.repo.move(pay.id, "pending", "approved", decided_by="ada")
        result = await run_
        assert result.status == "interrupted", result.error
        assert "lease on profile 'alice' lost" in (result.error or "")
        assert (await rt.approvals.get(pay.id)).status in ("approved", "cancelled")
        assert not PortalStore(shop.db_path).paid_numbers("alice")
        record = await rt.store.runs.get_run(result.run_id)
        assert record is not None and record.status == "interrupted"
        # The other worker's lease is left as it is.
        lease = await rt.store.profiles.get_lease("alice")
        assert lease is not None and lease.run_id == "run-b"


async def test_a_run_that_lost_its_lease_never_overwrites_the_new_holders_saved_state(
    store: Store,
) -> None:
    from profiles import ProfileRecord, ProfileSettings

    await store.profiles.insert_profile(
        ProfileRecord(name="p", settings=ProfileSettings(), created_at=T0, updated_at=T0)
    )
    won, old = await store.profiles.acquire_lease("p", LeaseHolder.current("run-a", 60), 60)
    assert won
    assert await store.profiles.save_profile_state("p", b"state of a", old)
    # run-a's host is judged gone and run-b takes the profile over, then saves its state.
    async with store.tx() as conn:
        await conn.execute("UPDATE leases SET heartbeat_at = heartbeat_at - 120")
    won, new = await store.profiles.acquire_lease("p", LeaseHolder.current("run-b", 60), 60)
    assert won and new.generation > old.generation
    assert await store.profiles.save_profile_state("p", b"state of b", new)
    # run-a comes back (it was only cut off) and saves what its browser had: refused.
    assert not await store.profiles.save_profile_state("p", b"stale state of a", old)
    # Its token is the fence, not its run id: the same run with an older token is refused too.
    stale_token = LeaseHolder(**{**new.__dict__, "generation": old.generation})
    assert not await store.profiles.save_profile_state("p", b"stale", stale_token)
    record = await store.profiles.get_profile("p")
    assert record is not None and record.state == b"state of b"
