"""The eval report: built from the runs' figures, shown as a rich table, JSON or Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from runtime.eval.metrics import RunFigures, compare, figures

__all__ = ["build_report", "print_report", "to_markdown"]


def build_report(
    title: str, labels: Sequence[str], runs: list[RunFigures], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report (JSON-ready): figures per config and per task, and with two configs, the
    second minus the first with 95% intervals."""
    by_config = {label: [r for r in runs if r.config == label] for label in labels}
    overall = {label: figures(rs) for label, rs in by_config.items()}
    tasks = list(dict.fromkeys(r.task for r in runs))
    per_task = {
        task: {
            label: figures([r for r in rs if r.task == task]).as_dict()
            for label, rs in by_config.items()
        }
        for task in tasks
    }
    report: dict[str, Any] = {
        "title": title,
        "configs": list(labels),
        **(extra or {}),
        "overall": {label: f.as_dict() for label, f in overall.items()},
        "tasks": per_task,
    }
    if len(labels) == 2:
        a, b = labels
        report["difference"] = {
            "of": f"{b} - {a}",
            **compare(by_config[a], by_config[b], overall[a], overall[b]),
        }
    return report


def _pct(rate: dict[str, Any], interval: bool = True) -> str:
    if not rate or rate.get("rate") is None:
        return "-"
    text = f"{rate['rate']:.0%} ({rate['hits']}/{rate['n']})"
    return f"{text} [{rate['low']:.0%}, {rate['high']:.0%}]" if interval else text


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _diff(d: dict[str, Any] | None, fmt: str) -> str:
    if not d:
        return "-"
    return f"{fmt.format(d['diff'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}]"


_ROWS: list[tuple[str, str | None, str]] = [
    ("runs", None, ""),
    ("success (95% Wilson)", "success", "{:+.0%}"),
    ("steps (mean)", "steps", "{:+.2f}"),
    ("tokens in / out / cached", "tokens", "{:+.0f}"),
    ("cost (USD)", "cost_usd", "{:+.5f}"),
    ("cost per success (USD)", None, ""),
    ("latency per step, median / p95 (ms)", None, ""),
    ("latency per task, median / p95 (s)", "task_latency_s", "{:+.2f}"),
    ("tool-call validity", "tool_call_validity", "{:+.0%}"),
    ("success with injected faults", "recovery_with_faults", "{:+.0%}"),
    ("injected failures / fallbacks", None, ""),
    ("human override rate", "human_override", "{:+.0%}"),
    ("shadow agreement", "shadow_agreement", "{:+.0%}"),
]


def _cells(f: dict[str, Any]) -> list[str]:
    rec = f["recovery"]
    return [
        str(f["runs"]),
        _pct(f["success"]),
        _num(f["steps_mean"], "{:.2f}"),
        f"{f['input_tokens']} / {f['output_tokens']} / {f['cached_tokens']}",
        f"{f['cost_usd']:.5f}",
        _num(f["cost_per_success"], "{:.5f}"),
        f"{_num(f['step_latency_ms']['median'], '{:.0f}')} / "
        f"{_num(f['step_latency_ms']['p95'], '{:.0f}')}",
        f"{_num(f['task_latency_s']['median'], '{:.2f}')} / "
        f"{_num(f['task_latency_s']['p95'], '{:.2f}')}",
        _pct(f["tool_call_validity"]),
        _pct(rec["with_faults"])
        + (f" vs {_pct(rec['without'], False)}" if rec["with_faults"]["n"] else ""),
        f"{rec['injected']} / {rec['fallbacks']}",
        _pct(f["human_override"]),
        _pct(f["shadow_agreement"]),
    ]


def _table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    labels = report["configs"]
    columns = [_cells(report["overall"][label]) for label in labels]
    diff = report.get("difference")
    header = ["figure", *labels] + ([f"difference ({diff['of']})"] if diff else [])
    rows = []
    for i, (name, key, fmt) in enumerate(_ROWS):
        row = [name, *(col[i] for col in columns)]
        if diff:
            row.append(_diff(diff.get(key), fmt) if key else "")
        rows.append(row)
    return header, rows


def _task_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    labels = report["configs"]
    header = ["task", *(f"{label}: success / steps / tokens" for label in labels)]
    rows = []
    for task, by in report["tasks"].items():
        cells = []
        for label in labels:
            f = by[label]
            cells.append(
                f"{_pct(f['success'], False)} / {_num(f['steps_mean'], '{:.1f}')} / "
                f"{f['input_tokens'] + f['output_tokens']}"
            )
        rows.append([task, *cells])
    return header, rows


def print_report(report: dict[str, Any], console: Console) -> None:
    """Rich tables: the figures per config (and their difference), then per task."""
    for title, (header, rows) in (
        (report["title"], _table_rows(report)),
        ("per task", _task_rows(report)),
    ):
        table = Table(title=title)
        for col in header:
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        console.print(table)


def to_markdown(report: dict[str, Any]) -> str:
    """The same tables in Markdown."""
    out = [f"# {report['title']}", ""]
    for header, rows in (_table_rows(report), _task_rows(report)):
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        out.extend("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows)
        out.append("")
    return "\n".join(out)
