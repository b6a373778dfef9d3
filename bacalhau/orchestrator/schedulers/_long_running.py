"""What daemon and service jobs share: their executions are meant to run until stopped, so
one that ends (even successfully) ended unexpectedly and is restarted after a backoff."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bacalhau.models import Execution, ExecutionStateType, never_retried
from bacalhau.orchestrator._attempts import shut_down
from bacalhau.orchestrator._retries import RetryPolicy

E = ExecutionStateType

#: States in which a node refused an execution: it is not asked again for this job.
_REFUSED = (E.ASK_FOR_BID_REJECTED, E.BID_REJECTED)


def ended(executions: Sequence[Execution]) -> list[Execution]:
    """Executions that stopped running on their own: failed, or completed (which a
    long-running execution should never do, so it counts as a failure)."""
    return [
        replace(e, compute_state=E.FAILED) if e.compute_state == E.COMPLETED else e
        for e in executions
        if e.compute_state in (E.FAILED, E.COMPLETED)
    ]


def ranking_view(executions: Sequence[Execution]) -> list[Execution]:
    """What node ranking should see of a long-running job's past: its live executions (a
    node runs one at most), the refusals that say a node will not take it again, and runs a
    node interrupted as it shut down (it takes the job again once back). Other ended
    executions are left out so a node can run the job again after a crash."""
    return [
        e
        for e in executions
        if e.is_active()
        or e.compute_state in _REFUSED
        or never_retried(e.compute_details)
        or shut_down(e)
    ]


def restart_time(policy: RetryPolicy, previous: Sequence[Execution]) -> int:
    """When (Unix ns) a replacement for these ended executions may start (0: now). The
    backoff grows with each failure and is capped by the policy's ``MaxDelay``."""
    return policy.retry_time(ended(previous))
