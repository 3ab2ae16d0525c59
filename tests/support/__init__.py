"""Helpers the tests share, one module per topic; test modules and conftest files import from
here, never from each other.

- ``agent``: reading the compact page a fake model is shown; a planner that signs in first.
- ``approvals``: the approval requests a run made or is waiting on.
- ``cli``: the ``corral`` command, in-process (click's runner) or as a real process.
- ``demo``: demo-portal profiles and invoices.
- ``hostile``: a hostile site whose pages each test writes; scripted runs against it.
- ``leaks``: every form in which a secret could leak.
- ``net``: the guard that refuses connections off the machine.
- ``origins``: a two-origin site for the vault's scope tests.
- ``pages``: small fixture pages for the tools tests.
- ``processes``: Chromium processes started by the tests.
- ``sites``: fixture sites for the egress tests.
- ``wait``: polling for a condition instead of sleeping.
"""
