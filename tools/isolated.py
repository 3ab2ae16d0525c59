"""Reading the page where its scripts cannot reach: CDP, and an isolated JavaScript world.

A page can redefine ``textContent``, ``getAttribute`` or ``closest`` in its own (main) world, and
an ``<input name=action>`` shadows ``form.action`` in every world. So facts are read by the browser
(hit testing, focus, the accessibility tree, event listeners, all over CDP) or by a function run
in an isolated world (``Page.createIsolatedWorld``: pristine prototypes) that reads through
prototype getters, never through properties a form's named elements can shadow.

One :class:`Isolated` is kept per page (:meth:`tools.tabs.Tabs.isolated`), so a world is made once
per document, not once per question: the worlds are forgotten when a frame of the page navigates
(the main frame's new world, and the document's objects the icon probe starts from, are made
right then, while the page loads), and a world whose document went away (its context is
destroyed with it: the browser runs without the back-forward cache, so only a frame's current
document has live contexts) is made again (:class:`StaleWorld`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from playwright.async_api import CDPSession

__all__ = ["Isolated", "IsolatedError", "NodeRef", "StaleWorld", "unawaited"]

_WORLD = "corral-facts"
_KEPT = "corral-document"  # objects kept for a document's life (see Isolated.document)
_FOCUSED = "document.activeElement || document.body || document.documentElement"
# What the browser says when a world's context (or its frame) is gone: its document was replaced
# (a node of the new document resolved in the old document's world: the last one).
_STALE = (
    "Cannot find context with specified id",
    "No frame for given id",
    "does not belong to the document",
)


_unawaited: set[asyncio.Task[None]] = set()


def unawaited(work: Awaitable[Any], *ignored: type[BaseException]) -> None:
    """Run ``work`` whose answer nobody needs (letting remote objects go) without waiting for
    it; the errors ``ignored`` (the page went away meanwhile) are dropped."""

    async def run() -> None:
        with contextlib.suppress(*ignored):
            await work

    task = asyncio.get_running_loop().create_task(run())
    _unawaited.add(task)
    task.add_done_callback(_unawaited.discard)


class IsolatedError(Exception):
    """The browser could not answer a question about a node (it went away, or is out of reach)."""


class StaleWorld(IsolatedError):
    """A world of a document that is gone was used: the worlds are forgotten, ask again."""


@dataclass(frozen=True)
class NodeRef:
    """A DOM node as the browser names it: stable for the node's life, unknown to the page."""

    backend_id: int
    frame_id: str


class Isolated:
    """One CDP session's view of a page: nodes resolved into an isolated world per frame."""

    def __init__(self, cdp: CDPSession) -> None:
        self.cdp = cdp
        self._worlds: dict[str, int] = {}
        self._making: dict[str, asyncio.Future[int]] = {}
        self._document: asyncio.Future[tuple[str, str]] | None = None
        self._generation = 0  # of the worlds: one more each time they are forgotten
        self._main: str | None = None

    def forget(self, main_navigated: bool = False) -> None:
        """Forget the worlds (a frame navigated: its document, and their contexts, are gone).
        When the main frame navigated, its new document's world and :meth:`document` are made
        at once, while the page loads, so the first question after the load does not wait."""
        self._worlds.clear()
        self._making.clear()
        self._document = None
        self._generation += 1
        if main_navigated and self._main is not None:
            self._start(self._main)
            self.document()

    def document(self) -> asyncio.Future[tuple[str, str]]:
        """The main frame's document as an object of the isolated world, and as one of the
        page's own world (only ever passed to the browser, which lists a node's event listeners
        by the world they were added in). Made once per document and kept while it lasts (in an
        object group never released: they go with the document's contexts); after an error
        with them, :meth:`forget_document` and ask again."""
        if self._document is not None:
            return self._document

        async def fetch() -> tuple[str, str]:
            found = await self.in_world(
                None,
                "Runtime.evaluate",
                {"expression": "document", "objectGroup": _KEPT},
                key="contextId",
            )
            own = str(found["result"]["objectId"])
            node = (await self.send("DOM.describeNode", {"objectId": own}))["node"]
            page = await self.send(
                "DOM.resolveNode", {"backendNodeId": node["backendNodeId"], "objectGroup": _KEPT}
            )
            return own, str(page["object"]["objectId"])

        def done(task: asyncio.Future[tuple[str, str]]) -> None:
            # A failed fetch is not kept (its error retrieved either way); a navigation since
            # it started has already let it go (forget).
            if (task.cancelled() or task.exception() is not None) and self._document is task:
                self._document = None

        fetching = self._document = asyncio.ensure_future(fetch())
        fetching.add_done_callback(done)
        return fetching

    def forget_document(self) -> None:
        """Make :meth:`document` anew next time (its objects may be of a document that is gone,
        whose navigation has not been heard yet)."""
        self._document = None

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One CDP command; protocol errors become :class:`IsolatedError` (:class:`StaleWorld`
        when a world or frame is gone, having forgotten the worlds)."""
        try:
            return await self.cdp.send(method, params or {})
        except Exception as exc:  # Playwright raises its generic Error for protocol errors
            message = f"{method}: {str(exc).splitlines()[0]}"
            if any(stale in message for stale in _STALE):
                self.forget()
                self._main = None
                raise StaleWorld(message) from exc
            raise IsolatedError(message) from exc

    async def main_frame(self) -> str:
        """The main frame's id."""
        if self._main is None:
            tree = await self.send("Page.getFrameTree")
            self._main = str(tree["frameTree"]["frame"]["id"])
        return self._main

    async def world(self, frame_id: str) -> int:
        """An execution context of the isolated world in ``frame_id`` (made once per document)."""
        known = self._worlds.get(frame_id)
        if known is not None:
            return known
        return await self._start(frame_id)

    def _start(self, frame_id: str) -> asyncio.Future[int]:
        """The making of ``frame_id``'s world: one at a time, kept only if no navigation came
        first (otherwise its first use finds it stale, and a new one is made)."""
        making = self._making.get(frame_id)
        if making is None:
            generation = self._generation

            async def make() -> int:
                made = await self.send(
                    "Page.createIsolatedWorld", {"frameId": frame_id, "worldName": _WORLD}
                )
                context = int(made["executionContextId"])
                if generation == self._generation:
                    self._worlds[frame_id] = context
                return context

            def done(task: asyncio.Future[int]) -> None:
                if self._making.get(frame_id) is task:
                    del self._making[frame_id]
                if not task.cancelled():
                    task.exception()  # retrieved: whoever awaits it sees it too

            making = self._making[frame_id] = asyncio.ensure_future(make())
            making.add_done_callback(done)
        return making

    async def in_world(
        self,
        frame_id: str | None,
        method: str,
        params: dict[str, Any],
        key: str = "executionContextId",
    ) -> Any:
        """``method`` with ``params`` plus the isolated world's context in ``frame_id`` (the main
        frame's if None) as ``key``; once more in a fresh world if that one's document is gone."""

        async def once() -> Any:
            frame = frame_id if frame_id is not None else await self.main_frame()
            return await self.send(method, {**params, key: await self.world(frame)})

        try:
            return await once()
        except StaleWorld:  # the worlds are forgotten by now: the next one is made anew
            return await once()

    async def resolve(self, node: NodeRef) -> str:
        """The node as an object of the isolated world of its frame."""
        found = await self.in_world(
            node.frame_id, "DOM.resolveNode", {"backendNodeId": node.backend_id}
        )
        return str(found["object"]["objectId"])

    async def call(self, object_id: str, function: str, *args: Any, by_value: bool = True) -> Any:
        """``function`` called with ``this`` = the object; a value, or an object id."""
        result = await self.send(
            "Runtime.callFunctionOn",
            {
                "objectId": object_id,
                "functionDeclaration": function,
                "arguments": [{"value": a} for a in args],
                "returnByValue": by_value,
            },
        )
        if "exceptionDetails" in result:
            text = result["exceptionDetails"].get("exception", {}).get("description")
            raise IsolatedError(f"the facts function failed: {text or result['exceptionDetails']}")
        value = result["result"]
        if by_value:
            return value.get("value")
        return value.get("objectId")

    async def node_of(self, object_id: str, frame_id: str) -> NodeRef:
        """The browser's name for a node object."""
        described = await self.send("DOM.describeNode", {"objectId": object_id})
        node = described["node"]
        return NodeRef(int(node["backendNodeId"]), str(node.get("frameId") or frame_id))

    async def child_frame(self, object_id: str) -> str | None:
        """The frame an ``<iframe>`` object shows, if any."""
        described = await self.send("DOM.describeNode", {"objectId": object_id})
        frame = described["node"].get("frameId")
        return str(frame) if frame else None

    async def hit(self, x: float, y: float) -> NodeRef:
        """The node a click at viewport point (x, y) reaches (pointer-events honoured)."""
        viewport = (await self.send("Page.getLayoutMetrics"))["cssVisualViewport"]
        found = await self.send(
            "DOM.getNodeForLocation",
            {"x": int(x + viewport["pageX"]), "y": int(y + viewport["pageY"])},
        )
        return NodeRef(int(found["backendNodeId"]), str(found["frameId"]))

    async def focused(self) -> NodeRef:
        """The element that has focus (into same-process frames), or the body."""
        frame = await self.main_frame()
        for _ in range(8):
            result = await self.in_world(
                frame,
                "Runtime.evaluate",
                {"expression": _FOCUSED},
                key="contextId",
            )
            object_id = result["result"].get("objectId")
            if object_id is None:
                raise IsolatedError("the page has no element to receive keys")
            if result["result"].get("className") in ("HTMLIFrameElement", "HTMLFrameElement"):
                inner = await self.child_frame(object_id)
                if inner is None:
                    raise IsolatedError("focus is in a frame out of reach")
                frame = inner
                continue
            return await self.node_of(object_id, frame)
        raise IsolatedError("focus is nested too deep in frames")

    async def ax(self, node: NodeRef | str) -> tuple[str | None, str | None]:
        """Role and accessible name as the browser computes them (of a node, or a node object)."""
        target = {"objectId": node} if isinstance(node, str) else {"backendNodeId": node.backend_id}
        tree = await self.send(
            "Accessibility.getPartialAXTree", {**target, "fetchRelatives": False}
        )
        for entry in tree.get("nodes", []):
            if entry.get("ignored"):
                continue
            role = (entry.get("role") or {}).get("value")
            name = (entry.get("name") or {}).get("value")
            return (str(role) if role else None, str(name) if name else None)
        return None, None

    async def listens(self, object_id: str, types: frozenset[str]) -> bool:
        """True if the object has a listener for one of ``types`` (page scripts included)."""
        found = await self.send("DOMDebugger.getEventListeners", {"objectId": object_id})
        return any(entry.get("type") in types for entry in found.get("listeners", []))
