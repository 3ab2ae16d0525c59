"""Profile settings: the browser identity a profile presents, validated with pydantic."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .allowlist import parse_allowlist
from .errors import UserError

__all__ = [
    "BROWSER_ENV",
    "Geolocation",
    "ProfileRecord",
    "ProfileSettings",
    "ProxySettings",
    "Viewport",
]

BROWSER_ENV = "CORRAL_BROWSER"
"""The variable naming the Chromium executable (else one is found: ``profiles.pool``)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Viewport(BaseModel):
    """Page size in CSS pixels."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(1280, ge=200, le=7680)
    height: int = Field(800, ge=200, le=4320)


class Geolocation(BaseModel):
    """A fixed position reported to pages that ask (permission granted automatically)."""

    model_config = ConfigDict(extra="forbid")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    accuracy: float = Field(50.0, ge=0)


class ProxySettings(BaseModel):
    """An HTTP(S) or SOCKS proxy for this profile's traffic."""

    model_config = ConfigDict(extra="forbid")
    server: str = Field(description="e.g. http://proxy.local:3128 or socks5://127.0.0.1:1080")
    bypass: str | None = None
    username: str | None = None
    password: str | None = Field(None, repr=False)


class ProfileSettings(BaseModel):
    """How a profile's browser looks to sites, and how it is isolated."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["state", "persistent"] = Field(
        "state",
        description="state: a context in a shared browser; persistent: its own user-data dir",
    )
    user_agent: str | None = None
    viewport: Viewport = Field(default_factory=Viewport)
    locale: str | None = Field(None, description="e.g. en-GB")
    timezone: str | None = Field(None, description="IANA name, e.g. Europe/Berlin")
    geolocation: Geolocation | None = None
    color_scheme: Literal["light", "dark", "no-preference"] | None = None
    proxy: ProxySettings | None = None
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="hosts this profile may reach, whatever the task says; with a task's "
        "allowed_domains too, a host must be on both",
    )
    vars: dict[str, str] = Field(
        default_factory=dict,
        description="non-secret per-identity values ({{var:NAME}}), e.g. the username",
    )

    @field_validator("allowed_domains")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        try:
            parse_allowlist(value)
        except UserError as exc:
            raise ValueError(str(exc)) from exc
        return value

    def context_options(self) -> dict[str, Any]:
        """Keyword arguments for Playwright's ``new_context``/``launch_persistent_context``."""
        opts: dict[str, Any] = {"viewport": self.viewport.model_dump()}
        if self.user_agent:
            opts["user_agent"] = self.user_agent
        if self.locale:
            opts["locale"] = self.locale
        if self.timezone:
            opts["timezone_id"] = self.timezone
        if self.geolocation:
            opts["geolocation"] = self.geolocation.model_dump()
            opts["permissions"] = ["geolocation"]
        if self.color_scheme:
            opts["color_scheme"] = self.color_scheme
        if self.proxy:
            opts["proxy"] = self.proxy.model_dump(exclude_none=True)
        return opts


class ProfileRecord(BaseModel):
    """A stored profile: its settings and its sealed state (never decrypted here)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    settings: ProfileSettings
    created_at: datetime
    updated_at: datetime
    state: bytes | None = Field(None, repr=False)
    state_saved_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "expected 1-64 characters: letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value
