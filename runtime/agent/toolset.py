"""The tools a planner model may call, as small pydantic argument models.

"Tool" is the model APIs' term here: a function offered to the planner (a ``ToolSpec``) and its
request to call one (a ``ToolCall``). Some of them are browser actions and map onto the typed
actions of the :mod:`tools` package (addressed by snapshot ref); ``look`` asks the vision model,
``extract_data`` the extractor, ``observe`` asks for the whole page again (after an action that
leaves the page in place the planner is shown only what changed), ``done`` ends the run with a
result.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from profiles import describe_errors
from runtime.models.types import ToolCall, ToolSpec
from tools import (
    AnyAction,
    Back,
    Click,
    Download,
    Fill,
    Hover,
    Navigate,
    Press,
    Scroll,
    Select,
    SwitchTab,
    Upload,
    WaitFor,
)

__all__ = [
    "TOOLS",
    "Done",
    "ExtractData",
    "Look",
    "Observe",
    "ToolArgsError",
    "parse_call",
    "tool_specs",
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RefArgs(_Args):
    ref: str = Field(description="the element's ref from the page snapshot, e.g. e12")


class FillArgs(RefArgs):
    value: str = Field(description="text to type; a secret is written {{secret:NAME}}")


class SelectArgs(RefArgs):
    option: str


class PressArgs(_Args):
    key: str = Field(description="e.g. Enter, Tab, Escape, Control+A")
    ref: str | None = None


class ScrollArgs(_Args):
    direction: Literal["down", "up", "left", "right"] = "down"
    ref: str | None = Field(None, description="scroll this element into view instead")


class NavigateArgs(_Args):
    url: str


class NoArgs(_Args):
    pass


class SwitchTabArgs(_Args):
    index: int = Field(ge=0)


class UploadArgs(RefArgs):
    files: list[str] = Field(min_length=1, description="file names in the allowed upload folder")


class WaitArgs(_Args):
    text: str = Field(description="wait until this text is visible")


class Look(_Args):
    """Ask the vision model about the current screenshot."""

    question: str = Field(min_length=1)


class ExtractData(_Args):
    """Ask the extractor model to read data from the page into JSON."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="what to call the result")
    instruction: str = Field(min_length=1)
    json_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, description="JSON schema of the result"
    )


class Observe(_Args):
    """Show the whole current page next turn instead of what changed."""

    full: bool = Field(True, description="the whole page (the only kind this call gives)")


class Done(_Args):
    """Finish the task."""

    result: Any = Field(description="the task's result (must match the task's output schema)")


_BROWSER: dict[str, tuple[str, type[_Args], Any]] = {
    "click": ("Click an element.", RefArgs, lambda a: Click(ref=a.ref)),
    "fill": (
        "Type text into a field (replaces its content).",
        FillArgs,
        lambda a: Fill(ref=a.ref, value=a.value),
    ),
    "select": (
        "Choose an option of a select element.",
        SelectArgs,
        lambda a: Select(ref=a.ref, option=a.option),
    ),
    "press": (
        "Press a key, on an element or the focused one.",
        PressArgs,
        lambda a: Press(ref=a.ref, key=a.key),
    ),
    "scroll": (
        "Scroll the page, or an element into view.",
        ScrollArgs,
        lambda a: Scroll(ref=a.ref, direction=a.direction),
    ),
    "hover": ("Move the mouse over an element.", RefArgs, lambda a: Hover(ref=a.ref)),
    "navigate": ("Open a URL.", NavigateArgs, lambda a: Navigate(url=a.url)),
    "back": ("Go back to the previous page.", NoArgs, lambda a: Back()),
    "switch_tab": (
        "Make another tab active (index from the tab list).",
        SwitchTabArgs,
        lambda a: SwitchTab(index=a.index),
    ),
    "download": ("Click an element that downloads a file.", RefArgs, lambda a: Download(ref=a.ref)),
    "upload": (
        "Attach files to a file input.",
        UploadArgs,
        lambda a: Upload(ref=a.ref, files=a.files),
    ),
    "wait_for": ("Wait until a text is visible.", WaitArgs, lambda a: WaitFor(text=a.text)),
}
_SPECIAL: dict[str, tuple[str, type[_Args]]] = {
    "look": (
        "Ask a vision model a question about a screenshot of the page, with every "
        "interactive element boxed and labelled by its ref.",
        Look,
    ),
    "extract_data": (
        "Read structured data from the current page (tables, details) with an "
        "extraction model; the result is kept under `name`.",
        ExtractData,
    ),
    "observe": (
        "Show the whole current page again (after an action that leaves the page in place you "
        "are shown only the lines that changed).",
        Observe,
    ),
    "done": ("Finish: give the task's result.", Done),
}
TOOLS = sorted([*_BROWSER, *_SPECIAL])


class ToolArgsError(ValueError):
    """A tool call that cannot be used: unknown tool, bad JSON or invalid arguments."""


def tool_specs() -> list[ToolSpec]:
    """Every tool as a ToolSpec for the model."""
    specs = []
    for name, (description, args) in {
        **{k: (v[0], v[1]) for k, v in _BROWSER.items()},
        **_SPECIAL,
    }.items():
        schema = args.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        specs.append(ToolSpec(name=name, description=description, parameters=schema))
    return specs


def parse_call(call: ToolCall) -> AnyAction | Look | ExtractData | Observe | Done:
    """A tool call as a typed action (or a special tool), or ToolArgsError saying what is wrong."""
    entry = _BROWSER.get(call.name)
    special = _SPECIAL.get(call.name)
    if entry is None and special is None:
        raise ToolArgsError(f"unknown tool '{call.name}'; the tools are: {', '.join(TOOLS)}")
    try:
        raw = json.loads(call.arguments or "{}")
    except ValueError as exc:
        raise ToolArgsError(f"{call.name}: arguments are not valid JSON: {exc}") from exc
    args_type = entry[1] if entry else special[1]  # type: ignore[index]
    try:
        args = args_type.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(describe_errors(exc, top="arguments"))
        raise ToolArgsError(f"{call.name}: invalid arguments: {problems}") from exc
    if entry is not None:
        action: AnyAction = entry[2](args)
        return action
    return args  # type: ignore[return-value]
