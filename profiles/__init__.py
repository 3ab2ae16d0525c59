"""Isolated browser identities: profiles, their encrypted state, leases and the browser pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import LazyExports

if TYPE_CHECKING:
    from .allowlist import (
        InvalidAllowlistError,
        host_resolver_rules,
        off_allowlist,
        parse_allowlist,
    )
    from .crypto import (
        MASTER_KEY_ENV,
        SEALED_PREFIX,
        MasterKey,
        proxy_context,
        secret_context,
        state_context,
        user_data_context,
    )
    from .egress import (
        BROWSER_SERVICE_HOSTS,
        PROXY_BYPASS,
        BlockedRequest,
        EgressConflictError,
        EgressProxy,
    )
    from .errors import (
        BrowserCrashedError,
        BrowserNotFoundError,
        CorralError,
        InvalidProfileError,
        LeaseLostError,
        ProfileExistsError,
        ProfileLeasedError,
        ProfileNotFoundError,
        RunError,
        StateDecryptError,
        UserError,
    )
    from .hosts import (
        DEFAULT_PORTS,
        HostRule,
        host_matches,
        is_ip,
        normal_host,
        origin_allowed,
        origin_of,
        parse_domain,
        url_allowed,
    )
    from .keys import PREVIOUS_KEY_ENV, KeyRing, fsync_dir, write_key_file
    from .lease import (
        LEASE_TTL_S,
        LeaseHolder,
        LeaseStore,
        hold_lease,
        holder_is_gone,
        identity_is_gone,
        process_identity,
    )
    from .manager import ArchiveStore, ProfileManager, ProfileStore, archive_key, atomic_write
    from .pool import (
        BASE_ARGS,
        NODE_CACHE_ENV,
        SESSIONS_PER_CORE,
        BrowserPool,
        PoolStart,
        browser_env,
        default_max_sessions,
        driver_compile_cache,
        find_browser,
        start_in_background,
        use_sandbox,
    )
    from .private import (
        PRIVATE_DIR,
        PRIVATE_FILE,
        append_private,
        private_dir,
        tighten,
        write_private,
    )
    from .redact import RedactingFilter, Redactor, RedactorGroup, looks_secret, redact_strings
    from .secret_fields import FieldFacts, field_refusal
    from .session import Session, open_session
    from .settings import (
        BROWSER_ENV,
        Geolocation,
        ProfileRecord,
        ProfileSettings,
        ProxySettings,
        Viewport,
    )
    from .trace import TRACE_MODES, TraceMode, scrub_trace, scrub_zip
    from .validation import describe_errors
    from .vault import (
        SECRET_RE,
        CredentialLease,
        CredentialLeaseRecord,
        SecretNotAvailableError,
        SecretRecord,
        SecretUseRecord,
        UnknownSecretError,
        Vault,
        VaultStore,
        secret_use,
    )
    from .wire import (
        SAFE_METHODS,
        HeldRequest,
        SendHook,
        WireCheck,
        WireGuard,
        WireRequest,
        allow_all,
    )

__all__ = [
    "BASE_ARGS",
    "BROWSER_ENV",
    "BROWSER_SERVICE_HOSTS",
    "DEFAULT_PORTS",
    "LEASE_TTL_S",
    "MASTER_KEY_ENV",
    "NODE_CACHE_ENV",
    "PREVIOUS_KEY_ENV",
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "PROXY_BYPASS",
    "SAFE_METHODS",
    "SEALED_PREFIX",
    "SECRET_RE",
    "SESSIONS_PER_CORE",
    "TRACE_MODES",
    "ArchiveStore",
    "BlockedRequest",
    "BrowserCrashedError",
    "BrowserNotFoundError",
    "BrowserPool",
    "CorralError",
    "CredentialLease",
    "CredentialLeaseRecord",
    "EgressConflictError",
    "EgressProxy",
    "FieldFacts",
    "Geolocation",
    "HeldRequest",
    "HostRule",
    "InvalidAllowlistError",
    "InvalidProfileError",
    "KeyRing",
    "LazyExports",
    "LeaseHolder",
    "LeaseLostError",
    "LeaseStore",
    "MasterKey",
    "PoolStart",
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
    "RedactorGroup",
    "RunError",
    "SecretNotAvailableError",
    "SecretRecord",
    "SecretUseRecord",
    "SendHook",
    "Session",
    "StateDecryptError",
    "TraceMode",
    "UnknownSecretError",
    "UserError",
    "Vault",
    "VaultStore",
    "Viewport",
    "WireCheck",
    "WireGuard",
    "WireRequest",
    "allow_all",
    "append_private",
    "archive_key",
    "atomic_write",
    "browser_env",
    "default_max_sessions",
    "describe_errors",
    "driver_compile_cache",
    "field_refusal",
    "find_browser",
    "fsync_dir",
    "hold_lease",
    "holder_is_gone",
    "host_matches",
    "host_resolver_rules",
    "identity_is_gone",
    "is_ip",
    "looks_secret",
    "normal_host",
    "off_allowlist",
    "open_session",
    "origin_allowed",
    "origin_of",
    "parse_allowlist",
    "parse_domain",
    "private_dir",
    "process_identity",
    "proxy_context",
    "redact_strings",
    "scrub_trace",
    "scrub_zip",
    "secret_context",
    "secret_use",
    "start_in_background",
    "state_context",
    "tighten",
    "url_allowed",
    "use_sandbox",
    "user_data_context",
    "write_key_file",
    "write_private",
]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
