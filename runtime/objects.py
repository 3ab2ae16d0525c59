"""Object storage: where run artifacts and sealed profile archives live, on disk or in S3.

Keys are ``/``-separated, relative, e.g. ``runs/RUN_ID/steps/0003.jpg`` and
``profiles/NAME/user-data.tar.enc``. Two implementations of one seam, :class:`ObjectStore`:

- :class:`LocalObjects` (the embedded default): key ``K`` is the file ``ROOT/K``, 0600 in 0700
  folders. With ``ROOT = CORRAL_HOME`` a run folder *is* its objects (``runs/RUN_ID/x`` is
  ``HOME/runs/RUN_ID/x``), so nothing is copied twice.
- :class:`S3Objects`: any S3-compatible store through boto3, chosen by
  ``CORRAL_ARTIFACTS_URL=s3://BUCKET[/PREFIX][?endpoint=http://host:port]``. The endpoint may also
  come from ``AWS_ENDPOINT_URL``; credentials and region from the standard AWS variables, read by
  botocore itself and never written into a message. Retries are botocore's own (``standard``).

Every method is async; blocking work (files, boto3 calls) runs in a thread. No key can leave the
store: absolute keys, ``..``, ``.``, empty parts, backslashes and control characters are refused
by both implementations, and the local one also refuses any key that crosses a symlink.

Errors::

    RunError
    └── ObjectStoreError          the object store failed (unreachable, no bucket, access denied)
        └── ObjectKeyError        a key that could leave the store (``..``, absolute, NUL, link)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from profiles import RunError, UserError, atomic_write, private_dir

__all__ = [
    "ARTIFACTS_URL_ENV",
    "LocalObjects",
    "ObjectKeyError",
    "ObjectStore",
    "ObjectStoreError",
    "S3Objects",
    "check_key",
    "open_objects",
    "parse_artifacts_url",
    "run_key",
]

ARTIFACTS_URL_ENV = "CORRAL_ARTIFACTS_URL"
_MAX_KEY = 1024
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectStoreError(RunError):
    """The object store failed: unreachable, no such bucket, access denied."""


class ObjectKeyError(ObjectStoreError):
    """A key that is not a plain relative path inside the store."""


def run_key(run_id: str, relative: str) -> str:
    """The object key of a file in a run's folder (``relative``: its path in the folder)."""
    return check_key(f"runs/{run_id}/{relative}")


def check_key(key: str, *, prefix: bool = False) -> str:
    """``key`` if it is a plain relative ``/``-path (a ``prefix`` may end with ``/``); else
    ObjectKeyError. The key is shown with ``repr`` (it may hold control characters)."""
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise ObjectKeyError(f"object key {key!r}: expected a relative path of 1-{_MAX_KEY} chars")
    body = key[:-1] if prefix and key.endswith("/") else key
    if _BAD_CHARS.search(key) or key.startswith("/"):
        raise ObjectKeyError(f"object key {key!r}: not a plain relative path")
    if any(part in ("", ".", "..") for part in body.split("/")):
        raise ObjectKeyError(f"object key {key!r}: empty, '.' or '..' parts are not allowed")
    return key


class ObjectStore(ABC):
    """Where run artifacts and sealed profile archives are kept; ``url`` names it (without any
    credential) in messages."""

    url: str

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there (never half-written)."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is none."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object (nothing happens if there is none)."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (a folder: it ends with ``/``); how many."""

    @abstractmethod
    async def list(self, prefix: str) -> list[str]:
        """The keys under ``prefix``, sorted."""

    def local_path(self, key: str) -> Path | None:
        """The file that holds ``key`` on this machine, for a store on local disk; else None."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - most stores hold no connection
        """Release connections."""


def _folder(prefix: str) -> str:
    check_key(prefix, prefix=True)
    if not prefix.endswith("/"):
        # "profiles/a" must never match "profiles/ab/...".
        raise ObjectKeyError(f"object prefix {prefix!r}: expected a folder ending with '/'")
    return prefix


# --- local disk -------------------------------------------------------------------------------


class LocalObjects(ObjectStore):
    """Objects as files under ``root`` (0600 files, 0700 folders)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri() if root.is_absolute() else str(root)

    def local_path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _walk(self, key: str, *, prefix: bool = False) -> Path:
        """``ROOT/key``, refusing a key any existing part of which is a link (or not a folder
        where one is needed): a link planted in the tree could lead a write outside."""
        check_key(key, prefix=prefix)
        path = self.root
        parts = key.rstrip("/").split("/")
        for i, part in enumerate(parts):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                raise ObjectKeyError(f"object key {key!r}: {path} is a symbolic link")
            if i < len(parts) - 1 and not stat.S_ISDIR(mode):
                raise ObjectKeyError(f"object key {key!r}: {path} is not a folder")
        return self.root / key.rstrip("/")

    def _put(self, key: str, data: bytes) -> None:
        path = self._walk(key)
        private_dir(path.parent)
        # mkstemp's file is 0600 already: replaced whole, never half-written.
        atomic_write(path, data)

    def _get(self, key: str) -> bytes | None:
        path = self._walk(key)
        try:
            # O_NOFOLLOW: a link swapped in after the walk is refused, not followed.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ObjectKeyError(f"object key {key!r}: {path} cannot be read: {exc}") from exc
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            return fh.read()

    def _delete(self, key: str) -> None:
        path = self._walk(key)
        if path.is_dir() and not path.is_symlink():
            return
        path.unlink(missing_ok=True)

    def _delete_prefix(self, prefix: str) -> int:
        folder = self._walk(_folder(prefix), prefix=True)
        if not folder.is_dir():
            return 0
        count = sum(1 for _ in self._files(folder))
        # rmtree never follows links: one inside the folder is removed, not its target.
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def _files(self, folder: Path) -> list[Path]:
        found: list[Path] = []
        for dirpath, _dirs, files in os.walk(folder, followlinks=False):
            for name in files:
                path = Path(dirpath) / name
                if path.is_file() and not path.is_symlink() and not name.startswith(".tmp-"):
                    found.append(path)
        return found

    def _list(self, prefix: str) -> list[str]:
        folder = self._walk(_folder(prefix), prefix=True)
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self._files(folder))

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_prefix, prefix)

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)


# --- S3-compatible ----------------------------------------------------------------------------


class S3Objects(ObjectStore):
    """Objects in an S3 bucket, under ``prefix``, through boto3 (calls run in a thread).

    ``endpoint``: an S3-compatible server (MinIO, moto, R2, ...); None lets botocore pick
    (``AWS_ENDPOINT_URL``, else AWS). Credentials and region are botocore's to find.
    """

    def __init__(
        self, bucket: str, prefix: str = "", endpoint: str | None = None, *, attempts: int = 4
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.attempts = attempts
        shown = (
            endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.url = f"s3://{bucket}/{prefix}".rstrip("/") + (
            f" (endpoint {_without_userinfo(shown)})" if shown else ""
        )
        self._client: Any = None  # a botocore S3 client (thread-safe)
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:  # calls come from worker threads; one client serves them all
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> Any:
        try:
            import boto3  # type: ignore[import-untyped]  # only S3 deployments need it
            from botocore.config import Config  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ObjectStoreError(
                f"{self.url}: boto3 is not installed (pip install 'corral[s3]')"
            ) from exc
        config = Config(
            retries={"mode": "standard", "max_attempts": self.attempts},
            connect_timeout=5,
            read_timeout=60,
        )
        try:
            return boto3.session.Session().client("s3", endpoint_url=self.endpoint, config=config)
        except Exception as exc:  # botocore's config errors have many types
            raise ObjectStoreError(
                f"{self.url}: cannot set up the S3 client: {type(exc).__name__}"
            ) from exc

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _failed(self, doing: str, key: str, exc: Exception) -> ObjectStoreError:
        """One clear message: the store, what failed and why; never a credential (botocore's
        own text is left out: it may quote the request)."""
        from botocore.exceptions import (  # type: ignore[import-untyped]
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
        )

        why = type(exc).__name__
        if isinstance(exc, ClientError):
            error: dict[str, Any] = dict(exc.response.get("Error") or {})
            code = str(error.get("Code") or "?")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            if code == "NoSuchBucket":
                why = f"the bucket '{self.bucket}' does not exist"
            elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                why = f"access denied ({code}): check the AWS credentials this process has"
            else:
                why = f"{code} (HTTP {status})"
        elif isinstance(exc, EndpointConnectionError):
            why = "cannot connect to the endpoint"
        elif isinstance(exc, NoCredentialsError):
            why = "no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        elif isinstance(exc, NoRegionError):
            why = "no AWS region (set AWS_DEFAULT_REGION)"
        return ObjectStoreError(f"{self.url}: {doing} {key}: {why}")

    async def _call(self, doing: str, key: str, fn: Any) -> Any:
        await asyncio.to_thread(self._s3)  # first: without boto3, its own clear error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(fn)
        except ObjectStoreError:
            raise
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(doing, key, exc) from exc

    async def put(self, key: str, data: bytes) -> None:
        name = self._key(key)
        await self._call(
            "put", key, lambda: self._s3().put_object(Bucket=self.bucket, Key=name, Body=data)
        )

    async def get(self, key: str) -> bytes | None:
        name = self._key(key)

        def fetch() -> bytes | None:
            from botocore.exceptions import ClientError

            try:
                reply = self._s3().get_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = reply["Body"].read()
            return body

        found: bytes | None = await self._call("get", key, fetch)
        return found

    async def delete(self, key: str) -> None:
        name = self._key(key)
        await self._call(
            "delete", key, lambda: self._s3().delete_object(Bucket=self.bucket, Key=name)
        )

    def _names(self, prefix: str) -> list[str]:
        pages = self._s3().get_paginator("list_objects_v2")
        names: list[str] = []
        for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            names.extend(str(item["Key"]) for item in page.get("Contents", []))
        return names

    async def list(self, prefix: str) -> list[str]:
        _folder(prefix)
        names: list[str] = await self._call("list", prefix, lambda: self._names(prefix))
        return sorted(n.removeprefix(self.prefix) for n in names)

    async def delete_prefix(self, prefix: str) -> int:
        _folder(prefix)

        def remove() -> int:
            names = self._names(prefix)
            for start in range(0, len(names), 1000):
                batch = [{"Key": n} for n in names[start : start + 1000]]
                self._s3().delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            return len(names)

        count: int = await self._call("delete", prefix, remove)
        return count

    async def check(self) -> None:
        """Fail with a clear ObjectStoreError unless the bucket can be reached."""
        await self._call("open", "the bucket", lambda: self._s3().head_bucket(Bucket=self.bucket))

    async def aclose(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None


# --- configuration ----------------------------------------------------------------------------


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def parse_artifacts_url(text: str, source: str = ARTIFACTS_URL_ENV) -> str:
    """``text`` checked as an artifact store URL (``s3://BUCKET[/PREFIX][?endpoint=URL]`` or
    ``file:///PATH``); anything else is a UserError naming ``source`` and what is expected.
    The value is never echoed: one pasted into the wrong variable may be a secret."""
    url = text.strip()
    expected = (
        f"{source}: expected s3://BUCKET[/PREFIX][?endpoint=http://HOST:PORT] or file:///PATH"
    )
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UserError(f"{expected} (a file URL needs an absolute path)")
        if parts.query or parts.fragment:
            raise UserError(f"{expected} (a file URL takes no ?query or #fragment)")
        return url
    if parts.scheme != "s3":
        raise UserError(expected)
    if "@" in parts.netloc:
        raise UserError(
            f"{source}: credentials do not go in the URL; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or another standard AWS credential source)"
        )
    if not _BUCKET.match(parts.netloc):
        raise UserError(f"{expected} (the bucket name: 3-63 of a-z, 0-9, '.', '-')")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ObjectKeyError:
            raise UserError(f"{expected} (the prefix: a plain path without '..')") from None
    if parts.fragment:
        raise UserError(f"{expected} (no #fragment)")
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"endpoint"} or any(len(v) != 1 for v in query.values()):
        raise UserError(f"{expected} (the only query parameter is endpoint=)")
    endpoint = query.get("endpoint", [""])[0]
    if "endpoint" in query:
        point = urlsplit(endpoint)
        if point.scheme not in ("http", "https") or not point.hostname:
            raise UserError(f"{expected} (endpoint: an http(s) URL, e.g. http://127.0.0.1:9000)")
        if "@" in point.netloc:
            raise UserError(f"{source}: endpoint: credentials do not go in the URL")
    return url


def open_objects(url: str | None, home: Path) -> ObjectStore:
    """The object store ``url`` names (checked by :func:`parse_artifacts_url`); None: files under
    ``home`` (the run folders and profile folders themselves)."""
    if not url:
        return LocalObjects(home)
    url = parse_artifacts_url(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalObjects(Path(parts.path))
    endpoint = parse_qs(parts.query).get("endpoint", [None])[0]
    prefix = parts.path.strip("/")
    return S3Objects(parts.netloc, prefix + "/" if prefix else "", endpoint)
