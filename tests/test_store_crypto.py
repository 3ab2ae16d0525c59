"""The SQLite store (migrations, WAL, concurrency) and encryption at rest."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from profiles import MasterKey, StateDecryptError, UserError
from profiles.crypto import open_with_passphrase, seal_with_passphrase
from runtime import RunRecord, Runtime, StepRecord, Store, StoreError
from runtime.store import MIGRATIONS


async def test_fresh_store_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "c.db") as store:
        assert await store.schema_version() == len(MIGRATIONS)
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"profiles", "leases", "runs", "steps", "artifacts"} <= tables


async def test_reopening_keeps_data_and_does_not_remigrate(tmp_path: Path) -> None:
    run = RunRecord(
        id="r1",
        task_name="t",
        task_path=None,
        profile="p",
        status="running",
        started_at=datetime.now(UTC),
        run_dir="/x",
        pid=os.getpid(),
    )
    async with await Store.open(tmp_path / "c.db") as store:
        await store.runs.create_run(run)
    async with await Store.open(tmp_path / "c.db") as store:
        got = await store.runs.get_run("r1")
        assert got is not None and got.task_name == "t"
        assert await store.schema_version() == len(MIGRATIONS)


async def test_a_store_from_a_newer_corral_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this corral"):
        await Store.open(path)


async def test_a_file_that_is_not_sqlite_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        await Store.open(path)
    assert path.read_bytes() == b"this is not a database" * 100


async def test_many_concurrent_sessions_write_steps_safely(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "c.db") as store:
        runs = [f"r{i}" for i in range(16)]
        for rid in runs:
            await store.runs.create_run(
                RunRecord(
                    id=rid,
                    task_name="t",
                    task_path=None,
                    profile=rid,
                    status="running",
                    started_at=datetime.now(UTC),
                    run_dir="/x",
                    pid=os.getpid(),
                )
            )

        async def write(rid: str) -> None:
            for idx in range(25):
                await store.runs.add_step(
                    StepRecord(
                        run_id=rid,
                        idx=idx,
                        kind="click",
                        action={},
                        target=None,
                        side_effect="submit",
                        status="ok",
                        url_before=None,
                        url_after=None,
                        started_at=datetime.now(UTC),
                        duration_ms=1.0,
                    )
                )

        async with asyncio.TaskGroup() as group:
            for rid in runs:
                group.create_task(write(rid))
        for rid in runs:
            steps = await store.runs.list_steps(rid)
            assert [s.idx for s in steps] == list(range(25))


async def test_run_id_prefix_lookup_needs_a_unique_prefix(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "c.db") as store:
        for rid in ("abc-1", "abc-2", "xyz-1"):
            await store.runs.create_run(
                RunRecord(
                    id=rid,
                    task_name="t",
                    task_path=None,
                    profile="p",
                    status="running",
                    started_at=datetime.now(UTC),
                    run_dir="/x",
                    pid=os.getpid(),
                )
            )
        found = await store.runs.get_run("xyz")
        assert found is not None and found.id == "xyz-1"
        assert await store.runs.get_run("abc") is None  # ambiguous


def test_seal_and_open_round_trip_with_context_binding() -> None:
    key = MasterKey.generate()
    blob = key.seal(b"cookie=SECRETVALUE", "profile-state:alice")
    assert b"SECRETVALUE" not in blob
    assert key.open(blob, "profile-state:alice", "alice") == b"cookie=SECRETVALUE"
    # The same ciphertext presented as another record's fails (associated data differs).
    with pytest.raises(StateDecryptError, match="corrupted or was tampered"):
        key.open(blob, "profile-state:bob", "bob")


def test_fresh_nonce_per_seal() -> None:
    key = MasterKey.generate()
    assert key.seal(b"x", "c") != key.seal(b"x", "c")


def test_another_key_is_named_in_the_error() -> None:
    blob = MasterKey.generate().seal(b"x", "c")
    other = MasterKey.generate()
    with pytest.raises(StateDecryptError, match="encrypted with another master key"):
        other.open(blob, "c", "profile 'alice' saved state")


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_ciphertext_is_refused(damage: str) -> None:
    key = MasterKey.generate()
    blob = bytearray(key.seal(b"some state", "c"))
    if damage == "flip":
        blob[-3] ^= 0x01
    elif damage == "truncate":
        blob = blob[:20]
    else:
        blob = bytearray(b"\x00" * 64)
    with pytest.raises(StateDecryptError, match="corrupted"):
        key.open(bytes(blob), "c", "thing")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    first = MasterKey.load(tmp_path, None)
    mode = stat.S_IMODE((tmp_path / "master.key").stat().st_mode)
    assert mode == 0o600
    assert MasterKey.load(tmp_path, None).key_id == first.key_id


def test_key_from_environment_wins_and_bad_keys_are_rejected(tmp_path: Path) -> None:
    env_key = "a" * 64  # hex
    assert MasterKey.load(tmp_path, env_key).key_id == MasterKey(bytes.fromhex(env_key)).key_id
    assert not (tmp_path / "master.key").exists()
    with pytest.raises(UserError, match="CORRAL_MASTER_KEY"):
        MasterKey.load(tmp_path, "too-short")


def test_passphrase_bundle_round_trip_and_wrong_passphrase() -> None:
    sealed = seal_with_passphrase(b"state", "correct horse", "ctx")
    assert open_with_passphrase(sealed, "correct horse", "ctx", "bundle") == b"state"
    with pytest.raises(StateDecryptError, match="wrong passphrase"):
        open_with_passphrase(sealed, "wrong", "ctx", "bundle")


async def test_a_profile_proxy_password_is_sealed_at_rest_in_exports_and_across_rotation(
    rt: Runtime,
) -> None:
    from profiles import InvalidProfileError, ProfileSettings, ProxySettings
    from runtime.rotate import rotate_key

    secret = "proxy-pass-9f2c"
    proxy = ProxySettings(server="http://proxy.test:3128", username="u", password=secret)
    await rt.profiles.create("p", ProfileSettings(proxy=proxy))
    stored = await rt.profiles.get("p")
    assert stored.settings.proxy is not None and stored.settings.proxy.password == secret

    def on_disk() -> bytes:
        return b"".join(f.read_bytes() for f in rt.settings.home.glob("corral.db*"))

    assert secret.encode() not in on_disk()
    loose = await rt.profiles.export("p", None)
    assert secret.encode() not in loose and b"password" not in loose
    bundle = await rt.profiles.export("p", "a long passphrase")
    assert secret.encode() not in bundle
    with pytest.raises(InvalidProfileError, match="proxy password; a passphrase is needed"):
        await rt.profiles.import_(bundle, "p.json", None, name="q")
    back = await rt.profiles.import_(bundle, "p.json", "a long passphrase", name="q")
    assert back.settings.proxy is not None and back.settings.proxy.password == secret
    report = await rotate_key(rt)
    assert report.rows_resealed >= 2
    for name in ("p", "q"):
        again = await rt.profiles.get(name)
        assert again.settings.proxy is not None and again.settings.proxy.password == secret
    assert secret.encode() not in on_disk()
