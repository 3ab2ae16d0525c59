"""The console's memory: the notes a task's planner reads, added and removed by people.

Everyone signed in reads the tasks' notes, and the notes of profiles granted to them (admins:
all); adding or removing a profile's note needs the profile, a task's note needs admin (the
service decides, as for ``corral memory``). A note holding a secret is refused.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from profiles import UserError
from runtime.console.web import PREFIX, SECURITY_HEADERS, Posting, Viewing, page
from runtime.memory import MAX_NOTE_CHARS, NoteScope

__all__ = ["router"]

router = APIRouter()


@router.get("/memory", response_class=HTMLResponse)
async def memory_page(viewer: Viewing) -> HTMLResponse:
    """Every note the viewer may read, and a form to add one."""
    services, actor = viewer.rt.services, viewer.actor
    notes = await services.memory.list(actor)
    profiles = [
        e.record.name
        for e in await services.profiles.list(actor)
        if await services.runs.may_see(actor, e.record.name)
    ]
    return page(
        viewer,
        "memory.html.j2",
        section="memory",
        notes=notes,
        profiles=profiles,
        max_chars=MAX_NOTE_CHARS,
    )


@router.post("/memory/add")
async def add_note(posted: Posting) -> Response:
    """Keep a person's note (``scope``: task or profile, ``name``, ``text``)."""
    viewer = posted.viewer
    scope: NoteScope
    if posted.field("scope") == "task":
        scope = "task"
    elif posted.field("scope") == "profile":
        scope = "profile"
    else:
        raise UserError("about: expected a task or a profile")
    name = posted.field("name").strip()
    if not name:
        raise UserError("name: say which task or profile the note is about")
    await viewer.rt.services.memory.add(viewer.actor, scope, name, posted.field("text"))
    return RedirectResponse(f"{PREFIX}/memory", status_code=303, headers=SECURITY_HEADERS)


@router.post("/memory/{note_id}/remove")
async def remove_note(note_id: str, posted: Posting) -> Response:
    """Forget a note."""
    await posted.viewer.rt.services.memory.remove(posted.viewer.actor, note_id)
    return RedirectResponse(f"{PREFIX}/memory", status_code=303, headers=SECURITY_HEADERS)
