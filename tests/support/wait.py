"""Waiting for a condition by polling it, never by sleeping a guessed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["until", "until_sync"]

T = TypeVar("T")

POLL_S = 0.05


async def until(
    cond: Callable[[], T | Awaitable[T]],
    timeout: float = 30.0,  # noqa: ASYNC109 (a deadline for the polling, not for one call)
    what: str = "the condition",
) -> T:
    """Poll ``cond`` (sync or async) until it returns something truthy; returns that value.
    Fails the test naming ``what`` if it has not held within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(POLL_S)


def until_sync(cond: Callable[[], T], timeout: float = 30.0, what: str = "the condition") -> T:
    """``until`` for code without an event loop (tests that drive real processes)."""
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_S)
    return value
