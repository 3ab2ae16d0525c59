"""MiniWoB++ pages on 127.0.0.1, each episode started with a seed, its reward kept for a check.

The HTML comes from the PyPI package ``miniwob`` (installed with ``--no-deps``: only its files
are used). Every task page is served with a short script added: the task generator is seeded
from the page's ``seed`` query parameter, the episode starts at once (what miniwob's own driver
does after load) and lasts an hour, and when the task ends its episode (its own checker calls
``core.endEpisode``), the page reports MiniWoB's reward globals (``WOB_REWARD_GLOBAL``,
``WOB_RAW_REWARD_GLOBAL``, ``WOB_DONE_GLOBAL``) to this server by a same-origin GET. A suite's
check URL ``{{var:miniwob_reward}}{{var:eval_run}}`` then reads them back as JSON.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import io
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from runtime.eval.errors import SuiteError
from runtime.eval.loopback import LoopbackServer

__all__ = ["MiniWobServer", "miniwob_html"]

_EPISODE = re.compile(r"[A-Za-z0-9_.:-]{1,120}")
_START = b"""<script>(function(){var s=document.currentScript;
var q=new URLSearchParams(location.search);var seed=q.get('seed')||'0';var ep=q.get('episode')||'';
window.addEventListener('load',function(){Math.seedrandom('corral-'+seed);
var end=core.endEpisode;core.endEpisode=function(){end.apply(core,arguments);
if(!ep){return;}
fetch('/reward/'+encodeURIComponent(ep)+'?reward='+WOB_REWARD_GLOBAL+'&raw='+
WOB_RAW_REWARD_GLOBAL+'&done='+WOB_DONE_GLOBAL,{cache:'no-store'});};
core.EPISODE_MAX_TIME=3600000;core.startEpisodeReal();});s.remove();})();</script>"""


def miniwob_html() -> Path:
    """The folder of MiniWoB++'s HTML in the installed ``miniwob`` package."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or spec.origin is None:
        raise SuiteError(
            "the MiniWoB++ suite needs the package 'miniwob' (its HTML only): "
            "pip install --no-deps miniwob==1.1.0"
        )
    html = Path(spec.origin).parent / "html"
    if not (html / "miniwob").is_dir():
        raise SuiteError(f"{html}: no MiniWoB++ task pages in the installed 'miniwob' package")
    return html


class _Handler(http.server.SimpleHTTPRequestHandler):
    rewards: dict[str, dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/reward/"):
            self._reward(parts.path.removeprefix("/reward/"), parse_qs(parts.query))
            return
        super().do_GET()

    def _reward(self, episode: str, query: dict[str, list[str]]) -> None:
        if not _EPISODE.fullmatch(episode):
            self.send_error(404)
            return
        if "done" in query:
            # Only the first report of an episode counts (its checker ran once).
            if episode not in self.rewards:
                raw = float(query.get("raw", ["0"])[0])
                self.rewards[episode] = {
                    "done": query["done"][0] == "true",
                    "reward": float(query.get("reward", ["0"])[0]),
                    "raw_reward": raw,
                    "positive": raw > 0,
                }
            body = b"{}"
        else:
            body = json.dumps(self.rewards.get(episode, {"done": False})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or path.parent.name != "miniwob" or not path.is_file():
            return super().send_head()
        body = path.read_bytes()
        end = body.lower().rfind(b"</body>")
        body = body[:end] + _START + body[end:] if end >= 0 else body + _START
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


class MiniWobServer(LoopbackServer):
    """MiniWoB++'s files on 127.0.0.1 (a free port); ``url`` is the base of the task pages."""

    def __init__(self, html: Path | None = None) -> None:
        self.html = html or miniwob_html()
        self.rewards: dict[str, dict[str, Any]] = {}
        handler = type("Handler", (_Handler,), {"rewards": self.rewards})
        super().__init__(functools.partial(handler, directory=str(self.html)), "miniwob-server")

    @property
    def url(self) -> str:
        """The base URL of the task pages, e.g. ``http://127.0.0.1:41234/miniwob/``."""
        return f"{self.origin}/miniwob/"
