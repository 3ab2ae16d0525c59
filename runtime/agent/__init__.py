"""The agent loop for goal-driven tasks: router, toolset, prompt, loop."""
