"""The store: one SQLite file (WAL) holding profiles, leases, runs, steps, artifacts and secrets.

- :mod:`runtime.store.db`: the connection (:class:`Database`): open, busy handling, ``tx()``
  (joined by the task that already holds one), ``fetch_one``/``fetch_all``;
- :mod:`runtime.store.migrations`: the append-only :data:`MIGRATIONS` and :func:`migrate`;
- :mod:`runtime.store.rows`: one :class:`Table` per record type (named columns both ways);
- the repositories, one per aggregate: :mod:`~runtime.store.profiles` (profiles, profile leases),
  :mod:`~runtime.store.runs` (runs, steps, artifacts, model calls), :mod:`~runtime.store.vault`
  (secrets, credential leases, secret-use audit), :mod:`~runtime.store.users` (users, tokens,
  grants), :mod:`~runtime.store.audit` (the hash-chained audit log),
  :mod:`~runtime.store.approvals` (approval requests);
- :mod:`runtime.store.store`: :class:`Store`, the database with its repositories
  (``store.profiles``, ``store.runs``, ``store.vault``).
"""

from runtime.store.audit import AuditRepository, write_audit
from runtime.store.db import DEFAULT_BUSY_TIMEOUT_S, Database, Params, Reseal
from runtime.store.migrations import MIGRATIONS, migrate
from runtime.store.profiles import ProfileRepository
from runtime.store.rows import Table, insert_sql
from runtime.store.runs import RunRepository
from runtime.store.store import Store
from runtime.store.users import UserRepository
from runtime.store.vault import VaultRepository

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "AuditRepository",
    "Database",
    "Params",
    "ProfileRepository",
    "Reseal",
    "RunRepository",
    "Store",
    "Table",
    "UserRepository",
    "VaultRepository",
    "insert_sql",
    "migrate",
    "write_audit",
]
