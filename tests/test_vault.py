"""The vault: the leak scan (no secret byte anywhere corral wrote), tampering, key rotation."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import sqlite3
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from profiles import (
    FieldFacts,
    KeyRing,
    MasterKey,
    ProfileSettings,
    RedactingFilter,
    Redactor,
    SecretRecord,
    StateDecryptError,
    UserError,
    field_refusal,
    open_session,
)
from profiles.totp import totp_now
from runtime import Runtime, Settings
from runtime.demo.portal import USERS
from runtime.rotate import rotate_key
from tests.support.cli import corral_process
from tests.support.leaks import leak_forms
from tests.support.stores import raw_connect
from tools import Navigate, Tabs, observe
from tools.execute import ActionContext, execute

pytestmark = pytest.mark.both_backends

# Every character an encoding treats specially, a space and non-ASCII: each leak form differs.
API_KEY = "sk-live-7Hq2~Zp!X9'w(L)m*4%R&t<8>V\"b\\3+N c6Yd1-é€"
CAROL = USERS["carol"]
assert CAROL.totp_secret is not None


def leaks(corpus: list[tuple[str, bytes]], values: set[str]) -> list[tuple[str, str]]:
    """(where, value) for every value found in any leak form."""
    return [
        (where, value)
        for where, data in corpus
        for value in values
        if any(form in data for form in leak_forms(value))
    ]


def blobs_under(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under ``root``, and every member of every zip (recursively)."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            yield str(path), data
            yield from zip_members(str(path), data)


def zip_members(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    if not data.startswith(b"PK"):
        return
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for member in z.namelist():
            inner = z.read(member)
            yield f"{name}!{member}", inner
            yield from zip_members(f"{name}!{member}", inner)


def corral(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``corral ARGS`` as a real process: the leak scan reads everything a process prints,
    including what its Playwright driver and Chromium write to the inherited stderr."""
    return corral_process(*args, stdin=stdin, timeout=180)


LEAK_TASK = """
name: leak-scan
start_url: {portal}/login
secrets: [carol.password, carol.totp, acme.api_key]
steps:
  - fill: {{label: Username, value: "{{{{var:user}}}}"}}
  - fill: {{label: Password, value: "{{{{secret:carol.password}}}}"}}
  - click: {{role: button, name: Sign in}}
  - fill: {{label: Code, value: "{{{{secret:carol.totp}}}}"}}
  - click: {{role: button, name: Verify}}
  - wait_for: {{role: heading, name: Welcome}}
  - goto: /settings
  - fill: {{label: Display name, value: "{{{{secret:acme.api_key}}}}"}}
  - click: {{role: button, name: Save}}
  - wait_for: {{text: Settings saved}}
  - extract: {{as: page, text: {{css: main}}}}
"""


@pytest.mark.slow
def test_leak_scan_password_totp_and_api_key_leave_no_trace(
    home: Path, portal: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    started = time.time()
    outputs: list[str] = []

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = corral(*args, stdin=stdin)
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    assert run("profiles", "create", "carol", "--var", "user=carol").returncode == 0
    for name, value, extra in (
        ("carol.password", CAROL.password, ["--profile", "carol"]),
        ("carol.totp", str(CAROL.totp_secret), ["--profile", "carol", "--totp"]),
        ("acme.api_key", API_KEY, ["--field", "Display name"]),
    ):
        proc = run("secrets", "set", name, "--domain", portal, *extra, stdin=value + "\n")
        assert proc.returncode == 0, proc.stderr
    task = tmp_path / "leak.yaml"
    task.write_text(LEAK_TASK.format(portal=portal))
    proc = run("run", str(task), "--profile", "carol", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    [result] = json.loads(proc.stdout)
    # The key really went through the browser to the portal, byte for byte.
    saved = set()
    for portal_db in tmp_path_factory.getbasetemp().glob("portal*/portal.db"):
        with sqlite3.connect(portal_db) as db:
            saved |= {
                row[0]
                for row in db.execute(
                    "SELECT display_name FROM profiles WHERE username = ?", (CAROL.username,)
                )
            }
    assert saved == {API_KEY}
    run("runs", "show", result["run_id"])
    run("runs", "show", result["run_id"], "--json")
    run("secrets", "list")
    run("secrets", "audit", "--json")

    # What a model would be sent: an observation of the page that shows the key.
    observation = observe_settings_page(home, portal)
    assert "{{secret:acme.api_key}}" in observation

    codes = {
        totp_now(str(CAROL.totp_secret), t)
        for t in range(int(started) - 60, int(time.time()) + 60, 30)
    }
    secrets = {CAROL.password, str(CAROL.totp_secret), API_KEY}
    corpus = [*blobs_under(home), *(("cli output", o.encode()) for o in outputs)]
    corpus.append(("observation", observation.encode()))
    hits = leaks(corpus, secrets)
    assert not hits, f"secret values found: {hits[:5]}"
    code_hits = [
        (where, code)
        for where, data in corpus
        for code in codes
        if re.search(rb"(?<![0-9])" + code.encode() + rb"(?![0-9])", data)
    ]
    assert not code_hits, f"TOTP codes found: {code_hits[:5]}"
    # Control: the same scan finds the key planted in forms redaction must know (a form body,
    # an HTML attribute, base64 inside a longer header), and only those.
    planted = [
        ("form body", b"body=" + quote_plus(API_KEY).encode() + b"&x=1"),
        ("attribute", b"<i title='" + html.escape(API_KEY).encode() + b"'>"),
        ("header", b"Basic " + base64.b64encode(b"user:" + API_KEY.encode())),
    ]
    assert leaks([*corpus, *planted], secrets) == [(w, API_KEY) for w, _ in planted]
    # The trace had values that redaction replaced.
    trace = dict(zip_members("trace", (Path(result["run_dir"]) / "trace.zip").read_bytes()))
    assert any(b"{{secret:acme.api_key}}" in data for data in trace.values())
    assert any(b"{{secret:carol.password}}" in data for data in trace.values())
    # The run really typed them: the audit shows three allowed uses on the portal's origin.
    audit = json.loads(corral("secrets", "audit", "--run", result["run_id"], "--json").stdout)
    assert sorted(e["secret"] for e in audit if e["allowed"]) == [
        "acme.api_key",
        "carol.password",
        "carol.totp",
    ]
    # And the trace was kept (scrubbed), not dropped.
    assert (Path(result["run_dir"]) / "trace.zip").stat().st_size > 1000


def observe_settings_page(home: Path, portal: str) -> str:
    """Observe /settings as carol (restored session) with the runtime's redaction."""
    import asyncio

    from profiles import BrowserPool

    async def go() -> str:
        async with (
            BrowserPool.start(os.environ.get("CORRAL_BROWSER")) as pool,
            Runtime.open(Settings(home=home), pool=pool) as rt,
        ):
            redactor = Redactor()
            lease = await rt.vault.lease("observe", "carol", ["acme.api_key"], redactor)
            async with open_session(rt.profiles, pool, "carol", "observe") as session:
                tabs = Tabs(session)
                ctx = ActionContext(downloads_dir=home / "dl", base_url=portal)
                await execute(tabs, Navigate(url="/settings"), ctx)
                seen = await observe(tabs, redact=redactor.text)
            await lease.revoke()
            return seen.model_dump_json()

    return asyncio.run(go())


async def test_tampered_swapped_or_rescoped_ciphertexts_fail_clearly(rt: Runtime) -> None:
    await rt.vault.set("a.key", "value-of-a", ["https://a.example"])
    await rt.vault.set("b.key", "value-of-b", ["https://b.example"])
    db = raw_connect(rt.settings.store_location)

    async def leased(name: str) -> str:
        lease = await rt.vault.lease("r", "p", [name], Redactor())
        return lease._values[name]

    assert await leased("a.key") == "value-of-a"
    # Swap the two ciphertexts: each is bound to its own name and scope.
    a, b = (
        db.execute("SELECT ciphertext FROM secrets WHERE name = ?", (n,)).fetchone()[0]
        for n in ("a.key", "b.key")
    )
    db.execute("UPDATE secrets SET ciphertext = ? WHERE name = 'a.key'", (b,))
    db.commit()
    with pytest.raises(
        StateDecryptError, match=re.escape("secret 'a.key': stored data is corrupted")
    ):
        await leased("a.key")
    # Widen the scope in the database: the associated data no longer matches.
    db.execute("UPDATE secrets SET ciphertext = ? WHERE name = 'a.key'", (a,))
    db.execute("UPDATE secrets SET domains = '[\"https://evil.example\"]' WHERE name = 'a.key'")
    db.commit()
    with pytest.raises(StateDecryptError, match=re.escape("secret 'a.key'")):
        await leased("a.key")
    # Flip one byte / truncate: refused, and the stored bytes stay as they were.
    db.execute(
        "UPDATE secrets SET ciphertext = ? WHERE name = 'b.key'", (b[:-1] + bytes([b[-1] ^ 1]),)
    )
    db.commit()
    with pytest.raises(StateDecryptError, match=re.escape("secret 'b.key'")):
        await leased("b.key")
    db.execute("UPDATE secrets SET ciphertext = ? WHERE name = 'b.key'", (b[:10],))
    db.commit()
    with pytest.raises(
        StateDecryptError, match=re.escape("secret 'b.key': stored data is corrupted")
    ):
        await leased("b.key")
    assert db.execute("SELECT ciphertext FROM secrets WHERE name='b.key'").fetchone()[0] == b[:10]


async def test_fields_are_bound_into_the_ciphertext(rt: Runtime) -> None:
    """Widening a secret's fields, or dropping them (making it a password), fails to open."""
    await rt.vault.set("f.key", "value-of-f", ["https://a.example"], fields=["API key"])
    await rt.vault.set("pw", "value-of-pw", ["https://a.example"])
    db = raw_connect(rt.settings.store_location)

    async def leased(name: str) -> str:
        lease = await rt.vault.lease("r", "p", [name], Redactor())
        return lease._values[name]

    assert await leased("f.key") == "value-of-f"
    assert await leased("pw") == "value-of-pw"  # no fields: the context of older secrets
    for fields in ('["API key", "Comment"]', "[]"):
        db.execute("UPDATE secrets SET fields = ? WHERE name = 'f.key'", (fields,))
        db.commit()
        with pytest.raises(StateDecryptError, match=re.escape("secret 'f.key'")):
            await leased("f.key")
    db.execute("UPDATE secrets SET fields = '[\"Comment\"]' WHERE name = 'pw'")
    db.commit()
    with pytest.raises(StateDecryptError, match=re.escape("secret 'pw'")):
        await leased("pw")


async def test_secrets_stored_before_fields_existed_still_open(
    settings: Settings, backend: str
) -> None:
    """A store at the schema before the fields column: its secrets open as password secrets."""
    from runtime.store import MIGRATIONS, Store

    if backend == "postgresql":
        pytest.skip("PostgreSQL stores were first made with the fields column")

    async with Runtime.open(settings) as rt:
        await rt.vault.set("old", "value-of-old", ["https://a.example"])
    db = sqlite3.connect(settings.db_path)
    # Back to the schema before the fields column, as an older corral left it: undo the later
    # migrations too (the console's sessions and columns, schedules and fires, the runs' columns,
    # the leases' token and TTL, submissions' keys, notes, retention, alerts).
    before = next(i for i, script in enumerate(MIGRATIONS) if "ADD COLUMN fields" in script)
    db.executescript(
        "DROP TABLE console_sessions; DROP INDEX runs_task; DROP INDEX runs_profile;"
        "DROP INDEX runs_status; DROP INDEX runs_schedule; DROP INDEX model_calls_at;"
        "ALTER TABLE approvals DROP COLUMN fields; ALTER TABLE approvals DROP COLUMN target;"
        "DROP TABLE fires; DROP TABLE schedules; DROP INDEX runs_fire;"
        "ALTER TABLE runs DROP COLUMN schedule; ALTER TABLE runs DROP COLUMN fire_id;"
        "ALTER TABLE runs DROP COLUMN attempt; ALTER TABLE secrets DROP COLUMN fields;"
        "ALTER TABLE leases DROP COLUMN generation; ALTER TABLE leases DROP COLUMN ttl_s;"
        "ALTER TABLE runs DROP COLUMN host; DROP TABLE effects;"
        "ALTER TABLE runs DROP COLUMN evidence; DROP TABLE notes; DROP TABLE retention_rules;"
        "DROP INDEX runs_finished; ALTER TABLE runs DROP COLUMN expired; DROP TABLE alerts;"
        "DROP INDEX model_calls_provider; ALTER TABLE runs DROP COLUMN models_config;"
    )
    assert before == len(MIGRATIONS) - 11, "a newer migration: undo it here too"
    db.execute(f"PRAGMA user_version = {before}")
    db.commit()
    db.close()
    async with Runtime.open(settings) as rt:
        assert await rt.store.schema_version() == len(MIGRATIONS)
        [record] = await rt.vault.list()
        assert (record.kind, record.fields) == ("value", [])
        lease = await rt.vault.lease("r", "p", ["old"], Redactor())
        assert lease._values["old"] == "value-of-old"
    assert Store  # the module the migrations come from


async def test_another_master_key_names_the_secret(settings: Settings) -> None:
    async with Runtime.open(settings) as rt:
        await rt.vault.set("k", "some-value", ["https://a.example"])
    other = settings.model_copy(update={"master_key": MasterKey.generate().raw.hex()})
    async with Runtime.open(other) as rt:
        with pytest.raises(StateDecryptError, match="secret 'k': encrypted with another master"):
            await rt.vault.lease("r", "p", ["k"], Redactor())


async def test_set_validates_before_storing(rt: Runtime) -> None:
    for kwargs, message in (
        ({"value": ""}, "empty value"),
        ({"value": "abc"}, "at least 4"),
        ({"domains": []}, "at least one --domain"),
        ({"domains": ["https://a.example/path"]}, "without a path"),
        ({"totp": True, "value": "not base32!"}, "base32"),
        ({"fields": ["API key", "  "]}, "empty field name"),
    ):
        args = {"name": "k", "value": "long-enough", "domains": ["https://a.example"], **kwargs}
        with pytest.raises(UserError, match=message):
            await rt.vault.set(**args)  # type: ignore[arg-type]
    assert await rt.vault.list() == []


def secret(kind: str = "value", fields: tuple[str, ...] = ()) -> SecretRecord:
    now = datetime.now(UTC)
    return SecretRecord(
        name="s",
        kind=kind,  # type: ignore[arg-type]
        domains=["https://a.example"],
        fields=list(fields),
        ciphertext=b"",
        created_at=now,
        updated_at=now,
    )


PASSWORD_INPUT = FieldFacts(tag="input", type="password", names=("Password",))
TEXT = FieldFacts(tag="input", type="text", names=("Display name", "display_name"))
OTP = FieldFacts(tag="input", type="text", autocomplete="one-time-code", names=("Enter it",))
OTP_BY_NAME = FieldFacts(tag="input", type="tel", names=("2FA code",))
POSTAL = FieldFacts(tag="input", type="text", names=("Postal code",))


@pytest.mark.parametrize(
    ("record", "facts", "allowed"),
    [
        (secret(), PASSWORD_INPUT, True),
        (secret(), TEXT, False),
        (secret(), FieldFacts(tag="textarea", names=("Password",)), False),
        (secret(), FieldFacts(tag="input", type="search", names=("Password",)), False),
        (secret(), FieldFacts(tag="input", type="password", role="searchbox"), False),
        (secret(), FieldFacts(tag="div", contenteditable=True, names=("Password",)), False),
        (secret(), FieldFacts(tag="select", names=("Password",)), False),
        (secret(fields=("display NAME",)), TEXT, True),  # case and spaces do not matter
        (secret(fields=("display_name",)), TEXT, True),  # the name attribute counts
        (secret(fields=("Display",)), TEXT, False),  # whole match only
        (secret(fields=("Display name",)), PASSWORD_INPUT, False),
        (secret(fields=("Display name",)), FieldFacts(tag="input", type="hidden"), False),
        (secret("totp"), OTP, True),
        (secret("totp"), OTP_BY_NAME, True),
        (secret("totp"), POSTAL, False),
        (secret("totp"), TEXT, False),
        (secret("totp", ("Display name",)), TEXT, True),
        (secret("totp"), FieldFacts(tag="input", type="email", names=("code",)), False),
        (secret("totp"), FieldFacts(tag="textarea", autocomplete="one-time-code"), False),
    ],
)
def test_field_refusal(record: SecretRecord, facts: FieldFacts, allowed: bool) -> None:
    assert (field_refusal(record, facts) is None) is allowed


def test_logging_filter_redacts_messages_and_tracebacks() -> None:
    redactor = Redactor()
    redactor.add("hunter2-password", "{{secret:pw}}")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter(redactor))
    log = logging.getLogger("corral-test-redaction")
    log.addHandler(handler)
    try:
        log.warning("typed %s into the form", "hunter2-password")
        try:
            raise ValueError("bad value hunter2-password")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert records and not any("hunter2" in r for r in records)
    assert "{{secret:pw}}" in records[0]


def fill_everything(home: Path) -> None:
    """Secrets, a profile with state and a persistent profile archive, all sealed."""
    import asyncio

    async def go() -> None:
        async with Runtime.open(Settings(home=home)) as rt:
            await rt.vault.set("one", "value-one", ["https://a.example"])
            await rt.vault.set("two", "JBSWY3DPEHPK3PXP", ["https://a.example"], totp=True)
            await rt.profiles.create("st")
            await rt.profiles.save_state("st", {"cookies": [], "origins": []})
            await rt.profiles.create("pe", ProfileSettings(mode="persistent"))
            live = await rt.profiles.unpack_user_data("pe")
            (live / "Preferences").write_text("{}")
            await rt.profiles.pack_user_data("pe", live)

    asyncio.run(go())


def everything_opens(home: Path, env_key: str | None = None) -> str:
    """Open every sealed thing with the ring loaded from disk; returns the sealing key id."""
    import asyncio

    async def go() -> str:
        async with Runtime.open(Settings(home=home, master_key=env_key)) as rt:
            lease = await rt.vault.lease("check", "st", ["one", "two"], Redactor())
            assert lease._values["one"] == "value-one"
            assert rt.profiles.open_state(await rt.profiles.get("st")) == {
                "cookies": [],
                "origins": [],
            }
            live = await rt.profiles.unpack_user_data("pe")
            assert (live / "Preferences").read_text() == "{}"
            return rt.key.fingerprint

    return asyncio.run(go())


STAGES = ["next-key-written", "store-resealed", "archive-resealed:pe", "key-replaced"]


@pytest.mark.parametrize("stage", STAGES)
def test_rotation_interrupted_at_each_stage_stays_readable(tmp_path: Path, stage: str) -> None:
    import asyncio

    home = tmp_path / "home"
    fill_everything(home)
    old_key = (home / "master.key").read_text()

    class Crash(Exception):
        pass

    def crash_at(reached: str) -> None:
        if reached == stage:
            raise Crash(stage)

    async def rotate(checkpoint: object) -> None:
        async with Runtime.open(Settings(home=home)) as rt:
            await rotate_key(rt, checkpoint=checkpoint)  # type: ignore[arg-type]

    with pytest.raises(Crash):
        asyncio.run(rotate(crash_at))
    everything_opens(home)  # old or new key: the ring from disk opens everything
    asyncio.run(rotate(lambda _s: None))  # running it again finishes the rotation
    assert not (home / "master.key.next").exists()
    assert (home / "master.key").read_text() != old_key
    new_only = KeyRing(MasterKey.from_text((home / "master.key").read_text(), "new"))
    assert everything_opens(home) == new_only.fingerprint
    # Nothing is left under the old key.
    db = sqlite3.connect(home / "corral.db")
    blobs = [r[0] for r in db.execute("SELECT ciphertext FROM secrets")]
    blobs += [r[0] for r in db.execute("SELECT state FROM profiles WHERE state IS NOT NULL")]
    blobs.append((home / "profiles" / "pe" / "user-data.tar.enc").read_bytes())
    assert {new_only.sealed_by(b) for b in blobs} == {new_only.key_id}


def test_rotation_with_an_environment_key(tmp_path: Path) -> None:
    import asyncio

    home = tmp_path / "home"
    old = MasterKey.generate()
    new = MasterKey.generate()

    async def setup() -> None:
        async with Runtime.open(Settings(home=home, master_key=old.raw.hex())) as rt:
            await rt.vault.set("one", "value-one", ["https://a.example"])
            await rt.vault.set("two", "JBSWY3DPEHPK3PXP", ["https://a.example"], totp=True)
            await rt.profiles.create("st")
            await rt.profiles.save_state("st", {"cookies": [], "origins": []})
            await rt.profiles.create("pe", ProfileSettings(mode="persistent"))
            live = await rt.profiles.unpack_user_data("pe")
            (live / "Preferences").write_text("{}")
            await rt.profiles.pack_user_data("pe", live)
            await rotate_key(rt, new)

    asyncio.run(setup())
    assert not (home / "master.key").exists()  # env mode never writes a key file
    assert everything_opens(home, new.raw.hex()) == new.fingerprint


async def test_the_vault_redactor_knows_every_stored_value_secret(rt: Runtime) -> None:
    # What a replay built long after its run passes once more: every value secret, in every
    # encoding the run's own redactor knew; a TOTP seed is not a value anyone types.
    await rt.vault.set("a.password", "first-secret-value-1!", ["https://a.test"])
    await rt.vault.set("b.key", "second/Secret+Value=2", ["https://b.test"])
    await rt.vault.set("c.totp", "JBSWY3DPEHPK3PXP", ["https://c.test"], totp=True)
    redactor = await rt.vault.redactor()
    text = "x first-secret-value-1! " + quote_plus("second/Secret+Value=2") + " JBSWY3DPEHPK3PXP"
    out = redactor.text(text)
    assert out == "x {{secret:a.password}} {{secret:b.key}} JBSWY3DPEHPK3PXP"
    # As a run's redactor does: HTML- and JSON-escaped forms too.
    escaped = redactor.text(
        html.escape("<first-secret-value-1!>") + json.dumps("Q&first-secret-value-1!")
    )
    assert "first-secret-value-1" not in escaped


async def test_the_vault_redactor_is_made_again_when_a_secret_changes(rt: Runtime) -> None:
    await rt.vault.set("a.password", "first-secret-value-1!", ["https://a.test"])
    first = await rt.vault.redactor()
    assert await rt.vault.redactor() is first  # nothing changed: not decrypted again
    await rt.vault.set("a.password", "changed-secret-value-2!", ["https://a.test"])
    changed = await rt.vault.redactor()
    assert changed.text("changed-secret-value-2!") == "{{secret:a.password}}"
    assert changed.text("first-secret-value-1!") == "first-secret-value-1!"
    await rt.vault.remove("a.password")
    assert not await rt.vault.redactor()
