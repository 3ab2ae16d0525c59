"""schemathesis against the served ``/api/openapi.json``: generated requests, with an admin's
token, to every operation; none may get a server error (5xx)."""

from __future__ import annotations

import asyncio

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from runtime import Runtime
from runtime.api import create_app
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.serve import WorkerPool
from tests.support.api import serving

EXAMPLES = 25


def fuzz(url: str, token: str) -> tuple[list[str], int]:
    """Call every operation with generated cases; the operations tried and the calls made."""
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json")
    tried = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        check()
        tried.append(operation.label)
    return tried, calls


@pytest.mark.slow
async def test_generated_requests_never_get_a_server_error(rt: Runtime) -> None:
    users = rt.services.users
    await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
    token = (await users.add_user_with_token(Actor("root", "super_admin"), "ada", "admin")).value
    await rt.services.profiles.create(LOCAL_ACTOR, "shop")
    pool = WorkerPool(rt, 2)
    app = create_app(rt, pool)
    operations = sum(len(methods) for methods in app.openapi()["paths"].values())
    async with serving(app) as url:
        tried, calls = await asyncio.to_thread(fuzz, url, token)
        await pool.drain(0)
    assert "POST /api/runs" in tried and "PUT /api/secrets/{name}" in tried
    assert "POST /api/schedules" in tried and "POST /api/schedules/{name}/backfill" in tried
    assert len(tried) == operations >= 31  # every method of every path
    assert calls > 10 * len(tried)
