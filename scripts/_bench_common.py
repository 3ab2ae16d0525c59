"""Helpers shared by the benchmark scripts.

Stdlib only (psutil optional) because it is imported both from the main venv
and from .venv-bench, which have different packages installed.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chrome", "headless_shell", "chrome_crashpad_handler")


def percentile(samples: Sequence[float], q: float) -> float:
    """q in [0, 100]; linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples_ms: Sequence[float]) -> dict[str, float | int | None]:
    """None (JSON null) instead of NaN when there are no samples, so output stays strict JSON."""
    n = len(samples_ms)
    if not n:
        return {"p50_ms": None, "p95_ms": None, "mean_ms": None, "n": 0}
    return {
        "p50_ms": round(percentile(samples_ms, 50), 2),
        "p95_ms": round(percentile(samples_ms, 95), 2),
        "mean_ms": round(sum(samples_ms) / n, 2),
        "n": n,
    }


def _is_chromium(name: str) -> bool:
    name = name.lower()
    return any(part in name for part in CHROMIUM_NAMES)


def chromium_processes_rss(root_pids: Iterable[int] | None = None) -> tuple[int, int]:
    """Count and total RSS of Chromium processes.

    With root_pids, only those processes and their descendants are counted, so a
    benchmark is not charged for browsers other tools left running. Without
    psutil, falls back to /proc (Linux only).
    """
    try:
        import psutil
    except ImportError:
        return _chromium_rss_procfs(root_pids)

    procs: dict[int, psutil.Process] = {}
    if root_pids is None:
        for p in psutil.process_iter(["name"]):
            if _is_chromium(p.info["name"] or ""):
                procs[p.pid] = p
    else:
        for pid in root_pids:
            try:
                root = psutil.Process(pid)
                procs[root.pid] = root
                procs.update({c.pid: c for c in root.children(recursive=True)})
            except psutil.Error:
                continue
    count = total = 0
    for p in procs.values():
        try:
            # Zombies await reaping by PID 1 here; they hold no memory.
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            total += p.memory_info().rss
            count += 1
        except psutil.Error:
            continue
    return count, total


def _chromium_rss_procfs(root_pids: Iterable[int] | None) -> tuple[int, int]:
    page = os.sysconf("SC_PAGE_SIZE")
    stats: dict[int, tuple[int, str, int]] = {}  # live pid -> (ppid, comm, rss bytes)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        # comm may contain spaces/parens, so split around the last ')'.
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        stats[int(entry)] = (int(fields[1]), comm, int(fields[21]) * page)

    if root_pids is None:
        chosen = {pid for pid, (_, comm, _) in stats.items() if _is_chromium(comm)}
    else:
        chosen = {pid for pid in root_pids if pid in stats}
        frontier = list(chosen)
        while frontier:
            parent = frontier.pop()
            kids = [
                pid for pid, (ppid, _, _) in stats.items() if ppid == parent and pid not in chosen
            ]
            chosen.update(kids)
            frontier.extend(kids)
    return len(chosen), sum(stats[pid][2] for pid in chosen)


def write_section(benchmarks_md: Path, name: str, markdown: str) -> None:
    """Replace (or append) the ``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->`` block."""
    text = benchmarks_md.read_text() if benchmarks_md.exists() else "# Benchmarks\n\n"
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown}{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    benchmarks_md.write_text(text)


def checkout(root: Path, rev: str, into: Path) -> Path:
    """The files of commit ``rev`` of the repository at ``root`` (no .git), in ``into``: to
    import that commit's corral from, beside today's, in the same benchmark run."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=root, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into
