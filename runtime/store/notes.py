"""Notes of long-term memory: the SQL (what a note is and may hold is :mod:`runtime.memory`)."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

from runtime.memory import Note, NoteScope

if TYPE_CHECKING:
    from runtime.store import Store

__all__ = ["NoteRepository"]

_COLUMNS = "id, scope, name, text, source, author, run_id, step, created_at"


def _note(row: Any) -> Note:
    return Note.model_validate({k: row[k] for k in _COLUMNS.split(", ")})


class NoteRepository:
    """The ``notes`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, note: Note) -> None:
        """Keep ``note`` (joins the caller's transaction, e.g. with its audit row)."""
        values = note.model_dump()
        values["created_at"] = note.created_at.astimezone(UTC).isoformat()
        async with self._store.tx() as db:
            await db.execute(
                f"INSERT INTO notes ({_COLUMNS}) VALUES (:id, :scope, :name, :text, :source,"
                " :author, :run_id, :step, :created_at)",
                values,
            )

    async def get(self, note_id: str) -> Note | None:
        """One note, or None."""
        row = await self._store.fetch_one(f"SELECT {_COLUMNS} FROM notes WHERE id = ?", (note_id,))
        return _note(row) if row is not None else None

    async def remove(self, note_id: str) -> bool:
        """Forget a note; False if there was none."""
        async with self._store.tx() as db:
            cur = await db.execute("DELETE FROM notes WHERE id = ?", (note_id,))
            return bool(cur.rowcount)

    async def find(
        self, scope: NoteScope | None = None, name: str | None = None, limit: int = 100
    ) -> list[Note]:
        """Notes, newest first (of one scope, and one task or profile, if given)."""
        where: list[str] = []
        args: list[str | int] = []
        if scope is not None:
            where.append("scope = ?")
            args.append(scope)
        if name is not None:
            where.append("name = ?")
            args.append(name)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self._store.fetch_all(
            f"SELECT {_COLUMNS} FROM notes {clause}ORDER BY created_at DESC, id LIMIT ?",
            (*args, limit),
        )
        return [_note(r) for r in rows]

    async def for_run(self, task: str, profile: str, limit: int) -> list[Note]:
        """What a run of ``task`` on ``profile`` reads: the newest ``limit`` notes of each."""
        return [*await self.find("task", task, limit), *await self.find("profile", profile, limit)]
