"""The ``corral`` command: parse arguments, call the runtime's services, render the result."""

from runtime.cli.main import cli, main

__all__ = ["cli", "main"]
