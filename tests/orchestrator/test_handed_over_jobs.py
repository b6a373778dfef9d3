"""A job handed over at submit (what the API servers do with the job they decoded) is kept
by the store as it is: it must read back exactly as the same job decoded from the store's
rows does, or a job would change when the cache drops it. A caller that does not hand its
job over may go on changing its object without changing the stored job."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from bacalhau.models import Job, NodeInfo, NodeType
from bacalhau.orchestrator import JobStore, Orchestrator
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_unsendable_jobs import EncodingCompute

_MODULE = "data:application/wasm;base64," + base64.b64encode(b"\0asm\1\0\0\0").decode()

#: Job documents of every shape the API takes, each with the optional parts it may have.
DOCUMENTS: list[dict[str, Any]] = [
    {
        "Type": "batch",
        "Count": 2,
        "Name": "docker-all-parts",
        "Namespace": "team-a",
        "Labels": {"env": "test", "team": "a"},
        "Meta": {"owner": "someone"},
        "Priority": 3,
        "Constraints": [{"Key": "zone", "Operator": "in", "Values": ["a", "b"]}],
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": "busybox:1.36",
                        "Entrypoint": ["sh", "-c"],
                        "Parameters": ["echo hi > /outputs/x"],
                        "EnvironmentVariables": ["A=1"],
                        "WorkingDirectory": "/tmp",
                    },
                },
                "Publisher": {"Type": "local"},
                "Env": {"KEY": "value"},
                "Meta": {"task": "meta"},
                "InputSources": [
                    {
                        "Alias": "data",
                        "Target": "/inputs/data",
                        "Source": {"Type": "s3", "Params": {"Bucket": "b", "Key": "k/*"}},
                    },
                    {
                        "Target": "/inputs/page",
                        "Source": {"Type": "urlDownload", "Params": {"URL": "https://x.test/a"}},
                    },
                ],
                "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                "Resources": {"CPU": "250m", "Memory": "64mb", "Disk": "1gb"},
                "Network": {"Type": "HTTP", "Domains": ["x.test"]},
                "Timeouts": {"ExecutionTimeout": 30, "QueueTimeout": 60},
            }
        ],
    },
    {
        "Type": "ops",
        "Tasks": [
            {
                "Name": "wasm-inline",
                "Engine": {
                    "Type": "wasm",
                    "Params": {
                        "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": _MODULE}}},
                        "Entrypoint": "_start",
                        "Parameters": ["a", "b"],
                        "EnvironmentVariables": {"X": "1"},
                    },
                },
            }
        ],
    },
    {
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "noop", "Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}}],
    },
]


def _orchestrator(tmp_path: Path, view: StaticNodeView) -> Orchestrator:
    return Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=EncodingCompute(),
        node_view=view,
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d["Tasks"][0]["Name"]))
async def test_a_handed_over_job_reads_as_the_store_decodes_it(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(compute_node_info("node-a"))
        submitted = await orch.submit_job(Job.from_dict(document), handed_over=True)
        kept = orch.store.get_job(submitted.job_id)
        # Another store on the same file has nothing cached: it decodes the rows.
        other = JobStore(tmp_path / "jobs.db")
        try:
            decoded = other.get_job(submitted.job_id)
        finally:
            other.close()
    # Same state columns: compare the specs, field by field and as the API shows them.
    for name in ("state", "state_message", "revision", "modify_time"):
        setattr(decoded, name, getattr(kept, name))
    assert kept == decoded
    assert kept.to_dict() == decoded.to_dict()


async def test_a_job_not_handed_over_stays_the_callers(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(compute_node_info("node-a"))
        job = Job.from_dict(DOCUMENTS[0])
        submitted = await orch.submit_job(job)
        # The caller reuses its object: the stored job must not follow.
        job.labels["env"] = "changed"
        job.tasks[0].env["KEY"] = "changed"
        job.name = "changed"
        stored = orch.store.get_job(submitted.job_id)
    assert stored.labels["env"] == "test"
    assert stored.tasks[0].env["KEY"] == "value"
    assert stored.name == "docker-all-parts"
