"""The object store: run artifacts and sealed profile archives on local disk or in S3.

S3 is moto's S3-compatible server on 127.0.0.1 (a real HTTP server, boto3 talking to it over the
wire). A recorded run's files land in the bucket and its replay renders from there once the local
folder is gone; a persistent profile packed under one CORRAL_HOME restores under another; no key
can leave the store in either implementation; the S3 secret key is in no message and no log line;
an upload that fails leaves the run's local files and its status as they were.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from profiles import BrowserPool, ProfileSettings, Redactor, UserError
from runtime import Runtime, Settings, Task, load_task, run_task
from runtime.auth import LOCAL_ACTOR
from runtime.demo import DEMO_TASK
from runtime.objects import (
    LocalObjects,
    ObjectKeyError,
    ObjectStore,
    ObjectStoreError,
    S3Objects,
    open_objects,
)
from runtime.records import RunRecord
from runtime.review.replay import fetch_review_images, render_replay
from runtime.rotate import rotate_key
from runtime.run.recorder import Recorder
from tests.support.cli import corral
from tests.support.console import served_console, sign_in
from tests.support.demo import make_demo_profiles
from tests.support.s3 import S3, SECRET_KEY

HOSTILE_KEYS = [
    "../outside",
    "runs/../../outside",
    "/etc/passwd",
    "runs/r1/\x00.jpg",
    "runs//r1",
    "runs/./r1",
    "runs\\..\\outside",
    "",
]


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjects(tmp_path / "root")
    bucket: S3 = request.getfixturevalue("s3")
    return open_objects(bucket.url("pre/fix"), tmp_path)


def demo_task_for(portal: str) -> tuple[Task, dict[str, str]]:
    return load_task(DEMO_TASK), {"portal": portal}


# --- the seam ---------------------------------------------------------------------------------


async def test_put_get_list_delete_round_trip(store: ObjectStore) -> None:
    await store.put("runs/r1/steps/0000.jpg", b"one")
    await store.put("runs/r1/result.json", b"{}")
    await store.put("runs/r10/result.json", b"other run")
    await store.put("profiles/a/user-data.tar.enc", b"sealed")
    await store.put("runs/r1/result.json", b"{replaced}")
    assert await store.get("runs/r1/result.json") == b"{replaced}"
    assert await store.get("runs/r1/missing") is None
    assert await store.list("runs/r1/") == ["runs/r1/result.json", "runs/r1/steps/0000.jpg"]
    assert await store.delete_prefix("runs/r1/") == 2
    assert await store.list("runs/") == ["runs/r10/result.json"]  # "r1/" is not "r10/"
    await store.delete("profiles/a/user-data.tar.enc")
    await store.delete("profiles/a/user-data.tar.enc")  # deleting nothing is fine
    assert await store.get("profiles/a/user-data.tar.enc") is None
    with pytest.raises(ObjectKeyError, match="ending with '/'"):
        await store.delete_prefix("runs/r1")  # would also take runs/r10/


@pytest.mark.parametrize("key", HOSTILE_KEYS)
async def test_a_key_that_could_leave_the_store_is_refused(
    store: ObjectStore, key: str, tmp_path: Path
) -> None:
    for call in (
        store.put(key, b"x"),
        store.get(key),
        store.delete(key),
        store.delete_prefix(key + "/"),
        store.list(key + "/"),
    ):
        with pytest.raises(ObjectKeyError):
            await call
    assert not (tmp_path / "outside").exists()
    if isinstance(store, S3Objects):
        assert await store.list("runs/") == []


async def test_local_objects_are_private_and_never_cross_a_link(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"theirs")
    store = LocalObjects(root)
    await store.put("runs/r1/steps/0000.jpg", b"shot")
    shot = root / "runs" / "r1" / "steps" / "0000.jpg"
    assert shot.stat().st_mode & 0o777 == 0o600
    assert {(root / p).stat().st_mode & 0o777 for p in ("runs", "runs/r1", "runs/r1/steps")} == {
        0o700
    }
    (root / "runs" / "link").symlink_to(outside, target_is_directory=True)
    (root / "runs" / "r1" / "file-link").symlink_to(outside / "victim")
    for key in ("runs/link/victim", "runs/link/new", "runs/r1/file-link"):
        with pytest.raises(ObjectKeyError, match="symbolic link"):
            await store.put(key, b"mine")
        with pytest.raises(ObjectKeyError, match="symbolic link"):
            await store.get(key)
    with pytest.raises(ObjectKeyError, match="symbolic link"):
        await store.delete_prefix("runs/link/")
    assert await store.list("runs/r1/") == ["runs/r1/steps/0000.jpg"]  # the link is no object
    assert (outside / "victim").read_bytes() == b"theirs"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://bucket/x", "expected s3://BUCKET"),
        ("s3://", "bucket name"),
        ("s3://Bad_Bucket", "bucket name"),
        ("s3://bucket/../x", "prefix"),
        ("s3://AKIA:topsecret@bucket", "credentials do not go in the URL"),
        ("s3://bucket?endpoint=ftp://host", "endpoint"),
        ("s3://bucket?endpoint=http://u:topsecret@host:9000", "credentials do not go"),
        ("s3://bucket?region=x", "the only query parameter is endpoint="),
        ("file://relative/path", "absolute path"),
    ],
)
def test_a_bad_artifacts_url_names_the_variable_and_what_is_expected(
    value: str, says: str, tmp_path: Path
) -> None:
    with pytest.raises(UserError) as caught:
        Settings.from_env({"CORRAL_HOME": str(tmp_path), "CORRAL_ARTIFACTS_URL": value})
    message = str(caught.value)
    assert message.startswith("CORRAL_ARTIFACTS_URL: ") and says in message
    assert "topsecret" not in message


def test_good_artifacts_urls_pick_the_store(tmp_path: Path) -> None:
    env = {"CORRAL_HOME": str(tmp_path)}
    assert Settings.from_env(env).artifacts_url is None
    url = "s3://team-bucket/corral/prod?endpoint=http://127.0.0.1:9000"
    settings = Settings.from_env({**env, "CORRAL_ARTIFACTS_URL": url})
    assert settings.artifacts_url == url
    store = open_objects(settings.artifacts_url, settings.home)
    assert isinstance(store, S3Objects)
    assert (store.bucket, store.prefix, store.endpoint) == (
        "team-bucket",
        "corral/prod/",
        "http://127.0.0.1:9000",
    )
    shared = open_objects(f"file://{tmp_path}/shared", settings.home)
    assert isinstance(shared, LocalObjects) and shared.root == tmp_path / "shared"
    default = open_objects(None, settings.home)
    assert isinstance(default, LocalObjects) and default.root == settings.home
    with pytest.raises(UserError, match="artifacts_url: expected"):
        Settings(home=tmp_path, artifacts_url="gs://bucket")


# --- errors: clear, and never a credential ----------------------------------------------------


async def test_a_refusing_endpoint_or_missing_bucket_is_one_clear_error_without_the_secret(
    s3: S3, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # botocore logs its requests at DEBUG
    closed = S3Objects("corral-nowhere", "", "http://127.0.0.1:9", attempts=2)
    with pytest.raises(ObjectStoreError) as refused:
        await closed.put("runs/r1/result.json", b"{}")
    assert str(refused.value) == (
        "s3://corral-nowhere (endpoint http://127.0.0.1:9): put runs/r1/result.json: "
        "cannot connect to the endpoint"
    )
    missing = open_objects(f"s3://no-such-bucket-here?endpoint={s3.endpoint}", tmp_path)
    with pytest.raises(ObjectStoreError) as absent:
        await missing.get("runs/r1/result.json")
    assert "s3://no-such-bucket-here" in str(absent.value)
    assert "the bucket 'no-such-bucket-here' does not exist" in str(absent.value)
    assert isinstance(missing, S3Objects)
    with pytest.raises(ObjectStoreError, match="open the bucket"):
        await missing.check()
    working = open_objects(s3.url(), tmp_path)
    await working.put("runs/r1/result.json", b"{}")  # signed with the secret key
    assert any(r.name.startswith("botocore") for r in caplog.records)  # it logged its requests
    for text in (str(refused.value), str(absent.value), repr(refused.value.__cause__), caplog.text):
        assert SECRET_KEY not in text
    for store in (closed, missing, working):
        await store.aclose()


# --- runs ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_recorded_run_is_in_the_bucket_and_replays_from_it_without_its_folder(
    s3: S3, home: Path, pool: BrowserPool, portal: str, tmp_path: Path
) -> None:
    settings = Settings(home=home, lease_timeout_s=5, artifacts_url=s3.url("corral"))
    async with Runtime.open(settings, pool=pool) as rt:
        await make_demo_profiles(rt, portal, "alice")
        task, variables = demo_task_for(portal)
        result = await run_task(rt, task, "alice", variables)
        assert result.status == "succeeded", result.error
        assert result.warnings == []
        run_id, run_dir = str(result.run_id), Path(str(result.run_dir))
        artifacts = await rt.store.runs.list_artifacts(run_id)
    registered = sorted(f"corral/runs/{run_id}/{a.path}" for a in artifacts)
    assert registered == s3.keys(f"corral/runs/{run_id}/")  # all there when the run ended
    assert {a.kind for a in artifacts} == {"screenshot", "trace", "result"}
    for artifact in artifacts:
        assert (
            s3.read(f"corral/runs/{run_id}/{artifact.path}")
            == (run_dir / artifact.path).read_bytes()
        )
    shots = {a.path: s3.read(f"corral/runs/{run_id}/{a.path}") for a in artifacts}
    shots = {p: data for p, data in shots.items() if p.endswith(".jpg")}
    assert len(shots) >= 3
    shutil.rmtree(run_dir)  # as on a host that did not record it

    # The CLI (its own runtime, configured from the environment) writes the replay.
    out = tmp_path / "replay.html"
    env = {"CORRAL_ARTIFACTS_URL": s3.url("corral"), "CORRAL_HOME": str(home)}
    made = await asyncio.to_thread(corral, "replay", run_id, "-o", str(out), env=env)
    assert made.returncode == 0, made.stderr
    text = out.read_text()
    distinct = {base64.b64encode(data).decode() for data in shots.values()}
    assert all(b64 in text for b64 in distinct)
    assert text.count("data:image/jpeg;base64,") == len(distinct)

    # Without the object store, the same replay has no pictures: they came from the bucket.
    async with Runtime.open(Settings(home=home), pool=pool) as local:
        review = await local.services.runs.review(LOCAL_ACTOR, run_id)
        fetched = await fetch_review_images(local.objects, review)
        assert fetched == {}
        assert "data:image/" not in render_replay(review, run_dir, fetched)


@pytest.mark.slow
async def test_the_console_and_the_api_serve_a_run_from_the_bucket(
    s3: S3, home: Path, pool: BrowserPool, portal: str
) -> None:
    settings = Settings(home=home, lease_timeout_s=5, artifacts_url=s3.url())
    async with Runtime.open(settings, pool=pool) as rt, served_console(rt) as console:
        await make_demo_profiles(rt, portal, "alice")
        task, variables = demo_task_for(portal)
        result = await run_task(rt, task, "alice", variables)
        assert result.status == "succeeded", result.error
        run_id, run_dir = str(result.run_id), Path(str(result.run_dir))
        shutil.rmtree(run_dir)
        async with sign_in(console.url, console.tokens["root"]) as root:
            page = await root.get(f"/console/runs/{run_id}")
            assert page.status_code == 200
            sources = re.findall(r'<img id="[^"]+" src="([^"]+)"', page.text)
            assert len(sources) >= 3
            for src in sources:
                got = await root.get(src)
                assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
                assert got.content == s3.read(f"runs/{run_id}/{src.split('/files/', 1)[1]}")
            # Only images, only inside the run: the bucket's other files are not served.
            s3.client().put_object(Bucket=s3.bucket, Key="runs/elsewhere.jpg", Body=got.content)
            for path in ("result.json", "trace.zip", "../elsewhere.jpg", "%2E%2E/elsewhere.jpg"):
                answer = await root.get(f"/console/runs/{run_id}/files/{path}")
                assert answer.status_code == 404, path
        headers = {"Authorization": f"Bearer {console.tokens['root']}"}
        async with httpx.AsyncClient(base_url=console.url, headers=headers) as api:
            replay = await api.get(f"/api/runs/{run_id}/replay")
            assert replay.status_code == 200
            assert base64.b64encode(got.content).decode() in replay.text
            # Any registered file (the trace, the result) downloads, from the bucket.
            for name in ("trace.zip", "result.json"):
                file = await api.get(f"/api/runs/{run_id}/files/{name}")
                assert file.status_code == 200, file.text
                assert file.content == s3.read(f"runs/{run_id}/{name}")
                assert file.headers["content-disposition"] == f'attachment; filename="{name}"'
            # Nothing else: a file the run did not register, or one outside it.
            for path in ("steps.jsonl", "%2E%2E/elsewhere.jpg", "steps/..%2F..%2Felsewhere.jpg"):
                answer = await api.get(f"/api/runs/{run_id}/files/{path}")
                assert answer.status_code == 404, path


async def test_the_default_store_is_the_run_folder_itself(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    task, variables = demo_task_for(portal)
    result = await run_task(rt, task, "alice", variables)
    assert result.status == "succeeded", result.error
    run_id, run_dir = str(result.run_id), Path(str(result.run_dir))
    assert isinstance(rt.objects, LocalObjects) and rt.objects.root == rt.settings.home
    keys = await rt.objects.list(f"runs/{run_id}/")
    files = sorted(
        f"runs/{run_id}/{p.relative_to(run_dir).as_posix()}"
        for p in run_dir.rglob("*")
        if p.is_file()
    )
    assert keys == files  # nothing copied anywhere: the folder's files are the objects
    assert not [p for p in run_dir.rglob(".tmp-*")]


class CountingObjects(LocalObjects):
    """The local store, noting each key put into it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts: list[str] = []

    async def put(self, key: str, data: bytes) -> None:
        self.puts.append(key)
        await super().put(key, data)


async def test_the_recorder_copies_a_file_only_to_a_store_that_is_not_its_folder(
    rt: Runtime, tmp_path: Path
) -> None:
    run_dir = rt.settings.runs_dir / "r-copy"
    await rt.store.runs.create_run(
        RunRecord(
            id="r-copy",
            task_name="t",
            task_path=None,
            profile="p",
            status="running",
            started_at=datetime.now(UTC),
            run_dir=str(run_dir),
            pid=os.getpid(),
        )
    )
    home_store, shared = CountingObjects(rt.settings.home), CountingObjects(tmp_path / "shared")
    for objects in (home_store, shared):
        recorder = Recorder(rt.store, "r-copy", run_dir, Redactor(), objects)
        await recorder.result({"status": "succeeded"})
        await recorder.flush()
        assert recorder.warnings == []
    assert home_store.puts == []  # the run folder is that store: nothing to copy
    assert shared.puts == ["runs/r-copy/result.json"]
    copied = tmp_path / "shared" / "runs" / "r-copy" / "result.json"
    assert copied.read_bytes() == (run_dir / "result.json").read_bytes()
    assert copied.stat().st_mode & 0o777 == 0o600


async def test_key_rotation_reseals_the_archives_in_the_bucket(s3: S3, home: Path) -> None:
    async with Runtime.open(Settings(home=home, artifacts_url=s3.url())) as rt:
        await rt.profiles.create("pe", ProfileSettings(mode="persistent"))
        live = await rt.profiles.unpack_user_data("pe")
        (live / "Preferences").write_text('{"marker": "in the archive"}')
        await rt.profiles.pack_user_data("pe", live)
        before = s3.read("profiles/pe/user-data.tar.enc")
        assert rt.key.sealed_by(before) == rt.key.key_id
        report = await rotate_key(rt)
        after = s3.read("profiles/pe/user-data.tar.enc")
        assert report.archives_resealed == 1
        assert rt.key.sealed_by(after) == rt.key.key_id != rt.key.sealed_by(before)
        live = await rt.profiles.unpack_user_data("pe")
        assert (live / "Preferences").read_text() == '{"marker": "in the archive"}'
    assert not (home / "profiles" / "pe" / "user-data.tar.enc").exists()


async def test_an_upload_that_fails_leaves_the_local_copy_and_the_run_status(
    s3: S3, home: Path, pool: BrowserPool, portal: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"s3://corral-gone-{uuid.uuid4().hex[:8]}?endpoint={s3.endpoint}"
    settings = Settings(home=home, lease_timeout_s=5, artifacts_url=url)
    async with Runtime.open(settings, pool=pool) as rt:
        await make_demo_profiles(rt, portal, "alice")
        task, variables = demo_task_for(portal)
        result = await run_task(rt, task, "alice", variables)
        run = await rt.store.runs.get_run(str(result.run_id))
        artifacts = await rt.store.runs.list_artifacts(str(result.run_id))
    assert result.status == "succeeded" and result.exit_code == 0, result.error
    assert run is not None and run.status == "succeeded"
    run_dir = Path(str(result.run_dir))
    for artifact in artifacts:
        assert (run_dir / artifact.path).is_file()
    shots = [a for a in artifacts if a.kind == "screenshot"]
    assert len(result.warnings) == len(artifacts) - 1  # all but result.json's own
    assert all("does not exist" in w for w in result.warnings)
    written = json.loads((run_dir / "result.json").read_text())
    assert written["status"] == "succeeded" and written["warnings"] == result.warnings
    assert len([r for r in caplog.records if "upload of" in r.getMessage()]) == len(artifacts)
    assert shots and SECRET_KEY not in caplog.text


# --- persistent profiles ----------------------------------------------------------------------


@pytest.mark.slow
async def test_a_persistent_profile_packed_on_one_host_restores_on_another_through_s3(
    s3: S3, tmp_path: Path, pool: BrowserPool, portal: str
) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"

    def settings(home: Path) -> Settings:
        return Settings(home=home, master_key=key, lease_timeout_s=5, artifacts_url=s3.url())

    async with Runtime.open(settings(host_a), pool=pool) as a:
        await a.profiles.create("pers", ProfileSettings(mode="persistent", vars={"user": "alice"}))
        await a.vault.set("alice.password", "alice-pw-1", [portal], ["pers"])
        task, variables = demo_task_for(portal)
        first = await run_task(a, task, "pers", variables)
        assert first.status == "succeeded", first.error
    archive = s3.read("profiles/pers/user-data.tar.enc")
    assert b"portal_session" not in archive and b"Cookies" not in archive  # sealed
    assert not (host_a / "profiles" / "pers" / "user-data.tar.enc").exists()
    # Host B shares the store (here: a copy of the file) and the master key, not the disk.
    host_b.mkdir(mode=0o700)
    shutil.copy(host_a / "corral.db", host_b / "corral.db")
    async with Runtime.open(settings(host_b), pool=pool) as b:
        second = await run_task(b, task, "pers", variables)
        assert second.status == "succeeded" and second.session_restored, second.error
        assert second.steps_skipped == 3  # still signed in: the login steps were skipped
        assert s3.read("profiles/pers/user-data.tar.enc") != archive  # packed again, from B
        await b.profiles.delete("pers")
    assert s3.keys("profiles/") == []
