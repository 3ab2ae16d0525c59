"""The demo: a billing portal to run tasks against (``portal``) and its task files (``tasks/``)."""

from pathlib import Path

__all__ = ["DEMO_TASK", "PAY_TASK", "TASKS_DIR"]

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
DEMO_TASK = TASKS_DIR / "unpaid-invoices.yaml"
PAY_TASK = TASKS_DIR / "pay-invoice.yaml"
