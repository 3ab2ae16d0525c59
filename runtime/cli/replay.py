"""``corral replay RUN_ID``: write a run's replay, one HTML file that works offline.

With ``CORRAL_SERVER`` set the server renders it (``GET /api/runs/{id}/replay``) and the file is
written here.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

import click

from profiles import write_private
from runtime.app import Runtime
from runtime.cli.common import cli_actor, fail
from runtime.cli.remote import either
from runtime.review.replay import fetch_review_images, render_replay, replay_filename

if TYPE_CHECKING:
    # The HTTP client loads only when the command goes to a server.
    from runtime.client import ApiClient

__all__ = ["replay_command"]


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"


@click.command("replay")
@click.argument("run_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="the file to write (default: replay-<run id>.html here)",
)
@click.option("--open", "open_it", is_flag=True, help="open the file in the web browser")
def replay_command(run_id: str, output: Path | None, open_it: bool) -> None:
    """Write a run's replay: one HTML file, screenshots embedded, that works offline.

    Step through the run with the arrow keys: each step's screenshot with its target outlined,
    what was done and why, the verdict and the approval, the model, tokens and cost.
    """

    async def local(rt: Runtime) -> tuple[str, str]:
        review = await rt.services.runs.review(await cli_actor(rt), run_id)
        # A run recorded on another host: its screenshots come from the object store.
        fetched = await fetch_review_images(rt.objects, review)
        html = render_replay(review, Path(review.run.run_dir), fetched)
        return replay_filename(review.run.id), html

    async def remote(client: ApiClient) -> tuple[str, str]:
        return await client.replay(run_id)

    name, html = either(local, remote)
    path = output if output is not None else Path.cwd() / name
    data = html.encode()
    try:
        # Owner-only: the screenshots show the accounts the run worked on.
        write_private(path, data)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    click.echo(f"{path} ({_size(len(data))})")
    if open_it:
        webbrowser.open(path.resolve().as_uri())
