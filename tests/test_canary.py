"""Canary fires: a schedule's ``--canary SHARE --canary-models FILE`` sends a deterministic share
of its fires (by fire id) to the candidate model config, each run records the config it used, and
``corral eval --schedule NAME`` compares the baseline and canary fires with the eval's figures.
Real fires (the scheduler and the fire runner), real Chromium on MiniWoB++ pages, the scripted
solvers behind the real ``openai`` SDK; the flags' bad input is exit 2 naming the flag."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runtime import Runtime, Settings
from runtime.auth import LOCAL_ACTOR
from runtime.eval.canary import is_canary
from runtime.eval.miniwob import MiniWobServer
from runtime.eval.solver import SOLVER_KEY_ENV, SolverServer, write_scripted_config
from runtime.run.runner import RunResult, new_run_id
from runtime.schedules import Fire, Schedule, SchedulePolicy, Timing
from runtime.schedules.records import Canary
from runtime.schedules.scheduler import Scheduler
from runtime.serve.fires import FireRunner
from runtime.services import ScheduleInput, Services
from tests.support.cli import corral, corral_process

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
FIRES = 12
SHARE = 0.25
TASK = """
name: canary-click
start_url: "{{var:miniwob}}click-button.html?seed=3&episode=x"
allowed_domains: ["{{var:miniwob_origin}}"]
goal: Do what the page asks.
trace: "off"
budget: {max_steps: 6, timeout_s: 60}
"""


class Launched:
    """The launcher side as the scheduler sees it: every claimed fire is kept to run here."""

    def __init__(self) -> None:
        self.fires: list[tuple[Fire, Schedule]] = []

    def free_slots(self) -> int:
        return 100

    def launch(self, fire: Fire, schedule: Schedule) -> None:
        self.fires.append((fire, schedule))

    def cancel(self, fire_id: str, reason: str) -> bool:
        return False


def used_config(result: RunResult) -> str | None:
    assert result.run_dir is not None
    found = json.loads((Path(result.run_dir) / "result.json").read_text())["models_config"]
    return str(found) if found is not None else None


@pytest.mark.slow
async def test_a_canary_schedule_runs_its_share_of_fires_on_the_candidate(
    rt: Runtime, settings: Settings, tmp_path: Path
) -> None:
    now = T0 + timedelta(seconds=60 * FIRES)
    svc = Services(rt, now=lambda: now)
    with MiniWobServer() as miniwob, SolverServer() as solver:
        baseline = write_scripted_config(tmp_path, "careful", solver.url)
        candidate = write_scripted_config(tmp_path, "hasty", solver.url)
        # The server's own config is the baseline; the canary's is the candidate.
        rt.settings = rt.settings.model_copy(update={"models_config": baseline})
        rt.env[SOLVER_KEY_ENV] = "scripted"
        await svc.profiles.create(LOCAL_ACTOR, "p")
        await svc.schedules.add(
            LOCAL_ACTOR,
            ScheduleInput(
                name="c",
                task_yaml=TASK,
                task_source="canary.yaml",
                profiles=["p"],
                vars={"miniwob": miniwob.url, "miniwob_origin": miniwob.origin},
                timing=Timing(every_s=60, start_at=T0),
                policy=SchedulePolicy(
                    overlap="allow",
                    pause_after=None,
                    canary=Canary(share=SHARE, models=str(candidate)),
                ),
            ),
        )
        await svc.schedules.pause(LOCAL_ACTOR, "c")
        added = await svc.schedules.backfill(
            LOCAL_ACTOR, "c", T0 - timedelta(seconds=1), T0 + timedelta(seconds=60 * (FIRES - 1))
        )
        assert len(added) == FIRES
        scheduler = Scheduler(
            rt.store.schedules, rt.store.schedules, "host:1:1.0", lambda: now, _quiet
        )
        launched = Launched()
        await scheduler.tick(launched)
        assert len(launched.fires) == FIRES
        runner = FireRunner(rt, scheduler)
        used: dict[str, str | None] = {}
        # A person approves the button clicks (a submission the policy asks about).
        person = asyncio.create_task(approve_all(rt))
        try:
            for fire, schedule in launched.fires:
                result = await runner.run(fire, schedule, new_run_id())
                assert result.status == "succeeded", result.error
                used[fire.id] = used_config(result)
        finally:
            person.cancel()
    expected = {fid for fid in used if is_canary(fid, SHARE)}
    on_candidate = {fid for fid, path in used.items() if path == str(candidate)}
    # Exactly the fires the hash picks, about the share of them; the others on the baseline.
    assert on_candidate == expected
    assert 1 <= len(on_candidate) <= FIRES // 2
    assert all(used[fid] == str(baseline) for fid in set(used) - on_candidate)
    done = await asyncio.to_thread(
        corral_process, "eval", "--schedule", "c", "--since", "1d", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["configs"] == [f"baseline ({baseline})", f"canary ({candidate})"]
    base, canary = (report["overall"][label] for label in report["configs"])
    assert (base["runs"], canary["runs"]) == (FIRES - len(expected), len(expected))
    for figures in (base, canary):
        assert figures["success"]["n"] == figures["runs"]
        assert figures["tool_call_validity"]["n"] > 0 and figures["input_tokens"] > 0
    assert report["difference"]["success"] is not None
    assert report["canary"] == {"share": SHARE, "models": str(candidate)}


async def approve_all(rt: Runtime) -> None:
    while True:
        for request in await rt.approvals.list_requests("pending"):
            await rt.services.approvals.decide(LOCAL_ACTOR, request.id, True, "looks right")
        await asyncio.sleep(0.05)


async def _quiet(event: dict[str, object]) -> None:
    return None


def test_canary_flags_are_checked_and_shown(settings: Settings, tmp_path: Path) -> None:
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nstart_url: http://127.0.0.1:9/\nsteps:\n  - goto: /\n")
    models = tmp_path / "candidate.toml"
    models.write_text('[roles]\nplanner = ["openai:gpt-5.4-mini"]\n')
    assert corral("profiles", "create", "p").returncode == 0
    base = ("schedules", "add", "s", "--task", str(task), "--every", "1h", "--profile", "p")
    done = corral(*base, "--canary", "150%", "--canary-models", str(models))
    assert done.returncode == 2 and "--canary '150%': expected a share from 0% to 100%" in (
        done.stderr
    )
    done = corral(*base, "--canary", "10%")
    assert done.returncode == 2 and "give --canary-models FILE" in done.stderr
    done = corral(*base, "--canary", "10%", "--canary-models", str(tmp_path / "nope.toml"))
    assert done.returncode == 2 and "nope.toml': no such file" in done.stderr
    models_bad = tmp_path / "bad.toml"
    models_bad.write_text('[roles]\nplanner = ["nobody:model"]\n')
    done = corral(*base, "--canary", "10%", "--canary-models", str(models_bad))
    assert done.returncode == 2 and "unknown provider 'nobody'" in done.stderr
    done = corral(*base, "--canary", "10%", "--canary-models", str(models), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["policy"]["canary"] == {"share": 0.1, "models": str(models)}
    shown = corral("schedules", "show", "s")
    assert f"canary:     10% of fires on {models}" in shown.stdout
    assert corral("schedules", "update", "s", "--canary", "25%").returncode == 0
    assert "canary:     25% of fires on" in corral("schedules", "show", "s").stdout
    assert corral("schedules", "update", "s", "--canary", "none").returncode == 0
    assert "canary:     -" in corral("schedules", "show", "s").stdout


def test_the_canary_set_is_fixed_by_the_fire_ids() -> None:
    ids = [f"fire-{i}" for i in range(2000)]
    picked = [i for i in ids if is_canary(i, 0.1)]
    assert picked == [i for i in ids if is_canary(i, 0.1)]
    assert 150 <= len(picked) <= 250
    assert not any(is_canary(i, 0) for i in ids) and all(is_canary(i, 1) for i in ids)
    # A larger share keeps every fire a smaller one picked.
    assert set(picked) <= {i for i in ids if is_canary(i, 0.3)}
