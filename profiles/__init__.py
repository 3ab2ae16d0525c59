"""Isolated browser identities: profiles, their encrypted state, leases and the browser pool."""

from .crypto import MASTER_KEY_ENV, MasterKey
from .errors import (
    BrowserCrashedError,
    BrowserNotFoundError,
    CorralError,
    InvalidProfileError,
    ProfileExistsError,
    ProfileLeasedError,
    ProfileNotFoundError,
    RunError,
    StateDecryptError,
    UserError,
)
from .lease import LEASE_TTL_S, LeaseHolder, LeaseStore, hold_lease, holder_is_gone
from .manager import ProfileManager, ProfileStore
from .pool import BASE_ARGS, BROWSER_ENV, BrowserPool, find_browser
from .session import Session, open_session
from .settings import Geolocation, ProfileRecord, ProfileSettings, ProxySettings, Viewport

__all__ = [
    "BASE_ARGS",
    "BROWSER_ENV",
    "LEASE_TTL_S",
    "MASTER_KEY_ENV",
    "BrowserCrashedError",
    "BrowserNotFoundError",
    "BrowserPool",
    "CorralError",
    "Geolocation",
    "InvalidProfileError",
    "LeaseHolder",
    "LeaseStore",
    "MasterKey",
    "ProfileExistsError",
    "ProfileLeasedError",
    "ProfileManager",
    "ProfileNotFoundError",
    "ProfileRecord",
    "ProfileSettings",
    "ProfileStore",
    "ProxySettings",
    "RunError",
    "Session",
    "StateDecryptError",
    "UserError",
    "Viewport",
    "find_browser",
    "hold_lease",
    "holder_is_gone",
    "open_session",
]
