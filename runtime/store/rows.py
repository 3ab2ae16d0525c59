"""Rows and records: one :class:`Table` per record type maps it to its columns and back.

Every statement names its columns (``INSERT INTO t (a, b) VALUES (:a, :b)``), so a column added
by a later migration never shifts the values of an older statement, and reading takes only the
columns the record knows. Stored forms: datetimes as ISO text, booleans as 0/1, the
``json_fields`` as JSON text (NULL for None).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, get_args

import aiosqlite
from pydantic import BaseModel

__all__ = ["Table", "insert_sql", "now"]

R = TypeVar("R", bound=BaseModel)


def now() -> str:
    """The current time as stored (ISO 8601, UTC)."""
    return datetime.now(UTC).isoformat()


def insert_sql(
    table: str,
    columns: Iterable[str],
    *,
    ignore: bool = False,
    replace_on: Sequence[str] = (),
) -> str:
    """``INSERT INTO table (a, b) VALUES (:a, :b)`` for named parameters, in SQL that SQLite and
    PostgreSQL both run.

    ``ignore``: a row that conflicts with an existing one is skipped (``rowcount`` 0).
    ``replace_on``: a row whose key (these columns) exists replaces that row's other columns.
    """
    names = list(columns)
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) "
        f"VALUES ({', '.join(':' + name for name in names)})"
    )
    if ignore:
        return sql + " ON CONFLICT DO NOTHING"
    if replace_on:
        update = ", ".join(f"{n} = excluded.{n}" for n in names if n not in replace_on)
        return sql + f" ON CONFLICT ({', '.join(replace_on)}) DO UPDATE SET {update}"
    return sql


def _stored(value: Any, as_json: bool) -> Any:
    if as_json:
        if value is None:
            return None
        return value.model_dump_json() if isinstance(value, BaseModel) else json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def _is_datetime(annotation: Any) -> bool:
    return annotation is datetime or datetime in get_args(annotation)


@dataclass(frozen=True)
class Table(Generic[R]):
    """How one record type is stored: its table, its model and which fields are JSON text."""

    name: str
    model: type[R]
    json_fields: frozenset[str] = field(default_factory=frozenset)
    """Fields stored as JSON text (NULL for None)."""

    def row(self, record: R, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """The record's columns (all its fields but ``exclude``) in their stored form."""
        skip = set(exclude)
        return {
            name: _stored(getattr(record, name), name in self.json_fields)
            for name in self.model.model_fields
            if name not in skip
        }

    def stored(self, name: str, value: Any) -> Any:
        """One field's value in its stored form (for an ``UPDATE`` of that column)."""
        return _stored(value, name in self.json_fields)

    def record(self, row: aiosqlite.Row | Mapping[str, Any]) -> R:
        """The record a row holds; columns the model does not know are ignored."""
        present = set(row.keys())
        data: dict[str, Any] = {}
        for name, info in self.model.model_fields.items():
            if name not in present:
                continue
            value = row[name]
            if value is not None and name in self.json_fields:
                value = json.loads(value)
            elif isinstance(value, str) and _is_datetime(info.annotation):
                value = datetime.fromisoformat(value)
            data[name] = value
        return self.model.model_validate(data)

    def insert(
        self,
        record: R,
        *,
        ignore: bool = False,
        replace_on: Sequence[str] = (),
        exclude: Iterable[str] = (),
    ) -> tuple[str, dict[str, Any]]:
        """The named-column insert statement for ``record`` and its parameters (``ignore`` and
        ``replace_on`` as in :func:`insert_sql`)."""
        row = self.row(record, exclude)
        return insert_sql(self.name, row, ignore=ignore, replace_on=replace_on), row
