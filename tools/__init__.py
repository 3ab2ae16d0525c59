"""What an agent can do in a page: observe it, and act on it with typed actions.

``Page`` is Playwright's page, re-exported so the runtime names it without importing Playwright
(only ``tools`` and ``profiles`` do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from playwright.async_api import Page

    from .actions import (
        ACTION_TYPES,
        LOCATOR_FIELDS,
        Action,
        AnyAction,
        Back,
        Click,
        Download,
        Extract,
        Fill,
        Hover,
        Locate,
        Navigate,
        Press,
        Scroll,
        Select,
        SideEffect,
        SwitchTab,
        Upload,
        WaitFor,
        action_target,
    )
    from .compact import compact_snapshot, page_string, page_text, site_path
    from .errors import (
        ActionError,
        ActionTimeoutError,
        AmbiguousTargetError,
        ElementNotFoundError,
        NavigationError,
        UploadNotAllowedError,
    )
    from .execute import ActionContext, ActionResult, execute, is_visible, locate
    from .facts import PROBED_KINDS, Checked, action_facts, allowlist_facts, probe
    from .highlight import highlighted_screenshot
    from .isolated import Isolated
    from .marks import marked_screenshot, parse_boxes
    from .navigation import ALLOWED_SCHEMES, BLANK, refused_scheme, site_allowlist
    from .observe import Observation, TabInfo, observe, screenshot
    from .snapshot import (
        ACTIONABLE_ROLES,
        SnapshotNode,
        parse_snapshot,
        snapshot_elements,
        walk_snapshot,
    )
    from .tabs import Tabs

__all__ = [
    "ACTIONABLE_ROLES",
    "ACTION_TYPES",
    "ALLOWED_SCHEMES",
    "BLANK",
    "LOCATOR_FIELDS",
    "PROBED_KINDS",
    "Action",
    "ActionContext",
    "ActionError",
    "ActionResult",
    "ActionTimeoutError",
    "AmbiguousTargetError",
    "AnyAction",
    "Back",
    "Checked",
    "Click",
    "Download",
    "ElementNotFoundError",
    "Extract",
    "Fill",
    "Hover",
    "Isolated",
    "Locate",
    "Navigate",
    "NavigationError",
    "Observation",
    "Page",
    "Press",
    "Scroll",
    "Select",
    "SideEffect",
    "SnapshotNode",
    "SwitchTab",
    "TabInfo",
    "Tabs",
    "Upload",
    "UploadNotAllowedError",
    "WaitFor",
    "action_facts",
    "action_target",
    "allowlist_facts",
    "compact_snapshot",
    "execute",
    "highlighted_screenshot",
    "is_visible",
    "locate",
    "marked_screenshot",
    "observe",
    "page_string",
    "page_text",
    "parse_boxes",
    "parse_snapshot",
    "probe",
    "refused_scheme",
    "screenshot",
    "site_allowlist",
    "site_path",
    "snapshot_elements",
    "walk_snapshot",
]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
