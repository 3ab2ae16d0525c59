"""Steps that explain themselves: a real goal run on the demo portal (a planner that is down, its
fallback answering) is reviewed step by step (target by role and name, verdict, model and
fallbacks, tokens, cost, the model's call and reason, the page excerpt), and ``corral runs show``
prints it readably, here and through a server; nothing shows the password the run typed, and
nothing a page says reaches the terminal as control characters."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from runtime import Runtime, Settings
from runtime.auth import LOCAL_ACTOR
from runtime.demo.portal import USERS
from runtime.review import RunReview, action_words
from tests.support.cli import Outcome, corral
from tests.support.console import served_console
from tests.support.hostile import APPROVAL_TTL_S, run_steps, serve_site
from tests.support.leaks import leak_forms
from tests.support.replay import REASON, explained_run

PASSWORD = USERS["alice"].password


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Nobody decides here: a gated step's request expires at once (expiry means deny)."""
    return settings.model_copy(update={"approval_ttl_s": APPROVAL_TTL_S})


def leaked(text: str | bytes) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return any(form in data for form in leak_forms(PASSWORD))


async def test_a_goal_runs_steps_explain_themselves(rt: Runtime, portal: str) -> None:
    result = await explained_run(rt, portal)
    review = await rt.services.runs.review(LOCAL_ACTOR, str(result.run_id))
    assert [s.kind for s in review.steps] == ["navigate", "fill", "fill", "click"]
    click = review.steps[-1]
    assert click.target is not None
    assert (click.target.role, click.target.name) == ("button", "Sign in")
    assert click.target.ref and click.target.ref.startswith("e")
    assert click.words == "Click button 'Sign in'"
    assert click.decision == "allow"
    assert click.call == f'click({{"ref": "{click.target.ref}"}})'
    assert click.reason == REASON
    assert click.answered_by == "fake:priced"
    assert click.fallbacks == ["fake:down: ModelUnavailableError: 503 from upstream"]
    assert (click.input_tokens, click.output_tokens) == (1000, 50)
    assert click.cost_usd == pytest.approx((1000 * 1.0 + 50 * 2.0) / 1e6)
    assert click.excerpt and f"[{click.target.ref}] Sign in" in click.excerpt
    assert click.box is not None and click.box.width > 0
    assert click.navigated and click.url_after and click.url_after.endswith("/dashboard")
    # The first model step is where the planner that is down failed over to its fallback.
    first = review.steps[1]
    assert first.fallbacks == ["fake:down: ModelUnavailableError: 503 from upstream"]
    assert [(m.model, m.outcome) for m in first.models] == [
        ("fake:down", "error"),
        ("fake:priced", "ok"),
    ]
    assert first.target is not None and first.target.name == "Username"
    password_fill = review.steps[2]
    assert password_fill.words == "Fill textbox 'Password' with '{{secret:alice.password}}'"
    assert review.summary.status == "succeeded" and review.output == {"unpaid": 6}
    lines = {(line.role, line.model): line for line in review.summary.by_role_model}
    assert lines[("planner", "fake:priced")].calls == 4
    assert lines[("planner", "fake:down")].failed == lines[("planner", "fake:down")].calls == 4
    assert review.summary.cost_usd == pytest.approx(
        sum(s.cost_usd for s in review.steps) + sum(a.cost_usd for a in review.unattributed)
    )
    assert review.trace == "trace.zip"


async def test_runs_show_prints_each_step_readably(rt: Runtime, portal: str) -> None:
    result = await explained_run(rt, portal)
    run_id = str(result.run_id)
    shown = await asyncio.to_thread(corral, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    lines = out.splitlines()
    step4 = next(i for i, line in enumerate(lines) if line.strip().startswith("4 ok"))
    block = "\n".join(lines[step4 : step4 + 8])
    assert "Click button 'Sign in'" in block and "(click, " in block
    assert "target: button 'Sign in' (ref e" in block
    assert "verdict: allow" in block
    assert "model: fake:priced (after fake:down" in block
    assert "1000 in / 50 out tokens, $0.0011" in block
    assert f"reason: {REASON}" in block
    assert "-> http://127.0.0.1" in block and "/dashboard" in block
    step2 = "\n".join(
        lines[next(i for i, x in enumerate(lines) if x.strip().startswith("2 ok")) :][:6]
    )
    assert "(after fake:down: ModelUnavailableError: 503 from upstream)" in step2
    assert "model calls by role" in out and "fake:down" in out
    assert "playwright show-trace" in out and "trace.zip" in out
    assert '"unpaid": 6' in out
    assert not leaked(out)
    as_json = await asyncio.to_thread(corral, "runs", "show", run_id, "--json")
    assert not leaked(as_json.stdout)
    review = RunReview.model_validate(json.loads(as_json.stdout))
    assert review == await rt.services.runs.review(LOCAL_ACTOR, run_id)


async def test_a_denied_step_shows_why_and_a_blocked_host(rt: Runtime) -> None:
    reach_out = (
        '<script>fetch("http://elsewhere.test/x").finally(() =>'
        ' document.body.insertAdjacentHTML("beforeend", "<p>tried</p>"))</script>'
    )
    with serve_site() as site:
        page = site.page("/p", f"<!doctype html><title>t</title>{reach_out}")
        steps = [
            {"goto": page},
            {"wait_for": {"text": "tried"}},
            {"goto": "http://elsewhere.test/"},
        ]
        result = await run_steps(rt, site, steps)
    assert result.status == "denied"
    review = await rt.services.runs.review(LOCAL_ACTOR, str(result.run_id))
    away = review.steps[-1]
    assert away.status == "skipped" and away.decision == "deny" and away.reasons
    assert "elsewhere.test:80" in review.summary.blocked_hosts
    shown = await asyncio.to_thread(corral, "runs", "show", str(result.run_id))
    assert f"verdict: deny: {'; '.join(away.reasons)}" in shown.stdout
    assert "blocked: elsewhere.test:80" in shown.stdout


async def test_page_words_reach_the_terminal_without_control_characters(rt: Runtime) -> None:
    name = "Show\x1b[2J\x1b]0;owned\x07 more\u202e"
    with serve_site() as site:
        page = site.page(
            "/p",
            f'<!doctype html><title>t</title><button aria-label="{name}">x</button>',
        )
        result = await run_steps(
            rt, site, [{"goto": page}, {"click": {"role": "button", "name": "Show"}}]
        )
    review = await rt.services.runs.review(LOCAL_ACTOR, str(result.run_id))
    target = review.steps[-1].target
    assert target is not None and target.name and "\x1b" in target.name, target
    shown = await asyncio.to_thread(corral, "runs", "show", str(result.run_id))
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "\u202e" not in shown.stdout
    assert "Show\\x1b[2J\\x1b]0;owned\\x07 more\\u202e" in shown.stdout
    assert "approval: expired by expiry" in shown.stdout


async def test_runs_show_through_a_server_is_the_same_and_authorized(
    rt: Runtime, portal: str
) -> None:
    async with served_console(rt) as console:
        mine = await explained_run(rt, portal, profile="mine")
        run_id = str(mine.run_id)

        def show(token: str, *args: str) -> Outcome:
            env = {"CORRAL_SERVER": console.url, "CORRAL_TOKEN": token}
            return corral("runs", "show", run_id, *args, env=env)

        local = await asyncio.to_thread(
            corral, "runs", "show", run_id, "--json", env={"CORRAL_TOKEN": console.tokens["ada"]}
        )
        remote = await asyncio.to_thread(show, console.tokens["bob"], "--json")
        assert remote.returncode == 0, remote.stderr
        assert json.loads(remote.stdout) == json.loads(local.stdout)
        text = await asyncio.to_thread(show, console.tokens["bob"])
        assert "Click button 'Sign in'" in text.stdout
        assert not leaked(text.stdout + remote.stdout)
        # A user sees runs on granted profiles only: ``shop`` is not bob's.
        other = await explained_run(rt, portal, profile="shop")
        env = {"CORRAL_SERVER": console.url, "CORRAL_TOKEN": console.tokens["bob"]}
        refused = await asyncio.to_thread(corral, "runs", "show", str(other.run_id), env=env)
        assert refused.returncode == 2 and "no run" in refused.stderr


WORDS: list[tuple[str, dict[str, Any], str]] = [
    (
        "extract",
        {"as": "unpaid", "table": {"role": "table", "name": "Invoices"}},
        "Extract unpaid from table 'Invoices'",
    ),
    ("extract", {"as": "title", "text": {"css": "h1"}}, "Extract title from css='h1'"),
    (
        "fill",
        {"label": "Password", "value": "{{secret:a.pw}}"},
        "Fill label='Password' with '{{secret:a.pw}}'",
    ),
    ("click", {"role": "link", "name": "Next"}, "Click link 'Next'"),
    ("press", {"key": "Enter"}, "Press Enter"),
    ("navigate", {"url": "https://portal.test/x"}, "Open https://portal.test/x"),
]


@pytest.mark.parametrize(("kind", "action", "words"), WORDS)
def test_an_action_in_words_names_its_element(
    kind: str, action: dict[str, Any], words: str
) -> None:
    assert action_words(kind, action, None) == words
