"""The agent loop for goal-driven tasks: router, toolset, prompt, the phases of a turn, the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from runtime.agent.loop import LOOP_REPEATS, run_goal
    from runtime.agent.turn import Agent, LoopStop, Turn

__all__ = ["LOOP_REPEATS", "Agent", "LoopStop", "Turn", "run_goal"]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
