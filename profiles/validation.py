"""One reading of pydantic's validation errors: a ``field: problem`` line per error.

Every file and argument corral validates (profiles, tasks, policies, model configs, tool calls)
reports its errors through :func:`describe_errors`, so a bad field reads the same everywhere;
callers name the source (a file, a profile) in front.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import ValidationError

__all__ = ["describe_errors"]


def describe_errors(
    exc: ValidationError,
    *,
    prefix: str = "",
    top: str = "(top level)",
    drop: Collection[object] = (),
    unknown_field: bool = False,
    inputs: bool = False,
    strip_value_error: bool = False,
) -> list[str]:
    """One ``field: problem`` line per error of ``exc``.

    ``prefix`` goes in front of every field path (``steps.0.``); ``top`` names an error without
    one; ``drop`` leaves parts out of a path (a tagged union's tags). ``unknown_field`` says
    "unknown field" for a field the model forbids; ``inputs`` says "required field is missing"
    for a missing one and shows what was given otherwise (not a list or mapping);
    ``strip_value_error`` drops pydantic's "Value error, " in front of a validator's message.
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if p not in drop]
        field = prefix + ".".join(loc) if loc else prefix.rstrip(".") or top
        msg = str(err["msg"])
        if unknown_field and err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif inputs and err["type"] == "missing":
            msg = "required field is missing"
        elif inputs and not isinstance(err["input"], dict | list):
            msg = f"{msg} (got {err['input']!r})"
        if strip_value_error:
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{field.rstrip('.') if prefix else field}: {msg}")
    return lines
