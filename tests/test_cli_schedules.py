"""``corral schedules`` as a user runs it: each command and its --json, bad input (exit 2 naming
it), the registered task copy, the schedule column of ``corral runs list``, and who may see or
change a schedule. In-process (``tests.support.cli.corral``) with no browser: nothing here runs a
task; ``corral serve`` runs the fires (tested with the server)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime import Runtime, Settings
from runtime.errors import PermissionDeniedError, exit_code_for
from runtime.records import RunRecord
from tests.support.cli import Outcome
from tests.support.cli import corral as run_corral

TASK = "name: look\nstart_url: http://127.0.0.1:9/login\nsteps:\n  - goto: /login\n"
FUTURE = "2099-01-01T00:00"  # a start in the future keeps `next` independent of today's date


def corral(*args: str, token: str | None = None) -> Outcome:
    """``corral ARGS`` in-process as the holder of ``token`` (none: single-user mode)."""
    return run_corral(*args, env={"CORRAL_TOKEN": token})


def ok(*args: str, token: str | None = None) -> Outcome:
    done = corral(*args, token=token)
    assert done.returncode == 0, done.stderr
    return done


def as_json(*args: str, token: str | None = None) -> object:
    return json.loads(ok(*args, "--json", token=token).stdout)


@pytest.fixture
def task(home: Path, tmp_path: Path) -> Path:
    """A task file and two profiles to schedule it on."""
    path = tmp_path / "task.yaml"
    path.write_text(TASK)
    ok("profiles", "create", "alice")
    ok("profiles", "create", "bob")
    return path


def new_token(proc: Outcome) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --- each command ---------------------------------------------------------------------------------


def test_add_list_show_and_next_in_the_schedules_zone(task: Path) -> None:
    added = as_json(
        "schedules",
        "add",
        "nightly",
        "--task",
        str(task),
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--profile",
        "alice",
        "--profile",
        "bob",
        "--var",
        "month=03",
        "--overlap",
        "buffer_one",
        "--catchup",
        "30m",
        "--jitter",
        "2m",
        "--retries",
        "2",
        "--backoff",
        "1m",
        "--pause-after",
        "never",
        "--origin-limit",
        "2",
        "--concurrency",
        "4",
        "--start",
        FUTURE,
        "--end",
        "2099-12-31T00:00Z",
        "--exclude-date",
        "2099-12-25",
        "--notify",
        "failure,pause",
    )
    assert isinstance(added, dict)
    assert "task_yaml" not in added  # the text is shown only when asked for
    assert added["name"] == "nightly" and added["task_name"] == "look"
    assert added["task_source"] == str(task.resolve())
    assert added["profiles"] == ["alice", "bob"] and added["vars"] == {"month": "03"}
    assert added["owner"] == "local" and added["paused"] is False
    assert added["timing"] == {
        "cron": "30 2 * * *",
        "tz": "Europe/Berlin",
        "every_s": None,
        "start_at": "2098-12-31T23:00:00Z",  # no offset given: read in --tz
        "end_at": "2099-12-31T00:00:00Z",
        "jitter_s": 120.0,
        "exclude_dates": ["2099-12-25"],
    }
    assert added["policy"] == {
        "overlap": "buffer_one",
        "catchup_s": 1800.0,
        "retries": 2,
        "backoff_s": 60.0,
        "max_backoff_s": 3600.0,
        "pause_after": None,
        "origin_limit": 2,
        "concurrency": 4,
        "notify": ["failure", "pause"],
        "canary": None,
    }

    [listed] = as_json("schedules", "list")
    assert listed["name"] == "nightly" and "task_yaml" not in listed
    assert listed["next_fire"] == "2099-01-01T01:30:00+00:00" and listed["last_fire"] is None
    table = ok("schedules", "list").stdout
    for shown in ("nightly", "look", "alice, bob", "cron '30 2 * * *' Europe/Berlin", "local"):
        assert shown in table
    assert "2099-01-01 02:30:00 CET" in table

    shown = as_json("schedules", "show", "nightly")
    assert isinstance(shown, dict) and shown["fires"] == []
    assert shown["schedule"] == {**added, "updated_at": shown["schedule"]["updated_at"]}
    text = ok("schedules", "show", "nightly").stdout
    for line in (
        "profiles:   alice, bob",
        "overlap:    buffer_one",
        "retries:    2 (backoff 1m",
        "pause:      never",
        "limits:     origin 2, concurrency 4",
        "notify:     failure,pause",
        "excluded:   2099-12-25",
        "no fires yet",
    ):
        assert line in text

    # 2099-03-29 is the last Sunday of March: 02:30 does not exist in Berlin that day and fires
    # once, at the transition (03:00 CEST = 01:00 UTC); the day after is on summer time.
    spring = as_json("schedules", "update", "nightly", "--start", "2099-03-28")
    assert isinstance(spring, dict) and spring["timing"]["start_at"] == "2099-03-27T23:00:00Z"
    upcoming = as_json("schedules", "next", "nightly", "-n", "3")
    assert upcoming == {
        "schedule": "nightly",
        "tz": "Europe/Berlin",
        "paused": False,
        "times": [
            {"local": "2099-03-28T02:30:00+01:00", "utc": "2099-03-28T01:30:00+00:00"},
            {"local": "2099-03-29T03:00:00+02:00", "utc": "2099-03-29T01:00:00+00:00"},
            {"local": "2099-03-30T02:30:00+02:00", "utc": "2099-03-30T00:30:00+00:00"},
        ],
    }
    lines = ok("schedules", "next", "nightly", "-n", "2").stdout.splitlines()
    assert lines == [
        "2099-03-28 02:30:00 CET  (2099-03-28 01:30:00 UTC)",
        "2099-03-29 03:00:00 CEST  (2099-03-29 01:00:00 UTC)",
    ]


def test_every_with_tz_reads_start_in_that_zone_and_anchors_on_it(task: Path) -> None:
    added = as_json(
        "schedules",
        "add",
        "status",
        "--task",
        str(task),
        "--every",
        "10m",
        "--tz",
        "Asia/Tokyo",
        "--start",
        "2099-01-01T09:00",
        "--profile",
        "alice",
    )
    assert isinstance(added, dict)
    assert added["timing"]["every_s"] == 600.0 and added["timing"]["cron"] is None
    assert added["timing"]["start_at"] == "2099-01-01T00:00:00Z"
    times = as_json("schedules", "next", "status", "-n", "2")
    assert isinstance(times, dict)
    assert [t["utc"] for t in times["times"]] == [
        "2099-01-01T00:00:00+00:00",
        "2099-01-01T00:10:00+00:00",
    ]
    assert "every 10m (Asia/Tokyo)" in ok("schedules", "list").stdout


def test_pause_resume_run_now_backfill_fires_update_and_rm(task: Path) -> None:
    ok(
        "schedules",
        "add",
        "daily",
        "--task",
        str(task),
        "--cron",
        "0 6 * * *",
        "--profile",
        "alice",
        "--profile",
        "bob",
    )

    paused = as_json("schedules", "pause", "daily", "--reason", "portal down")
    assert isinstance(paused, dict) and paused["paused"] is True
    assert paused["paused_reason"] == "portal down"
    assert "yes: portal down" in ok("schedules", "list").stdout
    assert as_json("schedules", "next", "daily") == {
        "schedule": "daily",
        "tz": "UTC",
        "paused": True,
        "times": [],
    }
    assert "no coming fires (paused)" in ok("schedules", "next", "daily").stdout
    resumed = as_json("schedules", "resume", "daily")
    assert isinstance(resumed, dict) and resumed["paused"] is False
    assert resumed["paused_reason"] is None

    now = as_json("schedules", "run-now", "daily")
    assert isinstance(now, list)
    assert sorted((f["profile"], f["kind"], f["status"]) for f in now) == [
        ("alice", "manual", "queued"),
        ("bob", "manual", "queued"),
    ]
    # The days are read in the schedule's zone (UTC here): 06:00 on the 2nd and on the 3rd.
    filled = as_json(
        "schedules", "backfill", "daily", "--from", "2026-01-01T12:00", "--to", "2026-01-03T12:00"
    )
    assert isinstance(filled, list)
    assert sorted((f["scheduled_at"], f["profile"]) for f in filled) == [
        ("2026-01-02T06:00:00Z", "alice"),
        ("2026-01-02T06:00:00Z", "bob"),
        ("2026-01-03T06:00:00Z", "alice"),
        ("2026-01-03T06:00:00Z", "bob"),
    ]
    assert {f["kind"] for f in filled} == {"backfill"}
    # A second backfill of the same range adds nothing: a fire exists once.
    again = ok(
        "schedules", "backfill", "daily", "--from", "2026-01-01T12:00Z", "--to", "2026-01-03T12:00Z"
    )
    assert "0 fire(s) added" in again.stdout

    fires = as_json("schedules", "fires", "daily")
    assert isinstance(fires, list) and len(fires) == 6
    assert {f["id"] for f in fires} == {f["id"] for f in [*now, *filled]}
    assert len(as_json("schedules", "fires", "daily", "--limit", "2")) == 2
    table = ok("schedules", "fires", "daily").stdout
    assert "backfill" in table and "manual" in table and "queued" in table
    shown = as_json("schedules", "show", "daily")
    assert isinstance(shown, dict) and len(shown["fires"]) == 6
    [listed] = as_json("schedules", "list")
    assert listed["last_fire"]["kind"] == "manual"  # the latest scheduled time

    updated = as_json(
        "schedules", "update", "daily", "--every", "1h", "--retries", "3", "--profile", "bob"
    )
    assert isinstance(updated, dict)
    assert updated["timing"]["every_s"] == 3600.0 and updated["timing"]["cron"] is None
    assert updated["policy"]["retries"] == 3 and updated["profiles"] == ["bob"]
    assert updated["policy"]["overlap"] == "skip"  # not given: unchanged
    nothing = corral("schedules", "update", "daily")
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr

    assert as_json("schedules", "rm", "daily") == {"removed": "daily"}
    assert as_json("schedules", "list") == []
    assert "no schedules" in ok("schedules", "list").stdout
    gone = corral("schedules", "show", "daily")
    assert gone.returncode == 2 and "no schedule 'daily'" in gone.stderr


def test_the_task_text_is_registered_and_changes_only_by_update_task(
    task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    added = as_json(
        "schedules", "add", "look", "--task", "task.yaml", "--every", "1h", "--profile", "alice"
    )
    assert isinstance(added, dict) and added["task_source"] == str(tmp_path / "task.yaml")

    edited = TASK.replace("name: look", "name: changed")
    task.write_text(edited)
    assert ok("schedules", "show", "look", "--task").stdout == TASK
    shown = as_json("schedules", "show", "look", "--task")
    assert isinstance(shown, dict) and shown["schedule"]["task_yaml"] == TASK
    assert shown["schedule"]["task_name"] == "look"

    # Another change leaves the registered text alone; --task registers the file's text now.
    ok("schedules", "update", "look", "--jitter", "1m")
    assert ok("schedules", "show", "look", "--task").stdout == TASK
    updated = as_json("schedules", "update", "look", "--task", str(task))
    assert isinstance(updated, dict) and updated["task_name"] == "changed"
    assert ok("schedules", "show", "look", "--task").stdout == edited


# --- bad input ----------------------------------------------------------------------------------

WHEN = ("--every", "1h")
BAD_ADD = {
    "invalid_cron": (("--cron", "0 2 * *"), "cron '0 2 * *': expected 5 fields"),
    "cron_value": (("--cron", "0 25 * * *"), "cron '0 25 * * *'"),
    "unknown_zone": (
        ("--cron", "0 2 * * *", "--tz", "Mars/Base"),
        "'Mars/Base': unknown time zone",
    ),
    "bad_every": (("--every", "10 minutes"), "--every '10 minutes': expected a duration"),
    "bad_jitter": ((*WHEN, "--jitter", "soon"), "--jitter 'soon': expected a duration"),
    "bad_catchup": ((*WHEN, "--catchup", "1y"), "--catchup '1y': expected a duration"),
    "bad_backoff": ((*WHEN, "--backoff", "0"), "--backoff '0': a duration must be at least 1s"),
    "jitter_over_interval": ((*WHEN, "--jitter", "2h"), "jitter_s 2h: must be less than"),
    "unknown_profile": (
        ("--every", "1h", "--profile", "carol"),
        "--profile carol: unknown profile",
    ),
    "both": (("--cron", "0 2 * * *", "--every", "1h"), "one of --cron and --every, not both"),
    "neither": ((), "give --cron EXPR (with --tz ZONE) or --every DURATION"),
    "bad_start": ((*WHEN, "--start", "tomorrow"), "--start 'tomorrow': expected an ISO 8601 time"),
    "end_before_start": (
        (*WHEN, "--start", "2099-02-01", "--end", "2099-01-01"),
        "end_at 2099-01-01T00:00:00+00:00: must be after start_at",
    ),
    "bad_date": ((*WHEN, "--exclude-date", "25.12.2099"), "--exclude-date '25.12.2099'"),
    "bad_notify": ((*WHEN, "--notify", "failure,sms"), "--notify 'failure,sms': expected some of"),
    "bad_pause_after": ((*WHEN, "--pause-after", "0"), "--pause-after '0': expected a whole"),
    "bad_var": ((*WHEN, "--var", "novalue"), "--var 'novalue': expected NAME=VALUE"),
    "bad_overlap": ((*WHEN, "--overlap", "queue"), "'--overlap': 'queue' is not one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_ADD))
def test_bad_add_input_is_exit_2_naming_it(task: Path, case: str) -> None:
    flags, expected = BAD_ADD[case]
    profile = () if "--profile" in flags else ("--profile", "alice")
    done = corral("schedules", "add", "s", "--task", str(task), *flags, *profile)
    assert done.returncode == 2, done.stdout
    assert expected in done.stderr
    assert as_json("schedules", "list") == []  # nothing was registered


def test_missing_and_invalid_task_files_are_named(task: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    done = corral("schedules", "add", "s", "--task", str(missing), *WHEN, "--profile", "alice")
    assert done.returncode == 2 and f"{missing}: task file not found" in done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nstepz: []\n")
    done = corral("schedules", "add", "s", "--task", str(broken), *WHEN, "--profile", "alice")
    assert done.returncode == 2 and f"{broken}: stepz: unknown field" in done.stderr
    ok("schedules", "add", "s", "--task", str(task), *WHEN, "--profile", "alice")
    done = corral("schedules", "update", "s", "--task", str(missing))
    assert done.returncode == 2 and f"{missing}: task file not found" in done.stderr
    done = corral("schedules", "add", "s", "--task", str(task), *WHEN, "--profile", "alice")
    assert done.returncode == 2 and "a schedule named 's' exists" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("show", "nope"),
        ("next", "nope"),
        ("pause", "nope"),
        ("resume", "nope"),
        ("run-now", "nope"),
        ("rm", "nope"),
        ("fires", "nope"),
        ("update", "nope", "--retries", "1"),
        ("backfill", "nope", "--from", "2026-01-01", "--to", "2026-01-02"),
    ],
)
def test_an_unknown_schedule_is_exit_2_naming_it(home: Path, command: tuple[str, ...]) -> None:
    done = corral("schedules", *command)
    assert done.returncode == 2 and "no schedule 'nope'" in done.stderr


def test_bad_update_and_backfill_input_changes_nothing(task: Path) -> None:
    before = as_json(
        "schedules", "add", "s", "--task", str(task), "--cron", "0 6 * * *", "--profile", "alice"
    )
    for flags, expected in [
        (("--cron", "0 6 * *"), "expected 5 fields"),
        (("--tz", "Nowhere/Land"), "'Nowhere/Land': unknown time zone"),
        (("--cron", "0 6 * * *", "--every", "1h"), "not both"),
        (("--profile", "carol"), "--profile carol"),
        (("--every", "-5m"), "--every '-5m'"),
    ]:
        done = corral("schedules", "update", "s", *flags)
        assert done.returncode == 2 and expected in done.stderr, (flags, done.stderr)
    shown = as_json("schedules", "show", "s")
    assert isinstance(shown, dict) and shown["schedule"] == before

    future = corral("schedules", "backfill", "s", "--from", "2026-01-01", "--to", "2999-01-01")
    assert future.returncode == 2 and "--to is in the future" in future.stderr
    badtime = corral("schedules", "backfill", "s", "--from", "yesterday", "--to", "2026-01-01")
    assert badtime.returncode == 2 and "--from 'yesterday'" in badtime.stderr
    assert as_json("schedules", "fires", "s") == []


# --- runs list ----------------------------------------------------------------------------------


def test_runs_list_shows_and_filters_by_schedule(home: Path) -> None:
    async def insert() -> None:
        async with Runtime.open(Settings(home=home)) as rt:
            for run_id, schedule in (("r-by-hand", None), ("r-nightly", "nightly-invoices")):
                await rt.store.runs.create_run(
                    RunRecord(
                        id=run_id,
                        task_name="invoices",
                        task_path=None,
                        profile="alice",
                        status="succeeded",
                        started_at=datetime.now(UTC),
                        run_dir=str(home / "runs" / run_id),
                        pid=1,
                        schedule=schedule,
                        fire_id="f-0123456789abcdef0123" if schedule else None,
                        attempt=1 if schedule else None,
                    )
                )

    asyncio.run(insert())
    lines = ok("runs", "list").stdout.splitlines()
    header = next(line for line in lines if "profile" in line)
    assert header.index("profile") < header.index("schedule") < header.index("status")
    assert "nightly-invoices" in next(line for line in lines if "r-nightly" in line)
    assert "nightly" not in next(line for line in lines if "r-by-hand" in line)
    runs = as_json("runs", "list", "--schedule", "nightly-invoices")
    assert isinstance(runs, list) and [r["id"] for r in runs] == ["r-nightly"]
    assert runs[0]["fire_id"] == "f-0123456789abcdef0123" and runs[0]["attempt"] == 1
    assert as_json("runs", "list", "--schedule", "other") == []
    both = as_json("runs", "list", "--schedule", "nightly-invoices", "--profile", "bob")
    assert both == []


# --- who may see and change a schedule ----------------------------------------------------------


def test_grants_and_ownership_decide_who_sees_and_changes_a_schedule(task: Path) -> None:
    root = new_token(corral("users", "add", "root", "--role", "super_admin"))
    ada = new_token(corral("users", "add", "ada", "--role", "admin", token=root))
    bob = new_token(corral("users", "add", "bob", "--role", "user", token=root))
    add = ("schedules", "add")
    spec = ("--task", str(task), "--every", "1h")

    refused = corral(*add, "bobs", *spec, "--profile", "alice", token=bob)
    assert refused.returncode == exit_code_for(PermissionDeniedError("x"))
    assert "bob (user) may not schedule runs on 'alice'" in refused.stderr
    assert "not granted to bob" in refused.stderr
    assert as_json("schedules", "list", token=root) == []

    admins = as_json(*add, "adas", *spec, "--profile", "alice", token=ada)
    assert isinstance(admins, dict) and admins["owner"] == "ada"
    assert as_json("schedules", "list", token=bob) == []
    for command in (
        ("show", "adas"),
        ("next", "adas"),
        ("fires", "adas"),
        ("pause", "adas"),
        ("run-now", "adas"),
        ("update", "adas", "--retries", "5"),
        ("rm", "adas"),
    ):
        done = corral("schedules", *command, token=bob)
        assert done.returncode == 2 and "no schedule 'adas'" in done.stderr, command
    shown = as_json("schedules", "show", "adas", token=ada)
    assert isinstance(shown, dict) and shown["schedule"] == admins and shown["fires"] == []

    ok("users", "grant", "bob", "bob", token=ada)
    bobs = as_json(*add, "bobs", *spec, "--profile", "bob", token=bob)
    assert isinstance(bobs, dict) and bobs["owner"] == "bob"
    assert [s["name"] for s in as_json("schedules", "list", token=bob)] == ["bobs"]
    # Bob may not move his schedule onto a profile he has no grant on.
    moved = corral("schedules", "update", "bobs", "--profile", "alice", token=bob)
    assert moved.returncode == exit_code_for(PermissionDeniedError("x"))
    # An admin sees and may change everyone's.
    assert [s["name"] for s in as_json("schedules", "list", token=ada)] == ["adas", "bobs"]
    paused = as_json("schedules", "pause", "bobs", token=ada)
    assert isinstance(paused, dict) and paused["paused_reason"] == "paused by ada"
