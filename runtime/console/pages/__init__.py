"""The console's pages, one module per section; each has a ``router``."""

from __future__ import annotations

from fastapi import APIRouter

from runtime.console.pages import (
    alerts,
    approvals,
    audit,
    memory,
    profiles,
    run,
    runs,
    schedules,
    usage,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    runs.router,
    run.router,
    approvals.router,
    alerts.router,
    schedules.router,
    profiles.router,
    memory.router,
    usage.router,
    audit.router,
)
"""Every section's router, mounted under ``/console``."""
