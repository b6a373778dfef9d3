"""The operator's job defaults per job type (Bacalhau's ``JobDefaults``): what a job leaves
unset is filled in when it is submitted, before the requester's built-in defaults."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bacalhau.config import NodeConfig
from bacalhau.errors import JobSpecUnchanged
from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.models import Job
from bacalhau.node import start_node
from bacalhau.node._job_defaults import apply_job_defaults
from tests.client.hybrid import hybrid_node_config

DEFAULTS = (
    NodeConfig()
    .with_overrides(
        {
            "JobDefaults.Batch.Priority": 3,
            "JobDefaults.Batch.Task.Resources.CPU": "250m",
            "JobDefaults.Batch.Task.Resources.Memory": "256Mb",
            "JobDefaults.Batch.Task.Resources.Disk": "1Gb",
            "JobDefaults.Batch.Task.Publisher.Type": "noop",
            "JobDefaults.Batch.Task.Publisher.Params": "Note=default",
            "JobDefaults.Batch.Task.Timeouts.ExecutionTimeout": "10m",
            "JobDefaults.Batch.Task.Timeouts.TotalTimeout": "1h",
            "JobDefaults.Service.Task.Resources.CPU": "2",
        }
    )
    .job_defaults
)


def _job(job_type: str, **task: object) -> Job:
    return Job.from_dict(
        {
            "Type": job_type,
            "Count": 1,
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}, **task}],
        }
    )


def test_what_a_job_leaves_unset_comes_from_its_types_defaults() -> None:
    job = _job("batch")
    apply_job_defaults(job, DEFAULTS)
    task = job.task
    assert job.priority == 3
    assert (task.resources.cpu, task.resources.memory, task.resources.disk) == (
        "250m",
        "256Mb",
        "1Gb",
    )
    assert task.resources.gpu == ""
    assert (task.publisher.type, task.publisher.params) == ("noop", {"Note": "default"})
    assert (task.timeouts.execution_timeout, task.timeouts.total_timeout) == (600, 3600)


def test_what_a_job_sets_stays() -> None:
    job = _job(
        "batch",
        Resources={"CPU": "1", "Memory": "1Gb"},
        Publisher={"Type": "local"},
        Timeouts={"ExecutionTimeout": 30},
    )
    job.priority = 9
    apply_job_defaults(job, DEFAULTS)
    task = job.task
    assert job.priority == 9
    assert (task.resources.cpu, task.resources.memory, task.resources.disk) == ("1", "1Gb", "1Gb")
    assert task.publisher.type == "local"
    assert (task.timeouts.execution_timeout, task.timeouts.total_timeout) == (30, 3600)


def test_a_negative_timeout_is_left_for_validation_to_refuse() -> None:
    job = _job("batch", Timeouts={"ExecutionTimeout": -1})
    apply_job_defaults(job, DEFAULTS)
    assert job.task.timeouts.execution_timeout == -1
    assert job.task.timeouts.total_timeout == 3600


def test_each_type_has_its_own_defaults_and_long_running_ones_no_publisher() -> None:
    service = _job("service")
    apply_job_defaults(service, DEFAULTS)
    assert service.task.resources.cpu == "2" and service.priority == 0
    assert service.task.publisher.is_empty()
    assert service.task.timeouts.execution_timeout == 0
    ops = _job("ops")
    apply_job_defaults(ops, DEFAULTS)
    assert ops.task.resources.is_empty() and ops.task.publisher.is_empty()
    nameless = _job("")
    apply_job_defaults(nameless, DEFAULTS)
    assert nameless.task.resources.is_empty()


async def test_a_requester_applies_them_to_every_job_submitted(tmp_path: Path) -> None:
    data_dir = tmp_path / "hybrid"
    ClusterCA.create(tmp_path / "ca").issue_node_certificate(
        NodeIdentity.load_or_create(data_dir), data_dir=data_dir
    )
    config = hybrid_node_config(data_dir).with_overrides(
        {
            "JobDefaults.Batch.Task.Resources.CPU": "250m",
            "JobDefaults.Batch.Task.Timeouts.TotalTimeout": "1h",
            "Compute.AllocatedCapacity.CPU": "1",
            "Compute.AllocatedCapacity.Memory": "3Gi",
            "Orchestrator.Scheduler.WorkerCount": 2,
        }
    )
    async with AsyncExitStack() as stack:
        node = await start_node(config, stack)
        assert node.orchestrator is not None and node.compute is not None
        submitted = await node.orchestrator.submit_job(_job("batch"))
        job = await node.orchestrator.get_job(submitted.job_id)
        assert job.task.resources.cpu == "250m"
        assert job.task.resources.memory == "1Gb"  # the requester's built-in default
        assert job.task.timeouts.total_timeout == 3600
        # Compared with the job of its name, a job gets the same defaults: an unchanged
        # resubmission shows no difference, and is refused as unchanged.
        named = _job("batch")
        named.name = "with-defaults"
        await node.orchestrator.submit_job(named.copy())
        assert (await node.orchestrator.diff_job(named.copy())).diff == ""
        with pytest.raises(JobSpecUnchanged):
            await node.orchestrator.submit_job(named.copy())
        info = await node.compute.node_info()
        assert (info.max_capacity.cpu, info.max_capacity.memory) == (1.0, 3 * 2**30)
