"""Notes of long-term memory as an actor manages them.

Reading: any signed-in actor reads a task's notes; a profile's notes need the profile (a grant,
or admin). Writing: a profile's notes need the profile too; a task's notes are read by every run
of the task on every profile, so adding or removing one needs admin. A note never holds a secret
(a stored secret's value or a credential-shaped string): refused, without repeating it.
"""

from __future__ import annotations

from profiles import UserError
from runtime.auth import Actor
from runtime.memory import Note, NoteScope, check_note, new_note_id
from runtime.services.base import Service

__all__ = ["MemoryService", "NoteNotFoundError"]


class NoteNotFoundError(UserError):
    """No note with that id (or one the actor may not see)."""


class MemoryService(Service):
    """Long-term memory: list, show, add and remove notes."""

    async def _may(self, actor: Actor, scope: NoteScope, name: str, writing: bool) -> None:
        doing = f"{'change' if writing else 'read'} the notes of {scope} '{name}'"
        if scope == "profile":
            await self._authz.require_profile(actor, name, doing)
        elif writing:
            self._authz.require(actor, "admin", doing)

    async def list(
        self, actor: Actor, scope: NoteScope | None = None, name: str | None = None
    ) -> list[Note]:
        """Notes the actor may read, newest first (of one scope and name, if given)."""
        notes = await self._store.notes.find(scope, name, limit=1000)
        shown = []
        for note in notes:
            if note.scope == "task" or await self._authz.may_use_profile(actor, note.name):
                shown.append(note)
        return shown

    async def show(self, actor: Actor, note_id: str) -> Note:
        """One note."""
        note = await self._store.notes.get(note_id)
        if note is None or (
            note.scope == "profile" and not await self._authz.may_use_profile(actor, note.name)
        ):
            raise NoteNotFoundError(f"no note '{note_id}' (corral memory list shows them)")
        return note

    async def add(self, actor: Actor, scope: NoteScope, name: str, text: str) -> Note:
        """Keep a person's note about a task or a profile."""
        await self._may(actor, scope, name, writing=True)
        if scope == "profile":
            await self._rt.profiles.get(name)  # an unknown profile is an error
        redactor = await self._rt.vault.redactor()
        note = Note(
            id=new_note_id(),
            scope=scope,
            name=name,
            text=check_note(text, redactor.found_in_text),
            source="person",
            author=actor.name,
            created_at=self._now(),
        )
        async with self._store.tx() as db:
            await self._store.notes.add(note)
            await self._audit(
                db, actor, "memory.add", note.id, {"scope": scope, "name": name, "chars": len(text)}
            )
        return note

    async def remove(self, actor: Actor, note_id: str) -> Note:
        """Forget a note (a person's or a run's)."""
        note = await self.show(actor, note_id)
        await self._may(actor, note.scope, note.name, writing=True)
        async with self._store.tx() as db:
            await self._store.notes.remove(note.id)
            await self._audit(
                db, actor, "memory.remove", note.id, {"scope": note.scope, "name": note.name}
            )
        return note
