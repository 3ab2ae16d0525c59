"""``corral memory``: the notes a task's planner reads (long-term memory, :mod:`runtime.memory`).

Notes live in the store: these commands work on a local ``CORRAL_HOME``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table

from runtime.cli.common import cli_actor, out_console, print_json, run_async, with_runtime
from runtime.cli.remote import local_only

if TYPE_CHECKING:
    from runtime.app import Runtime
    from runtime.memory import Note, NoteScope

__all__ = ["memory_group"]


def _scope(
    task: str | None, profile: str | None, needed: bool
) -> tuple[NoteScope | None, str | None]:
    if task is not None and profile is not None:
        raise click.UsageError("give --task or --profile, not both")
    if needed and task is None and profile is None:
        raise click.UsageError("say what the note is about: --task NAME or --profile NAME")
    if task is not None:
        return "task", task
    if profile is not None:
        return "profile", profile
    return None, None


def _show(note: Note) -> dict[str, object]:
    return note.model_dump(mode="json")


@click.group("memory")
def memory_group() -> None:
    """Notes the planner reads: per task and per profile (a portal's quirks, a rule)."""


@memory_group.command("list")
@click.option("--task", help="only this task's notes")
@click.option("--profile", help="only this profile's notes")
@click.option("--json", "as_json", is_flag=True)
def memory_list(task: str | None, profile: str | None, as_json: bool) -> None:
    """The notes you may read, newest first."""
    local_only()
    scope, name = _scope(task, profile, needed=False)

    async def body(rt: Runtime) -> list[Note]:
        return await rt.services.memory.list(await cli_actor(rt), scope, name)

    notes = run_async(lambda: with_runtime(body))
    if as_json:
        print_json([_show(n) for n in notes])
        return
    table = Table(title="notes")
    for col in ("id", "about", "note", "from", "added"):
        table.add_column(col)
    for n in notes:
        table.add_row(
            n.id,
            f"{n.scope} {n.name}",
            n.text,
            n.origin(),
            n.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
        )
    out_console().print(table)


@memory_group.command("show")
@click.argument("note_id")
@click.option("--json", "as_json", is_flag=True)
def memory_show(note_id: str, as_json: bool) -> None:
    """One note with its source."""
    local_only()

    async def body(rt: Runtime) -> Note:
        return await rt.services.memory.show(await cli_actor(rt), note_id)

    note = run_async(lambda: with_runtime(body))
    if as_json:
        print_json(_show(note))
        return
    out_console().print(
        f"{note.id}: {note.scope} {note.name}\n{note.text}\n"
        f"from {note.origin()}, {note.created_at.astimezone():%Y-%m-%d %H:%M}",
        markup=False,
        highlight=False,
    )


@memory_group.command("add")
@click.argument("text")
@click.option("--task", help="the task the note is about (admin)")
@click.option("--profile", help="the profile (account) the note is about")
def memory_add(text: str, task: str | None, profile: str | None) -> None:
    """Keep a note for the planner of later runs. A note never holds a secret."""
    local_only()
    scope, name = _scope(task, profile, needed=True)
    assert scope is not None and name is not None

    async def body(rt: Runtime) -> Note:
        return await rt.services.memory.add(await cli_actor(rt), scope, name, text)

    note = run_async(lambda: with_runtime(body))
    out_console().print(f"added {note.id} ({note.scope} {note.name})", markup=False)


@memory_group.command("rm")
@click.argument("note_id")
def memory_rm(note_id: str) -> None:
    """Forget a note."""
    local_only()

    async def body(rt: Runtime) -> Note:
        return await rt.services.memory.remove(await cli_actor(rt), note_id)

    note = run_async(lambda: with_runtime(body))
    out_console().print(f"removed {note.id} ({note.scope} {note.name})", markup=False)
