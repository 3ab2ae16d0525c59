"""The HTTP API over real HTTP: 401 without a valid token (even with no users), 403 without the
role or grant, 422 naming the field, 404 for what does not exist, audit rows for every change,
and no secret value in any answer or log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from profiles import Redactor
from runtime import RunRecord, Runtime
from runtime.api import create_app
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.serve import WorkerPool
from tests.support.api import serving
from tests.support.leaks import leak_forms

ROOT = Actor("root", "super_admin")
VALUE = "hunter2-Qx7-very-secret"


@dataclass
class Api:
    rt: Runtime
    pool: WorkerPool
    url: str
    tokens: dict[str, str]

    def http(self, who: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers)


@pytest.fixture
async def api(rt: Runtime) -> AsyncIterator[Api]:
    """A served API with root (super_admin), ada (admin) and bob (user, granted ``mine``);
    profiles ``shop`` and ``mine``; one pending approval on ``shop``."""
    users = rt.services.users
    tokens = {"root": (await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")).value}
    for name, role in (("ada", "admin"), ("bob", "user")):
        tokens[name] = (await users.add_user_with_token(ROOT, name, role)).value
    await rt.services.profiles.create(ROOT, "shop")
    await rt.services.profiles.create(ROOT, "mine")
    await users.grant(ROOT, "bob", "mine")
    await rt.approvals.create(
        run_id="run-1",
        step_idx=0,
        task_name="pay",
        profile="shop",
        action={"kind": "click", "ref": "e1"},
        summary="Click 'Pay'",
        reasons=["looks like a payment"],
        fingerprint="f",
        idempotency_key="k",
        page_url=None,
        ttl_s=600,
        request_id="ap-00000001",
    )
    pool = WorkerPool(rt, 2)
    async with serving(create_app(rt, pool)) as url:
        yield Api(rt, pool, url, tokens)
    await pool.drain(0)


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/whoami", None),
    ("GET", "/api/runs", None),
    ("POST", "/api/runs", {"task_yaml": "name: t\nsteps: [{goto: 'http://x.test'}]"}),
    ("GET", "/api/approvals", None),
    ("POST", "/api/approvals/ap-00000001/approve", {}),
    ("GET", "/api/profiles", None),
    ("DELETE", "/api/profiles/shop", None),
    ("GET", "/api/secrets", None),
    ("PUT", "/api/secrets/x.password", {"value": VALUE, "domains": ["https://x.test"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_401_without_a_token_or_with_a_bad_one(
    api: Api, method: str, path: str, body: Any
) -> None:
    for headers in ({}, {"Authorization": "Bearer crl_not-a-token"}, {"Authorization": "Basic x"}):
        async with httpx.AsyncClient(base_url=api.url, headers=headers) as http:
            answer = await http.request(method, path, json=body)
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["error"] == "AuthError"
    # Nothing was done: the profile is there, the request pending, no secret set.
    assert (await api.rt.profiles.get("shop")).name == "shop"
    assert (await api.rt.approvals.get("ap-00000001")).status == "pending"
    assert await api.rt.vault.list() == []


async def test_401_even_before_any_user_exists(rt: Runtime) -> None:
    """The server never acts as the local single-user actor."""
    pool = WorkerPool(rt, 1)
    async with serving(create_app(rt, pool)) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/api/profiles")
        assert answer.status_code == 401
        assert "Authorization: Bearer" in answer.json()["detail"]
        health = await http.get("/api/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "version": "0.1.0", "draining": False}


async def test_whoami_and_health(api: Api) -> None:
    async with api.http("bob") as http:
        assert (await http.get("/api/whoami")).json() == {"name": "bob", "role": "user"}
    await api.pool.drain(0)
    async with api.http() as http:
        assert (await http.get("/api/health")).json()["draining"] is True


async def test_403_for_a_user_deciding_or_touching_an_ungranted_profile(api: Api) -> None:
    before = await api.rt.store.fetch_all("SELECT id FROM audit_log")
    async with api.http("bob") as http:
        refused = [
            await http.post("/api/approvals/ap-00000001/approve", json={"comment": "mine now"}),
            await http.post("/api/approvals/ap-00000001/deny"),
            await http.delete("/api/profiles/shop"),
            await http.post("/api/profiles/shop/clear"),
            await http.post("/api/profiles", json={"name": "new"}),
            await http.put("/api/secrets/x.password", json={"value": VALUE, "domains": ["x.test"]}),
            await http.post(
                "/api/runs",
                json={
                    "task_yaml": "name: t\nsteps: [{goto: 'http://x.test'}]",
                    "profiles": ["shop"],
                },
            ),
        ]
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"].startswith("bob (user)")
    assert (await api.rt.approvals.get("ap-00000001")).status == "pending"
    assert await api.rt.store.fetch_all("SELECT id FROM audit_log") == before
    assert api.pool.running() == []


async def test_422_names_the_field(api: Api) -> None:
    async with api.http("ada") as http:
        typo = await http.post("/api/profiles", json={"name": "p", "colour_scheme": "dark"})
        missing = await http.post("/api/runs", json={"profiles": ["shop"]})
        bad_type = await http.get("/api/runs", params={"limit": "many"})
        task = await http.post(
            "/api/runs",
            json={"task_yaml": "nmae: t\nsteps: [{goto: /}]\n", "task_path": "pay.yaml"},
        )
        bad_setting = await http.post(
            "/api/profiles", json={"name": "p", "allowed_domains": ["http://[::1"]}
        )
    assert typo.status_code == 422
    assert typo.json()["detail"][0]["loc"] == ["body", "colour_scheme"]
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "task_yaml"]
    assert bad_type.status_code == 422
    assert bad_type.json()["detail"][0]["loc"] == ["query", "limit"]
    assert task.status_code == 422
    assert task.json() == {
        "detail": task.json()["detail"],
        "error": "TaskFileError",
    }
    assert task.json()["detail"].startswith("pay.yaml: nmae: unknown field")
    assert bad_setting.status_code == 422
    assert bad_setting.json()["detail"][0]["loc"][:2] == ["body", "allowed_domains"]


async def test_404_for_what_does_not_exist(api: Api) -> None:
    async with api.http("ada") as http:
        answers = {
            "RunNotFoundError": await http.get("/api/runs/nope"),
            "ApprovalNotFoundError": await http.get("/api/approvals/ap-ffffffff"),
            "ProfileNotFoundError": await http.get("/api/profiles/nope"),
            "UnknownSecretError": await http.delete("/api/secrets/nope"),
        }
        unknown_profile = await http.post(
            "/api/runs",
            json={"task_yaml": "name: t\nsteps: [{goto: 'http://x.test'}]", "profiles": ["nope"]},
        )
    for name, answer in answers.items():
        assert (answer.status_code, answer.json()["error"]) == (404, name)
    assert unknown_profile.status_code == 404
    assert api.pool.running() == []


async def test_a_decision_through_the_api_is_audited_and_a_second_one_is_409(api: Api) -> None:
    async with api.http("ada") as http:
        first = await http.post("/api/approvals/ap-00000001/approve", json={"comment": "ok"})
        second = await http.post("/api/approvals/ap-00000001/deny")
    assert first.status_code == 200
    assert (first.json()["status"], first.json()["decided_by"]) == ("approved", "ada")
    assert second.status_code == 409
    assert "already approved by ada" in second.json()["detail"]
    audit = await api.rt.services.audit.list(ROOT, action="approval.approve")
    assert [(a.actor, a.subject) for a in audit] == [("ada", "ap-00000001")]


async def test_profile_changes_through_the_api_are_audited(api: Api) -> None:
    async with api.http("ada") as http:
        created = await http.post(
            "/api/profiles",
            json={
                "name": "acme",
                "locale": "de-DE",
                "proxy": {"server": "http://proxy.test:3128", "password": VALUE},
            },
        )
        again = await http.post("/api/profiles", json={"name": "acme"})
        shown = await http.get("/api/profiles/acme")
        cleared = await http.post("/api/profiles/acme/clear")
        listed = await http.get("/api/profiles")
        deleted = await http.delete("/api/profiles/acme")
    assert created.status_code == 201
    assert created.json()["settings"]["locale"] == "de-DE"
    assert again.status_code == 409 and again.json()["error"] == "ProfileExistsError"
    assert shown.json()["settings"]["proxy"] == {
        "server": "http://proxy.test:3128",
        "bypass": None,
        "username": None,
        "password": None,
    }
    assert cleared.json()["has_state"] is False
    assert {p["name"] for p in listed.json()} == {"acme", "mine", "shop"}
    assert deleted.status_code == 204
    for answer in (created, shown, cleared, listed):
        assert not any(form in answer.content for form in leak_forms(VALUE))
    audit = await api.rt.services.audit.list(ROOT)
    mine = [(a.action, a.subject) for a in audit if a.actor == "ada"]
    assert sorted(mine) == [
        ("profile.clear", "acme"),
        ("profile.create", "acme"),
        ("profile.delete", "acme"),
    ]


async def test_a_secret_value_is_never_answered_nor_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = {"value": VALUE, "domains": ["https://shop.test"], "profiles": ["shop"]}
    async with api.http("ada") as http:
        answers = [
            await http.put("/api/secrets/shop.password", json=good),
            await http.put("/api/secrets/shop.password", json={**good, "domains": "shop.test"}),
            await http.put("/api/secrets/shop.password", json={**good, "colour": 1}),
            await http.put("/api/secrets/shop.password", json={"value": VALUE}),
            await http.put("/api/secrets/shop.password", json={**good, "kind": "totp"}),
            await http.put("/api/secrets/shop.password", json={**good, "kind": "sometimes"}),
            await http.put("/api/secrets/shop.password", json={**good, "profiles": ["nope"]}),
            await http.put("/api/secrets/bad%20name", json=good),
            await http.put("/api/secrets/shop.password", content=f'{{"value": "{VALUE}", '),
            await http.get("/api/secrets"),
            await http.get("/api/secrets/uses", params={"secret": "shop.password"}),
        ]
    assert [a.status_code for a in answers] == [
        200,
        422,
        422,
        422,
        422,
        422,
        404,
        422,
        422,
        200,
        200,
    ]
    assert answers[1].json()["detail"][0]["loc"] == ["body", "domains"]
    assert answers[2].json()["detail"][0]["loc"] == ["body", "colour"]
    assert answers[3].json()["detail"][0]["loc"] == ["body", "domains"]
    assert "TOTP" in answers[4].json()["detail"]
    forms = leak_forms(VALUE)
    for answer in answers:
        leaked = [f for f in forms if f in answer.content]
        assert not leaked, (answer.request.method, answer.status_code, answer.text)
    [listed] = answers[9].json()
    assert set(listed) == {
        "name",
        "kind",
        "domains",
        "profiles",
        "fields",
        "created_at",
        "updated_at",
        "last_used_at",
    }
    assert not any(f.decode(errors="replace") in caplog.text for f in forms)
    audit = await api.rt.services.audit.list(ROOT, action="secret.set")
    assert [(a.actor, a.subject) for a in audit] == [("ada", "shop.password")]
    assert VALUE not in str(audit[0].detail)


async def test_an_unexpected_error_is_a_bare_500_logged_redacted(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"the database said {VALUE}")

    monkeypatch.setattr(api.rt.services.profiles, "list", broken)
    redactor = Redactor()
    redactor.add(VALUE)
    api.rt.redactor.attach(redactor)
    try:
        async with api.http("ada") as http:
            answer = await http.get("/api/profiles")
    finally:
        api.rt.redactor.detach(redactor)
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal server error"}
    assert "GET /api/profiles failed unexpectedly" in caplog.text
    assert "RuntimeError" in caplog.text
    assert VALUE not in caplog.text


async def test_a_user_sees_only_runs_on_granted_profiles(api: Api) -> None:
    """The service decides (RunService.list/show), so the API and the CLI agree."""
    for run_id, profile, schedule in (("r-shop", "shop", None), ("r-mine", "mine", "nightly")):
        await api.rt.store.runs.create_run(
            RunRecord(
                id=run_id,
                task_name="t",
                task_path=None,
                profile=profile,
                status="succeeded",
                started_at=datetime.now(UTC),
                run_dir="/nowhere",
                pid=1,
                schedule=schedule,
            )
        )
    async with api.http("bob") as bob, api.http("ada") as ada:
        assert [r["id"] for r in (await bob.get("/api/runs")).json()] == ["r-mine"]
        assert (await bob.get("/api/runs/r-shop")).status_code == 404
        assert (await bob.get("/api/runs/r-shop/result")).status_code == 404
        assert (await bob.get("/api/runs/r-mine")).json()["run"]["profile"] == "mine"
        assert {r["id"] for r in (await ada.get("/api/runs")).json()} == {"r-shop", "r-mine"}
        nightly = await ada.get("/api/runs", params={"schedule": "nightly"})
        assert [r["id"] for r in nightly.json()] == ["r-mine"]
        result = await ada.get("/api/runs/r-shop/result")
    assert result.status_code == 200
    assert (result.json()["status"], result.json()["exit_code"]) == ("succeeded", 0)
    await api.rt.services.users.revoke_grant(ROOT, "bob", "mine")
    assert await api.rt.services.runs.list(Actor("bob", "user")) == []
