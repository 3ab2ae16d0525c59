#!/usr/bin/env python3
"""What browser-use 0.13's agent shows its model of a page (run with .venv-bench's python).

For each page in a JSON spec, opens the URL in a browser-use ``BrowserSession`` and captures the
same text its agent builds for the model: ``BrowserStateSummary.dom_state.llm_representation()``
with the agent's default ``include_attributes`` (the "interactive elements" string, produced by
``browser_use.dom.serializer.serializer.DOMTreeSerializer``), and the whole ``<browser_state>``
block around it (``AgentMessagePrompt._get_browser_state_description()``: page stats, tabs, page
info, the elements string).

Usage: python _bench_browser_use_dom.py SPEC.json --executable /usr/bin/chromium
SPEC.json: {"viewport": [w, h], "settle_s": 0.5,
            "pages": [{"name": ..., "url": ..., "storage_state": PATH or null}, ...]}
Pages that share a storage state share one session. Prints one JSON object on stdout:
{"version": ..., "pages": {name: {"llm_representation": str, "browser_state": str}}};
browser-use's own logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Forced before browser_use is imported, so nothing it does can reach the internet.
os.environ.update(
    {
        "ANONYMIZED_TELEMETRY": "false",
        "BROWSER_USE_CLOUD_SYNC": "false",
        "BROWSER_USE_VERSION_CHECK": "false",
        "BROWSER_USE_CLOUD_HINTS": "false",
        "BROWSER_USE_DISABLE_EXTENSIONS": "1",
    }
)

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_TIMEOUT_S = 60.0


async def capture(
    pages: list[dict[str, Any]],
    storage_state: str | None,
    executable: str,
    viewport: tuple[int, int],
    settle_s: float,
) -> dict[str, dict[str, str]]:
    """One session (with ``storage_state``), each page's two texts."""
    from browser_use import BrowserSession
    from browser_use.agent.prompts import AgentMessagePrompt
    from browser_use.dom.views import DEFAULT_INCLUDE_ATTRIBUTES

    size = {"width": viewport[0], "height": viewport[1]}
    # A dict, not the path: given a path, browser-use writes the state back into the file on stop.
    state = json.loads(Path(storage_state).read_text()) if storage_state else None
    session = BrowserSession(
        executable_path=executable,
        headless=True,
        args=CHROMIUM_FLAGS,
        chromium_sandbox=False,
        enable_default_extensions=False,
        storage_state=state,
        keep_alive=False,
        viewport=size,
        window_size=size,
    )
    out: dict[str, dict[str, str]] = {}
    try:
        await asyncio.wait_for(session.start(), PAGE_TIMEOUT_S)
        for page in pages:
            await asyncio.wait_for(session.navigate_to(page["url"]), PAGE_TIMEOUT_S)
            await asyncio.sleep(settle_s)
            summary = await asyncio.wait_for(
                session.get_browser_state_summary(include_screenshot=False), PAGE_TIMEOUT_S
            )
            # The agent passes its settings' include_attributes, which default to these.
            prompt = AgentMessagePrompt(
                browser_state_summary=summary,
                file_system=None,  # type: ignore[arg-type]
                include_attributes=list(DEFAULT_INCLUDE_ATTRIBUTES),
            )
            out[page["name"]] = {
                "url": summary.url,
                "llm_representation": summary.dom_state.llm_representation(
                    include_attributes=list(DEFAULT_INCLUDE_ATTRIBUTES)
                ),
                "browser_state": prompt._get_browser_state_description(),
            }
    finally:
        profile = session.browser_profile
        dirs = [profile.user_data_dir, profile.downloads_path]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.kill(), 30)
        for d in dirs:
            if d and Path(d).is_relative_to(tempfile.gettempdir()):
                shutil.rmtree(d, ignore_errors=True)
    return out


async def run(spec: dict[str, Any], executable: str) -> dict[str, dict[str, str]]:
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for page in spec["pages"]:
        groups.setdefault(page.get("storage_state"), []).append(page)
    results: dict[str, dict[str, str]] = {}
    viewport = tuple(spec.get("viewport", (1280, 720)))
    for state, pages in groups.items():
        results.update(
            await capture(pages, state, executable, viewport, spec.get("settle_s", 0.5))  # type: ignore[arg-type]
        )
    return {p["name"]: results[p["name"]] for p in spec["pages"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--executable", default="/usr/bin/chromium")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())

    # browser-use mkdtemp()s profiles and never removes them; a private TMPDIR lets us drop them.
    private_tmp = tempfile.mkdtemp(prefix="bench-bu-dom-")
    tempfile.tempdir = os.environ["TMPDIR"] = private_tmp
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stdout is for the JSON alone
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        import browser_use  # noqa: F401 - sets up its logging on import

        for name in ("browser_use", "bubus", "cdp_use"):
            logging.getLogger(name).setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        pages = loop.run_until_complete(run(spec, args.executable))
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
    finally:
        # browser-use's kill() normally ends its browser; whatever Chromium is left is ours.
        import psutil

        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "chrom" in proc.name().lower():
                    proc.kill()
        shutil.rmtree(private_tmp, ignore_errors=True)
    json_out.write(json.dumps({"version": version("browser-use"), "pages": pages}) + "\n")
    json_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
