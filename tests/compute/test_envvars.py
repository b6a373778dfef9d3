"""An execution's environment: BACALHAU_* variables and env:NAME forwarding by allow-list."""

from __future__ import annotations

import pytest

from bacalhau.compute import BidRequest, EnvForwardingAllowed
from bacalhau.compute._envvars import execution_environment
from bacalhau.errors import ExecutionFailed
from bacalhau.models import Execution, Job, Resources

HOST = {"API_TOKEN": "secret", "AWS_REGION": "eu-west-1", "HOME": "/root"}


def _job(env: dict[str, str], count: int = 3, kind: str = "batch") -> Job:
    return Job.from_dict(
        {
            "ID": "j-1", "Name": "n", "Namespace": "ns", "Type": kind, "Count": count,
            "Tasks": [{"Name": "main", "Engine": {"Type": "docker"}, "Env": env}],
        }
    )  # fmt: skip


def test_every_execution_gets_the_bacalhau_variables() -> None:
    ex = Execution(id="e-1", job_id="j-1", node_id="n-1", partition_index=2)
    env = execution_environment(ex, _job({"A": "b"}), node_id="n-1", allow_list=(), host_env={})
    assert env == {
        "A": "b",
        "BACALHAU_JOB_ID": "j-1",
        "BACALHAU_JOB_NAME": "n",
        "BACALHAU_JOB_NAMESPACE": "ns",
        "BACALHAU_JOB_TYPE": "batch",
        "BACALHAU_EXECUTION_ID": "e-1",
        "BACALHAU_NODE_ID": "n-1",
        "BACALHAU_PARTITION_INDEX": "2",
        "BACALHAU_PARTITION_COUNT": "3",
    }


@pytest.mark.parametrize(
    ("kind", "count"), [("batch", "3"), ("service", "3"), ("ops", "1"), ("daemon", "1")]
)
def test_ops_and_daemon_executions_each_do_all_the_work(kind: str, count: str) -> None:
    """They run on every node they match: each one is the whole work, whatever Count says
    (a task sharding by these variables would otherwise process share 0 on every node)."""
    ex = Execution(id="e-1", job_id="j-1", node_id="n-1")
    job = _job({}, count=3, kind=kind)
    env = execution_environment(ex, job, node_id="n-1", allow_list=(), host_env={})
    assert (env["BACALHAU_PARTITION_INDEX"], env["BACALHAU_PARTITION_COUNT"]) == ("0", count)


def test_allowed_references_are_filled_from_the_host() -> None:
    ex = Execution(id="e-1", job_id="j-1", node_id="n-1")
    job = _job({"T": "env:API_TOKEN", "R": "env:AWS_REGION"})
    env = execution_environment(
        ex, job, node_id="n-1", allow_list=("API_TOKEN", "AWS_*"), host_env=HOST
    )
    assert (env["T"], env["R"]) == ("secret", "eu-west-1")


def test_a_reference_the_operator_did_not_allow_fails_the_run() -> None:
    ex = Execution(id="e-1", job_id="j-1", node_id="n-1")
    with pytest.raises(ExecutionFailed, match="HOME"):
        execution_environment(
            ex, _job({"H": "env:HOME"}), node_id="n", allow_list=("AWS_*",), host_env=HOST
        )


async def test_bid_is_refused_for_a_reference_not_allowed_with_the_reason() -> None:
    strategy = EnvForwardingAllowed(("AWS_*",), host_env=HOST)
    usage = Resources()
    refused = await strategy.evaluate(BidRequest("n", _job({"H": "env:HOME"}), usage))
    assert not refused.should_bid
    assert "HOME" in refused.reason and "Compute.Env.AllowList" in refused.reason
    unset = await strategy.evaluate(BidRequest("n", _job({"X": "env:AWS_NOPE"}), usage))
    assert not unset.should_bid and "AWS_NOPE" in unset.reason
    ok = await strategy.evaluate(BidRequest("n", _job({"R": "env:AWS_REGION"}), usage))
    assert ok.should_bid


def test_a_deterministic_run_gets_nothing_that_tells_executions_apart() -> None:
    job = _job({})
    job.task.engine.type = "wasm"
    job.task.engine.params = {"Deterministic": True}
    ex = Execution(id="e-1", job_id="j-1", node_id="n-1", partition_index=1)
    env = execution_environment(ex, job, node_id="n-1", allow_list=(), host_env={})
    assert "BACALHAU_JOB_ID" in env
    assert not {"BACALHAU_EXECUTION_ID", "BACALHAU_NODE_ID", "BACALHAU_PARTITION_INDEX"} & set(env)
