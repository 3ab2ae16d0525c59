"""Doing actions in a page, with Playwright's errors translated into corral's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from pydantic import BaseModel, ConfigDict

from profiles import (
    PRIVATE_FILE,
    SECRET_RE,
    BrowserCrashedError,
    FieldFacts,
    SecretNotAvailableError,
    origin_of,
    private_dir,
)

from .actions import (
    AnyAction,
    Back,
    Click,
    Download,
    Extract,
    Fill,
    Hover,
    Locate,
    Navigate,
    Press,
    Scroll,
    Select,
    SwitchTab,
    Upload,
    WaitFor,
    action_target,
)
from .clickables import is_probe_ref, probe_locator
from .errors import (
    ActionError,
    ActionTimeoutError,
    AmbiguousTargetError,
    ElementNotFoundError,
    NavigationError,
    UploadNotAllowedError,
)
from .extract import extract_value
from .fields import field_facts
from .navigation import refused_scheme
from .settle import settle
from .snapshot import full_ref
from .tabs import Tabs

__all__ = ["ActionContext", "ActionResult", "execute", "is_visible", "locate"]

ValueResolver = Callable[[str, str, FieldFacts], Awaitable[str]]
"""``(text, origin, field) -> typed text``: resolves ``{{secret:NAME}}`` for that origin and
field (``CredentialLease.resolve``), or raises before anything is typed."""
# Marks an element that received a secret, so screenshots mask it even after a re-render.
SECRET_MARK = "data-corral-secret"


@dataclass
class ActionContext:
    """Where an action runs: base URL, folders, timeouts and the fill-value resolver."""

    downloads_dir: Path
    base_url: str | None = None
    upload_dir: Path | None = None
    timeout_s: float = 10.0
    resolve_value: ValueResolver | None = None
    """Turns ``{{secret:...}}`` in fill values into what is typed, at typing time."""
    checked: Any = None
    """The gate's probe (``tools.facts.Checked``) of this action's target: the action reaches
    exactly the node that was classified, or is not done."""
    vet_next: Callable[[Page, Locate], Awaitable[Any]] | None = None
    """For ``extract`` with ``next``: classifies each page click; returns its ``Checked`` or
    raises (a refused click ends pagination and fails the step)."""


class ActionResult(BaseModel):
    """What an action did."""

    model_config = ConfigDict(extra="forbid")
    url_before: str
    url_after: str
    opened_tabs: int = 0
    value: Any = None


def locate(page: Page, spec: Locate) -> Locator:
    """A Playwright locator for ``spec``."""
    exact = spec.exact or None
    if spec.ref is not None and is_probe_ref(spec.ref):
        loc = probe_locator(page, spec.ref)
    elif spec.ref is not None:
        # The main frame's refs are shown without their frame prefix (tools.snapshot).
        loc = page.locator(f"aria-ref={full_ref(page, spec.ref)}")
    elif spec.role is not None:
        loc = page.get_by_role(spec.role, name=spec.name, exact=exact)  # type: ignore[arg-type]
    elif spec.label is not None:
        loc = page.get_by_label(spec.label, exact=exact)
    elif spec.text is not None:
        loc = page.get_by_text(spec.text, exact=exact)
    elif spec.placeholder is not None:
        loc = page.get_by_placeholder(spec.placeholder, exact=exact)
    elif spec.test_id is not None:
        loc = page.get_by_test_id(spec.test_id)
    elif spec.css is not None:
        loc = page.locator(spec.css)
    else:
        raise ActionError("no element given")
    return loc.nth(spec.nth) if spec.nth is not None else loc


async def is_visible(tabs: Tabs, spec: Locate) -> bool:
    """True if the target is visible right now (no waiting; a closed page counts as not)."""
    try:
        page = await tabs.active()
        return await locate(page, spec).first.is_visible()
    except PlaywrightError:
        return False


def _browser_gone(tabs: Tabs) -> bool:
    browser = tabs.session.context.browser
    return tabs.session.closed_unexpectedly or (browser is not None and not browser.is_connected())


async def translate_error(
    exc: PlaywrightError, tabs: Tabs, page: Page, action: Any, timeout_s: float
) -> Exception:
    """A Playwright error as corral's error for ``action``."""
    first_line = str(exc.message).strip().splitlines()[0] if exc.message else type(exc).__name__
    if "closed" in first_line.lower():
        await asyncio.sleep(0.05)  # let the close/disconnect events arrive
        if _browser_gone(tabs):
            return BrowserCrashedError(
                f"the browser closed unexpectedly (crashed or was killed) during {action.kind}"
            )
    target = action_target(action)
    desc = target.describe() if target else ""
    if target is not None and target.ref is not None and "aria-ref" in first_line:
        # Refs are only valid for the snapshot they came from; after a navigation they go stale.
        return ElementNotFoundError(
            f"{action.kind}: no element matches {desc} on {page.url}: the ref comes from an "
            "older snapshot; observe the page again and use a current ref"
        )
    if "strict mode violation" in first_line and target is not None:
        count = await locate(page, target).count()
        return AmbiguousTargetError(
            f"{action.kind}: {desc} matches {count} elements; make it more specific, "
            "add exact: true, or pick one with nth: 0"
        )
    if isinstance(exc, PlaywrightTimeoutError):
        if target is not None:
            try:
                count = await locate(page, target).count()
            except PlaywrightError:
                count = 0
            if count == 0 and not (
                isinstance(action, WaitFor) and action.state in ("hidden", "detached")
            ):
                return ElementNotFoundError(
                    f"{action.kind}: no element matches {desc} (waited {timeout_s:g}s on "
                    f"{page.url})"
                )
            return ActionTimeoutError(
                f"{action.kind}: {desc} did not become ready in {timeout_s:g}s: {first_line}"
            )
        return ActionTimeoutError(f"{action.kind}: timed out after {timeout_s:g}s: {first_line}")
    if isinstance(action, Navigate):
        return NavigationError(f"navigate: cannot load {action.url}: {first_line}")
    return ActionError(f"{action.kind}{' ' + desc if desc else ''}: {first_line}")


async def _fill(target: Locator, value: str, ctx: ActionContext, ms: float) -> None:
    if not SECRET_RE.search(value):
        await target.fill(value, timeout=ms)
        return
    if ctx.resolve_value is None:
        raise SecretNotAvailableError("secret not available here: this run has no credential lease")
    # Resolve for the element's own frame (an iframe may be another origin) and the field's
    # facts, and type through the same handle the facts were read from: if the document
    # changed meanwhile, the fill fails instead of typing elsewhere.
    handle = await target.element_handle(timeout=ms)
    try:
        # The browser's view of the frame, not the page's `window.origin` (a page can set that).
        frame = await handle.owner_frame()
        if frame is None:
            raise SecretNotAvailableError("secret not available here: the field has no frame")
        facts = await field_facts(handle, frame)
        typed = await ctx.resolve_value(value, origin_of(frame.url), facts)
        await handle.evaluate(f"e => e.setAttribute('{SECRET_MARK}', '')")
        await handle.fill(typed, timeout=ms)
    finally:
        await handle.dispose()


def _allowed_file(name: str, upload_dir: Path | None) -> str:
    if upload_dir is None:
        raise UploadNotAllowedError("upload: no upload folder is allowed for this run (upload_dir)")
    root = upload_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise UploadNotAllowedError(f"upload: {name} is outside the allowed folder {root}")
    if not path.is_file():
        raise UploadNotAllowedError(f"upload: {name} does not exist in {root}")
    return str(path)


def _unique(folder: Path, filename: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name).strip("._") or "download"
    path, n = folder / safe, 1
    while path.exists():
        path = folder / f"{Path(safe).stem}-{n}{Path(safe).suffix}"
        n += 1
    return path


async def execute(tabs: Tabs, action: AnyAction, ctx: ActionContext) -> ActionResult:
    """Do ``action`` in the active tab and report what it did."""
    page = await tabs.active()
    before = page.url
    timeout_s = getattr(action, "timeout_s", None) or ctx.timeout_s
    ms = timeout_s * 1000
    try:
        value = await _dispatch(tabs, page, action, ctx, ms)
    except PlaywrightError as exc:
        raise await translate_error(exc, tabs, page, action, timeout_s) from exc
    opened = tabs.take_opened()
    for new in opened:
        with contextlib.suppress(PlaywrightError):
            await new.wait_for_load_state("domcontentloaded", timeout=ms)
    after = (await tabs.active()).url if tabs.pages else ""
    return ActionResult(url_before=before, url_after=after, opened_tabs=len(opened), value=value)


async def _save_download(
    page: Page, click: Callable[[], Awaitable[None]], ctx: ActionContext, ms: float
) -> dict[str, Any]:
    async with page.expect_download(timeout=ms) as info:
        await click()
    download = await info.value
    private_dir(ctx.downloads_dir)
    path = _unique(ctx.downloads_dir, download.suggested_filename)
    await download.save_as(path)
    # Playwright copies the file with the process umask: owner-only, like the rest of the run.
    os.chmod(path, PRIVATE_FILE)
    return {"file": path.name, "path": str(path), "bytes": path.stat().st_size}


async def _act_checked(
    tabs: Tabs,
    page: Page,
    action: Click | Press | Select | Download,
    checked: Any,
    ctx: ActionContext,
    ms: float,
) -> Any:
    """Do ``action`` on exactly the node the gate checked: the same point, the same focused
    node, or the same select; if the page moved something else there meanwhile, not at all."""
    if checked.error is not None:
        raise checked.error
    if checked.page is not page:
        raise ActionError(f"{action.kind}: not done: the active tab changed after the check")
    if not await checked.still_there():
        raise ActionError(
            f"{action.kind}: not done: the page changed what this action would reach after it "
            "was checked; observe the page again"
        )
    if isinstance(action, Select):
        chosen = await checked.select(action.option)
        if chosen is None:
            raise ActionError(f"select: no option '{action.option}' in {action.describe()}")
        await settle(tabs, page, asyncio.sleep(0), ms)
        return None
    if isinstance(action, Press):
        await settle(tabs, page, page.keyboard.press(action.key), ms)
        return None
    x, y = checked.point

    async def click() -> None:
        await page.mouse.click(x, y)

    if isinstance(action, Download):
        return await _save_download(page, click, ctx, ms)
    await settle(tabs, page, click(), ms)
    return None


def _next_clicker(
    tabs: Tabs, ctx: ActionContext, ms: float
) -> Callable[[Page, Locate], Awaitable[None]]:
    """How ``extract`` follows ``next``: through the gate's check when there is one."""

    async def click(page: Page, spec: Locate) -> None:
        if ctx.vet_next is None:
            await settle(tabs, page, locate(page, spec).first.click(timeout=ms), ms)
            return
        checked = await ctx.vet_next(page, spec)
        if not await checked.still_there():
            raise ActionError("extract: not done: the 'next' control changed after it was checked")
        x, y = checked.point
        await settle(tabs, page, page.mouse.click(x, y), ms)

    return click


async def _dispatch(
    tabs: Tabs, page: Page, action: AnyAction, ctx: ActionContext, ms: float
) -> Any:
    if isinstance(action, Navigate):
        url = urljoin(ctx.base_url or page.url, action.url)
        scheme = refused_scheme(url)
        if scheme is not None:
            # Refused before anything loads: file: reads local files, the rest runs unvetted
            # content or opens the browser's own pages.
            what = f"{scheme} URLs are not allowed"
            if scheme == "(none):":
                what = "not an absolute URL"
            raise NavigationError(
                f"navigate: {what} (only http:, https: and about:blank): {url[:200]}"
            )
        await page.goto(url, timeout=ms)
        return None
    if isinstance(action, Back):
        before = page.url
        if await page.go_back(timeout=ms) is None and page.url == before:
            raise ActionError(f"back: there is no previous page in this tab ({before})")
        return None
    if isinstance(action, SwitchTab):
        try:
            new = tabs.switch(action.index)
        except IndexError as exc:
            raise ActionError(f"switch_tab: {exc}") from exc
        await new.bring_to_front()
        return None
    if isinstance(action, Extract):
        return await extract_value(page, action, locate, ms, _next_clicker(tabs, ctx, ms))
    if isinstance(action, WaitFor):
        if action.has_target:
            await locate(page, action.locator_spec()).wait_for(state=action.state, timeout=ms)
        if action.url is not None:
            pattern: str | re.Pattern[str] = action.url
            if len(action.url) > 2 and action.url.startswith("/") and action.url.endswith("/"):
                pattern = re.compile(action.url[1:-1])
            await page.wait_for_url(pattern, timeout=ms)
        if action.load_state is not None:
            await page.wait_for_load_state(action.load_state, timeout=ms)
        return None
    if isinstance(action, Scroll) and not action.has_target:
        dx = {"left": -action.amount, "right": action.amount}.get(action.direction, 0)
        dy = {"up": -action.amount, "down": action.amount}.get(action.direction, 0)
        await page.mouse.wheel(dx, dy)
        return None
    checked = ctx.checked
    if checked is not None and isinstance(action, Click | Press | Select | Download):
        return await _act_checked(tabs, page, action, checked, ctx, ms)
    if isinstance(action, Press) and not action.has_target:
        await settle(tabs, page, page.keyboard.press(action.key), ms)
        return None
    target = locate(page, action.locator_spec())
    if isinstance(action, Click):
        await settle(tabs, page, target.click(timeout=ms), ms)
    elif isinstance(action, Fill):
        await _fill(target, action.value, ctx, ms)
    elif isinstance(action, Select):
        await target.select_option(action.option, timeout=ms)
    elif isinstance(action, Press):
        await settle(tabs, page, target.press(action.key, timeout=ms), ms)
    elif isinstance(action, Scroll):
        await target.scroll_into_view_if_needed(timeout=ms)
    elif isinstance(action, Hover):
        await target.hover(timeout=ms)
    elif isinstance(action, Upload):
        files = [_allowed_file(f, ctx.upload_dir) for f in action.files]
        await target.set_input_files(files, timeout=ms)
    elif isinstance(action, Download):
        return await _save_download(page, lambda: target.click(timeout=ms), ctx, ms)
    return None
