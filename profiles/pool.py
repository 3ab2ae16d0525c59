"""The browser pool: one Chromium per launch configuration, shared by sessions, always closed.

Sessions in ``state`` mode get a fresh ``BrowserContext`` in a shared browser (cheap: ~13 ms);
``persistent`` profiles get their own process through ``launch_persistent_context``. Everything the
pool launched is closed by :meth:`BrowserPool.close`, which ``BrowserPool.start`` guarantees.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from .errors import BrowserCrashedError, BrowserNotFoundError
from .private import private_dir

__all__ = [
    "BASE_ARGS",
    "NODE_CACHE_ENV",
    "SESSIONS_PER_CORE",
    "BrowserPool",
    "PoolStart",
    "browser_env",
    "default_max_sessions",
    "driver_compile_cache",
    "find_browser",
    "start_in_background",
    "use_sandbox",
]

SESSIONS_PER_CORE = 4
"""Sessions one core drives at once by default; more only queue for the CPU, and their steps
then run into their timeouts (see ``scripts/bench_sessions.py``)."""


def default_max_sessions() -> int:
    """How many sessions this machine runs at once unless told otherwise."""
    return max(SESSIONS_PER_CORE, SESSIONS_PER_CORE * (os.cpu_count() or 1))


# Without the background-networking flags Chromium keeps dialling Google on a closed network;
# /dev/shm is small in containers and many tabs exhaust it. WebRTC may send UDP straight past
# any proxy (and so past the egress allowlist); the policy forbids UDP that is not proxied.
# Debian's Chromium honours only --webrtc-ip-handling-policy (verified); the --force- variant is
# the one headless-shell and content-shell builds read.
BASE_ARGS: tuple[str, ...] = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-quic",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
_SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# What Chromium (and Debian's /usr/bin/chromium wrapper script) needs from the environment: where
# programs, fonts, locale and temp files are, and the display and session bus when headed. It is
# an allowlist: a page that exploits the renderer must find none of our keys in /proc/self/environ.
_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XAUTHORITY",
        "DBUS_SESSION_BUS_ADDRESS",
        "DBUS_SYSTEM_BUS_ADDRESS",
        "FONTCONFIG_FILE",
        "FONTCONFIG_PATH",
        "FONTCONFIG_SYSROOT",
        "LD_LIBRARY_PATH",
        "CHROME_DEVEL_SANDBOX",
    }
)
_ENV_PREFIXES = ("XDG_", "LC_")
# Never passed on, even under an allowed prefix (e.g. XDG_SESSION_TOKEN).
_SECRET_NAME = re.compile(
    r"(^CORRAL_|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION_ID)",
    re.IGNORECASE,
)


def browser_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment Chromium is started with: what it needs of ``environ``, no secrets."""
    return {
        name: value
        for name, value in environ.items()
        if name in _ENV_NAMES or (name.startswith(_ENV_PREFIXES) and not _SECRET_NAME.search(name))
    }


def use_sandbox(euid: int | None = None) -> bool:
    """Whether Chromium runs sandboxed: always, except as root, where Chromium refuses to."""
    return (os.geteuid() if euid is None else euid) != 0


def find_browser(explicit: str | None, managed: str | None) -> str:
    """``explicit`` (CORRAL_BROWSER), else Playwright's own Chromium, else a system Chromium."""
    if explicit:
        path = shutil.which(explicit) or explicit
        if not os.access(path, os.X_OK):
            # Imported here: the settings models (pydantic) are not on a cold start's way.
            from .settings import BROWSER_ENV

            raise BrowserNotFoundError(f"{BROWSER_ENV}={explicit}: not an executable file")
        return path
    if managed and os.access(managed, os.X_OK):
        return managed
    for name in _SYSTEM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserNotFoundError(
        "no Chromium found: set CORRAL_BROWSER=/path/to/chromium, run `playwright install "
        "chromium`, or install the system package (Debian/Ubuntu: `apt-get install chromium`)"
    )


def _raise_sandbox_failure(exc: PlaywrightError) -> None:
    """Say plainly when a launch failed for want of a sandbox; other errors are left alone."""
    # As root the command line itself says --no-sandbox: only a sandboxed launch can lack one.
    if not use_sandbox() or "sandbox" not in (exc.message or str(exc)).lower():
        return
    raise BrowserCrashedError(
        "Chromium could not start its sandbox (it runs sandboxed for every user but root): "
        "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or "
        "user.max_user_namespaces > 0; in a container, its seccomp/AppArmor profile must allow "
        "them) or install a setuid chrome-sandbox helper"
    ) from exc


class BrowserPool:
    """Shared Chromium processes keyed by extra launch arguments."""

    def __init__(
        self,
        playwright: Playwright,
        executable: str,
        headless: bool = True,
        max_sessions: int | None = None,
    ) -> None:
        self.playwright = playwright
        self.executable = executable
        self.headless = headless
        self.max_sessions = max_sessions or default_max_sessions()
        """Sessions (browser contexts) open at once; the next one waits for a slot."""
        self._slots = asyncio.Semaphore(self.max_sessions)
        self._browsers: dict[tuple[str, ...], Browser] = {}
        self._persistent: set[BrowserContext] = set()
        self._lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def start(
        cls, executable: str | None = None, headless: bool = True, max_sessions: int | None = None
    ) -> AsyncIterator[BrowserPool]:
        """Start Playwright, find a browser, and close everything on the way out; at most
        ``max_sessions`` sessions at once (default: :func:`default_max_sessions`)."""
        async with async_playwright() as playwright:
            path = find_browser(executable, playwright.chromium.executable_path)
            pool = cls(playwright, path, headless, max_sessions)
            try:
                yield pool
            finally:
                # Shielded: on Ctrl-C the browsers must still be closed, not orphaned.
                await asyncio.shield(pool.close())

    @asynccontextmanager
    async def session_slot(self) -> AsyncIterator[None]:
        """Hold one of the ``max_sessions`` slots: a session opens its context inside one. On
        a small machine many sessions at once only share the CPU until their steps time out;
        queued, each runs at full pace and all finish sooner."""
        async with self._slots:
            yield

    @property
    def sessions_waiting(self) -> bool:
        """True when every slot is taken (the next session waits)."""
        return self._slots.locked()

    def _launch_options(self, extra_args: Sequence[str]) -> dict[str, Any]:
        return {
            "executable_path": self.executable,
            "headless": self.headless,
            "args": [*BASE_ARGS, *extra_args],
            # Playwright passes --no-sandbox unless told otherwise; only root needs it.
            "chromium_sandbox": use_sandbox(),
            # Without `env` Chromium inherits ours: master key, API keys, webhook secret.
            "env": browser_env(os.environ),
        }

    async def browser(self, extra_args: Sequence[str] = ()) -> Browser:
        """The shared browser for these launch arguments, (re)launched if needed."""
        key = tuple(extra_args)
        async with self._lock:
            browser = self._browsers.get(key)
            if browser is None or not browser.is_connected():
                try:
                    browser = await self.playwright.chromium.launch(**self._launch_options(key))
                except PlaywrightError as exc:
                    _raise_sandbox_failure(exc)
                    raise
                self._browsers[key] = browser
            return browser

    async def persistent_context(
        self, user_data_dir: Path, options: dict[str, Any], extra_args: Sequence[str] = ()
    ) -> BrowserContext:
        """A context in its own browser process, backed by ``user_data_dir``."""
        try:
            context = await self.playwright.chromium.launch_persistent_context(
                user_data_dir, **self._launch_options(extra_args), **options
            )
        except PlaywrightError as exc:
            _raise_sandbox_failure(exc)
            raise
        self._persistent.add(context)
        context.on("close", lambda _: self._persistent.discard(context))
        return context

    def browser_pids(self) -> list[int]:
        """PIDs of the browser processes the pool launched (for tests and benchmarks)."""
        import psutil

        pids = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.exe() == os.path.realpath(self.executable) or "chrom" in proc.name():
                    pids.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return pids

    async def close(self) -> None:
        """Close every browser and persistent context the pool launched."""
        for context in list(self._persistent):
            with suppress(PlaywrightError):
                await context.close()
        self._persistent.clear()
        browsers, self._browsers = list(self._browsers.values()), {}
        for browser in browsers:
            with suppress(PlaywrightError):
                await browser.close()


NODE_CACHE_ENV = "NODE_COMPILE_CACHE"
"""Where Node keeps the code it compiled, for the next process (Node >= 22.1; older ignore it)."""


def driver_compile_cache(environ: MutableMapping[str, str]) -> Path | None:
    """Let Playwright's driver keep its compiled JavaScript between processes.

    Playwright's driver is a Node process that compiles a large bundle at every start; with
    ``NODE_COMPILE_CACHE`` set it compiles it once and then reads the code back (about a quarter
    of its boot on a 2-core machine). The cache is the user's own (``corral`` in the platform's
    cache folder, 0700), holds nothing but compiled code of the installed driver (Node checks it
    against the source and recompiles on a mismatch) and is never seen by Chromium, whose
    environment is an allowlist. A cache the user set, or ``NODE_DISABLE_COMPILE_CACHE``, wins.
    Sets ``environ[NODE_CACHE_ENV]`` (Playwright hands the driver this process's environment);
    returns the folder, or None when it was left alone or cannot be made.
    """
    if NODE_CACHE_ENV in environ or "NODE_DISABLE_COMPILE_CACHE" in environ:
        return None
    import platformdirs

    folder = Path(platformdirs.user_cache_dir("corral", appauthor=False)) / "node-compile-cache"
    try:
        private_dir(folder)
    except OSError:
        return None
    environ[NODE_CACHE_ENV] = str(folder)
    return folder


class PoolStart:
    """A :class:`BrowserPool` on its way up (see :func:`start_in_background`)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[BrowserPool] = loop.create_future()
        """The pool, once Playwright is up and it was told how to launch; awaited by its user."""
        self._options: asyncio.Future[
            tuple[str | None, bool, tuple[str, ...] | None, int | None] | None
        ]
        self._options = loop.create_future()
        self._done = asyncio.Event()

    def configure(
        self,
        executable: str | None,
        headless: bool,
        launch: Sequence[str] | None = None,
        max_sessions: int | None = None,
    ) -> None:
        """How to launch (as :meth:`BrowserPool.start`); with ``launch``, the shared browser for
        those arguments starts as soon as Playwright is up."""
        if not self._options.done():
            launched = None if launch is None else (*launch,)
            self._options.set_result((executable, headless, launched, max_sessions))

    def release(self) -> None:
        """Nothing will use the pool any more: it closes now, in the background, while the
        caller finishes (``start_in_background``'s exit still waits until it is closed)."""
        self._abandon()
        self._done.set()

    def _abandon(self) -> None:
        if not self._options.done():
            self._options.set_result(None)


@asynccontextmanager
async def start_in_background() -> AsyncIterator[PoolStart]:
    """Start Playwright's driver now; the pool is ready once configured (``PoolStart.ready``).

    The driver (a Node process) boots while the caller imports, reads its settings and its
    store; after :meth:`PoolStart.configure` the browser launches too, so a one-step
    ``corral run`` waits for none of these in turn. One task holds the pool from start to
    close, and it is closed on exit, also when nobody awaited it or it was never configured. A
    start that fails raises where ``ready`` is awaited; a failed launch is left to
    :meth:`BrowserPool.browser`, which reports it when a session asks for that browser.
    """
    start = PoolStart()

    async def hold() -> None:
        try:
            async with async_playwright() as playwright:
                options = await start._options
                if options is None:
                    return
                executable, headless, launch, max_sessions = options
                path = find_browser(executable, playwright.chromium.executable_path)
                pool = BrowserPool(playwright, path, headless, max_sessions)
                try:
                    if launch is not None:
                        with suppress(PlaywrightError, BrowserCrashedError):
                            await pool.browser(launch)
                    start.ready.set_result(pool)
                    await start._done.wait()
                finally:
                    await asyncio.shield(pool.close())
        except Exception as exc:
            if not start.ready.done():
                start.ready.set_exception(exc)
        finally:
            if not start.ready.done():
                start.ready.cancel()  # never up: nobody waits for it forever

    holder = asyncio.create_task(hold(), name="browser-pool")
    try:
        yield start
    finally:
        start.release()
        try:
            await holder
        finally:
            if start.ready.done() and not start.ready.cancelled():
                start.ready.exception()  # retrieved: a start nobody waited for is no error
