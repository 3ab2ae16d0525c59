"""The store's repositories: named columns survive a new column; tx() joins only its own task."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from profiles import (
    SEALED_PREFIX,
    CredentialLeaseRecord,
    LeaseHolder,
    ProfileRecord,
    ProfileSettings,
    ProxySettings,
    SecretRecord,
    SecretUseRecord,
    proxy_context,
    secret_context,
    state_context,
    user_data_context,
)
from runtime import ArtifactRecord, RunRecord, StepRecord, Store
from runtime.records import ModelCallRecord
from runtime.store import MIGRATIONS
from tests.support.stores import INTEGRITY_ERRORS

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

# Every table a repository writes, each given a column this corral does not know.
_TABLES = (
    "profiles",
    "leases",
    "runs",
    "steps",
    "artifacts",
    "secrets",
    "credential_leases",
    "secret_audit",
    "model_calls",
)
_NEW_COLUMN = "\n".join(f"ALTER TABLE {t} ADD COLUMN later_note TEXT;" for t in _TABLES)


def run(run_id: str = "r1") -> RunRecord:
    return RunRecord(
        id=run_id,
        task_name="t",
        task_path="tasks/t.yaml",
        profile="p",
        status="running",
        started_at=T0,
        run_dir="/runs/r1",
        pid=os.getpid(),
    )


async def test_a_column_added_by_a_later_migration_breaks_no_insert_or_read(
    store_where: Path | str,
) -> None:
    async with await Store.open(store_where, migrations=[*MIGRATIONS, _NEW_COLUMN]) as store:
        assert await store.schema_version() == len(MIGRATIONS) + 1

        profile = ProfileRecord(
            name="p",
            settings=ProfileSettings(
                proxy=ProxySettings(server="http://proxy.test:3128", password="sealed:AAAA")
            ),
            created_at=T0,
            updated_at=T0,
            state=b"\x00sealed",
            state_saved_at=T0,
        )
        assert await store.profiles.insert_profile(profile)
        assert await store.profiles.get_profile("p") == profile

        holder = LeaseHolder("r1", "host", 123, 1.5, 2.5, 3.5)
        assert await store.profiles.take_lease("p", holder, ttl_s=60) is None
        # The store sets the times (its clock) and the fencing token; the holder is as given.
        stored = await store.profiles.get_lease("p")
        assert stored is not None and stored.generation == 1
        assert stored == dataclasses.replace(
            holder, acquired_at=stored.acquired_at, heartbeat_at=stored.acquired_at, generation=1
        )

        await store.runs.create_run(run())
        await store.runs.finish_run("r1", "succeeded", None, {"total": 3})
        finished = await store.runs.get_run("r1")
        assert finished is not None
        assert (finished.status, finished.result) == ("succeeded", {"total": 3})
        assert finished.model_dump(exclude={"status", "result", "finished_at"}) == run().model_dump(
            exclude={"status", "result", "finished_at"}
        )

        step = StepRecord(
            run_id="r1",
            idx=0,
            kind="click",
            action={"role": "button", "name": "Pay"},
            target="button 'Pay'",
            side_effect="submit",
            status="ok",
            url_before="http://a.test/",
            url_after="http://a.test/done",
            started_at=T0,
            duration_ms=12.5,
            screenshot="steps/0000.jpg",
            detail={"opened_tabs": 1},
        )
        await store.runs.add_step(step)
        assert await store.runs.list_steps("r1") == [step]

        artifact = ArtifactRecord(
            run_id="r1",
            step_idx=0,
            kind="screenshot",
            path="steps/0000.jpg",
            bytes=10,
            created_at=T0,
        )
        await store.runs.add_artifact(artifact)
        assert await store.runs.list_artifacts("r1") == [artifact]

        call = ModelCallRecord(
            run_id="r1",
            step_idx=0,
            role="planner",
            provider="openai",
            model="m",
            outcome="ok",
            input_tokens=10,
            output_tokens=2,
            cost_usd=0.01,
            latency_ms=5.0,
            at=T0,
        )
        await store.runs.add_model_call(call)
        assert await store.runs.list_model_calls("r1") == [call]

        secret = SecretRecord(
            name="k",
            kind="value",
            domains=["https://a.test"],
            profiles=["p"],
            fields=["API key"],
            ciphertext=b"\x01sealed",
            created_at=T0,
            updated_at=T0,
        )
        await store.vault.put_secret(secret)
        assert await store.vault.get_secret("k") == secret
        # Replacing keeps the creation time.
        later = secret.model_copy(update={"ciphertext": b"\x02", "updated_at": T0 + timedelta(1)})
        await store.vault.put_secret(later.model_copy(update={"created_at": T0 + timedelta(1)}))
        assert await store.vault.list_secrets() == [later]

        lease = CredentialLeaseRecord(
            run_id="r1",
            profile="p",
            secrets=["k"],
            origins=["https://a.test"],
            pid=1,
            granted_at=T0,
        )
        await store.vault.grant_credential_lease(lease)
        assert await store.vault.get_credential_lease("r1") == lease

        entry = SecretUseRecord(
            run_id="r1",
            step_idx=0,
            secret="k",
            origin="https://a.test",
            at=T0,
            allowed=False,
            reason="origin",
        )
        await store.vault.add_use(entry)
        assert await store.vault.list_uses("r1") == [entry]

        # The column nobody wrote stayed empty in every table.
        for table in _TABLES:
            rows = await store.fetch_all(f"SELECT later_note FROM {table}")
            assert rows and all(r["later_note"] is None for r in rows), table


async def test_a_change_and_a_second_write_in_one_tx_roll_back_together(
    store_where: Path | str,
) -> None:
    profile = ProfileRecord(name="p", settings=ProfileSettings(), created_at=T0, updated_at=T0)
    async with await Store.open(store_where) as store:
        with pytest.raises(RuntimeError, match="after both writes"):
            async with store.tx():
                assert await store.profiles.insert_profile(profile)
                await store.runs.create_run(run())
                # Both are visible inside the transaction they joined...
                assert await store.profiles.get_profile("p") is not None
                raise RuntimeError("after both writes")
        # ...and gone together when it rolled back.
        assert await store.profiles.get_profile("p") is None
        assert await store.runs.get_run("r1") is None

        # A failing second write takes the first change with it too.
        await store.runs.create_run(run("taken"))
        with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)unique"):
            async with store.tx():
                assert await store.profiles.insert_profile(profile)
                await store.runs.create_run(run("taken"))
        assert await store.profiles.get_profile("p") is None

        # Without an error, the joined writes commit as one.
        async with store.tx():
            assert await store.profiles.insert_profile(profile)
            await store.runs.create_run(run())
        assert await store.profiles.get_profile("p") == profile
        assert await store.runs.get_run("r1") is not None


async def test_another_tasks_tx_waits_for_the_open_one_instead_of_joining(
    store_where: Path | str,
) -> None:
    events: list[str] = []
    other_trying = asyncio.Event()

    async with await Store.open(store_where) as store:

        async def other() -> None:
            other_trying.set()
            async with store.tx():
                events.append("other in")
                await store.runs.create_run(run("other"))

        with pytest.raises(RuntimeError, match="roll back"):
            async with store.tx():
                await store.runs.create_run(run("first"))
                # Started inside the transaction, the task inherits this context: it still waits.
                task = asyncio.create_task(other())
                await other_trying.wait()
                # Round trips to SQLite's thread give the other task every chance to get in.
                for _ in range(5):
                    await store.fetch_one("SELECT count(*) FROM runs")
                events.append("first done")
                raise RuntimeError("roll back")
        await task

        assert events == ["first done", "other in"]
        # Had it joined, its row would have been rolled back with the first one.
        assert await store.runs.get_run("first") is None
        assert await store.runs.get_run("other") is not None


async def test_runs_of_a_dead_process_are_interrupted_with_their_leases_and_approvals(
    store_where: Path | str,
) -> None:
    async with await Store.open(store_where) as store:
        for run_id in ("dead", "alive"):
            await store.runs.create_run(run(run_id))
            await store.vault.grant_credential_lease(
                CredentialLeaseRecord(
                    run_id=run_id, profile="p", secrets=[], origins=[], pid=1, granted_at=T0
                )
            )
            for ap, status in (("w", "pending"), ("a", "approved"), ("x", "executing")):
                async with store.tx() as conn:
                    await conn.execute(
                        "INSERT INTO approvals (id, run_id, step_idx, task_name, profile, action,"
                        " summary, reasons, fingerprint, idempotency_key, status, created_at,"
                        " expires_at) VALUES (:id, :run_id, 0, 't', 'p', '{}', 's', '[]', 'f',"
                        " 'k', :status, :at, :at)",
                        {"id": f"{run_id}-{ap}", "run_id": run_id, "status": status, "at": "x"},
                    )

        assert await store.mark_orphaned_runs(lambda pid: pid != 0) == 0
        async with store.tx() as conn:
            await conn.execute("UPDATE runs SET pid = 0 WHERE id = 'dead'")
        assert await store.mark_orphaned_runs(lambda pid: pid != 0) == 1

        dead, alive = await store.runs.get_run("dead"), await store.runs.get_run("alive")
        assert dead is not None and alive is not None
        assert (dead.status, alive.status) == ("interrupted", "running")
        assert dead.error == "the process running it ended unexpectedly"
        assert dead.finished_at is not None
        dead_lease = await store.vault.get_credential_lease("dead")
        alive_lease = await store.vault.get_credential_lease("alive")
        assert dead_lease is not None and dead_lease.revoked_at is not None
        assert alive_lease is not None and alive_lease.revoked_at is None
        rows = await store.fetch_all("SELECT id, status, outcome FROM approvals ORDER BY id")
        assert {r["id"]: r["status"] for r in rows} == {
            "alive-a": "approved",
            "alive-w": "pending",
            "alive-x": "executing",
            "dead-a": "cancelled",
            "dead-w": "cancelled",
            "dead-x": "unconfirmed",
        }
        outcomes = {r["id"]: r["outcome"] for r in rows}
        assert (
            outcomes["dead-x"]
            == "the run was interrupted while acting; the action may have happened"
        )
        assert outcomes["dead-w"] == "the run was interrupted before acting"


def test_the_sealing_contexts_stay_what_existing_stores_were_sealed_with() -> None:
    """Changing one would make every value sealed under it fail to open."""
    assert state_context("alice") == "profile-state:alice"
    assert proxy_context("alice") == "profile-proxy:alice"
    assert user_data_context("alice") == "profile-userdata:alice"
    assert SEALED_PREFIX == "sealed:"
    secret = SecretRecord(
        name="k",
        kind="value",
        domains=["https://b.test", "https://a.test"],
        ciphertext=b"",
        created_at=T0,
        updated_at=T0,
    )
    assert (
        secret_context(secret)
        == "secret:k:"
        + (hashlib.sha256(b'["value", ["https://a.test", "https://b.test"], []]').hexdigest()[:32])
    )
    with_fields = secret.model_copy(update={"fields": ["PIN", "API key"]})
    assert (
        secret_context(with_fields)
        == "secret:k:"
        + (
            hashlib.sha256(
                b'["value", ["https://a.test", "https://b.test"], [], ["API key", "PIN"]]'
            ).hexdigest()[:32]
        )
    )


async def test_a_submission_sent_by_one_attempt_is_never_taken_by_another(
    store_where: Path | str,
) -> None:
    async with await Store.open(store_where) as store:
        effects = store.effects
        take = {"attempt": 1, "step": 2, "target": "button Pay"}
        assert await effects.begin("f1", "k", 1, run_id="a1", **take) is None
        # Attempt 1 died before anything left: attempt 2 takes the row over.
        assert await effects.begin("f1", "k", 1, run_id="a2", **{**take, "attempt": 2}) is None
        assert not await effects.sent("f1", "k", 1, "a1"), "a run that lost the row sent it"
        assert await effects.sent("f1", "k", 1, "a2")
        await effects.unsent("f1", "k", 1, "a2")  # too late: it was sent
        found = await effects.begin("f1", "k", 1, run_id="a3", **{**take, "attempt": 3})
        assert found is not None and (found.run_id, found.state, found.attempt) == ("a2", "sent", 2)
        # Another occurrence, another key or another fire is another submission.
        assert await effects.begin("f1", "k", 2, run_id="a3", **take) is None
        assert await effects.begin("f1", "other", 1, run_id="a3", **take) is None
        assert await effects.begin("f2", "k", 1, run_id="a3", **take) is None
        assert [e.state for e in await effects.of_fire("f1")] == ["sent", "started", "started"]
