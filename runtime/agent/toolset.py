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
from collections.abc import Collection
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
    "Remember",
    "ToolArgsError",
    "parse_call",
    "tool_specs",
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RefArgs(_Args):
    ref: str
    """The element's ref from the page (``e12``)."""


class FillArgs(RefArgs):
    value: str
    """Text to type; a secret is written ``{{secret:NAME}}`` (the system prompt says so)."""


class SelectArgs(RefArgs):
    option: str


class PressArgs(_Args):
    key: str = Field(description="e.g. Enter, Tab, Control+A")
    ref: str | None = None


class ScrollArgs(_Args):
    direction: Literal["down", "up", "left", "right"] = "down"
    ref: str | None = Field(None, description="an element to scroll into view instead")


class NavigateArgs(_Args):
    url: str


class NoArgs(_Args):
    pass


class SwitchTabArgs(_Args):
    index: int = Field(ge=0)


class UploadArgs(RefArgs):
    files: list[str] = Field(min_length=1, description="names in the upload folder")


class WaitArgs(_Args):
    text: str


class Look(_Args):
    """Ask the vision model about the current screenshot."""

    question: str = Field(min_length=1)


class ExtractData(_Args):
    """Ask the extractor model to read data from the page into JSON."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    instruction: str = Field(min_length=1)
    json_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, description="the result's JSON schema"
    )


class Observe(_Args):
    """Show the whole current page next turn instead of what changed."""


class Remember(_Args):
    """Propose a note for later runs (kept only if this run succeeds)."""

    note: str = Field(min_length=1, max_length=500)
    about: Literal["task", "profile"] = Field(
        "task", description="task: every later run of it; profile: this account"
    )


class Done(_Args):
    """Finish the task."""

    result: Any
    """The task's result (it must match the task's output schema, when it has one)."""
    evidence: dict[str, str] | None = Field(
        None, description="per field of result: the page text it came from, copied as shown"
    )


_BROWSER: dict[str, tuple[str, type[_Args], Any]] = {
    "click": ("Click an element.", RefArgs, lambda a: Click(ref=a.ref)),
    "fill": (
        "Type into a field (replaces its text).",
        FillArgs,
        lambda a: Fill(ref=a.ref, value=a.value),
    ),
    "select": (
        "Choose an option of a select.",
        SelectArgs,
        lambda a: Select(ref=a.ref, option=a.option),
    ),
    "press": (
        "Press a key (on the element, or the focused one).",
        PressArgs,
        lambda a: Press(ref=a.ref, key=a.key),
    ),
    "scroll": (
        "Scroll the page.",
        ScrollArgs,
        lambda a: Scroll(ref=a.ref, direction=a.direction),
    ),
    "hover": ("Hover over an element.", RefArgs, lambda a: Hover(ref=a.ref)),
    "navigate": ("Open a URL.", NavigateArgs, lambda a: Navigate(url=a.url)),
    "back": ("Go back.", NoArgs, lambda a: Back()),
    "switch_tab": (
        "Switch to a tab (its index in the tab list).",
        SwitchTabArgs,
        lambda a: SwitchTab(index=a.index),
    ),
    "download": ("Click to download a file.", RefArgs, lambda a: Download(ref=a.ref)),
    "upload": (
        "Attach files to a file input.",
        UploadArgs,
        lambda a: Upload(ref=a.ref, files=a.files),
    ),
    "wait_for": ("Wait until a text shows.", WaitArgs, lambda a: WaitFor(text=a.text)),
}
_SPECIAL: dict[str, tuple[str, type[_Args]]] = {
    "look": ("Ask a vision model about a screenshot (elements labelled by ref).", Look),
    "extract_data": (
        "Read data from the page (tables, details) into JSON, kept under `name`.",
        ExtractData,
    ),
    "observe": ("Show the whole page again.", Observe),
    "remember": (
        "Keep a fact for later runs (a portal quirk, a rule); kept if this run succeeds.",
        Remember,
    ),
    "done": ("Finish with the task's result.", Done),
}
TOOLS = sorted([*_BROWSER, *_SPECIAL])


class ToolArgsError(ValueError):
    """A tool call that cannot be used: unknown tool, bad JSON or invalid arguments."""


def tool_specs(leave_out: Collection[str] = ()) -> list[ToolSpec]:
    """Every tool as a ToolSpec for the model, but those named in ``leave_out`` (a run offers
    only the tools it can carry out: ``upload`` needs the task's upload folder)."""
    specs = []
    for name, (description, args) in {
        **{k: (v[0], v[1]) for k, v in _BROWSER.items()},
        **_SPECIAL,
    }.items():
        if name not in leave_out:
            specs.append(ToolSpec(name=name, description=description, parameters=_schema(args)))
    return specs


def _schema(args: type[_Args]) -> dict[str, Any]:
    """The JSON schema of ``args`` as the model gets it, short: no titles, an optional value as
    its plain type, no ``additionalProperties`` on the arguments (corral validates them and
    tells the model what is wrong)."""
    schema = args.model_json_schema()
    for key in ("title", "description", "additionalProperties"):
        schema.pop(key, None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        if prop.get("additionalProperties") is True:
            del prop["additionalProperties"]  # the default
        types = prop.pop("anyOf", None)
        if types is not None:
            kept = [t for t in types if t != {"type": "null"}]
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
            if prop.get("default", 0) is None:
                del prop["default"]
    return schema


def parse_call(
    call: ToolCall, offered: Collection[str]
) -> AnyAction | Look | ExtractData | Observe | Remember | Done:
    """A tool call as a typed action (or a special tool), or ToolArgsError saying what is wrong;
    a tool not ``offered`` to the model (the run's tool list) is unknown."""
    entry = _BROWSER.get(call.name)
    special = _SPECIAL.get(call.name)
    if (entry is None and special is None) or call.name not in offered:
        raise ToolArgsError(
            f"unknown tool '{call.name}'; the tools are: {', '.join(sorted(offered))}"
        )
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
