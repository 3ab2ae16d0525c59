"""Typed actions: one pydantic model per tool, each declaring its side-effect class.

Elements are addressed by a snapshot ref (``ref: e7``, what models use) or, in scripts, by
role+name, label, text, placeholder, test_id or css. The side-effect class is the coarse risk of
the action type; policies refine it with what the target element actually is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ACTION_TYPES",
    "LOCATOR_FIELDS",
    "Action",
    "AnyAction",
    "Back",
    "Click",
    "Download",
    "Extract",
    "Fill",
    "Hover",
    "Locate",
    "Navigate",
    "Press",
    "Scroll",
    "Select",
    "SideEffect",
    "SwitchTab",
    "Upload",
    "WaitFor",
]


class SideEffect(StrEnum):
    """What an action can do to the world, from harmless to consequential."""

    READ = "read"
    INPUT = "input"
    NAVIGATE = "navigate"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    SUBMIT = "submit"


LOCATOR_FIELDS = ("ref", "role", "label", "text", "placeholder", "test_id", "css")


class Locate(BaseModel):
    """How to find an element; exactly one strategy (``name`` refines ``role``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    ref: str | None = Field(None, description="a ref from the AI snapshot, e.g. e7")
    role: str | None = Field(None, description="ARIA role, e.g. button, link, textbox")
    name: str | None = Field(None, description="accessible name, with role")
    label: str | None = None
    text: str | None = None
    placeholder: str | None = None
    test_id: str | None = None
    css: str | None = None
    exact: bool = Field(False, description="exact (case-sensitive, whole) name/text match")
    nth: int | None = Field(None, ge=0, description="pick this match (0-based) when several")

    target_required: ClassVar[bool] = False

    @model_validator(mode="after")
    def _one_strategy(self) -> Locate:
        given = [f for f in LOCATOR_FIELDS if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of {', '.join(LOCATOR_FIELDS)}; got {', '.join(given)}")
        if not given and self.target_required:
            raise ValueError(f"an element is required: give one of {', '.join(LOCATOR_FIELDS)}")
        if self.name is not None and self.role is None:
            raise ValueError("'name' needs 'role' (e.g. role: button, name: Sign in)")
        return self

    @property
    def has_target(self) -> bool:
        """True when a locator strategy is set."""
        return any(getattr(self, f) is not None for f in LOCATOR_FIELDS)

    def locator_spec(self) -> Locate:
        """Only the locator fields, as a plain Locate."""
        return Locate.model_validate(
            self.model_dump(include={*LOCATOR_FIELDS, "name", "exact", "nth"}, exclude_none=True)
        )

    def describe(self) -> str:
        """The target as a short human string, e.g. ``role=button name="Sign in"``."""
        if self.ref is not None:
            out = f"ref={self.ref}"
        elif self.role is not None:
            out = f"role={self.role}" + (f' name="{self.name}"' if self.name is not None else "")
        else:
            field = next((f for f in LOCATOR_FIELDS if getattr(self, f) is not None), None)
            if field is None:
                return "page"
            out = f'{field}="{getattr(self, field)}"'
        if self.exact:
            out += " exact"
        if self.nth is not None:
            out += f" nth={self.nth}"
        return out


class _Targeted(Locate):
    target_required: ClassVar[bool] = True


class Navigate(BaseModel):
    """Load a URL (relative URLs resolve against the task's start_url)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["navigate"] = "navigate"
    side_effect: ClassVar[SideEffect] = SideEffect.NAVIGATE
    url: str


class Click(_Targeted):
    """Click an element."""

    kind: Literal["click"] = "click"
    side_effect: ClassVar[SideEffect] = SideEffect.SUBMIT


class Fill(_Targeted):
    """Type a value into a text field (replacing its content)."""

    kind: Literal["fill"] = "fill"
    side_effect: ClassVar[SideEffect] = SideEffect.INPUT
    value: str


class Select(_Targeted):
    """Choose an option of a <select> by value or visible label."""

    kind: Literal["select"] = "select"
    side_effect: ClassVar[SideEffect] = SideEffect.INPUT
    option: str = Field(description="the option's value or visible label")


class Press(Locate):
    """Press a key (e.g. Enter, Tab, Control+A), on an element or the focused one."""

    kind: Literal["press"] = "press"
    side_effect: ClassVar[SideEffect] = SideEffect.INPUT
    key: str


class Scroll(Locate):
    """Scroll the page, or scroll an element into view."""

    kind: Literal["scroll"] = "scroll"
    side_effect: ClassVar[SideEffect] = SideEffect.READ
    direction: Literal["down", "up", "left", "right"] = "down"
    amount: int = Field(600, ge=1, le=100_000, description="pixels")


class Hover(_Targeted):
    """Move the mouse over an element."""

    kind: Literal["hover"] = "hover"
    side_effect: ClassVar[SideEffect] = SideEffect.READ


class WaitFor(Locate):
    """Wait until an element reaches a state, or the URL matches, or the page is loaded."""

    kind: Literal["wait_for"] = "wait_for"
    side_effect: ClassVar[SideEffect] = SideEffect.READ
    state: Literal["visible", "hidden", "attached", "detached"] = "visible"
    url: str | None = Field(None, description="a glob like **/dashboard, or a regex in /.../")
    load_state: Literal["load", "domcontentloaded", "networkidle"] | None = None
    timeout_s: float | None = Field(None, gt=0, le=3600)

    @model_validator(mode="after")
    def _something_to_wait_for(self) -> WaitFor:
        if not self.has_target and self.url is None and self.load_state is None:
            raise ValueError("give an element (e.g. text: Invoices), a 'url' or a 'load_state'")
        return self


class Back(BaseModel):
    """Go back in the active tab's history."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["back"] = "back"
    side_effect: ClassVar[SideEffect] = SideEffect.NAVIGATE


class SwitchTab(BaseModel):
    """Make another tab the active one (index as listed in the observation)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["switch_tab"] = "switch_tab"
    side_effect: ClassVar[SideEffect] = SideEffect.NAVIGATE
    index: int = Field(ge=0)


class Upload(_Targeted):
    """Set files on a file input; every file must be inside the allowed upload folder."""

    kind: Literal["upload"] = "upload"
    side_effect: ClassVar[SideEffect] = SideEffect.UPLOAD
    files: list[str] = Field(min_length=1)


class Download(_Targeted):
    """Click an element that starts a download; the file is saved in the run folder."""

    kind: Literal["download"] = "download"
    side_effect: ClassVar[SideEffect] = SideEffect.DOWNLOAD


class Extract(BaseModel):
    """Read a table (rows as dicts keyed by header) or text into a named result."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    kind: Literal["extract"] = "extract"
    side_effect: ClassVar[SideEffect] = SideEffect.READ
    as_: str = Field(alias="as", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    table: Locate | None = None
    text: Locate | None = None
    all: bool = Field(False, description="text: a list with the text of every match")
    next: Locate | None = Field(None, description="table: a 'next page' control to follow")
    max_pages: int = Field(50, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_source(self) -> Extract:
        if (self.table is None) == (self.text is None):
            raise ValueError("give exactly one of 'table' or 'text'")
        if self.next is not None and self.table is None:
            raise ValueError("'next' follows pagination of a 'table'")
        return self


AnyAction = (
    Navigate
    | Click
    | Fill
    | Select
    | Press
    | Scroll
    | Hover
    | WaitFor
    | Back
    | SwitchTab
    | Upload
    | Download
    | Extract
)
"""Any typed action (a plain union, for annotations)."""

Action = Annotated[AnyAction, Field(discriminator="kind")]
"""Any typed action, validated by its ``kind`` (for pydantic)."""

ACTION_TYPES: dict[str, type[BaseModel]] = {
    cls.model_fields["kind"].default: cls for cls in AnyAction.__args__
}


def action_target(action: Any) -> Locate | None:
    """The element an action addresses, if any."""
    if isinstance(action, Extract):
        return action.table or action.text
    if isinstance(action, Locate) and action.has_target:
        return action.locator_spec()
    return None
