"""Retention and ``corral gc``: expired run data is deleted, and nothing else.

Real Chromium runs on the demo portal (driven by a fake planner) leave real screenshots, traces,
page excerpts and results; gc, aged with an injected ``now`` (never a sleep), deletes the kinds
past their rule from the run folder, the object store (local or a real S3 server) and the
store, keeps the run's row, status, costs and step skeleton, and writes one audit row per kind
without the data. A run that is still going is never touched; a task's rule beats its profile's,
which beats the global default; a dry run deletes nothing and reports the same set; a second gc
deletes nothing more; the replay, the console and the API say "expired". Store-level tests run on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from profiles import BrowserPool, ProfileSettings, UserError
from runtime import RunResult, Runtime, Settings, load_task, parse_task, run_task
from runtime.auth import LOCAL_ACTOR, Actor, PermissionDeniedError
from runtime.demo import DEMO_TASK
from runtime.demo.portal import USERS
from runtime.errors import TaskFileError
from runtime.models import ModelResponse
from runtime.records import ArtifactRecord, RunRecord
from runtime.retention import Retention
from runtime.review.replay import fetch_review_images, render_replay
from runtime.services.retention import GcReport
from runtime.task import load_task_text
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import login_then
from tests.support.cli import corral
from tests.support.console import served_console, sign_in
from tests.support.demo import make_demo_profiles
from tests.support.s3 import S3
from tests.support.wait import until

ADA = Actor("ada", "admin")
BOB = Actor("bob", "user")
REASON = "The Sign in button submits the form I filled."
DAY = timedelta(days=1)


# --- helpers ----------------------------------------------------------------------------------


def _count(page: str) -> ModelResponse:
    found = re.search(r"Unpaid invoices:\s*(\d+)", page)
    assert found, page
    return reply(call("done", result={"unpaid": int(found.group(1))}))


async def goal_run(rt: Runtime, portal: str, profile: str, **task: Any) -> RunResult:
    """A goal run as alice on ``profile``, started through the service layer (as the CLI does):
    it signs in (the model saying why it clicks) and reports the unpaid invoices."""
    if profile not in {p.name for p in await rt.profiles.list()}:
        await rt.profiles.create(profile, ProfileSettings(vars={"user": "alice"}))
    await rt.vault.set("alice.password", USERS["alice"].password, [portal], [profile])
    planner = FunctionModel(login_then(_count, text=REASON), name="planner")
    spec = {
        "name": "goal",
        "start_url": f"{portal}/dashboard",
        "secrets": ["alice.password"],
        "goal": "Report how many unpaid invoices the account has.",
        "output_schema": {"type": "object"},
        **task,
    }
    result = await rt.services.runs.run(
        LOCAL_ACTOR, parse_task(spec, "goal.yaml"), profile, models={"planner": [planner]}
    )
    assert result.status == "succeeded", result.error
    return result


def files_of(folder: Path) -> dict[str, str]:
    """Every file under ``folder``: relative path -> SHA-256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


async def rows_of(rt: Runtime, run_id: str) -> dict[str, Any]:
    """Everything the store holds of one run."""
    store = rt.store
    return {
        "run": (await store.runs.get_run(run_id)),
        "steps": await store.runs.list_steps(run_id),
        "artifacts": await store.runs.list_artifacts(run_id),
        "calls": await store.runs.list_model_calls(run_id),
    }


def pairs(report: GcReport) -> set[tuple[str, str]]:
    return {(d.run_id, d.kind) for d in report.deletions}


async def deletions_in_audit(rt: Runtime) -> list[dict[str, Any]]:
    entries = await rt.services.audit.list(LOCAL_ACTOR, 1000, "retention.delete")
    return [{"subject": e.subject, "actor": e.actor, **(e.detail or {})} for e in entries]


async def synthetic_run(
    rt: Runtime, run_id: str, task: str, profile: str, *, ended: bool = True
) -> Path:
    """A run row with a registered trace file (and, once ended, a result value): for tests of
    the rules, where what matters is which runs gc picks, not what a browser recorded."""
    run_dir = rt.settings.runs_dir / run_id
    run_dir.mkdir(parents=True)
    started = datetime.now(UTC) - timedelta(days=30)
    await rt.store.runs.create_run(
        RunRecord(
            id=run_id,
            task_name=task,
            profile=profile,
            task_path=None,
            status="running",
            started_at=started,
            run_dir=str(run_dir),
            pid=os.getpid(),
        )
    )
    trace = run_dir / "trace.zip"
    trace.write_bytes(b"PK trace of " + run_id.encode())
    await rt.store.runs.add_artifact(
        ArtifactRecord(
            run_id=run_id,
            step_idx=None,
            kind="trace",
            path="trace.zip",
            bytes=trace.stat().st_size,
            created_at=started,
        )
    )
    if ended:
        await rt.store.runs.finish_run(run_id, "succeeded", None, {"account": "ACME-7731"})
    return run_dir


# --- real runs --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_gc_deletes_a_runs_expired_data_and_nothing_else(
    rt: Runtime, portal: str, tmp_path: Path
) -> None:
    # Global default: traces a day. The expiring task sets the other kinds to a day; the kept
    # task sets nothing, and its profile keeps traces forever (profile beats global).
    rt.settings = rt.settings.model_copy(update={"retention": Retention(traces="1d")})
    expiring = await goal_run(
        rt,
        portal,
        "alice",
        name="expiring",
        retention={"screenshots": "1d", "excerpts": "1d", "results": "1d"},
    )
    kept = await goal_run(rt, portal, "keeper", name="kept")
    await rt.services.retention.set_profile_rule(LOCAL_ACTOR, "keeper", Retention(traces="forever"))
    # A run of the expiring task that is still going (started a month ago): never touched.
    live_dir = await synthetic_run(rt, "live-run", "expiring", "alice", ended=False)

    gone_id, kept_id = str(expiring.run_id), str(kept.run_id)
    gone_dir, kept_dir = Path(str(expiring.run_dir)), Path(str(kept.run_dir))
    before = await rows_of(rt, gone_id)
    steps_before = before["steps"]
    excerpt = next(s.detail["excerpt"] for s in steps_before if (s.detail or {}).get("excerpt"))
    assert {a.kind for a in before["artifacts"]} == {"screenshot", "trace", "result"}
    assert any(s.screenshot for s in steps_before)
    assert any((s.detail or {}).get("reason") == REASON for s in steps_before)
    assert before["run"].result is not None and before["calls"]
    untouched = {
        kept_id: (files_of(kept_dir), await rows_of(rt, kept_id)),
        "live-run": (files_of(live_dir), await rows_of(rt, "live-run")),
    }
    gone_files = files_of(gone_dir)
    later = datetime.now(UTC) + 2 * DAY

    # Not yet: a day has not passed since the runs ended.
    assert (await rt.services.retention.gc(LOCAL_ACTOR, now=datetime.now(UTC))).deletions == []

    dry = await rt.services.retention.gc(LOCAL_ACTOR, dry_run=True, now=later)
    everything = {(gone_id, k) for k in ("screenshots", "traces", "excerpts", "results")}
    assert pairs(dry) == everything
    assert files_of(gone_dir) == gone_files  # a dry run deletes nothing
    assert await rows_of(rt, gone_id) == before
    assert await deletions_in_audit(rt) == []

    done = await rt.services.retention.gc(LOCAL_ACTOR, now=later)
    assert pairs(done) == pairs(dry)
    assert [d.model_dump() for d in done.deletions] == [d.model_dump() for d in dry.deletions]
    shots = next(d for d in done.deletions if d.kind == "screenshots")
    assert shots.files == sum(1 for a in before["artifacts"] if a.kind == "screenshot")
    assert shots.bytes == sum(a.bytes for a in before["artifacts"] if a.kind == "screenshot")

    # The files are gone; steps.jsonl stays, without page text.
    left = files_of(gone_dir)
    assert sorted(left) == ["steps.jsonl"], left
    jsonl = (gone_dir / "steps.jsonl").read_text()
    assert excerpt not in jsonl and REASON not in jsonl
    copied = [json.loads(line) for line in jsonl.splitlines()]
    assert [(r["idx"], r["kind"], r["status"]) for r in copied] == [
        (s.idx, s.kind, s.status) for s in steps_before
    ]
    # The store: the run's row, status, costs and step skeleton stay; the data does not.
    after = await rows_of(rt, gone_id)
    run = after["run"]
    assert run.status == "succeeded" and run.result is None
    assert set(run.expired or {}) == {"screenshots", "traces", "excerpts", "results"}
    assert after["artifacts"] == []
    assert after["calls"] == before["calls"]
    assert [(s.idx, s.kind, s.action, s.target, s.status, s.url_after) for s in after["steps"]] == [
        (s.idx, s.kind, s.action, s.target, s.status, s.url_after) for s in steps_before
    ]
    for step in after["steps"]:
        assert step.screenshot is None
        assert not {"excerpt", "reason", "value"} & set(step.detail or {})
    # Nothing else was touched.
    for run_id, (files, rows) in untouched.items():
        folder = kept_dir if run_id == kept_id else live_dir
        assert files_of(folder) == files, run_id
        assert await rows_of(rt, run_id) == rows, run_id

    # The audit log has the fact of each deletion, never the data.
    audited = await deletions_in_audit(rt)
    assert {(a["subject"], a["kind"]) for a in audited} == everything
    rules = {a["kind"]: a["rule"] for a in audited}
    assert rules == {
        "screenshots": "1d (task)",
        "excerpts": "1d (task)",
        "results": "1d (task)",
        "traces": "1d (global)",
    }
    text = json.dumps(audited)
    for data in (excerpt, REASON, "unpaid", "steps/0", "trace.zip", USERS["alice"].password):
        assert data not in text, data
    assert await rt.services.audit.verify(LOCAL_ACTOR) >= 4

    # Idempotent: a second gc deletes nothing more and writes no audit row.
    again = await rt.services.retention.gc(LOCAL_ACTOR, now=later + DAY)
    assert again.deletions == [] and again.failed == []
    assert len(await deletions_in_audit(rt)) == 4

    # The replay, the console and the API show the run, and say what expired.
    review = await rt.services.runs.review(LOCAL_ACTOR, gone_id)
    html = render_replay(review, gone_dir, await fetch_review_images(rt.objects, review))
    assert "Expired: this run" in html and "Screenshot expired" in html
    assert "The trace expired" in html and "The output expired" in html
    assert "data:image/" not in html and excerpt not in html
    out = tmp_path / "replay.html"
    made = await asyncio.to_thread(corral, "replay", gone_id, "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert "Expired: this run" in out.read_text()
    async with served_console(rt) as console:
        async with sign_in(console.url, console.tokens["root"]) as root:
            page = await root.get(f"/console/runs/{gone_id}")
            assert page.status_code == 200
            assert "Expired: this run" in page.text and "<img" not in page.text
        headers = {"Authorization": f"Bearer {console.tokens['root']}"}
        async with httpx.AsyncClient(base_url=console.url, headers=headers) as api:
            shown = await api.get(f"/api/runs/{gone_id}")
            assert shown.status_code == 200, shown.text
            body = shown.json()
            assert set(body["run"]["expired"]) == set(run.expired or {})
            assert body["run"]["status"] == "succeeded" and body["artifacts"] == []
            assert len(body["steps"]) == len(steps_before)
            assert (await api.get(f"/api/runs/{gone_id}/review")).status_code == 200
            assert (await api.get(f"/api/runs/{gone_id}/replay")).status_code == 200
            trace = await api.get(f"/api/runs/{gone_id}/files/trace.zip")
            assert trace.status_code == 404 and "expired: " in trace.text


@pytest.mark.slow
async def test_gc_deletes_the_object_stores_copies_too(
    s3: S3, home: Path, pool: BrowserPool, portal: str
) -> None:
    every_day = Retention(screenshots="1d", traces="1d", excerpts="1d", results="1d")
    settings = Settings(home=home, lease_timeout_s=5, artifacts_url=s3.url("corral"))
    async with Runtime.open(settings.model_copy(update={"retention": every_day}), pool=pool) as rt:
        await make_demo_profiles(rt, portal, "alice", "bob")
        task = load_task(DEMO_TASK)
        old = await run_task(rt, task, "alice", {"portal": portal})
        new = await run_task(rt, task, "bob", {"portal": portal})
        assert old.status == new.status == "succeeded", (old.error, new.error)
        old_id, new_id = str(old.run_id), str(new.run_id)
        in_bucket = s3.keys(f"corral/runs/{old_id}/")
        assert any(k.endswith(".jpg") for k in in_bucket) and any(
            k.endswith("trace.zip") for k in in_bucket
        )
        new_keys = s3.keys(f"corral/runs/{new_id}/")
        # bob's run ended a few seconds later: age it against a time only alice's has reached.
        ended = {r.id: r.finished_at for r in await rt.store.runs.list_runs(10)}
        assert ended[old_id] is not None and ended[new_id] is not None
        assert ended[new_id] > ended[old_id]  # bob's run started once alice's had ended
        at = ended[old_id] + DAY
        report = await rt.services.retention.gc(LOCAL_ACTOR, now=at)
        assert {r for r, _kind in pairs(report)} == {old_id}
        assert report.failed == []
        assert s3.keys(f"corral/runs/{old_id}/") == []
        assert s3.keys(f"corral/runs/{new_id}/") == new_keys
        assert not list((Path(str(old.run_dir)) / "steps").glob("*.jpg"))


# --- rules, on both stores --------------------------------------------------------------------


@pytest.fixture
async def ruled(rt_nobrowser: Runtime) -> Runtime:
    """Global: traces 1d; profile p: traces 3d; task t: traces 10d. Runs: t on p, u on p, u on
    q (ended a month after they started, now), and u on q still running."""
    rt = rt_nobrowser
    rt.settings = rt.settings.model_copy(update={"retention": Retention(traces="1d")})
    for name in ("p", "q"):
        await rt.profiles.create(name, ProfileSettings())
    await rt.services.retention.set_profile_rule(ADA, "p", Retention(traces="3d"))
    spec = {"name": "t", "steps": [{"goto": "http://127.0.0.1:9/"}], "retention": {"traces": "10d"}}
    await rt.services.retention.note_task(parse_task(spec, "t.yaml"))
    await synthetic_run(rt, "r-tp", "t", "p")
    await synthetic_run(rt, "r-up", "u", "p")
    await synthetic_run(rt, "r-uq", "u", "q")
    await synthetic_run(rt, "r-live", "u", "q", ended=False)
    return rt


@pytest.fixture
async def rt_nobrowser(settings: Settings) -> Any:
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.mark.both_backends
async def test_a_tasks_rule_beats_its_profiles_which_beats_the_default(ruled: Runtime) -> None:
    rt, start = ruled, datetime.now(UTC)
    gc = rt.services.retention.gc
    assert pairs(await gc(ADA, now=start + 2 * DAY)) == {("r-uq", "traces")}  # global 1d
    assert pairs(await gc(ADA, now=start + 5 * DAY)) == {("r-up", "traces")}  # profile 3d
    assert pairs(await gc(ADA, now=start + 9 * DAY)) == set()
    assert pairs(await gc(ADA, now=start + 11 * DAY)) == {("r-tp", "traces")}  # task 10d
    assert pairs(await gc(ADA, now=start + 400 * DAY)) == set()
    for run_id in ("r-tp", "r-up", "r-uq"):
        assert not (rt.settings.runs_dir / run_id / "trace.zip").exists()
        run = await rt.store.runs.get_run(run_id)
        assert run is not None and set(run.expired or {}) == {"traces"}
        assert run.result == {"account": "ACME-7731"}  # results: forever by default
    # The run still going is never touched, however old.
    live = await rt.store.runs.get_run("r-live")
    assert live is not None and live.status == "running" and live.expired is None
    assert (rt.settings.runs_dir / "r-live" / "trace.zip").exists()
    assert len(await rt.store.runs.list_artifacts("r-live")) == 1
    audited = await deletions_in_audit(rt)
    assert sorted((a["subject"], a["rule"], a["actor"]) for a in audited) == [
        ("r-tp", "10d (task)", "ada"),
        ("r-up", "3d (profile)", "ada"),
        ("r-uq", "1d (global)", "ada"),
    ]
    shown = await rt.services.retention.rules(ADA, task="t", profile="q")
    assert shown.applied is not None and shown.applied["traces"].words() == "10d (task)"
    assert shown.applied["results"].words() == "forever (default)"


@pytest.mark.both_backends
async def test_a_dry_run_reports_the_same_set_and_deletes_nothing(ruled: Runtime) -> None:
    rt, later = ruled, datetime.now(UTC) + 30 * DAY
    dry = await rt.services.retention.gc(ADA, dry_run=True, now=later)
    assert pairs(dry) == {("r-tp", "traces"), ("r-up", "traces"), ("r-uq", "traces")}
    for run_id in ("r-tp", "r-up", "r-uq"):
        assert (rt.settings.runs_dir / run_id / "trace.zip").exists()
        run = await rt.store.runs.get_run(run_id)
        assert run is not None and run.expired is None
    assert await deletions_in_audit(rt) == []
    done = await rt.services.retention.gc(ADA, now=later)
    assert [d.model_dump() for d in done.deletions] == [d.model_dump() for d in dry.deletions]


@pytest.mark.both_backends
async def test_only_an_admin_may_gc_or_set_rules(ruled: Runtime) -> None:
    rt, later = ruled, datetime.now(UTC) + 30 * DAY
    with pytest.raises(PermissionDeniedError, match="bob \\(user\\) may not delete expired"):
        await rt.services.retention.gc(BOB, now=later)
    with pytest.raises(PermissionDeniedError):
        await rt.services.retention.gc(BOB, dry_run=True, now=later)
    with pytest.raises(PermissionDeniedError):
        await rt.services.retention.set_profile_rule(BOB, "q", Retention(traces="1h"))
    assert (rt.settings.runs_dir / "r-uq" / "trace.zip").exists()
    assert (await rt.services.retention.rules(ADA)).profiles == {"p": {"traces": "3d"}}
    assert await deletions_in_audit(rt) == []


@pytest.mark.both_backends
async def test_a_task_file_without_retention_falls_back_again(ruled: Runtime) -> None:
    rt = ruled
    spec = {"name": "t", "steps": [{"goto": "http://127.0.0.1:9/"}]}
    await rt.services.retention.note_task(parse_task(spec, "t.yaml"))
    assert (await rt.services.retention.rules(ADA)).tasks == {}
    report = await rt.services.retention.gc(ADA, now=datetime.now(UTC) + 5 * DAY)
    assert ("r-tp", "traces") in pairs(report)  # now under profile p's 3d


# --- input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retention", "expected"),
    [
        ("{screenshots: 7x}", ["retention.screenshots:", "expected a duration like 30d", "'7x'"]),
        ("{screenshot: 7d}", ["retention.screenshot: unknown field"]),
        ("{traces: 0d}", ["retention.traces:", "expected a duration", "'0d'"]),
        ("{results: 7}", ["retention.results:", "expected a duration", "7"]),
        ("{excerpts: [7d]}", ["retention.excerpts:", "expected a duration"]),
        ("{traces: 99999d}", ["retention.traces:", "use 'forever'"]),
        ("30d", ["retention:", "valid dictionary"]),
    ],
)
def test_bad_retention_in_a_task_file_is_a_clear_error(retention: str, expected: list[str]) -> None:
    text = f"name: t\nsteps: [{{goto: 'http://127.0.0.1:9/'}}]\nretention: {retention}\n"
    with pytest.raises(TaskFileError) as caught:
        load_task_text(text, "tasks/t.yaml")
    message = str(caught.value)
    assert message.startswith("tasks/t.yaml: retention"), message
    for part in expected:
        assert part in message, message


def test_good_retention_values_and_the_environment() -> None:
    task = load_task_text(
        "name: t\nsteps: [{goto: 'http://127.0.0.1:9/'}]\n"
        "retention: {screenshots: 30d, traces: 12H, excerpts: never, results: 2w}\n",
        "t.yaml",
    )
    assert task.retention is not None
    assert task.retention.given() == {
        "screenshots": "30d",
        "traces": "12h",
        "excerpts": "forever",
        "results": "2w",
    }
    env = {"CORRAL_HOME": "/tmp/x", "CORRAL_RETENTION_TRACES": "7d"}
    assert Settings.from_env(env).retention.given() == {"traces": "7d"}
    with pytest.raises(UserError, match="CORRAL_RETENTION_SCREENSHOTS='soon': expected"):
        Settings.from_env({**env, "CORRAL_RETENTION_SCREENSHOTS": "soon"})


async def test_the_cli_gc_and_retention_commands(rt_nobrowser: Runtime) -> None:
    rt = rt_nobrowser
    await rt.profiles.create("p", ProfileSettings())
    await synthetic_run(rt, "r-old", "u", "p")
    await synthetic_run(rt, "r-new", "u", "p")
    # r-old ended two days ago by the store's clock (the CLI ages against it).
    two_days_ago = (datetime.now(UTC) - 2 * DAY).isoformat()
    async with rt.store.tx() as db:
        await db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (two_days_ago, "r-old"))
    env: dict[str, str | None] = {"CORRAL_RETENTION_TRACES": "1d"}

    bad = await asyncio.to_thread(corral, "retention", "set", "--profile", "p", "traces=soon")
    assert bad.returncode == 2 and "traces" in bad.stderr and "expected" in bad.stderr
    dry = await asyncio.to_thread(corral, "gc", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    listed = json.loads(dry.stdout)
    assert listed["dry_run"] is True
    assert [(d["run_id"], d["kind"], d["rule"]) for d in listed["deletions"]] == [
        ("r-old", "traces", "1d (global)")
    ]
    assert (rt.settings.runs_dir / "r-old" / "trace.zip").exists()
    done = await asyncio.to_thread(corral, "gc", env=env)
    assert done.returncode == 0, done.stderr
    assert "deleted: 1 kind(s) of data of 1 run(s)" in done.stdout
    assert not (rt.settings.runs_dir / "r-old" / "trace.zip").exists()
    assert (rt.settings.runs_dir / "r-new" / "trace.zip").exists()
    again = await asyncio.to_thread(corral, "gc", env=env)
    assert again.returncode == 0 and "nothing expired" in again.stdout

    made = await asyncio.to_thread(
        corral, "retention", "set", "--profile", "p", "traces=forever", "screenshots=7d"
    )
    assert made.returncode == 0, made.stderr
    shown = await asyncio.to_thread(corral, "retention", "show", "--profile", "p", "--json")
    rules = json.loads(shown.stdout)
    assert rules["profiles"] == {"p": {"screenshots": "7d", "traces": "forever"}}
    assert rules["applied"]["traces"] == {"kind": "traces", "rule": "forever", "source": "profile"}
    cleared = await asyncio.to_thread(corral, "retention", "clear", "--profile", "p")
    assert cleared.returncode == 0 and "rule removed" in cleared.stdout


@pytest.mark.both_backends
async def test_a_hosts_leftover_copy_of_expired_data_is_swept_without_a_new_audit_row(
    ruled: Runtime,
) -> None:
    # Another host's pass deleted and marked r-uq's trace; this host still has its copy of the
    # run folder (the run was recorded here).
    rt, later = ruled, datetime.now(UTC) + 2 * DAY
    assert pairs(await rt.services.retention.gc(ADA, now=later)) == {("r-uq", "traces")}
    leftover = rt.settings.runs_dir / "r-uq" / "trace.zip"
    leftover.write_bytes(b"PK the copy this host kept")
    dry = await rt.services.retention.gc(ADA, dry_run=True, now=later)
    assert dry.deletions == [] and dry.swept == 1 and leftover.exists()
    swept = await rt.services.retention.gc(ADA, now=later)
    assert swept.deletions == [] and swept.swept == 1
    assert not leftover.exists()
    assert (await rt.services.retention.gc(ADA, now=later)).swept == 0
    assert len(await deletions_in_audit(rt)) == 1


async def test_serve_runs_the_same_gc_as_its_own_actor(settings: Settings) -> None:
    from runtime.serve.server import ServeOptions, serve

    async with Runtime.open(settings) as rt:
        await rt.profiles.create("p", ProfileSettings())
        await synthetic_run(rt, "r-old", "u", "p")
        await synthetic_run(rt, "r-new", "u", "p")
        async with rt.store.tx() as db:
            await db.execute(
                "UPDATE runs SET finished_at = ? WHERE id = ?",
                ((datetime.now(UTC) - 2 * DAY).isoformat(), "r-old"),
            )
    old = settings.runs_dir / "r-old" / "trace.zip"
    stop = asyncio.Event()
    configured = settings.model_copy(
        update={"retention": Retention(traces="1d"), "gc_interval_s": 3600}
    )
    server = asyncio.create_task(
        serve(configured, ServeOptions(port=0, tick_s=0.05), announce=lambda _line: None, stop=stop)
    )
    try:
        await until(lambda: not old.exists() or server.done(), 30, "the server's gc pass")
        assert not server.done()
    finally:
        stop.set()
        await server
    assert (settings.runs_dir / "r-new" / "trace.zip").exists()
    async with Runtime.open(settings) as rt:
        audited = await deletions_in_audit(rt)
    assert [(a["subject"], a["kind"], a["actor"]) for a in audited] == [
        ("r-old", "traces", "retention")
    ]


@pytest.mark.both_backends
async def test_the_results_evidence_loses_its_page_text_then_goes_with_the_result(
    rt_nobrowser: Runtime,
) -> None:
    rt, start = rt_nobrowser, datetime.now(UTC)
    await rt.profiles.create("p", ProfileSettings())
    await synthetic_run(rt, "r-cited", "u", "p", ended=False)
    cited = [{"field": "account", "excerpt": "Account ACME-7731", "url": "http://x/", "step": 2}]
    await rt.store.runs.finish_run("r-cited", "succeeded", None, {"account": "ACME-7731"}, cited)
    rules = Retention(excerpts="1d", results="3d")
    rt.settings = rt.settings.model_copy(update={"retention": rules})

    first = await rt.services.retention.gc(ADA, now=start + 2 * DAY)
    assert [(d.kind, d.records) for d in first.deletions] == [("excerpts", 1)]
    run = await rt.store.runs.get_run("r-cited")
    assert run is not None and run.result == {"account": "ACME-7731"}
    assert run.evidence == [{"field": "account", "url": "http://x/", "step": 2}]
    assert "ACME-7731" not in json.dumps(await deletions_in_audit(rt))

    second = await rt.services.retention.gc(ADA, now=start + 4 * DAY)
    assert [(d.kind, d.records) for d in second.deletions] == [("results", 2)]
    run = await rt.store.runs.get_run("r-cited")
    assert run is not None and run.result is None and run.evidence is None
    assert set(run.expired or {}) == {"excerpts", "results"}
