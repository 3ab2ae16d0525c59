"""Settings read from the environment at the edge (CLI, API entry), into one typed object."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from profiles import (
    BROWSER_ENV,
    MASTER_KEY_ENV,
    PREVIOUS_KEY_ENV,
    PRIVATE_DIR,
    PRIVATE_FILE,
    UserError,
    private_dir,
    tighten,
)
from runtime.objects import ARTIFACTS_URL_ENV, parse_artifacts_url
from runtime.retention import Retention

__all__ = [
    "CONFIG_ENV",
    "DATABASE_URL_ENV",
    "HOME_ENV",
    "PUBLIC_URL_ENV",
    "Settings",
    "parse_database_url",
    "parse_public_url",
]

HOME_ENV = "CORRAL_HOME"
CONFIG_ENV = "CORRAL_CONFIG"
PUBLIC_URL_ENV = "CORRAL_PUBLIC_URL"
log = logging.getLogger(__name__)


def _pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        host, sep, address = item.partition("=")
        if not sep or not host or not address:
            raise UserError(f"CORRAL_HOST_MAP: {item!r}: expected HOST=ADDRESS")
        out[host.strip().lower()] = address.strip()
    return out


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A number of seconds from ``env[name]``; anything else is a UserError naming the variable."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        # Not echoed in full: a value pasted into the wrong variable may be a secret.
        shown = text if len(text) <= 12 else text[:12] + "..."
        raise UserError(
            f"{name}={shown!r}: expected a number of seconds (e.g. {default:g}), 0 or more"
        )
    return value


def _count(env: Mapping[str, str], name: str) -> int | None:
    """A whole number of 1 or more from ``env[name]`` (None when unset); else a UserError."""
    text = env.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        shown = text if len(text) <= 12 else text[:12] + "..."
        raise UserError(f"{name}={shown!r}: expected a whole number, 1 or more")
    return int(text)


def parse_public_url(text: str, source: str) -> str:
    """``text`` as the address people reach a server at (``https://corral.example.com``, maybe
    with a path), without a trailing slash; anything else is a UserError naming ``source``."""
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UserError(
            # Not echoed: a value pasted into the wrong variable may be a secret.
            f"{source}: expected the http(s) address people open the console at, "
            "e.g. https://corral.example.com"
        )
    return url


DATABASE_URL_ENV = "CORRAL_DATABASE_URL"


def parse_database_url(text: str, source: str) -> str:
    """``text`` as a PostgreSQL URL for the shared store; anything else is a UserError naming
    ``source`` (the value is not echoed: it may hold a password)."""
    url = text.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not (parts.hostname or parts.query):
        raise UserError(
            f"{source}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (unset: the "
            "embedded SQLite file in CORRAL_HOME)"
        )
    return url


def _artifacts_url(env: Mapping[str, str]) -> str | None:
    """``CORRAL_ARTIFACTS_URL``, checked (a bad value is a UserError naming the variable)."""
    text = env.get(ARTIFACTS_URL_ENV, "").strip()
    return parse_artifacts_url(text, ARTIFACTS_URL_ENV) if text else None


# Settings fields read from a number variable, for messages about values out of range.
_NUMBER_ENV = {
    "lease_timeout_s": "CORRAL_LEASE_TIMEOUT",
    "approval_ttl_s": "CORRAL_APPROVAL_TTL",
    "busy_timeout_s": "CORRAL_BUSY_TIMEOUT",
    "heartbeat_timeout_s": "CORRAL_HEARTBEAT_TIMEOUT",
    "gc_interval_s": "CORRAL_GC_INTERVAL",
}


class Settings(BaseModel):
    """Where corral keeps its data and how it launches browsers."""

    model_config = ConfigDict(extra="forbid")
    home: Path = Field(description="data dir: store, master key, run folders, profiles")
    master_key: str | None = Field(None, repr=False, description="base64/hex; else HOME/master.key")
    previous_key: str | None = Field(
        None, repr=False, description="the key being rotated away from (env-key rotation only)"
    )
    browser: str | None = Field(None, description="Chromium executable; else found automatically")
    headless: bool = True
    lease_timeout_s: float = Field(30.0, ge=0, description="how long a run waits for its profile")
    max_sessions: int | None = Field(
        None,
        ge=1,
        description="browser sessions open at once in this process; more runs wait for a slot "
        "(CORRAL_MAX_SESSIONS; default: 4 per CPU core, at least 4)",
    )
    host_map: dict[str, str] = Field(
        default_factory=dict,
        description="host name -> address overrides for the browser and the egress proxy "
        "(CORRAL_HOST_MAP='portal.test=127.0.0.1,other.test=127.0.0.1'), like curl --resolve",
    )
    approval_webhook: str | None = Field(
        None, description="POST each approval request here (CORRAL_APPROVAL_WEBHOOK)"
    )
    webhook_secret: str | None = Field(
        None, repr=False, description="HMAC key for webhook signatures (CORRAL_WEBHOOK_SECRET)"
    )
    approval_ttl_s: float = Field(
        900, gt=0, description="how long a request waits for a person (CORRAL_APPROVAL_TTL)"
    )
    token: str | None = Field(
        None, repr=False, description="the API token the CLI acts with (CORRAL_TOKEN)"
    )
    busy_timeout_s: float = Field(
        10.0,
        gt=0,
        description="how long a write waits for another process's lock on the store before "
        "failing with 'the store is busy' (CORRAL_BUSY_TIMEOUT)",
    )
    public_url: str | None = Field(
        None,
        description="where people reach this server, e.g. https://corral.example.com "
        "(CORRAL_PUBLIC_URL; `corral serve` defaults to its own address): approval webhooks link "
        "to the request's page in the console there",
    )
    heartbeat_timeout_s: float = Field(
        60.0,
        gt=0,
        description="how long a run's profile lease, or a worker, may go without a heartbeat "
        "before its host counts as gone: the lease can be taken over and the fire retried "
        "elsewhere (CORRAL_HEARTBEAT_TIMEOUT)",
    )
    database_url: str | None = Field(
        None,
        repr=False,
        description="the shared PostgreSQL store for many hosts (CORRAL_DATABASE_URL="
        "postgresql://...); unset: the SQLite file HOME/corral.db",
    )
    models_config: Path | None = Field(
        None,
        description="the model config file (CORRAL_CONFIG, `corral run --config`); else "
        "HOME/corral.toml, else the built-in defaults. ./corral.toml is never read implicitly",
    )
    artifacts_url: str | None = Field(
        None,
        description="where run artifacts and sealed profile archives are kept "
        "(CORRAL_ARTIFACTS_URL): s3://BUCKET[/PREFIX][?endpoint=URL] or file:///PATH; "
        "unset: the run and profile folders under HOME",
    )

    retention: Retention = Field(
        default_factory=Retention,
        description="the global default of how long run data is kept, per kind "
        "(CORRAL_RETENTION_SCREENSHOTS, _TRACES, _EXCERPTS, _RESULTS: 30d, 12h, forever); a "
        "profile's or a task's rule beats it; unset: kept forever",
    )
    gc_interval_s: float = Field(
        3600.0,
        ge=0,
        description="how often `corral serve` deletes run data past its retention "
        "(CORRAL_GC_INTERVAL, seconds; 0: never, only `corral gc`)",
    )

    @field_validator("artifacts_url")
    @classmethod
    def _artifacts_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return parse_artifacts_url(value, "artifacts_url")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``CORRAL_*`` environment variables."""
        env = os.environ if env is None else env
        home = env.get(HOME_ENV) or platformdirs.user_data_dir("corral", appauthor=False)
        try:
            return cls(
                home=Path(home).expanduser(),
                master_key=env.get(MASTER_KEY_ENV) or None,
                previous_key=env.get(PREVIOUS_KEY_ENV) or None,
                browser=env.get(BROWSER_ENV) or None,
                headless=env.get("CORRAL_HEADLESS", "1").lower() not in ("0", "false", "no"),
                lease_timeout_s=_seconds(env, "CORRAL_LEASE_TIMEOUT", 30),
                max_sessions=_count(env, "CORRAL_MAX_SESSIONS"),
                host_map=_pairs(env.get("CORRAL_HOST_MAP", "")),
                token=env.get("CORRAL_TOKEN") or None,
                approval_webhook=env.get("CORRAL_APPROVAL_WEBHOOK") or None,
                webhook_secret=env.get("CORRAL_WEBHOOK_SECRET") or None,
                approval_ttl_s=_seconds(env, "CORRAL_APPROVAL_TTL", 900),
                busy_timeout_s=_seconds(env, "CORRAL_BUSY_TIMEOUT", 10),
                heartbeat_timeout_s=_seconds(env, "CORRAL_HEARTBEAT_TIMEOUT", 60),
                models_config=Path(env[CONFIG_ENV]).expanduser() if env.get(CONFIG_ENV) else None,
                database_url=(
                    parse_database_url(env[DATABASE_URL_ENV], DATABASE_URL_ENV)
                    if env.get(DATABASE_URL_ENV, "").strip()
                    else None
                ),
                artifacts_url=_artifacts_url(env),
                retention=Retention.from_env(env),
                gc_interval_s=_seconds(env, "CORRAL_GC_INTERVAL", 3600),
                public_url=(
                    parse_public_url(env[PUBLIC_URL_ENV], PUBLIC_URL_ENV)
                    if env.get(PUBLIC_URL_ENV, "").strip()
                    else None
                ),
            )
        except ValidationError as exc:
            # Only range checks can fail here (0 for a TTL): name the variable, not the field.
            err = exc.errors(include_url=False)[0]
            field = str(err["loc"][0]) if err["loc"] else ""
            raise UserError(f"{_NUMBER_ENV.get(field, field)}: {err['msg'].lower()}") from None

    def prepare_home(self) -> Path:
        """Create the home 0700; an existing one with looser modes is tightened (and logged)."""
        home = self.home
        if not home.exists():
            return private_dir(home)
        loose = [p for p in (home, self.runs_dir) if tighten(p, PRIVATE_DIR)]
        # The store tightens its own files when it opens them.
        for name in ("master.key", "master.key.next", "policy.yaml"):
            if tighten(home / name, PRIVATE_FILE):
                loose.append(home / name)
        if loose:
            log.warning(
                "%s: other users had access; tightened to owner-only: %s",
                home,
                ", ".join(p.name for p in loose),
            )
        return home

    @property
    def db_path(self) -> Path:
        """The SQLite store."""
        return self.home / "corral.db"

    @property
    def store_location(self) -> Path | str:
        """Where the store is: the PostgreSQL URL if set, else the SQLite file."""
        return self.database_url or self.db_path

    @property
    def policy_path(self) -> Path:
        """The global policy file (set by a super admin with ``corral policy set``)."""
        return self.home / "policy.yaml"

    @property
    def runs_dir(self) -> Path:
        """Where each run's folder lives."""
        return self.home / "runs"
