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
from .keys import PREVIOUS_KEY_ENV, KeyRing, write_key_file
from .lease import LEASE_TTL_S, LeaseHolder, LeaseStore, hold_lease, holder_is_gone
from .manager import ProfileManager, ProfileStore
from .pool import BASE_ARGS, BROWSER_ENV, BrowserPool, find_browser
from .redact import RedactingFilter, Redactor, scrub_zip
from .session import Session, open_session
from .settings import Geolocation, ProfileRecord, ProfileSettings, ProxySettings, Viewport
from .vault import (
    SECRET_RE,
    AuditRecord,
    CredentialLease,
    CredentialLeaseRecord,
    SecretNotAvailableError,
    SecretRecord,
    UnknownSecretError,
    Vault,
    VaultStore,
    origin_allowed,
    origin_of,
    parse_domain,
    secret_context,
)

__all__ = [
    "BASE_ARGS",
    "BROWSER_ENV",
    "LEASE_TTL_S",
    "MASTER_KEY_ENV",
    "PREVIOUS_KEY_ENV",
    "SECRET_RE",
    "AuditRecord",
    "BrowserCrashedError",
    "BrowserNotFoundError",
    "BrowserPool",
    "CorralError",
    "CredentialLease",
    "CredentialLeaseRecord",
    "Geolocation",
    "InvalidProfileError",
    "KeyRing",
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
    "RedactingFilter",
    "Redactor",
    "RunError",
    "SecretNotAvailableError",
    "SecretRecord",
    "Session",
    "StateDecryptError",
    "UnknownSecretError",
    "UserError",
    "Vault",
    "VaultStore",
    "Viewport",
    "find_browser",
    "hold_lease",
    "holder_is_gone",
    "open_session",
    "origin_allowed",
    "origin_of",
    "parse_domain",
    "scrub_zip",
    "secret_context",
    "write_key_file",
]
