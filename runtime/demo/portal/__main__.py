"""Serve the demo portal: python -m runtime.demo.portal [--port 8765] [--db FILE]."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from runtime.demo.portal.data import USERS
from runtime.demo.portal.server import PortalServer


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m runtime.demo.portal", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--db", type=Path, help="SQLite file for sessions and state")
    parser.add_argument(
        "--reset", action="store_true", help="delete the --db file first (fresh demo state)"
    )
    args = parser.parse_args(argv)
    # Turn SIGTERM into a normal exit so the server is stopped by the with-block too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.reset and args.db is not None:
        args.db.unlink(missing_ok=True)
    with PortalServer(port=args.port, db_path=args.db) as server:
        print(f"Acme Billing portal at {server.url}")
        print(f"State: {args.db or 'in memory (lost on exit)'}")
        print("Demo users:")
        for user in USERS.values():
            extra = " (TOTP secret " + user.totp_secret + ")" if user.totp_secret else ""
            print(f"  {user.username} / {user.password}{extra}")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            # An Event wait (not a busy loop) so Ctrl-C is delivered promptly.
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nStopping.")


if __name__ == "__main__":
    main()
