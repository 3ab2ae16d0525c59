"""The agent loop for goal-driven tasks: router, toolset, prompt, the phases of a turn, the loop."""

from runtime.agent.loop import LOOP_REPEATS, run_goal
from runtime.agent.turn import Agent, LoopStop, Turn

__all__ = ["LOOP_REPEATS", "Agent", "LoopStop", "Turn", "run_goal"]
