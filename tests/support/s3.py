"""A real S3-compatible server on 127.0.0.1 for tests: moto's server mode (from PyPI).

:func:`s3_server` starts one (a pytest fixture wraps it, module-scoped); :class:`S3` is what a
test gets: the endpoint, a fresh bucket of its own, a boto3 client to look inside it, and the
credentials put in the environment (a secret key unique to the test run, to search leaks for).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from runtime.demo.cluster import s3_server

__all__ = ["ACCESS_KEY", "S3", "SECRET_KEY", "aws_env", "fresh_bucket", "s3_server"]


ACCESS_KEY = "AKIACORRALTEST0001"
SECRET_KEY = "corral-test-secret-" + secrets.token_hex(12)
"""The secret access key the tests sign with: it must never appear in a message or a log."""


def aws_env() -> dict[str, str]:
    """The standard AWS variables a test sets (and what else must not leak in from outside)."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        # No shared config or IMDS look-ups from the machine running the tests.
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class S3:
    """One test's bucket on the server."""

    endpoint: str
    bucket: str

    def client(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        ).client("s3", endpoint_url=self.endpoint)

    def url(self, prefix: str = "") -> str:
        """``CORRAL_ARTIFACTS_URL`` for this bucket (and ``prefix``)."""
        path = f"/{prefix}" if prefix else ""
        return f"s3://{self.bucket}{path}?endpoint={self.endpoint}"

    def create(self) -> S3:
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def keys(self, prefix: str = "") -> list[str]:
        reply = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in reply.get("Contents", []))

    def read(self, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


def fresh_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket on ``endpoint``; the standard AWS variables set for the code under test
    (and those that could point it elsewhere removed)."""
    for name, value in aws_env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return S3(endpoint, f"corral-{uuid.uuid4().hex[:12]}").create()
