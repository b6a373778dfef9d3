"""The environment of an execution: the task's ``Env``, values forwarded from this node's own
environment (``env:NAME``, only for names the operator allows), and the ``BACALHAU_*``
variables every execution gets (Bacalhau v1.7+, ``pkg/compute/envvars.go``), its ports'
among them.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence

from bacalhau.compute._bidder import BidRequest, BidVerdict
from bacalhau.errors import ExecutionFailed
from bacalhau.models import (
    HOST_PORT_ENV_PREFIX,
    PORT_ENV_PREFIX,
    Execution,
    Job,
    PortMapping,
    env_name_allowed,
    forwarded_env_name,
)

__all__ = ["EnvForwardingAllowed", "execution_environment", "forwarding_refusal"]


def forwarding_refusal(job: Job, allow_list: Collection[str], host_env: Mapping[str, str]) -> str:
    """Why this node cannot fill the job's ``env:`` references ("" when it can)."""
    for key, value in sorted(job.task.env.items()) if job.tasks else ():
        name = forwarded_env_name(value)
        if name is None:
            continue
        if not env_name_allowed(name, allow_list):
            return (
                f"this node does not forward the host variable {name} (Tasks[0].Env.{key}): "
                "it is not in the operator's Compute.Env.AllowList"
            )
        if name not in host_env:
            return f"this node does not have the host variable {name} (Tasks[0].Env.{key})"
    return ""


class EnvForwardingAllowed:
    """Bid only when every ``env:NAME`` of the job is a name the operator allows (the
    ``Compute.Env.AllowList`` patterns, shell-style wildcards) and set on this node."""

    def __init__(
        self, allow_list: Collection[str], *, host_env: Mapping[str, str] | None = None
    ) -> None:
        self._allow = tuple(allow_list)
        self._host_env = os.environ if host_env is None else host_env

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        reason = forwarding_refusal(request.job, self._allow, self._host_env)
        return BidVerdict.reject(reason) if reason else BidVerdict.accept()


def execution_environment(
    execution: Execution,
    job: Job,
    *,
    node_id: str,
    allow_list: Collection[str],
    host_env: Mapping[str, str] | None = None,
    ports: Sequence[PortMapping] = (),
) -> dict[str, str]:
    """The variables an execution runs with: ``Task.Env`` with its ``env:`` references
    filled from this node's environment, then the ``BACALHAU_*`` variables (which win; a
    deterministic WASM run gets only the job's, none that differ between executions).

    ``ports`` are the execution's allocated port mappings: each gives
    ``BACALHAU_HOST_PORT_<Name>`` (its host port) and ``BACALHAU_PORT_<Name>`` (the port the
    task listens on: a Bridge mapping's container port, else the host port itself)."""
    host = os.environ if host_env is None else host_env
    reason = forwarding_refusal(job, allow_list, host)
    if reason:
        # The bid already checked this; the operator may have changed it since.
        raise ExecutionFailed(reason, hint="ask the operator to allow the variable")
    env: dict[str, str] = {}
    for key, value in job.task.env.items():
        name = forwarded_env_name(value)
        env[key] = host[name] if name is not None else value
    env.update(
        {
            "BACALHAU_JOB_ID": job.id,
            "BACALHAU_JOB_NAME": job.name,
            "BACALHAU_JOB_NAMESPACE": job.namespace,
            "BACALHAU_JOB_TYPE": job.type,
            # 1 for a verified job: its executions are replicas, not partitions.
            "BACALHAU_PARTITION_COUNT": str(job.partition_count),
        }
    )
    if not job.task.runs_deterministically():
        # A deterministic run sees only what is a function of the job, so that every
        # execution gives the same bytes: nothing that tells executions apart.
        env.update(
            {
                "BACALHAU_EXECUTION_ID": execution.id,
                "BACALHAU_NODE_ID": node_id,
                "BACALHAU_PARTITION_INDEX": str(execution.partition_index),
            }
        )
    for port in ports:
        env[HOST_PORT_ENV_PREFIX + port.name] = str(port.static)
        # Bacalhau sets this one only for a Bridge mapping; on the host's network the task
        # listens on the host port, so it gets that: one variable to listen on either way.
        env[PORT_ENV_PREFIX + port.name] = str(port.target or port.static)
    return env
