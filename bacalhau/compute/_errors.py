"""Failures that only a compute node produces (all rooted in :mod:`bacalhau.errors`)."""

from __future__ import annotations

from bacalhau.errors import ExecutionFailed


class NotEnoughCapacity(ExecutionFailed):
    """The execution is bigger than everything this node offers: it can never start here."""

    code = "NotEnoughCapacity"
    default_component = "Compute"
    default_hint = "lower the job's resources or run it on a bigger node"


class QueueTimeoutPassed(ExecutionFailed):
    """The execution waited in the node's queue past its job's QueueTimeout."""

    code = "QueueTimeout"
    retryable = True
    default_component = "Compute"
    default_hint = "raise Timeouts.QueueTimeout, or lower the job's resources"


class ExecutionInterrupted(ExecutionFailed):
    """The node stopped (or crashed) while the execution ran; another node may run it."""

    code = "ExecutionInterrupted"
    retryable = True
    default_component = "Compute"
    default_hint = "the job can be retried; it was stopped by its compute node going down"
