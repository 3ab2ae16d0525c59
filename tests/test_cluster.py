"""Many hosts on one PostgreSQL store: ``corral serve`` queues fires as jobs, ``corral worker``
processes take them. Three workers never run a fire twice; two servers never fire twice; a worker
killed with ``kill -9`` mid-action has its fire retried on another worker and the action is never
repeated; a worker cut off from the database stops, and acts on nothing when it comes back."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from runtime import Runtime, Settings
from runtime.auth import LOCAL_ACTOR
from runtime.demo import PAY_TASK
from runtime.demo.portal import PortalServer
from runtime.demo.portal.data import Invoice
from runtime.demo.portal.store import Store as PortalStore
from runtime.records import RunRecord
from runtime.schedules import Fire, SchedulePolicy, Timing
from runtime.services import ScheduleInput
from tests.support.approvals import next_request
from tests.support.cluster import Cable, Host, hosts
from tests.support.demo import first_unpaid, make_demo_profiles
from tests.support.processes import wait_gone
from tests.support.wait import until

pytestmark = pytest.mark.slow

HEARTBEAT_S = 4
"""The heartbeat timeout the processes run with: a silent worker is gone after it."""


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    """The shared store as a test reads it (no browser of its own)."""
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.fixture
def cluster(rt: Runtime, tmp_path: Path) -> Iterator[tuple[list[Host], dict[str, str]]]:
    """Started hosts, and the environment every host gets: the store, the key, the timeout."""
    env = {
        "CORRAL_DATABASE_URL": str(rt.settings.database_url),
        "CORRAL_MASTER_KEY": (rt.settings.home / "master.key").read_text().strip(),
        "CORRAL_HEARTBEAT_TIMEOUT": str(HEARTBEAT_S),
    }
    with hosts() as started:
        yield started, env


async def serve(cluster: tuple[list[Host], dict[str, str]], tmp_path: Path, name: str) -> Host:
    started, env = cluster
    host = Host(tmp_path, name, env, "serve", "--port", "0")
    started.append(host)
    await host.ready("listening on")
    return host


async def worker(
    cluster: tuple[list[Host], dict[str, str]], tmp_path: Path, name: str, *args: str
) -> Host:
    started, env = cluster
    host = Host(tmp_path, name, env, "worker", *args)
    started.append(host)
    await host.ready("takes fires from")
    return host


async def schedule(
    rt: Runtime, task: str, profiles: list[str], timing: Timing, **policy: object
) -> None:
    await rt.services.schedules.add(
        LOCAL_ACTOR,
        ScheduleInput(
            name="s",
            task_yaml=task,
            task_source="test.yaml",
            profiles=profiles,
            vars={},
            timing=timing,
            policy=SchedulePolicy.model_validate(policy),
        ),
    )


async def pay_on_alice(rt: Runtime, shop: PortalServer) -> Invoice:
    """Alice's profile on ``shop`` and an hourly schedule paying her first unpaid invoice
    (each click approved by a person; one retry); returns the invoice."""
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    await rt.services.schedules.add(
        LOCAL_ACTOR,
        ScheduleInput(
            name="s",
            task_yaml=PAY_TASK.read_text(),
            task_source="pay.yaml",
            profiles=["alice"],
            vars={"portal": shop.url, "invoice": inv.number},
            timing=Timing(every_s=3600),
            policy=SchedulePolicy(retries=1, backoff_s=1),
        ),
    )
    return inv


def quick_task(portal: str) -> str:
    return (
        f"name: look\nstart_url: {portal}/login\n"
        "steps:\n  - wait_for: {role: button, name: Sign in}\n"
    )


async def fires(rt: Runtime) -> list[Fire]:
    return await rt.store.schedules.list_fires("s", limit=1000)


async def runs(rt: Runtime) -> list[RunRecord]:
    return await rt.store.runs.list_runs(limit=1000)


def owner_pid(fire: Fire) -> int:
    assert fire.claimed_by is not None
    return int(fire.claimed_by.rsplit(":", 2)[1])


async def test_three_workers_take_fires_from_one_queue_and_none_runs_twice(
    rt: Runtime, portal: str, cluster: tuple[list[Host], dict[str, str]], tmp_path: Path
) -> None:
    names = [f"p{i}" for i in range(6)]
    for name in names:
        await rt.profiles.create(name)
    await schedule(rt, quick_task(portal), names, Timing(every_s=2), overlap="allow")
    workers = [
        await worker(cluster, tmp_path, f"worker-{i}", "--concurrency", "2") for i in range(3)
    ]
    server = await serve(cluster, tmp_path, "serve-0")
    pids = {w.proc.pid for w in workers}

    async def every_worker_ran_some() -> bool:
        done = [f for f in await fires(rt) if f.status == "succeeded"]
        return len(done) >= 18 and {owner_pid(f) for f in done} == pids

    await until(every_worker_ran_some, 180, "18 fires to succeed, on each of the 3 workers")
    assert server.stop() == 0
    for w in workers:
        assert w.stop() == 0, w.text()
    made = [r for r in await runs(rt) if r.fire_id]
    per_fire = Counter(r.fire_id for r in made)
    assert max(per_fire.values()) == 1, per_fire.most_common(3)
    recorded = {f.id: f for f in await fires(rt)}
    for run in made:
        fire = recorded[run.fire_id]  # type: ignore[index]
        assert fire.run_id == run.id and run.profile == fire.profile
    # Every fire up to the cursor exists once per profile, and each succeeded one ran once.
    assert sum(f.status == "succeeded" for f in recorded.values()) == sum(
        r.status == "succeeded" for r in made
    )
    # The run folders are on the host that ran each run.
    homes = {Path(r.run_dir).parents[1].name for r in made}
    assert homes == {w.name for w in workers}


async def test_two_servers_on_one_store_never_fire_twice(
    rt: Runtime, portal: str, cluster: tuple[list[Host], dict[str, str]], tmp_path: Path
) -> None:
    await rt.profiles.create("a")
    await rt.profiles.create("b")
    await schedule(rt, quick_task(portal), ["a", "b"], Timing(every_s=1), overlap="allow")
    await worker(cluster, tmp_path, "worker-0", "--concurrency", "4")
    one = await serve(cluster, tmp_path, "serve-0")
    two = await serve(cluster, tmp_path, "serve-1")

    async def enough() -> bool:
        return sum(f.status == "succeeded" for f in await fires(rt)) >= 10

    await until(enough, 120, "ten fires to succeed")
    assert one.stop() == 0 and two.stop() == 0
    recorded = await fires(rt)
    # One fire per scheduled time and profile, however many servers enqueued...
    assert max(Counter((f.scheduled_at, f.profile) for f in recorded).values()) == 1
    # ... one job per attempt in the queue, and one run per fire.
    jobs = await rt.store.fetch_all(
        "SELECT queueing_lock, count(*) AS n FROM procrastinate_jobs GROUP BY queueing_lock"
    )
    assert jobs and max(int(j["n"]) for j in jobs) == 1
    per_fire = Counter(r.fire_id for r in await runs(rt) if r.fire_id)
    assert max(per_fire.values()) == 1


async def test_kill_9_of_a_worker_mid_action_retries_the_fire_elsewhere_and_never_repeats_it(
    rt: Runtime, cluster: tuple[list[Host], dict[str, str]], tmp_path: Path
) -> None:
    # The portal records a payment, then takes 4 s to answer: the worker dies in between.
    with PortalServer(port=0, db_path=tmp_path / "portal.db", pay_delay_s=4) as shop:
        inv = await pay_on_alice(rt, shop)
        first = await worker(cluster, tmp_path, "worker-0")
        await serve(cluster, tmp_path, "serve-0")
        [fire] = await rt.services.schedules.run_now(LOCAL_ACTOR, "s")

        pay = await next_request(rt, timeout_s=90)
        await rt.services.approvals.decide(LOCAL_ACTOR, pay.id, True)
        confirm = await next_request(rt, besides=pay)
        await rt.services.approvals.decide(LOCAL_ACTOR, confirm.id, True)

        async def claimed_and_paid() -> bool:
            claimed = (await rt.approvals.get(confirm.id)).status == "executing"
            return claimed and bool(PortalStore(shop.db_path).paid_numbers("alice"))

        await until(claimed_and_paid, 60, "the payment to be claimed and made")
        first.kill()
        assert first.children and not wait_gone(first.children), "the dead worker's browser lives"
        second = await worker(cluster, tmp_path, "worker-1")

        asked: list[str] = []

        async def settled() -> Fire | None:
            # Whatever the retry asks a person, it asks with the earlier attempt on record,
            # and this person says no.
            for request in await rt.approvals.list_requests("pending"):
                asked.append(request.id)
                await rt.services.approvals.decide(LOCAL_ACTOR, request.id, False)
            now = await rt.store.schedules.get_fire(fire.id)
            return now if now and now.status not in ("queued", "running") else None

        done = await until(settled, 120, "the fire to settle on the second worker")
        assert second.stop() == 0, second.text()
    attempts = sorted(
        (r for r in await runs(rt) if r.fire_id == fire.id), key=lambda r: r.attempt or 0
    )
    assert [r.attempt for r in attempts] == [1, 2], done.note
    assert attempts[0].status == "interrupted"
    assert done.attempt == 2 and owner_pid(done) == second.proc.pid
    # The approved payment was made once: its request says it may have happened, and no later
    # request for the same action was ever acted on.
    claimed = await rt.approvals.get(confirm.id)
    assert claimed.status == "unconfirmed"
    acted = await rt.store.fetch_all(
        "SELECT id FROM approvals WHERE idempotency_key = ? AND status IN ('executing', "
        "'executed') ",
        (confirm.idempotency_key,),
    )
    assert acted == []
    assert PortalStore(shop.db_path).paid_numbers("alice") == {inv.number}


async def test_a_worker_cut_off_from_the_database_stops_and_never_acts_on_the_lease_it_lost(
    rt: Runtime, cluster: tuple[list[Host], dict[str, str]], tmp_path: Path
) -> None:
    started, env = cluster
    url = urlsplit(env["CORRAL_DATABASE_URL"])
    cable = Cable(int(url.port or 5432))
    port = await cable.start()
    # Worker A reaches the database only through the cable.
    through = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{port}"))
    try:
        with PortalServer(port=0, db_path=tmp_path / "portal.db") as shop:
            inv = await pay_on_alice(rt, shop)
            cut_off = Host(tmp_path, "worker-a", {**env, "CORRAL_DATABASE_URL": through}, "worker")
            started.append(cut_off)
            await cut_off.ready("takes fires from")
            await serve(cluster, tmp_path, "serve-0")
            [fire] = await rt.services.schedules.run_now(LOCAL_ACTOR, "s")
            pay = await next_request(rt, timeout_s=90)
            [first_run] = [r for r in await runs(rt) if r.fire_id == fire.id]

            # The network splits; a person approves what worker A asked, which A cannot see.
            cable.cut()
            await rt.services.approvals.decide(LOCAL_ACTOR, pay.id, True)
            # A stops its own run once no heartbeat got through for most of the timeout.
            await until(
                lambda: "lost" in cut_off.text() and first_run.id in cut_off.text(),
                60,
                "worker A to stop the run whose lease it could not renew",
            )
            # The fire goes to worker B: the run A left is interrupted by its stale heartbeat.
            second = await worker(cluster, tmp_path, "worker-b")

            async def settled() -> Fire | None:
                for request in await rt.approvals.list_requests("pending"):
                    await rt.services.approvals.decide(LOCAL_ACTOR, request.id, True)
                now = await rt.store.schedules.get_fire(fire.id)
                return now if now and now.status not in ("queued", "running") else None

            done = await until(settled, 120, "the fire to settle on worker B")
            assert done.status == "succeeded" and done.attempt == 2, done.note
            saved = await rt.store.profiles.get_profile("alice")
            assert saved is not None

            # A comes back: it acts on nothing it lost, and overwrites nothing B saved.
            cable.mend()
            await until(
                lambda: "state not saved" in cut_off.text(),
                150,
                "worker A to finish closing the stopped run",
            )
            assert await cut_off.stopped() == 0, cut_off.text()
            assert await second.stopped() == 0, second.text()
            after = await rt.store.profiles.get_profile("alice")
            assert after is not None and after.state_saved_at == saved.state_saved_at
            assert PortalStore(shop.db_path).paid_numbers("alice") == {inv.number}
    finally:
        await cable.close()
    runs_a = await rt.store.runs.get_run(first_run.id)
    assert runs_a is not None and runs_a.status == "interrupted"
    # What A was approved to do while cut off was never claimed; B's own requests were.
    approved_a = await rt.approvals.get(pay.id)
    assert approved_a.status == "cancelled"
    acted = await rt.store.fetch_all(
        "SELECT run_id FROM approvals WHERE status IN ('executing', 'executed', 'unconfirmed')"
    )
    assert acted and {r["run_id"] for r in acted} == {done.run_id}
