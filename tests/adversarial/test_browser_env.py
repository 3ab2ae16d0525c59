"""The browser gets no secrets of ours: a renderer exploit that reads ``/proc/self/environ`` (or
any Chromium process's) finds neither the master key nor an API key nor a webhook secret.

A real ``corral run`` subprocess is started with those secrets in its environment, so the pool
launches its own Chromium; while a step waits on the page, every Chromium process descended from
it is read.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
from pathlib import Path

import psutil
import pytest

from profiles import (
    BASE_ARGS,
    BrowserCrashedError,
    BrowserPool,
    MasterKey,
    ProfileSettings,
    browser_env,
    use_sandbox,
)
from runtime import Runtime, Settings
from tests.support.cli import CORRAL
from tests.support.hostile import HostileSite
from tests.support.wait import until_sync

pytestmark = pytest.mark.slow

_WAITING_PAGE = """<!doctype html><title>wait</title><p id=s>waiting</p>
<script>
setInterval(async () => {
  const r = await fetch('/flag');
  const t = await r.text();
  if (t.includes('released')) document.getElementById('s').textContent = 'released';
}, 100);
</script>"""


def _secret_env() -> dict[str, str]:
    key = base64.urlsafe_b64encode(MasterKey.generate().raw).decode()
    return {
        "CORRAL_MASTER_KEY": key,
        "OPENAI_API_KEY": "sk-openai-" + secrets.token_hex(12),
        "ANTHROPIC_API_KEY": "sk-ant-" + secrets.token_hex(12),
        "CORRAL_WEBHOOK_SECRET": "whsec-" + secrets.token_hex(12),
        "GITHUB_TOKEN": "ghp_" + secrets.token_hex(12),
    }


def _chromium_descendants(pid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if "chrom" in proc.name().lower():
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


async def _make_profile(home: Path, key: str, mode: str) -> None:
    async with Runtime.open(Settings(home=home, master_key=key)) as rt:
        await rt.profiles.create("victim", ProfileSettings(mode=mode))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["state", "persistent"])
def test_no_secret_in_any_chromium_environment(
    home: Path, site: HostileSite, tmp_path: Path, mode: str
) -> None:
    env = _secret_env()
    asyncio.run(_make_profile(home, env["CORRAL_MASTER_KEY"], mode))
    start = site.page("/wait", _WAITING_PAGE)
    site.page("/flag", "not yet")
    task = tmp_path / "probe.yaml"
    task.write_text(
        "name: env-probe\nprofile: victim\nallowed_domains: ['127.0.0.1']\n"
        f"step_timeout_s: 60\nsteps:\n  - goto: {start}\n  - wait_for: {{text: released}}\n"
    )
    proc = subprocess.Popen(
        [*CORRAL, "run", str(task), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "CORRAL_HOME": str(home)},
    )
    environs: dict[int, bytes] = {}
    cmdlines: list[list[str]] = []
    try:
        # The page polls /flag once it is loaded: from then on the run waits on the page.
        until_sync(
            lambda: site.requests("GET", "/flag") or proc.poll() is not None,
            60,
            "the run to load its page",
        )
        for chromium in _chromium_descendants(proc.pid):
            try:
                environs[chromium.pid] = Path(f"/proc/{chromium.pid}/environ").read_bytes()
                cmdlines.append(chromium.cmdline())
            except (FileNotFoundError, ProcessLookupError, psutil.NoSuchProcess):
                continue
    finally:
        site.page("/flag", "released")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    # The browser, its zygotes, a renderer, the network service...
    assert len(environs) >= 2, f"too few Chromium processes seen: {sorted(environs)}"
    for pid, environ in environs.items():
        names = {v.split(b"=", 1)[0].decode() for v in environ.split(b"\0") if v}
        assert not {n for n in names if n.startswith("CORRAL_")}, (pid, names)
        for name, value in env.items():
            assert value.encode() not in environ, f"{name} is in Chromium {pid}'s environment"
    # The browser process is the one with the Playwright pipe; as root only, no sandbox.
    browser = [c for c in cmdlines if "--remote-debugging-pipe" in c]
    assert browser, cmdlines
    assert all(("--no-sandbox" in c) == (os.geteuid() == 0) for c in browser)


def test_browser_env_keeps_what_chromium_needs_and_drops_secrets() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "DISPLAY": ":0",
        "XAUTHORITY": "/home/u/.Xauthority",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "XDG_SESSION_TOKEN": "leak-1",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "FONTCONFIG_PATH": "/etc/fonts",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus",
        "CORRAL_MASTER_KEY": "leak-2",
        "CORRAL_TOKEN": "leak-3",
        "OPENAI_API_KEY": "leak-4",
        "AWS_SECRET_ACCESS_KEY": "leak-5",
        "DB_PASSWORD": "leak-6",
        "GITHUB_TOKEN": "leak-7",
        "HTTPS_PROXY": "http://user:leak-8@proxy:3128",
        "LC_SECRET": "leak-9",
    }
    kept = browser_env(environ)
    assert not any(v.startswith("leak") or "leak" in v for v in kept.values()), kept
    for name in ("PATH", "HOME", "DISPLAY", "XAUTHORITY", "XDG_RUNTIME_DIR", "LC_ALL", "LANG"):
        assert kept[name] == environ[name]
    assert {"TMPDIR", "FONTCONFIG_PATH", "DBUS_SESSION_BUS_ADDRESS"} <= set(kept)


def test_sandbox_is_on_unless_root() -> None:
    assert use_sandbox(0) is False
    assert use_sandbox(1000) is True
    assert use_sandbox(65534) is True
    assert use_sandbox() is (os.geteuid() != 0)


def test_launch_options_ask_for_the_sandbox_when_not_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = BrowserPool(None, "/usr/bin/chromium")  # type: ignore[arg-type]
    monkeypatch.setenv("CORRAL_MASTER_KEY", "leak-in-launch-options")
    options = pool._launch_options(())
    assert options["chromium_sandbox"] is (os.geteuid() != 0)
    assert "leak-in-launch-options" not in options["env"].values()
    assert "--no-sandbox" not in options["args"] and list(BASE_ARGS) == options["args"]
    monkeypatch.setattr("profiles.pool.os.geteuid", lambda: 1000)
    # Playwright adds --no-sandbox exactly when chromium_sandbox is not True.
    assert pool._launch_options(())["chromium_sandbox"] is True
    monkeypatch.setattr("profiles.pool.os.geteuid", lambda: 0)
    assert pool._launch_options(())["chromium_sandbox"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="shows the flag's absence through root's refusal")
async def test_a_non_root_launch_really_asks_chromium_for_its_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chromium refuses to run as root without --no-sandbox: told we are not root, the pool
    launches without the flag, and the refusal comes back as a clear error."""
    monkeypatch.setattr("profiles.pool.os.geteuid", lambda: 1000)
    async with BrowserPool.start(os.environ.get("CORRAL_BROWSER")) as pool:
        with pytest.raises(BrowserCrashedError, match="could not start its sandbox"):
            await pool.browser()
