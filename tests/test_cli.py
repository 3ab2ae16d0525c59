"""The ``corral`` command as a user runs it: exit codes, messages, Ctrl-C, profiles commands.

What a command prints and returns is tested in-process (``tests.support.cli.corral``); a real
process is used where it is the point: Ctrl-C, a killed run, a lease held by another process, and
the installed entry point itself (the demo)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import psutil
import pytest

from runtime.cli.demo import DEMO_TASK
from tests.support.cli import CORRAL, corral, corral_process
from tests.support.processes import running_chromium, wait_gone
from tests.support.wait import until_sync


def write(tmp_path: Path, text: str, name: str = "task.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def sealed_rows(home: Path) -> dict[str, list[tuple[object, ...]]]:
    """What the master key protects, read straight from the store: profiles with their sealed
    state and secrets with their ciphertext."""
    with sqlite3.connect(f"file:{home / 'corral.db'}?mode=ro", uri=True) as db:
        return {
            "profiles": db.execute(
                "SELECT name, settings, state, state_saved_at FROM profiles ORDER BY name"
            ).fetchall(),
            "secrets": db.execute(
                "SELECT name, ciphertext, updated_at FROM secrets ORDER BY name"
            ).fetchall(),
        }


@pytest.fixture
def alice(home: Path, portal: str) -> None:
    make_cli_profile("alice", portal)


def make_cli_profile(name: str, portal: str) -> None:
    """A demo user's profile made through the CLI; its password goes to the vault on stdin."""
    assert corral("profiles", "create", name, "--var", f"user={name}").returncode == 0
    password = {"alice": "alice-pw-1", "bob": "bob-pw-2"}[name]
    stored = corral(
        "secrets",
        "set",
        f"{name}.password",
        "--domain",
        portal,
        "--profile",
        name,
        stdin=password + "\n",
    )
    assert stored.returncode == 0, stored.stderr
    assert password not in stored.stdout + stored.stderr


BAD_TASKS = {
    "not_yaml": ("name: x\nsteps: [\n", "not valid YAML at line"),
    "unknown_field": ("name: x\nstepz: []\n", "stepz: unknown field"),
    "wrong_type": (
        "name: x\nbudget: {max_steps: ten}\nsteps: [{goto: /}]\n",
        "budget.max_steps: Input should be a valid integer",
    ),
    "unknown_step": (
        "name: x\nsteps:\n  - goto: /\n  - clik: {text: Go}\n",
        "steps[1]: unknown step kind 'clik'",
    ),
    "bad_selector": (
        "name: x\nsteps: [{click: {role: button, label: Go}}]\n",
        "steps[0].click: Value error, give one of",
    ),
    "not_a_mapping": ("- just\n- a list\n", "expected a mapping of task fields"),
}


@pytest.mark.parametrize("case", sorted(BAD_TASKS))
def test_malformed_task_file_names_file_and_field_and_exits_2(
    home: Path, tmp_path: Path, case: str
) -> None:
    text, expected = BAD_TASKS[case]
    path = write(tmp_path, text, f"{case}.yaml")
    proc = corral("run", path, "--profile", "alice")
    assert proc.returncode == 2, proc.stderr
    assert f"{case}.yaml" in proc.stderr
    assert expected in proc.stderr


def test_missing_task_file_exits_2(home: Path, tmp_path: Path) -> None:
    proc = corral("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "nope.yaml: task file not found" in proc.stderr


def test_unknown_profile_exits_2_and_lists_known_ones(home: Path, alice: None) -> None:
    proc = corral("run", str(DEMO_TASK), "--profile", "mallory", "--json")
    assert proc.returncode == 2
    [result] = json.loads(proc.stdout)
    assert "unknown profile 'mallory' (known profiles: alice)" in result["error"]


def test_selector_matching_nothing_exits_1_naming_selector(
    home: Path, alice: None, portal: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        f"name: x\nstart_url: {portal}/login\nstep_timeout_s: 0.5\n"
        "steps:\n  - click: {role: button, name: Pay everything}\n",
    )
    proc = corral("run", path, "--profile", "alice")
    assert proc.returncode == 1
    assert 'no element matches role=button name="Pay everything"' in proc.stderr


def test_no_browser_found_exits_1_with_what_to_do(home: Path, alice: None) -> None:
    proc = corral(
        "run", str(DEMO_TASK), "--profile", "alice", env={"CORRAL_BROWSER": "/nonexistent/chromium"}
    )
    assert proc.returncode == 1
    assert "CORRAL_BROWSER=/nonexistent/chromium: not an executable file" in proc.stderr


@pytest.mark.slow
def test_state_under_another_key_exits_1_and_is_kept(home: Path, alice: None, portal: str) -> None:
    first = corral("run", str(DEMO_TASK), "--profile", "alice", "--var", f"portal={portal}")
    assert first.returncode == 0, first.stderr
    before = sealed_rows(home)
    assert before["profiles"] and before["secrets"]  # a saved session and the password
    other_key = "b" * 64
    proc = corral(
        "run",
        str(DEMO_TASK),
        "--profile",
        "alice",
        "--var",
        f"portal={portal}",
        env={"CORRAL_MASTER_KEY": other_key},
    )
    assert proc.returncode == 1
    # The vault's secret is the first sealed item the run opens; it names what failed.
    assert "secret 'alice.password': encrypted with another master key" in proc.stderr
    # The failed run changed no sealed byte: the saved session and the secret are as they were.
    assert sealed_rows(home) == before
    # The right key still opens it: nothing was overwritten.
    again = corral(
        "run", str(DEMO_TASK), "--profile", "alice", "--var", f"portal={portal}", "--json"
    )
    assert again.returncode == 0
    assert json.loads(again.stdout)[0]["session_restored"] is True


@pytest.mark.slow
def test_leased_profile_exits_1_after_the_wait(
    home: Path, alice: None, portal: str, tmp_path: Path
) -> None:
    slow = write(
        tmp_path,
        f"name: slow\nstart_url: {portal}\nstep_timeout_s: 60\nsteps:\n  - goto: /slow?ms=8000\n",
    )
    holder = subprocess.Popen(
        [*CORRAL, "run", slow, "--profile", "alice"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until_sync(
            lambda: json.loads(corral("profiles", "list", "--json").stdout)[0]["leased_by"],
            timeout=30,
            what="the other process to lease the profile",
        )
        proc = corral("run", str(DEMO_TASK), "--profile", "alice", "--lease-timeout", "0.5")
        assert proc.returncode == 1
        assert "profile 'alice' is in use by run" in proc.stderr
        assert "waited 0.5s" in proc.stderr
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0


@pytest.mark.slow
def test_ctrl_c_cancels_cleanly_releases_lease_and_leaves_no_browser(
    home: Path, alice: None, portal: str, tmp_path: Path
) -> None:
    slow = write(
        tmp_path,
        f"name: slow\nstart_url: {portal}\nstep_timeout_s: 60\n"
        "steps:\n  - goto: /login\n  - goto: /slow?ms=30000\n",
    )
    # Its own process group, like a terminal's foreground job: Ctrl-C reaches every process.
    proc = subprocess.Popen(
        [*CORRAL, "run", slow, "--profile", "alice"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:

        def started() -> bool:
            runs = json.loads(corral("runs", "list", "--json").stdout)
            return bool(
                runs
                and runs[0]["status"] == "running"
                and list((Path(runs[0]["run_dir"]) / "steps").glob("*.jpg"))
            )

        until_sync(started, timeout=30, what="the run to start")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("chrom" in c.name() for c in children)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]

    def gone() -> bool:
        return not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

    until_sync(gone, timeout=15, what="the cancelled run's processes to end")
    run = json.loads(corral("runs", "list", "--json").stdout)[0]
    assert run["status"] == "cancelled"
    assert json.loads(corral("profiles", "list", "--json").stdout)[0]["leased_by"] is None


@pytest.mark.slow
def test_killed_process_leaves_no_browser_and_its_run_is_marked_interrupted(
    home: Path, alice: None, portal: str, tmp_path: Path
) -> None:
    slow = write(
        tmp_path,
        f"name: slow\nstart_url: {portal}/slow?ms=30000\nstep_timeout_s: 60\n"
        "steps:\n  - wait_for: {text: Slow page}\n",
    )
    proc = subprocess.Popen(
        [*CORRAL, "run", slow, "--profile", "alice"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The run is under way once its first step waits on the slow page: by then its browser
    # (and a renderer for the page) is running.

    def under_way() -> bool:
        runs = json.loads(corral("runs", "list", "--json").stdout)
        return bool(
            runs
            and runs[0]["status"] == "running"
            and running_chromium(psutil.Process(proc.pid).children(recursive=True))
        )

    with contextlib.suppress(AssertionError):  # the assertion below says what went wrong
        until_sync(under_way, timeout=30, what="the run to start its browser")
    browser = running_chromium(psutil.Process(proc.pid).children(recursive=True))
    proc.kill()
    proc.wait()
    # There was a browser of this run to leave behind, and none of its processes outlives it.
    assert browser, "the run never started Chromium: nothing was tested"
    assert not wait_gone(browser), "Chromium processes of the killed run are still running"
    run = json.loads(corral("runs", "list", "--json").stdout)[0]
    assert run["status"] == "interrupted"
    # Its lease died with it: the next run on the profile does not wait.
    again = corral(
        "run",
        str(DEMO_TASK),
        "--profile",
        "alice",
        "--var",
        f"portal={portal}",
        "--lease-timeout",
        "0",
    )
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_parallel_json_output_and_runs_show(home: Path, portal: str) -> None:
    for name in ("alice", "bob"):
        make_cli_profile(name, portal)
    proc = corral(
        "run", str(DEMO_TASK), "--parallel", "alice,bob", "--var", f"portal={portal}", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    results = {r["profile"]: r for r in json.loads(proc.stdout)}
    assert len(results["alice"]["output"]) == 6 and len(results["bob"]["output"]) == 29
    show = corral("runs", "show", results["bob"]["run_id"], "--json")
    data = json.loads(show.stdout)
    assert data["run"]["status"] == "succeeded"
    assert [s["kind"] for s in data["steps"]][-1] == "extract"
    assert data["trace"] == "trace.zip"
    text = corral("runs", "show", results["bob"]["run_id"][:-1])
    assert text.returncode == 0 and "extract" in text.stdout and "trace.zip" in text.stdout
    assert corral("runs", "show", "no-such-run").returncode == 2


def test_profiles_commands_round_trip(home: Path, tmp_path: Path) -> None:
    proc = corral(
        "profiles",
        "create",
        "carol",
        "--viewport",
        "1024x700",
        "--locale",
        "fr-FR",
        "--timezone",
        "Europe/Paris",
        "--geolocation",
        "48.85,2.35",
        "--color-scheme",
        "dark",
        "--mode",
        "persistent",
    )
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(corral("profiles", "show", "carol", "--json").stdout)
    assert shown["settings"]["viewport"] == {"width": 1024, "height": 700}
    assert shown["settings"]["mode"] == "persistent"
    assert corral("profiles", "create", "carol").returncode == 2  # exists
    bad = corral("profiles", "create", "dave", "--viewport", "hugexbig")
    assert bad.returncode == 2 and "viewport" in bad.stderr
    assert corral("profiles", "create", "../evil").returncode == 2
    bundle = tmp_path / "carol.json"
    assert corral("profiles", "export", "carol", "-o", str(bundle)).returncode == 0
    assert corral("profiles", "import", str(bundle), "--name", "carol2").returncode == 0
    names = [p["name"] for p in json.loads(corral("profiles", "list", "--json").stdout)]
    assert names == ["carol", "carol2"]
    assert corral("profiles", "delete", "carol", "--yes").returncode == 0
    assert corral("profiles", "show", "carol").returncode == 2
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    proc = corral("profiles", "import", str(garbage))
    assert proc.returncode == 2 and "not a corral profile bundle" in proc.stderr


@pytest.mark.slow
def test_demo_twice_second_run_reuses_saved_sessions(home: Path) -> None:
    # The installed entry point, twice, as a person runs it.
    first = corral_process("demo", "--port", "0", timeout=180)
    assert first.returncode == 0, first.stderr
    assert "alice: 6 unpaid invoices" in first.stdout
    assert "bob: 29 unpaid invoices" in first.stdout
    assert first.stdout.count("signed in with username and password") == 2
    second = corral_process("demo", "--port", "0", timeout=180)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("saved session reused, login skipped (3 steps skipped)") == 2
    assert "alice: 6 unpaid invoices" in second.stdout
    runs = json.loads(corral("runs", "list", "--json").stdout)
    reads = [r for r in runs if r["task_name"] == "unpaid-invoices"]
    assert len(reads) == 4 and {r["status"] for r in reads} == {"succeeded"}
    for run in runs:
        assert (Path(run["run_dir"]) / "trace.zip").exists()
    # Each demo then tries to pay one of alice's invoices: the Pay click waits for a person,
    # and without a terminal to ask at, the demo denies it; nothing is paid.
    pays = [r for r in runs if r["task_name"] == "pay-invoice"]
    assert [r["status"] for r in pays] == ["denied", "denied"]
    assert "approval needed" in second.stdout and "(looks like a payment)" in second.stdout
    assert "denied by a person (local): the demo does not pay unasked" in second.stdout
    # The demo acts as its actor through the services: its setup is audited like any admin's.
    audit = json.loads(corral("audit", "--json").stdout)
    assert {a["actor"] for a in audit} == {"local"}
    assert [(a["action"], a["subject"][:3]) for a in reversed(audit)] == [
        ("profile.create", "ali"),
        ("secret.set", "ali"),
        ("profile.create", "bob"),
        ("secret.set", "bob"),
        ("approval.deny", "ap-"),
        ("secret.set", "ali"),
        ("secret.set", "bob"),
        ("approval.deny", "ap-"),
    ]


def test_goal_task_without_api_keys_exits_2_naming_the_env_vars(
    home: Path, alice: None, portal: str, tmp_path: Path
) -> None:
    path = write(tmp_path, f"name: g\nstart_url: {portal}\ngoal: Count the unpaid invoices.\n")
    env = {k: "" for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    proc = corral("run", path, "--profile", "alice", env=env)
    assert proc.returncode == 2
    assert "missing API key: set OPENAI_API_KEY" in proc.stderr
    assert "missing API key: set ANTHROPIC_API_KEY" in proc.stderr
    (home / "corral.toml").parent.mkdir(parents=True, exist_ok=True)
    (home / "corral.toml").write_text('[roles]\nplanner = ["nowhere:model-x"]\n')
    bad = corral("run", path, "--profile", "alice", env=env)
    assert bad.returncode == 2 and "corral.toml: roles.planner: unknown provider" in bad.stderr
