"""``corral eval`` as a user runs it (a real process, real Chromium, a real store): the shipped
demo-portal and MiniWoB++ suites under the two scripted configs (the real ``openai`` SDK through
corral's router to a loopback solver), with every figure of the report; injected provider
failures recovered by the fallback and counted; a malformed suite refused naming the file, the
field and what was expected."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runtime import Runtime, Settings
from runtime.demo.portal import USERS
from runtime.eval.faults import FAULT_MESSAGE
from runtime.eval.solver import decide
from runtime.eval.stats import newcombe_diff, wilson
from tests.support.cli import corral, corral_process

pytestmark = pytest.mark.slow

CAREFUL, HASTY = "scripted:careful", "scripted:hasty"


def run_eval(*args: str) -> dict[str, Any]:
    done = corral_process("eval", *args, "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    # The demo users' passwords were typed by the runs; nothing the eval prints holds one.
    for user in USERS.values():
        assert user.password not in done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def assert_all_figures(f: dict[str, Any]) -> None:
    """Every figure the report promises is there, with a value."""
    assert f["runs"] > 0
    rate = f["success"]
    assert rate["low"] <= rate["rate"] <= rate["high"]
    assert f["steps_mean"] > 0
    assert f["input_tokens"] > 0 and f["output_tokens"] > 0 and f["cached_tokens"] > 0
    assert f["cost_usd"] > 0 and f["cost_per_success"] > 0
    for latency in (f["step_latency_ms"], f["task_latency_s"]):
        assert 0 < latency["median"] <= latency["p95"]
    assert f["tool_call_validity"]["n"] > 0
    assert f["shadow_agreement"]["n"] > 0
    assert f["human_override"]["n"] > 0


def assert_difference(diff: dict[str, Any]) -> None:
    for key in ("success", "tool_call_validity", "steps", "tokens", "cost_usd", "task_latency_s"):
        d = diff[key]
        assert d["low"] <= d["diff"] <= d["high"], key


async def test_demo_suite_reports_every_figure_for_two_scripted_configs(
    settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "report.md"
    report = await asyncio.to_thread(
        run_eval, "demo", "--models", CAREFUL, "--models", HASTY, "--reps", "1", "--out", str(out)
    )
    careful, hasty = report["overall"][CAREFUL], report["overall"][HASTY]
    for figures in (careful, hasty):
        assert_all_figures(figures)
    assert careful["success"]["rate"] > hasty["success"]["rate"]
    assert careful["success"]["rate"] == 1.0
    # The hasty solver opened the wrong invoice: the rule denied paying it, a person's override.
    assert hasty["human_override"]["hits"] >= 1 and careful["human_override"]["hits"] == 0
    assert hasty["tool_call_validity"]["rate"] < 1.0 == careful["tool_call_validity"]["rate"]
    assert report["difference"]["of"] == f"{HASTY} - {CAREFUL}"
    assert_difference(report["difference"])
    assert set(report["tasks"]) == {"eval-count-unpaid", "eval-pay-invoice"}
    # The payment is checked on the portal itself, by a scripted task reading its status.
    pays = [r for r in report["runs"] if r["task"] == "eval-pay-invoice"]
    assert {r["config"]: r["checks"]["check_task"] for r in pays} == {CAREFUL: True, HASTY: False}
    text = out.read_text()
    assert not any(user.password in text for user in USERS.values())
    assert "| success (95% Wilson) |" in text and "human override rate" in text
    # Every run of the eval is tagged as the eval's in the run list.
    listed = json.loads(
        (
            await asyncio.to_thread(
                corral_process, "runs", "list", "--schedule", "eval:demo-portal", "--json"
            )
        ).stdout
    )
    ids = {r["id"] for r in listed}
    assert {r["run_id"] for r in report["runs"]} <= ids
    assert len(ids) == len(report["runs"]) + len(pays)  # and the check task's runs


async def test_miniwob_suite_with_injected_provider_failures(settings: Settings) -> None:
    report = await asyncio.to_thread(
        run_eval, "miniwob", "--models", CAREFUL, "--models", HASTY, "--reps", "1"
    )
    careful, hasty = report["overall"][CAREFUL], report["overall"][HASTY]
    for figures in (careful, hasty):
        assert_all_figures(figures)
    assert careful["success"]["rate"] == 1.0 > hasty["success"]["rate"]
    assert len(report["tasks"]) >= 5
    # The page's own reward is the check: careful earned it on every episode.
    clean = [r for r in report["runs"] if r["config"] == CAREFUL and not r["faulted"]]
    assert clean and all(r["checks"] == {"check_url": True} for r in clean)
    # Faults: half the calls to the first planner provider failed; the fallback recovered.
    recovery = careful["recovery"]
    assert recovery["injected"] > 0 and recovery["fallbacks"] > 0
    assert recovery["with_faults"]["n"] == len(report["tasks"])
    assert recovery["with_faults"]["rate"] == 1.0
    faulted = [r["run_id"] for r in report["runs"] if r["config"] == CAREFUL and r["faulted"]]
    async with Runtime.open(settings) as rt:
        errors = 0
        for run_id in faulted:
            calls = await rt.store.runs.list_model_calls(run_id)
            failed = [c for c in calls if c.role == "planner" and c.outcome == "error"]
            assert all(c.provider == "solver" for c in failed)
            assert all(FAULT_MESSAGE in (c.reason or "") for c in failed)
            errors += len(failed)
            # Each failed planner call was answered by the backup provider instead.
            assert any(c.provider == "backup" and c.outcome == "ok" for c in calls) or not failed
    assert errors == recovery["fallbacks"]


def test_a_malformed_suite_names_the_file_the_field_and_what_was_expected(
    settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nreps: many\ntasks:\n  - file: nowhere.yaml\n    expect: {output: {}}\n"
    )
    done = corral("eval", str(bad))
    assert done.returncode == 2
    assert f"{bad}: reps: Input should be a valid integer" in done.stderr
    assert f"{bad}: tasks.0.expect.output: expected at least one of equals, schema, regex" in (
        done.stderr
    )
    bad.write_text("name: x\ntasks:\n  - file: nowhere.yaml\n")
    done = corral("eval", str(bad))
    assert done.returncode == 2 and f"{bad}: tasks.0.file: 'nowhere.yaml': no such task" in (
        done.stderr
    )
    bad.write_text("name: x\ntasks: []\nfautls: {share: 10%}\n")
    done = corral("eval", str(bad))
    assert done.returncode == 2 and "fautls: unknown field" in done.stderr
    assert "tasks: List should have at least 1 item" in done.stderr
    done = corral("eval", "no-such-suite")
    assert done.returncode == 2 and "shipped: demo, miniwob" in done.stderr
    done = corral("eval", "demo", "--models", str(tmp_path / "missing.toml"))
    assert done.returncode == 2 and "model config file not found" in done.stderr
    done = corral("eval", "demo", "--models", "scripted:sloppy")
    assert done.returncode == 2 and "unknown scripted model" in done.stderr


def test_the_hasty_solver_errs_by_the_episode_and_the_careful_one_never() -> None:
    """The scripted models decide from the page text alone, the same way every time."""
    page = (
        "Current page:\nhttp://127.0.0.1:5/miniwob/click-tab.html?seed=0&episode=e1 · Click Tab\n"
        "Click on Tab #1.\n[e1] tab [e2] Tab #1\n[e3] tab [e4] Tab #2\n[e5] tab [e6] Tab #3\n"
    )
    messages = [{"role": "system", "content": "..."}, {"role": "user", "content": "Task: go"}]
    messages.append({"role": "user", "content": page})
    assert decide("careful", messages) == {"name": "click", "arguments": '{"ref": "e2"}'}
    moved = [*messages[:2], {"role": "user", "content": page.replace(":5/", ":6/")}]
    assert decide("hasty", messages) == decide("hasty", moved)  # not the port: the episode


def test_wilson_and_newcombe_match_published_values() -> None:
    # 0 of 10: the Wilson interval's upper end is 0.2775 (the "rule of three" is cruder).
    low, high = wilson(0, 10)
    assert low == 0 and round(high, 4) == 0.2775
    # Newcombe (1998), method 10, example: 56/70 vs 48/80.
    d, lo, hi = newcombe_diff(48, 80, 56, 70)
    assert round(d, 4) == 0.2 and round(lo, 4) == 0.0524 and round(hi, 4) == 0.3339
