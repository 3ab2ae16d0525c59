"""``scripts/cluster --for 40`` (its Python entry, run as a process the way the script runs it):
PostgreSQL, an S3 server, one serve and two workers on this machine; it exits 0 only when fires
succeeded on both workers, none ran twice and the serve showed their replays from the object
store; it leaves no process, port or folder behind and prints no password."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from runtime.demo.portal import USERS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_cluster_demo_runs_fires_on_both_workers_once_each_and_cleans_up() -> None:
    # This checkout's code, in the demo and in every host it starts.
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env.pop("CORRAL_HOME", None)
    done = subprocess.run(
        [sys.executable, "-m", "runtime.demo.cluster", "--for", "40"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "cluster check: ok" in out

    succeeded = re.search(
        r"summary: (\d+) fires succeeded \(worker-1: (\d+), worker-2: (\d+)\)", out
    )
    assert succeeded, out
    total, one, two = (int(g) for g in succeeded.groups())
    assert one >= 1 and two >= 1 and total == one + two
    assert "summary: at most 1 run per fire attempt and 1 successful run per fire" in out
    # Each printed fire names the worker that ran it; both appear.
    ran_on = set(re.findall(r"fire \w+@\S+ succeeded on (worker-\d)", out))
    assert ran_on == {"worker-1", "worker-2"}, out
    for name in ("worker-1", "worker-2"):
        assert re.search(
            rf"replay: run \S+ ran on {name}; with {name}'s folder moved away, the serve's "
            r"console shows its replay with all \d+ screenshots, from the object store",
            out,
        ), out

    # Nothing left behind: the hosts' processes, the servers' ports, the temporary folder.
    pids = [int(p) for p in re.findall(r"^(?:serve|worker-\d) +pid (\d+)", out, re.M)]
    assert len(pids) == 3, out
    assert not [p for p in pids if psutil.pid_exists(p)]
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", out)]
    assert len(set(ports)) >= 4, out  # PostgreSQL, S3, the portal, the serve
    assert not [p for p in set(ports) if listening(p)]
    homes = re.search(r"CORRAL_HOME under (\S+),", out)
    assert homes and not Path(homes.group(1)).exists()

    # The demo users' passwords went to the vault only.
    for user in USERS.values():
        assert user.password not in out + done.stderr
