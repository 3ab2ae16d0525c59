"""The approval requests a run made, or is waiting on."""

from __future__ import annotations

from runtime import RunResult, Runtime
from runtime.approvals import ApprovalRequest
from tests.support.wait import until

__all__ = ["next_request", "requests_of"]


async def next_request(
    rt: Runtime, timeout_s: float = 60.0, besides: ApprovalRequest | None = None
) -> ApprovalRequest:
    """The oldest pending approval request (other than ``besides``), once a run has asked
    (polls the store, as another process would)."""

    async def pending() -> list[ApprovalRequest]:
        return [
            r for r in await rt.approvals.list_requests() if besides is None or r.id != besides.id
        ]

    found = await until(pending, timeout_s, "a pending approval request")
    return found[-1]


async def requests_of(rt: Runtime, result: RunResult) -> list[ApprovalRequest]:
    """Every approval request the run made, oldest first."""
    assert result.run_id is not None
    return list(reversed(await rt.approvals.list_requests(None, str(result.run_id))))
