"""Redaction cost on a 100 kB text: the redactor beside the previous one (exact variants only).

Usage: ``python scripts/bench_redact.py [--write]``. The previous redactor is loaded from git
(``abd902d:profiles/redact.py``) so both run in the same process on the same text.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import string
import subprocess
import sys
import time
import types
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.redact import Redactor  # noqa: E402

OLD_COMMIT = "abd902d"
SECRETS = [
    "p~a!s'(s)*w%o&r<d>\"x\\y+ z é€",
    "sk-live-7Hq2ZpX9wLm4Rt8Vb3Nc6Yd1",
    "correct horse battery staple",
    "493817",  # a TOTP code
]
RUNS = 10
BEGIN, END = "<!-- bench_redact:begin -->", "<!-- bench_redact:end -->"


def old_redactor_class() -> Any:
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:profiles/redact.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("old_redact")
    module.__dict__["__name__"] = "old_redact"
    exec(compile(source, "old_redact.py", "exec"), module.__dict__)
    return module.Redactor


def corpus(size: int = 100_000) -> str:
    """Page-like text: words, markup, JSON and URL pieces; one secret near the end."""
    rng = random.Random(9)
    words = ["invoice", "total", "<td>", "</td>", "&amp;", "%20", '\\"', "2026-11-30", "$100.00"]
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        if rng.random() < 0.3:
            parts.append(rng.choice(words))
        else:
            parts.append("".join(rng.choices(string.ascii_letters + string.digits, k=8)))
    text = " ".join(parts)[:size]
    return text[: size - 200] + json.dumps(SECRETS[0]) + text[size - 200 :]


def timed(redactor: Any, text: str) -> tuple[float, float]:
    redactor.text(text)  # compile once, as a run does
    runs = []
    for _ in range(RUNS):
        start = time.perf_counter()
        redactor.text(text)
        runs.append((time.perf_counter() - start) * 1000)
    runs.sort()
    return median(runs), runs[int(len(runs) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    text = corpus()
    old, new = old_redactor_class()(), Redactor()
    for i, value in enumerate(SECRETS):
        old.add(value, f"{{{{secret:s{i}}}}}")
        new.add(value, f"{{{{secret:s{i}}}}}")
    old_p50, old_p95 = timed(old, text)
    new_p50, new_p95 = timed(new, text)
    # A hostile page: 100 kB of backslashes (every escape alternative starts with one).
    hostile = "\\" * 100_000
    old_h50, old_h95 = timed(old, hostile)
    new_h50, new_h95 = timed(new, hostile)
    assert "{{secret:s0}}" in new.text(text)
    lines = [
        BEGIN,
        "## Redaction (`scripts/bench_redact.py`)",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; a 100 kB page-like "
        f"text, {len(SECRETS)} secrets (one with `~!'()*%&<>\"\\+`, spaces and non-ASCII, a TOTP "
        f"code), {RUNS} runs each.",
        "",
        "| redactor | p50 ms | p95 ms | p50 ratio |",
        "|---|---|---|---|",
        f"| previous (exact variants, `{OLD_COMMIT}`) | {old_p50:.2f} | {old_p95:.2f} | 1.00 |",
        f"| every encoding per character | {new_p50:.2f} | {new_p95:.2f} | "
        f"{new_p50 / old_p50:.2f} |",
        f"| previous, 100 kB of backslashes | {old_h50:.2f} | {old_h95:.2f} | 1.00 |",
        f"| every encoding, 100 kB of backslashes | {new_h50:.2f} | {new_h95:.2f} | "
        f"{new_h50 / max(old_h50, 0.001):.0f} |",
        "",
        "Every repetition in the patterns is bounded, so the cost stays linear in the text "
        "whatever a page contains (the backslash row is the worst input found).",
        END,
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        current = path.read_text()
        if BEGIN in current:
            head, rest = current.split(BEGIN, 1)
            current = head + report + rest.split(END, 1)[1]
        else:
            current = current.rstrip("\n") + "\n\n" + report + "\n"
        path.write_text(current)


if __name__ == "__main__":
    main()
