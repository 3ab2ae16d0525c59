"""The scheduler on a fake clock: fires on time, overlap policies, catch-up, retries with backoff,
denials never retried, pause after failures, recovery of a dead server's fires, one winner per
fire between two schedulers, per-origin limits, run-now and backfill."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runtime import Runtime, Settings
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.errors import ScheduleError
from runtime.records import RunRecord
from runtime.schedules import Fire, Schedule, SchedulePolicy, Timing
from runtime.schedules.scheduler import Outcome, Scheduler
from runtime.serve import WorkerPool
from runtime.serve.server import FireLauncher
from runtime.services import ScheduleChanges, ScheduleInput, Services
from runtime.webhook import Webhook, verify_headers
from tests.support.wait import until

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
TASK = """
name: check
start_url: http://portal.test/
steps:
  - goto: "http://portal.test/"
"""


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def go(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


class Slots:
    """The launcher side as the scheduler sees it: slots, launches and cancels, recorded."""

    def __init__(self, slots: int = 10) -> None:
        self.slots = slots
        self.running: dict[str, Fire] = {}
        self.launched: list[Fire] = []
        self.cancelled: list[tuple[str, str]] = []

    def free_slots(self) -> int:
        return self.slots - len(self.running)

    def launch(self, fire: Fire, schedule: Schedule) -> None:
        self.running[fire.id] = fire
        self.launched.append(fire)

    def cancel(self, fire_id: str, reason: str) -> bool:
        self.cancelled.append((fire_id, reason))
        return fire_id in self.running

    async def end(self, scheduler: Scheduler, fire: Fire, outcome: Outcome) -> Fire:
        del self.running[fire.id]
        return await scheduler.finished(fire, outcome)


OK = Outcome("succeeded", 0)
FAILED = Outcome("failed", 1, "the portal answered 500")
DENIED = Outcome("denied", 3, "approval denied by ada")


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def svc(rt: Runtime, clock: Clock) -> Services:
    services = Services(rt, now=clock)
    for name in ("alice", "bob"):
        await services.profiles.create(LOCAL_ACTOR, name)
    return services


def scheduler(rt: Runtime, clock: Clock, owner: str = "host:1:1.0", notices=None) -> Scheduler:  # type: ignore[no-untyped-def]
    async def notify(event: dict[str, object]) -> None:
        if notices is not None:
            notices.append(event)

    return Scheduler(rt.store.schedules, rt.store.schedules, owner, clock, notify)


async def add(
    svc: Services,
    name: str = "s",
    profiles: tuple[str, ...] = ("alice",),
    timing: Timing | None = None,
    **policy: object,
) -> Schedule:
    return await svc.schedules.add(
        LOCAL_ACTOR,
        ScheduleInput(
            name=name,
            task_yaml=TASK,
            task_source="check.yaml",
            profiles=list(profiles),
            timing=timing or Timing(every_s=60),
            policy=SchedulePolicy.model_validate(policy),
        ),
    )


async def fires(rt: Runtime, schedule: str = "s") -> list[Fire]:
    return sorted(
        await rt.store.schedules.list_fires(schedule, limit=1000),
        key=lambda f: (f.scheduled_at, f.profile),
    )


async def test_fires_on_time_one_run_per_profile(rt: Runtime, svc: Services, clock: Clock) -> None:
    await add(svc, profiles=("alice", "bob"))
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(59)
    assert (await sched.tick(slots)).queued == []
    clock.go(1)
    report = await sched.tick(slots)
    assert {(f.profile, f.scheduled_at) for f in report.started} == {
        ("alice", T0 + timedelta(seconds=60)),
        ("bob", T0 + timedelta(seconds=60)),
    }
    for fire in report.started:
        assert fire.status == "running" and fire.attempt == 1
        done = await slots.end(sched, fire, OK)
        assert done.status == "succeeded"
    # A tick at the same time again adds nothing: a fire exists once.
    assert (await sched.tick(slots)).queued == []
    clock.go(60)
    assert len((await sched.tick(slots)).started) == 2
    assert len(slots.launched) == 4


async def test_overlap_skip_drops_a_fire_while_the_last_one_runs(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc)  # skip is the default
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    first = (await sched.tick(slots)).started[0]
    clock.go(60)
    report = await sched.tick(slots)
    assert report.started == [] and len(report.skipped) == 1
    skipped = await rt.store.schedules.get_fire(report.skipped[0].id)
    assert skipped is not None and skipped.status == "skipped"
    assert first.id in (skipped.note or "")
    await slots.end(sched, first, OK)
    clock.go(60)
    assert len((await sched.tick(slots)).started) == 1


async def test_overlap_buffer_one_keeps_one_and_skips_the_rest(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, overlap="buffer_one")
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    first = (await sched.tick(slots)).started[0]
    clock.go(120)  # two more fires come due while the first runs
    report = await sched.tick(slots)
    assert report.started == [] and len(report.skipped) == 1
    await slots.end(sched, first, OK)
    started = (await sched.tick(slots)).started
    assert [f.scheduled_at for f in started] == [T0 + timedelta(seconds=120)]


async def test_overlap_buffer_all_runs_each_in_turn(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, overlap="buffer_all")
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    running = (await sched.tick(slots)).started[0]
    clock.go(120)
    assert (await sched.tick(slots)).skipped == []
    order = [running.scheduled_at]
    for _ in range(2):
        await slots.end(sched, running, OK)
        running = (await sched.tick(slots)).started[0]
        order.append(running.scheduled_at)
    assert order == [T0 + timedelta(seconds=s) for s in (60, 120, 180)]


async def test_overlap_cancel_other_cancels_the_running_fire(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, overlap="cancel_other")
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    old = (await sched.tick(slots)).started[0]
    clock.go(60)
    report = await sched.tick(slots)
    assert report.cancelled == [old.id] and report.started == []
    assert slots.cancelled[0][0] == old.id and "cancel_other" in slots.cancelled[0][1]
    ended = await slots.end(sched, old, Outcome("cancelled", 130, slots.cancelled[0][1]))
    assert ended.status == "cancelled"
    new = (await sched.tick(slots)).started
    assert [f.scheduled_at for f in new] == [T0 + timedelta(seconds=120)]


async def test_overlap_allow_starts_alongside(rt: Runtime, svc: Services, clock: Clock) -> None:
    await add(svc, overlap="allow")
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    await sched.tick(slots)
    clock.go(60)
    assert len((await sched.tick(slots)).started) == 1
    assert len(slots.running) == 2


async def test_catchup_window_runs_recent_fires_and_records_older_as_missed(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, timing=Timing(every_s=600), overlap="allow", catchup_s=1800)
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(7200)  # the server was down for two hours
    report = await sched.tick(slots)
    recorded = await fires(rt)
    missed = [f for f in recorded if f.status == "missed"]
    ran = [f for f in recorded if f.status == "running"]
    assert report.missed == len(missed) == 8  # 600..4800s: older than 30 minutes
    assert [f.scheduled_at for f in ran] == [
        T0 + timedelta(seconds=s) for s in range(5400, 7201, 600)
    ]
    assert all(clock() - f.scheduled_at <= timedelta(seconds=1800) for f in ran)
    assert all(clock() - f.scheduled_at > timedelta(seconds=1800) for f in missed)
    assert all("catch-up" in (f.note or "") for f in missed)


async def test_retries_back_off_exponentially_then_fail(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, retries=2, backoff_s=30, pause_after=None)
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    fire = (await sched.tick(slots)).started[0]
    waits = []
    for attempt in (1, 2):
        assert fire.attempt == attempt
        settled = await slots.end(sched, fire, FAILED)
        assert settled.status == "queued"
        waits.append((settled.due_at - clock()).total_seconds())
        assert (await sched.tick(slots)).started == []  # not before its backoff
        clock.at = settled.due_at
        fire = (await sched.tick(slots)).started[0]
    assert waits == [30.0, 60.0]
    final = await slots.end(sched, fire, FAILED)
    assert final.status == "failed" and final.attempt == 3
    assert "500" in (final.note or "")


@pytest.mark.parametrize(
    ("outcome", "status"), [(DENIED, "denied"), (Outcome("failed", 2, "no profile"), "failed")]
)
async def test_denials_and_bad_input_are_never_retried(
    rt: Runtime, svc: Services, clock: Clock, outcome: Outcome, status: str
) -> None:
    await add(svc, retries=5)
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    fire = (await sched.tick(slots)).started[0]
    settled = await slots.end(sched, fire, outcome)
    assert settled.status == status and settled.attempt == 1
    clock.go(3600)
    started = (await sched.tick(slots)).started
    assert all(f.id != fire.id for f in started)


async def test_pause_after_failures_in_a_row_and_notify(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    notices: list[dict[str, object]] = []
    await add(svc, pause_after=2)
    sched, slots = scheduler(rt, clock, notices=notices), Slots()
    for _ in range(2):
        clock.go(60)
        fire = (await sched.tick(slots)).started[0]
        await slots.end(sched, fire, FAILED)
    schedule = await svc.schedules.get(LOCAL_ACTOR, "s")
    assert schedule.paused and "2 failed fires in a row" in (schedule.paused_reason or "")
    assert [n["event"] for n in notices] == ["fire.failed", "fire.failed", "schedule.paused"]
    clock.go(600)
    assert (await sched.tick(slots)).queued == []
    # Resuming clears the count and fires again from now on (no burst of the paused time).
    await svc.schedules.resume(LOCAL_ACTOR, "s")
    clock.go(60)
    report = await sched.tick(slots)
    assert len(report.started) == 1
    assert (await rt.store.schedules.get("s")).consecutive_failures == 0  # type: ignore[union-attr]


async def test_a_success_resets_the_failure_count(rt: Runtime, svc: Services, clock: Clock) -> None:
    await add(svc, pause_after=2)
    sched, slots = scheduler(rt, clock), Slots()
    for outcome in (FAILED, OK, FAILED):
        clock.go(60)
        await slots.end(sched, (await sched.tick(slots)).started[0], outcome)
    schedule = await svc.schedules.get(LOCAL_ACTOR, "s")
    assert not schedule.paused and schedule.consecutive_failures == 1


async def test_a_dead_servers_fire_is_retried_not_restarted(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, retries=1, backoff_s=10)
    dead, alive = scheduler(rt, clock, owner="h:1:1.0"), scheduler(rt, clock, owner="h:2:2.0")
    clock.go(60)
    fire = (await dead.tick(Slots())).started[0]
    # The other server neither starts it again nor touches it while its owner lives.
    assert (await alive.tick(Slots())).started == []
    assert await alive.recover(lambda owner: False) == []
    [recovered] = await alive.recover(lambda owner: owner == "h:1:1.0")
    assert recovered.status == "queued" and "interrupted" in (recovered.note or "")
    clock.go(10)
    slots = Slots()
    [again] = (await alive.tick(slots)).started
    assert again.id == fire.id and again.attempt == 2 and again.claimed_by == "h:2:2.0"
    # Out of retries: the next interruption fails it.
    [failed] = await dead.recover(lambda owner: owner == "h:2:2.0")
    assert failed.status == "failed"


async def test_two_schedulers_never_run_a_fire_twice(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, profiles=("alice", "bob"), timing=Timing(every_s=10), overlap="allow")
    one, two = scheduler(rt, clock, "h:1:1.0"), scheduler(rt, clock, "h:2:2.0")
    a, b = Slots(), Slots()
    for _ in range(20):
        clock.go(5)
        for sched, slots in ((one, a), (two, b)):
            await sched.tick(slots)
    launched = [f.id for f in a.launched + b.launched]
    assert len(launched) == len(set(launched)) == 20  # 10 times x 2 profiles


async def test_limits_per_origin_and_per_schedule(rt: Runtime, svc: Services, clock: Clock) -> None:
    await add(svc, "one", profiles=("alice", "bob"), origin_limit=1)
    await add(svc, "two", profiles=("alice",), origin_limit=1)
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    report = await sched.tick(slots)
    assert len(report.started) == 1  # one origin (http://portal.test), limit 1
    await slots.end(sched, report.started[0], OK)
    assert len((await sched.tick(slots)).started) == 1


async def test_global_slots_bound_what_starts(rt: Runtime, svc: Services, clock: Clock) -> None:
    await add(svc, profiles=("alice", "bob"))
    sched, slots = scheduler(rt, clock), Slots(slots=1)
    clock.go(60)
    assert len((await sched.tick(slots)).started) == 1
    waiting = [f for f in await fires(rt) if f.status == "queued"]
    assert len(waiting) == 1


async def test_jitter_delays_within_bounds(rt: Runtime, svc: Services, clock: Clock) -> None:
    await add(svc, timing=Timing(every_s=60, jitter_s=20), overlap="allow")
    sched = scheduler(rt, clock)
    clock.go(60 * 30)
    await sched.tick(Slots(slots=0))
    offsets = [(f.due_at - f.scheduled_at).total_seconds() for f in await fires(rt)]
    assert len(offsets) == 30 and all(0 <= o <= 20 for o in offsets)
    assert len(set(offsets)) > 1


async def test_daylight_saving_fires_once_through_the_scheduler(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    clock.at = datetime(2026, 10, 23, 12, tzinfo=UTC)
    await add(svc, timing=Timing(cron="30 2 * * *", tz="Europe/Berlin"), overlap="allow")
    sched = scheduler(rt, clock)
    clock.at = datetime(2026, 10, 27, 12, tzinfo=UTC)
    await sched.tick(Slots(slots=0))
    times = [f.scheduled_at for f in await fires(rt)]
    assert times == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST; 02:30 CET does not fire again
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]


async def test_run_now_and_backfill_add_fires_once(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, profiles=("alice", "bob"), timing=Timing(every_s=3600))
    await svc.schedules.pause(LOCAL_ACTOR, "s")
    now_fires = await svc.schedules.run_now(LOCAL_ACTOR, "s")
    assert {f.profile for f in now_fires} == {"alice", "bob"}
    sched, slots = scheduler(rt, clock), Slots()
    # A paused schedule still runs what a person triggered.
    assert len((await sched.tick(slots)).started) == 2
    clock.go(5 * 3600)
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    added = await svc.schedules.backfill(LOCAL_ACTOR, "s", start - timedelta(seconds=1), end)
    assert sorted({f.scheduled_at for f in added}) == [start, start + timedelta(hours=1), end]
    assert await svc.schedules.backfill(LOCAL_ACTOR, "s", start - timedelta(seconds=1), end) == []
    with pytest.raises(ScheduleError, match="future"):
        await svc.schedules.backfill(LOCAL_ACTOR, "s", start, clock() + timedelta(hours=1))


async def test_update_registers_a_new_task_and_rm_skips_queued_fires(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc)
    updated = await svc.schedules.update(
        LOCAL_ACTOR, "s", ScheduleChanges(task_yaml=TASK.replace("check", "check2", 1))
    )
    assert updated.task_name == "check2"
    clock.go(60)
    await scheduler(rt, clock).tick(Slots(slots=0))
    await svc.schedules.remove(LOCAL_ACTOR, "s")
    assert {f.status for f in await fires(rt)} == {"skipped"}


async def test_notices_go_out_on_the_signed_webhook(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", "s3cret-hook")
        await add(svc, pause_after=1, notify=["pause"])
        sched = Scheduler(rt.store.schedules, rt.store.schedules, "h:1:1.0", clock, hook.send)
        slots = Slots()
        clock.go(60)
        await slots.end(sched, (await sched.tick(slots)).started[0], FAILED)
    finally:
        server.shutdown()
        server.server_close()
    # Only the kind the schedule asked for (pause), signed so a receiver can trust it.
    [(headers, body)] = received
    assert verify_headers("s3cret-hook", headers, body)
    assert not verify_headers("another-secret", headers, body)
    event = json.loads(body)
    assert event["event"] == "schedule.paused" and event["schedule"] == "s"
    assert "1 failed fires in a row" in event["reason"]


async def test_a_stored_timing_that_no_longer_holds_pauses_only_its_schedule(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    broken = await add(svc, "broken")
    await add(svc, "fine", profiles=("bob",))
    # As if the zone had left the tz data since the schedule was added.
    bad = broken.timing.model_copy(update={"cron": "0 * * * *", "every_s": None, "tz": "Mars/Base"})
    await rt.store.schedules.replace(broken.model_copy(update={"timing": bad}))
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    report = await sched.tick(slots)
    assert [f.schedule for f in report.started] == ["fine"]
    paused = await svc.schedules.get(LOCAL_ACTOR, "broken")
    assert paused.paused and "Mars/Base" in (paused.paused_reason or "")


async def test_a_server_stop_requeues_the_fire_without_using_a_retry(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    await add(svc, retries=0, pause_after=1)
    sched, slots = scheduler(rt, clock), Slots()
    clock.go(60)
    fire = (await sched.tick(slots)).started[0]
    sched.draining = True
    stopped = await slots.end(
        sched, fire, Outcome("cancelled", 130, "cancelled: the server stopped")
    )
    assert stopped.status == "queued" and stopped.interruptions == 1
    assert stopped.due_at == clock()
    schedule = await svc.schedules.get(LOCAL_ACTOR, "s")
    assert not schedule.paused and schedule.consecutive_failures == 0
    # The next server runs it again; a real failure then still gets no retry (retries: 0).
    again = scheduler(rt, clock, owner="h:2:2.0")
    [second] = (await again.tick(slots)).started
    assert second.id == fire.id and second.attempt == 2
    assert (await slots.end(again, second, FAILED)).status == "failed"


async def test_a_revoked_grant_stops_the_owners_fires_before_any_run(
    rt: Runtime, svc: Services, clock: Clock
) -> None:
    """A schedule's runs act as its owner as the owner is now: a user whose grant was taken
    away gets no run from a fire (not retried: it would fail the same way)."""
    await svc.users.add_user(LOCAL_ACTOR, "root", "super_admin")
    root = Actor("root", "super_admin")
    await svc.users.add_user(root, "bob", "user")
    await svc.users.grant(root, "bob", "alice")
    await svc.schedules.add(
        Actor("bob", "user"),
        ScheduleInput(
            name="bobs",
            task_yaml=TASK,
            task_source="check.yaml",
            profiles=["alice"],
            timing=Timing(every_s=60),
            policy=SchedulePolicy(retries=3),
        ),
    )
    await svc.users.revoke_grant(root, "bob", "alice")
    sched = Scheduler(rt.store.schedules, rt.store.schedules, "h:1:1.0", clock)
    pool = WorkerPool(rt, 2)
    launcher = FireLauncher(rt, pool, sched)
    clock.go(60)
    [fire] = (await sched.tick(launcher)).started

    async def settled() -> Fire | None:
        now = await rt.store.schedules.get_fire(fire.id)
        return now if now is not None and now.status != "running" else None

    done = await until(settled, 30, "the fire to settle")
    await pool.drain(0)
    assert done.status == "failed" and done.run_id is None
    assert "bad input" in (done.note or "") and "not granted" in (done.note or "")
    assert await rt.store.runs.list_runs(schedule="bobs") == []


async def test_a_held_request_is_taken_over_only_by_its_fire_for_the_same_action(
    rt: Runtime, svc: Services
) -> None:
    """A request a stopped server left waiting is taken over by the next attempt of the same
    fire, for the same action on the same page, once its run has ended: never by another fire's
    run, never for another action, never while the first run still goes; and only once."""
    now = datetime.now(UTC)

    async def run(run_id: str, fire_id: str, status: str) -> None:
        await rt.store.runs.create_run(
            RunRecord(
                id=run_id,
                task_name="pay",
                task_path=None,
                profile="alice",
                status=status,  # type: ignore[arg-type]
                started_at=now,
                run_dir="/nowhere",
                pid=1,
                schedule="s",
                fire_id=fire_id,
            )
        )

    await run("first", "fire-a", "running")
    held = await rt.approvals.create(
        run_id="first",
        step_idx=3,
        task_name="pay",
        profile="alice",
        action={"kind": "click"},
        summary="Click 'Pay'",
        reasons=["looks like a payment"],
        fingerprint="fp",
        idempotency_key="key",
        page_url=None,
        ttl_s=600,
    )
    await run("other-fire", "fire-b", "running")
    await run("second", "fire-a", "running")
    approvals = rt.approvals
    # The first run still goes: nothing to take over.
    assert await approvals.adopt("fire-a", "second", 3, "key", "fp") is None
    await rt.store.runs.finish_run("first", "cancelled", "cancelled: the server stopped")
    # Another fire, another action, another page state: not theirs.
    assert await approvals.adopt("fire-b", "other-fire", 3, "key", "fp") is None
    assert await approvals.adopt("fire-a", "second", 3, "other-key", "fp") is None
    assert await approvals.adopt("fire-a", "second", 3, "key", "changed-page") is None
    taken = await approvals.adopt("fire-a", "second", 4, "key", "fp")
    assert taken is not None and taken.id == held.id
    assert (taken.run_id, taken.step_idx, taken.status) == ("second", 4, "pending")
    # Once: a third attempt finds nothing (the request is the second run's, which still goes).
    await run("third", "fire-a", "running")
    assert await approvals.adopt("fire-a", "third", 4, "key", "fp") is None
