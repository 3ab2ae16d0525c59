"""Small holes, each tried as an attacker or an unlucky user would: malformed webhook headers that
must be rejected without an exception, a token used to mint a longer-lived one, and a store locked
by another process that must be reported as busy, not as an internal error."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from profiles import ProfileSettings
from runtime import Runtime, Settings, parse_task, run_task
from runtime.auth import LOCAL_ACTOR, Actor, TokenOutlivesError
from runtime.errors import StoreBusyError, exit_code_for
from runtime.records import RunRecord
from runtime.services import Services
from runtime.store import Store
from runtime.webhook import Webhook, sign, verify, verify_headers
from tests.support.cli import Outcome
from tests.support.cli import corral as run_corral

SECRET = "whsec-0123456789"
BODY = b'{"event":"approval.requested","id":"a1"}'
NOW = 1_800_000_000.0
TS = str(int(NOW))
GOOD = sign(SECRET, TS, BODY)


# --- webhook signatures ---------------------------------------------------------------------------


def test_a_good_signature_verifies_and_any_change_does_not() -> None:
    assert verify(SECRET, TS, BODY, GOOD, now=NOW)
    assert not verify(SECRET, TS, BODY + b" ", GOOD, now=NOW)
    assert not verify("another-secret", TS, BODY, GOOD, now=NOW)
    assert not verify(SECRET, str(int(NOW) + 1), BODY, GOOD, now=NOW)
    # Replays: a correct signature on a timestamp outside the tolerance, either side.
    old = str(int(NOW) - 301)
    assert not verify(SECRET, old, BODY, sign(SECRET, old, BODY), now=NOW)
    future = str(int(NOW) + 301)
    assert not verify(SECRET, future, BODY, sign(SECRET, future, BODY), now=NOW)
    assert verify(SECRET, old, BODY, sign(SECRET, old, BODY), max_age_s=400, now=NOW)


def _signed(timestamp: str) -> str:
    return sign(SECRET, timestamp, BODY)


BAD_TIMESTAMPS = [
    "",
    "abc",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e9",
    "1" * 400,  # float() makes inf of it; int() a number far beyond any clock
    "9" * 13,
    "-1",
    f"-{TS}",
    f" {TS}",
    f"{TS} ",
    f"{TS}\n",
    f"{TS[:5]} {TS[5:]}",
    f"+{TS}",
    f"{TS}.5",
    TS.replace("1", "\u0661"),  # Arabic-Indic digits: str.isdigit() and int() accept them
    f"1_{TS[1:]}",
]


@pytest.mark.parametrize("timestamp", BAD_TIMESTAMPS)
def test_malformed_timestamps_are_false_never_an_exception(timestamp: str) -> None:
    # Even signed correctly over the malformed value: the timestamp itself is not ours.
    assert verify(SECRET, timestamp, BODY, _signed(timestamp), now=NOW) is False
    assert verify(SECRET, timestamp, BODY, GOOD, now=NOW) is False


BAD_SIGNATURES: list[Any] = [
    "",
    GOOD[7:],  # without the scheme
    GOOD.upper(),
    "sha1=" + GOOD[7:],
    GOOD[:-1],
    GOOD + "0",
    f" {GOOD}",
    f"{GOOD} ",
    f"{GOOD}\r\n",
    GOOD[:-1] + "\u00e9",  # non-ASCII: hmac.compare_digest raises TypeError on such a str
    GOOD[:-1] + "\udcff",  # a lone surrogate, as a latin-1/surrogateescape decoder may produce
    "sha256=" + "\u0660" * 64,
    GOOD.encode(),  # bytes, not str
    None,
    0,
    ["sha256=", GOOD],
    f"{GOOD}, {GOOD}",  # a header given twice and joined by the framework
]


@pytest.mark.parametrize("signature", BAD_SIGNATURES, ids=range(len(BAD_SIGNATURES)))
def test_malformed_signatures_are_false_never_an_exception(signature: Any) -> None:
    assert verify(SECRET, TS, BODY, signature, now=NOW) is False


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "max_age_s"),
    [
        (SECRET, TS, BODY.decode(), 300),  # a str body
        (SECRET, TS, None, 300),
        (SECRET, TS, [1, 2], 300),
        (SECRET, int(NOW), BODY, 300),  # a number, not the header's text
        (SECRET, NOW, BODY, 300),
        (SECRET, None, BODY, 300),
        (SECRET, TS.encode(), BODY, 300),
        ("", TS, BODY, 300),  # no secret configured: nothing verifies
        (None, TS, BODY, 300),
        ("\udcff", TS, BODY, 300),  # cannot be encoded: cannot have signed anything
        (SECRET, TS, BODY, float("nan")),
        (SECRET, TS, BODY, float("inf")),
        (SECRET, TS, BODY, -1),
        (SECRET, TS, BODY, "300"),
        (SECRET, TS, BODY, True),
    ],
    ids=range(15),
)
def test_malformed_arguments_are_false_never_an_exception(
    secret: Any, timestamp: Any, body: Any, max_age_s: Any
) -> None:
    assert verify(secret, timestamp, body, GOOD, max_age_s, now=NOW) is False


def test_verify_headers_reads_both_headers_in_any_case() -> None:
    for headers in (
        {"X-Corral-Timestamp": TS, "X-Corral-Signature": GOOD},
        {"x-corral-timestamp": TS, "X-CORRAL-SIGNATURE": GOOD, "Content-Type": "x"},
        httpx.Headers({"X-Corral-Timestamp": TS, "x-corral-signature": GOOD}),
    ):
        assert verify_headers(SECRET, headers, BODY, now=NOW) is True
    assert verify_headers(SECRET, {"X-Corral-Timestamp": TS}, BODY, now=NOW) is False
    assert verify_headers(SECRET, {"X-Corral-Signature": GOOD}, BODY, now=NOW) is False
    assert verify_headers(SECRET, {}, BODY, now=NOW) is False
    # Two spellings of one header: which one the sender meant is ambiguous.
    twice = {"X-Corral-Timestamp": TS, "x-corral-timestamp": TS, "X-Corral-Signature": GOOD}
    assert verify_headers(SECRET, twice, BODY, now=NOW) is False
    # Repeated headers, as httpx joins them.
    joined = httpx.Headers([("x-corral-timestamp", TS), ("x-corral-signature", GOOD)] * 2)
    assert verify_headers(SECRET, joined, BODY, now=NOW) is False
    for bad in (
        {"X-Corral-Timestamp": f" {TS}", "X-Corral-Signature": GOOD},
        {"X-Corral-Timestamp": TS, "X-Corral-Signature": f"{GOOD} "},
        {"X-Corral-Timestamp": TS.encode(), "X-Corral-Signature": GOOD},
        {"X-Corral-Timestamp": TS, "X-Corral-Signature": None},
        {1: TS, "X-Corral-Signature": GOOD},
        None,
        [("X-Corral-Timestamp", TS), ("X-Corral-Signature", GOOD)],
        "X-Corral-Timestamp",
    ):
        assert verify_headers(SECRET, bad, BODY, now=NOW) is False  # type: ignore[arg-type]


async def test_a_delivered_notification_verifies_on_the_receiving_side() -> None:
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    hook = Webhook("https://hooks.example/approvals", SECRET, httpx.MockTransport(receiver))
    assert await hook.send({"event": "approval.requested", "id": "r1"}) == "delivered: 204"
    [request] = received
    assert verify_headers(SECRET, request.headers, request.content)
    assert not verify_headers("guessed", request.headers, request.content)
    assert not verify_headers(SECRET, request.headers, request.content.replace(b"r1", b"r2"))


# --- a token cannot mint a token that outlives it ------------------------------------------------


class Clock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings) as runtime:
        yield runtime


async def test_a_token_cannot_mint_a_longer_lived_token(rt: Runtime) -> None:
    clock = Clock()
    auth = Services(rt, now=clock).users
    await auth.add_user(LOCAL_ACTOR, "root", "super_admin")
    await auth.add_user(Actor("root", "super_admin"), "bob", "user")
    # Single-user mode is not a token: it may mint any lifetime.
    short, short_token = await auth.create_token(LOCAL_ACTOR, "root", 3600)
    bob_record, bob_token = await auth.create_token(LOCAL_ACTOR, "bob", 600)
    root = await auth.actor(short_token)
    bob = await auth.actor(bob_token)
    assert root.token_expires_at == short.expires_at

    # For itself, and as a super_admin for another user: refused, naming both expiries.
    for actor, user, record in (
        (root, "root", short),
        (root, "bob", short),
        (bob, "bob", bob_record),
    ):
        with pytest.raises(TokenOutlivesError) as info:
            await auth.create_token(actor, user, 30 * 86_400)
        message = str(info.value)
        assert record.expires_at.strftime("%Y-%m-%d %H:%M:%SZ") in message
        asked = (clock.now + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%SZ")
        assert asked in message and f"API token {record.id} of {actor.name}" in message
        assert short_token not in message and bob_token not in message
        # One second past the minting token is already too long.
        left = (record.expires_at - clock.now).total_seconds()
        with pytest.raises(TokenOutlivesError):
            await auth.create_token(actor, user, left + 1)

    # Nothing was created by the refusals.
    assert len(await auth.list_tokens(LOCAL_ACTOR)) == 2
    # Up to the minting token's own expiry is fine; the default lifetime is shortened to it.
    exact, _ = await auth.create_token(root, "bob", 3600)
    assert exact.expires_at == short.expires_at
    default, minted = await auth.create_token(bob, "bob")
    assert default.expires_at == bob_record.expires_at
    # And a token minted by a token cannot mint past the first one either: no chain escapes.
    child = await auth.actor(minted)
    with pytest.raises(TokenOutlivesError):
        await auth.create_token(child, "bob", 601)
    # The local actor's default is the usual 30 days.
    assert (await auth.create_token(LOCAL_ACTOR, "bob"))[0].expires_at == clock.now + timedelta(
        days=30
    )


def corral(*args: str, token: str | None = None, env: dict[str, str] | None = None) -> Outcome:
    """``corral ARGS`` in-process as the holder of ``token`` (none: ``CORRAL_TOKEN`` unset)."""
    return run_corral(*args, env={"CORRAL_TOKEN": token, **(env or {})})


def _token(proc: Outcome) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_cli_token_cannot_mint_a_longer_lived_token(home: Path) -> None:
    root = _token(corral("users", "add", "root", "--role", "super_admin", "--token-ttl", "1h"))
    longer = corral("tokens", "create", "root", "--ttl", "2h", token=root)
    assert longer.returncode == 2, longer.stderr
    assert "a token may not outlive the token that creates it" in longer.stderr
    # Both expiries are named (counted by shape: the two may fall on different dates).
    assert len(re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z", longer.stderr)) >= 2
    assert root not in longer.stdout + longer.stderr
    # As a super_admin for another user, through `users add`: refused before the user exists.
    eve = corral("users", "add", "eve", "--role", "user", "--token-ttl", "7d", token=root)
    assert eve.returncode == 2 and "may not outlive" in eve.stderr
    users = json.loads(corral("users", "list", "--json", token=root).stdout)
    assert [u["name"] for u in users] == ["root"]
    # The default lifetime follows the acting token, and says so.
    bob = corral("users", "add", "bob", "--role", "user", token=root)
    assert _token(bob).startswith("crl_") and "expires with API token" in bob.stderr
    listed = json.loads(corral("tokens", "list", "--json", token=root).stdout)
    expiries = {t["user"]: t["expires_at"] for t in listed}
    assert expiries["bob"] == expiries["root"]
    assert _token(corral("tokens", "create", "root", "--ttl", "30m", token=root))


# --- a locked store is "busy", not an internal error ----------------------------------------------


class Holder:
    """A second connection to the store, as another process would hold it: an exclusive write
    lock taken with ``hold()`` and kept until ``release()`` (or the end of the test)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def hold(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


@pytest.fixture
def held(home: Path) -> Iterator[Holder]:
    holder = Holder(home / "corral.db")
    try:
        yield holder
    finally:
        holder.release()


def _run(run_id: str) -> RunRecord:
    return RunRecord(
        id=run_id,
        task_name="t",
        task_path=None,
        profile="p",
        status="running",
        started_at=datetime.now(UTC),
        run_dir="/nowhere",
        pid=os.getpid(),
    )


BUSY = "the store is busy (database locked by another process for more than 0.2 s); try again"


async def test_a_locked_store_is_reported_busy_and_loses_nothing(home: Path, held: Holder) -> None:
    async with await Store.open(home / "corral.db", busy_timeout_s=0.2) as store:
        await store.runs.create_run(_run("before"))
        held.hold()
        with pytest.raises(StoreBusyError) as info:
            await store.runs.create_run(_run("during"))
        assert str(info.value).startswith(BUSY) and str(home / "corral.db") in str(info.value)
        assert exit_code_for(info.value) == 1
        with pytest.raises(StoreBusyError, match="the store is busy"):
            async with store.tx() as db:
                await db.execute("DELETE FROM runs")
        held.release()
        # The connection is usable again, what was there is there, the failed writes are not.
        await store.runs.create_run(_run("after"))
        assert {r.id for r in await store.runs.list_runs()} == {"before", "after"}


async def test_a_run_on_a_locked_store_fails_busy(
    settings: Settings, held: Holder, tmp_path: Path
) -> None:
    quick = settings.model_copy(update={"busy_timeout_s": 0.2})
    async with Runtime.open(quick) as rt:
        await rt.profiles.create("p", ProfileSettings())
        task = parse_task({"name": "t", "profile": "p", "steps": [{"goto": "about:blank"}]}, "t")
        held.hold()
        with pytest.raises(StoreBusyError, match=r"^the store is busy \(database locked"):
            await run_task(rt, task)
        held.release()
        assert await rt.store.runs.list_runs() == []
        assert [p.name for p in await rt.profiles.list()] == ["p"]


def test_cli_commands_on_a_locked_store_say_busy(home: Path, held: Holder, tmp_path: Path) -> None:
    assert corral("profiles", "create", "p").returncode == 0
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nprofile: p\nsteps:\n  - goto: about:blank\n")
    quick = {"CORRAL_BUSY_TIMEOUT": "0.2"}
    held.hold()
    for args in (("profiles", "create", "q"), ("run", str(task))):
        proc = corral(*args, env=quick)
        assert proc.returncode == 1, proc.stderr
        assert f"error: {BUSY}" in proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    held.release()
    listing = json.loads(corral("profiles", "list", "--json").stdout)
    assert [p["name"] for p in listing] == ["p"]
    assert json.loads(corral("runs", "list", "--json").stdout) == []
    assert corral("profiles", "create", "q", env=quick).returncode == 0
