"""The store on PostgreSQL: what differs from SQLite (statement translation, the schema version
table, migrating hosts, the write lock, an unreachable server, a bad URL)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from profiles import UserError
from runtime import Settings, Store
from runtime.demo.postgres import PgServer
from runtime.errors import StoreBusyError, StoreError
from runtime.store import MIGRATIONS
from runtime.store.postgres import WRITE_LOCK, pg_sql, safe_url


def test_statements_are_translated_without_touching_literals_or_casts() -> None:
    assert pg_sql("SELECT * FROM t WHERE a = ? AND b = :name") == (
        "SELECT * FROM t WHERE a = %s AND b = %(name)s"
    )
    # A literal keeps its ?, :word and % (the % doubled, as psycopg reads it back as one).
    assert pg_sql("SELECT 'a?b:c' || x FROM t WHERE y LIKE '%z%' AND z = ?") == (
        "SELECT 'a?b:c' || x FROM t WHERE y LIKE '%%z%%' AND z = %s"
    )
    assert pg_sql("SELECT x::text, 'it''s ?' FROM t WHERE a = :a") == (
        "SELECT x::text, 'it''s ?' FROM t WHERE a = %(a)s"
    )
    assert pg_sql('SELECT "we?ird:col" FROM t') == 'SELECT "we?ird:col" FROM t'


def test_a_url_is_shown_without_its_password() -> None:
    shown = safe_url("postgresql://corral:s3cr3t-pw@db.example:5433/corral")
    assert "s3cr3t-pw" not in shown and shown == "postgresql://corral:***@db.example:5433/corral"
    assert safe_url("postgresql://corral@db/x") == "postgresql://corral@db/x"


def test_a_bad_database_url_names_the_variable_and_not_the_value() -> None:
    for value in ("mysql://u:hunter2@h/db", "hunter2", "postgresql://"):
        with pytest.raises(UserError, match="CORRAL_DATABASE_URL") as caught:
            Settings.from_env({"CORRAL_HOME": "/tmp/x", "CORRAL_DATABASE_URL": value})
        assert "hunter2" not in str(caught.value)


async def test_an_unreachable_server_is_a_clear_error_without_the_password(pg: PgServer) -> None:
    url = f"postgresql://corral:pw-not-shown@127.0.0.1:{pg.port + 1}/nothing?connect_timeout=2"
    with pytest.raises(StoreError, match="cannot reach the store") as caught:
        await Store.open(url, busy_timeout_s=1)
    assert "pw-not-shown" not in str(caught.value)
    assert f"127.0.0.1:{pg.port + 1}" in str(caught.value)


async def test_hosts_starting_together_migrate_once(pg: PgServer) -> None:
    url = pg.fresh_database()
    stores = await asyncio.gather(*(Store.open(url) for _ in range(4)))
    try:
        assert [await s.schema_version() for s in stores] == [len(MIGRATIONS)] * 4
    finally:
        for store in stores:
            await store.close()


async def test_a_store_from_a_newer_corral_is_refused(pg: PgServer) -> None:
    url = pg.fresh_database()
    async with await Store.open(url):
        pass
    pg.sql(f"UPDATE corral_schema SET version = {len(MIGRATIONS) + 3}", url.rsplit("/", 1)[1])
    with pytest.raises(StoreError, match="newer than this corral"):
        await Store.open(url)


async def test_a_writer_held_up_past_the_busy_timeout_changes_nothing(pg: PgServer) -> None:
    url = pg.fresh_database()
    async with await Store.open(url, busy_timeout_s=0.5) as store:
        # Another host is inside a write transaction (it holds the write lock).
        other = await psycopg.AsyncConnection.connect(url)
        try:
            await other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            with pytest.raises(StoreBusyError, match="the store is busy"):
                async with store.tx() as conn:
                    await conn.execute(
                        "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)",
                        ("ada", "admin", "2026-01-01"),
                    )
            await other.rollback()
        finally:
            await other.close()
        # Once it is gone, the same write goes through; nothing was half-written before.
        assert await store.fetch_all("SELECT name FROM users") == []
        async with store.tx() as conn:
            await conn.execute(
                "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)",
                ("ada", "admin", "2026-01-01"),
            )
        assert [r["name"] for r in await store.fetch_all("SELECT name FROM users")] == ["ada"]


async def test_a_client_cut_off_inside_a_write_transaction_does_not_hold_the_lock(
    pg: PgServer,
) -> None:
    url = pg.fresh_database()
    async with await Store.open(url, busy_timeout_s=0.5) as store:
        # One of corral's own connections takes the write lock and goes silent, as when its host
        # is cut off mid-transaction: the server ends that transaction (corral sets
        # idle_in_transaction_session_timeout on its connections), and the lock goes with it.
        stuck = await store._driver.pool.getconn()  # type: ignore[attr-defined]
        await stuck.execute("BEGIN")
        await stuck.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        busy = 0
        for _ in range(40):
            try:
                async with store.tx() as conn:
                    await conn.execute(
                        "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)",
                        ("bo", "admin", "2026-01-01"),
                    )
                break
            except StoreBusyError:
                busy += 1
                await asyncio.sleep(0.2)
        assert busy > 0  # it did wait for the silent one first
        assert [r["name"] for r in await store.fetch_all("SELECT name FROM users")] == ["bo"]
        await stuck.close()
        await store._driver.pool.putconn(stuck)  # type: ignore[attr-defined]
