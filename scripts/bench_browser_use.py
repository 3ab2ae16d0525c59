#!/usr/bin/env python3
"""Session-start benchmark for browser-use 0.13 (run with .venv-bench's python).

Times BrowserSession creation + start() + navigate_to(url) until the page's
load event, n times, each in a fresh browser; teardown is not timed. Prints
one JSON object on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

# browser-use reads these lazily and at import time, so set them before importing
# it. Forced (not setdefault) so a caller's environment can never make the
# benchmark reach the internet.
OFFLINE_ENV = {
    "ANONYMIZED_TELEMETRY": "false",  # posthog telemetry (config.py, telemetry/service.py)
    "BROWSER_USE_CLOUD_SYNC": "false",  # cloud event sync (sync/service.py)
    "BROWSER_USE_VERSION_CHECK": "false",  # PyPI latest-version check (agent/service.py)
    "BROWSER_USE_CLOUD_HINTS": "false",  # cloud upsell log lines on launch failure
    "BROWSER_USE_DISABLE_EXTENSIONS": "1",  # else uBlock etc. are downloaded from Google
}
os.environ.update(OFFLINE_ENV)

import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import summarize  # noqa: E402

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ITERATION_TIMEOUT_S = 60.0
MAX_ERRORS = 5
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
PRIVATE_TMP = ""  # set in main()


class WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = ANSI_RE.sub("", record.getMessage()).strip()
        msg = f"{record.levelname} [{record.name}] {text}"[:300]
        if msg not in self.messages:
            self.messages.append(msg)


def our_chromium_processes() -> set[psutil.Process]:
    # Our children, plus anything naming our private TMPDIR (its profiles) for
    # helpers that were reparented to PID 1 after their browser died: never
    # another tool's browsers.
    found = {p for p in psutil.Process().children(recursive=True) if _is_chromium(p)}
    for p in psutil.process_iter():
        try:
            if any(PRIVATE_TMP in arg for arg in p.cmdline()):
                found.add(p)
        except psutil.Error:
            continue
    return found


def _is_chromium(p: psutil.Process) -> bool:
    try:
        return "chrom" in p.name().lower()
    except psutil.Error:
        return False


async def one_start(
    url: str, storage_state: Path | None, executable: str, procs: set[psutil.Process]
) -> float:
    """Returns ms to first load; fills procs with the Chromium processes it saw, even on failure."""
    from browser_use import BrowserSession
    from browser_use.browser.events import NavigationCompleteEvent

    nav_problems: list[str] = []

    def on_nav_complete(event: NavigationCompleteEvent) -> None:
        # navigate_to() does not raise when the load wait times out; it only
        # reports it here, and such a start must not count as a success.
        if event.loading_status or event.error_message:
            nav_problems.append(str(event.error_message or event.loading_status))

    session = None
    t0 = time.perf_counter()
    try:
        # A dict, not the path: given a path, browser-use writes the state back
        # into the file (plus a .bak) on stop, which would mutate the input.
        state = json.loads(storage_state.read_text()) if storage_state else None
        session = BrowserSession(
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            chromium_sandbox=False,
            enable_default_extensions=False,
            storage_state=state,
            keep_alive=False,
        )
        session.event_bus.on(NavigationCompleteEvent, on_nav_complete)

        async def start_and_load() -> None:
            await session.start()
            await session.navigate_to(url)

        await asyncio.wait_for(start_and_load(), ITERATION_TIMEOUT_S)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if nav_problems:
            raise RuntimeError(f"page not loaded: {nav_problems[0]}")
        return elapsed_ms
    finally:
        procs.update(our_chromium_processes())
        if session is not None:
            profile = session.browser_profile
            dirs = [profile.user_data_dir, profile.downloads_path]
            try:
                await asyncio.wait_for(session.kill(), 30)
            finally:
                # Per iteration so 30 profiles never pile up on disk at once.
                for d in dirs:
                    if d and Path(d).is_relative_to(PRIVATE_TMP):
                        shutil.rmtree(d, ignore_errors=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    samples: list[float] = []
    errors: list[str] = []
    failures = 0
    started: set[psutil.Process] = set()  # hashes by pid + create_time
    for i in range(args.warmup + args.n):
        try:
            ms = await one_start(args.url, args.storage_state, args.executable, started)
            if i >= args.warmup:
                samples.append(round(ms, 2))
        except Exception as exc:
            failures += 1
            if len(errors) < MAX_ERRORS:
                errors.append(f"{type(exc).__name__}: {exc}"[:500])
        started.update(our_chromium_processes())

    # Give Chromium's helpers a moment to exit on their own before judging.
    alive = [p for p in started if _alive(p)]
    _, alive = psutil.wait_procs(alive, timeout=3)
    leftovers = [p for p in alive if _alive(p)]
    for p in leftovers:  # report them, then do not leave them behind
        with contextlib.suppress(psutil.Error):
            p.kill()

    return {
        "tool": "browser-use",
        "version": version("browser-use"),
        "n": args.n,
        "warmup": args.warmup,
        "samples_ms": samples,
        **{k: v for k, v in summarize(samples).items() if k != "n"},
        "failures": failures,
        "errors": errors,
        "leftover_processes": len(leftovers),
    }


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--storage-state", type=Path, default=None)
    parser.add_argument("--executable", default="/usr/bin/chromium")
    parser.add_argument(
        "--verbose", action="store_true", help="keep browser-use's INFO logs on stderr"
    )
    parser.add_argument(
        "--warmup", type=int, default=0, help="untimed starts before the n timed ones"
    )
    args = parser.parse_args()
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be >= 1 and --warmup >= 0")

    # browser-use mkdtemp()s a profile and a downloads dir per session (and one
    # at import) and never removes them; a private TMPDIR lets us drop them all.
    # Must happen before browser_use is imported.
    global PRIVATE_TMP
    PRIVATE_TMP = tempfile.mkdtemp(prefix="bench-browser-use-")
    tempfile.tempdir = os.environ["TMPDIR"] = PRIVATE_TMP

    # Keep stdout for the JSON alone: anything browser-use or Chromium prints
    # is moved to stderr at the fd level.
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # A caller's timeout (SIGTERM) must still reach the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        import browser_use  # noqa: F401 - sets up its logging on import

        collector = WarningCollector()
        for name in ("", "browser_use", "bubus", "cdp_use"):
            logging.getLogger(name).addHandler(collector)
            if not args.verbose and name:
                logging.getLogger(name).setLevel(logging.WARNING)

        loop = asyncio.new_event_loop()
        result = loop.run_until_complete(run(args))
        # Not asyncio.run(): its teardown waits without limit for browser-use
        # tasks to finish cancelling, and a wedged session would then hang the
        # caller after the measurement is already done.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
    finally:
        for p in our_chromium_processes():
            with contextlib.suppress(psutil.Error):
                p.kill()
        shutil.rmtree(PRIVATE_TMP, ignore_errors=True)
    result["warnings"] = collector.messages[:MAX_ERRORS]
    json_out.write(json.dumps(result, allow_nan=False) + "\n")
    json_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
