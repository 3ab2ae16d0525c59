"""Risk classification: default rules, policy files, and the dry-run over real portal pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies import ActionFacts, Policy, classify
from runtime.demo.portal import USERS
from runtime.policyfile import PolicyFileError, load_policy
from tests.support.cli import corral
from tools.facts import allowlist_facts


def facts(**kw: object) -> ActionFacts:
    base: dict[str, object] = {"kind": "click", "side_effect": "submit", "role": "button"}
    return ActionFacts.model_validate({**base, **kw})


@pytest.mark.parametrize(
    ("name", "nearby", "decision", "reason"),
    [
        ("Pay $120.00", None, "require_approval", "looks like a payment"),
        ("Place order", None, "require_approval", "looks like a payment"),
        ("Delete account", None, "require_approval", "looks like a deletion"),
        ("Send", "Message to: bob", "require_approval", "looks like sending a message or money"),
        ("Save", "Change password New password", "require_approval", "changes the account"),
        ("Yes", None, "require_approval", "confirms an irreversible step"),
        ("Sign in", "Username Password", "allow", None),
        ("Next", None, "allow", None),
    ],
)
def test_default_rules(name: str, nearby: str | None, decision: str, reason: str | None) -> None:
    verdict = classify(facts(name=name, nearby_text=nearby))
    assert verdict.decision == decision
    if reason:
        assert any(reason in r for r in verdict.reasons)


def test_reading_typing_and_navigating_are_allowed_uploads_are_not() -> None:
    assert (
        classify(facts(kind="fill", side_effect="input", role="textbox", name="Pay to")).decision
        == "allow"
    )
    assert classify(facts(kind="navigate", side_effect="navigate", role=None)).decision == "allow"
    assert classify(facts(kind="upload", side_effect="upload")).decision == "require_approval"


def _posting_to(url: str, allowed: list[str]) -> ActionFacts:
    # Whether the form posts off the allowlist is a fact tools decides where it knows the list.
    return facts(name="Go", form_action=url, **allowlist_facts({"form_action": url}, allowed))


def test_unknown_submit_to_a_foreign_host_needs_approval() -> None:
    inside = _posting_to("https://portal.example/search", ["portal.example"])
    outside = _posting_to("https://evil.example/collect", ["portal.example"])
    assert classify(inside).decision == "allow"
    verdict = classify(outside)
    assert verdict.decision == "require_approval" and "foreign-forms" in verdict.rules


@pytest.mark.parametrize(
    ("url", "allowed", "decision"),
    [
        ("https://portal.example/next", ["portal.example"], "allow"),
        ("https://evil.example/", ["portal.example"], "deny"),
        ("https://a.portal.example/", ["*.portal.example"], "allow"),
        ("https://portal.example:8443/", ["portal.example:443"], "deny"),
        ("https://evil.example/", [], "allow"),
        ("about:blank", ["portal.example"], "allow"),
        ("https://portal.example/", ["not a host"], "deny"),
    ],
)
def test_navigation_off_the_allowlist_is_denied(
    url: str, allowed: list[str], decision: str
) -> None:
    target = {"target_url": url}
    navigate = facts(
        kind="navigate",
        side_effect="navigate",
        role=None,
        **target,
        **allowlist_facts(target, allowed),
    )
    verdict = classify(navigate)
    assert verdict.decision == decision
    assert ("off-allowlist-navigation" in verdict.rules) is (decision == "deny")


def test_policy_file_overrides_per_task_and_profile(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "rules:\n"
        "  - {name: no-logout, match: {name: '^log out$'}, verdict: deny, reason: keep session}\n"
        "tasks:\n"
        "  nightly:\n"
        "    - {name: pay-ok, match: {name: '^pay'}, verdict: allow, reason: pre-approved}\n"
        "profiles:\n"
        "  intern:\n"
        "    - {name: read-only, match: {side_effects: [submit]}, verdict: deny, reason: intern}\n"
    )
    policy = load_policy(path)
    assert classify(facts(name="Log out"), policy).decision == "deny"
    # The most severe verdict wins: a task's allow does not lift the default's approval.
    pay = classify(facts(name="Pay $5.00"), policy, task="nightly")
    assert pay.decision == "require_approval" and "pay-ok" in pay.rules
    assert classify(facts(name="Sign in"), policy, profile="intern").decision == "deny"
    relaxed = Policy(use_defaults=False)
    assert classify(facts(name="Pay $5.00"), relaxed).decision == "allow"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [{name: x, match: {}, verdict: maybe, reason: r}]", "rules.0.verdict"),
        (
            "rules: [{name: x, match: {colour: red}, verdict: deny, reason: r}]",
            "rules.0.match.colour: unknown field",
        ),
        (
            "rules: [{name: x, match: {name: '('}, verdict: deny, reason: r}]",
            "not a valid regular expression",
        ),
        ("version: 2", "version"),
        ("rules: [\n", "not valid YAML"),
    ],
)
def test_malformed_policy_file_names_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as info:
        load_policy(path)
    assert str(path) in str(info.value) and expected in str(info.value)


@pytest.mark.slow
def test_policy_check_dry_run_on_portal_pages(home: Path, portal: str) -> None:
    assert corral("profiles", "create", "alice", "--var", "user=alice").returncode == 0
    assert (
        corral(
            "secrets",
            "set",
            "alice.password",
            "--domain",
            portal,
            "--profile",
            "alice",
            stdin=USERS["alice"].password + "\n",
        ).returncode
        == 0
    )
    task = home.parent / "login.yaml"
    task.write_text(
        f"name: login\nstart_url: {portal}/login\nsecrets: [alice.password]\nsteps:\n"
        "  - fill: {label: Username, value: alice}\n"
        "  - fill: {label: Password, value: '{{secret:alice.password}}'}\n"
        "  - click: {role: button, name: Sign in}\n"
    )
    assert corral("run", str(task), "--profile", "alice").returncode == 0

    def verdicts(path: str, *profile: str) -> dict[str, str]:
        proc = corral("policy", "check", f"{portal}{path}", *profile, "--json")
        assert proc.returncode == 0, proc.stderr
        return {row["name"]: row["verdict"] for row in json.loads(proc.stdout)}

    invoices = verdicts("/invoices?status=unpaid", "--profile", "alice")
    number = next(n for n in invoices if n.startswith("INV-1001-"))
    page = verdicts(f"/invoices/{number}", "--profile", "alice")
    pay = next(n for n in page if n.startswith("Pay $"))
    assert page[pay] == "require_approval"
    assert page["Download PDF"] == "allow" and page["Printable view"] == "allow"
    delete = verdicts("/settings/delete", "--profile", "alice")
    assert delete["Yes, delete my account"] == "require_approval" and delete["Cancel"] == "allow"
    assert verdicts("/settings", "--profile", "alice")["Delete account"] == "require_approval"
    login = verdicts("/login")  # an anonymous look: a throwaway profile, deleted afterwards
    assert login == {"Username": "allow", "Password": "allow", "Sign in": "allow"}
    names = [p["name"] for p in json.loads(corral("profiles", "list", "--json").stdout)]
    assert names == ["alice"]
