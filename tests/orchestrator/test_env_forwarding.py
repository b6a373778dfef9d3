"""A job whose ``env:NAME`` reference no compute node forwards (no node's
``Compute.Env.AllowList`` matches ``NAME``) is refused at submit, naming the ``Env`` key,
unless it may wait for nodes to join."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import Job, NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from bacalhau.orchestrator._scheduler import SchedulerSettings
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_unsendable_jobs import EncodingCompute


def _node(node_id: str, *patterns: str) -> NodeInfo:
    info = compute_node_info(node_id)
    assert info.compute is not None
    info.compute.publishers = ["noop"]
    info.compute.env_allow_list = list(patterns)
    return info


def _job(env: dict[str, str], **timeouts: int) -> Job:
    task = {"Name": "main", "Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}, "Env": env}
    if timeouts:
        task["Timeouts"] = timeouts
    return Job.from_dict({"Type": "batch", "Count": 1, "Tasks": [task]})


def _orchestrator(tmp_path: Path, view: StaticNodeView, **settings: int) -> Orchestrator:
    return Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=EncodingCompute(),
        node_view=view,
        settings=SchedulerSettings(**settings),  # type: ignore[arg-type]
    )


async def test_a_name_no_node_allows_is_refused_naming_the_env_key(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(_node("node-a", "AWS_*"))
        await view.join(_node("node-b"))
        with pytest.raises(InvalidJobSpec) as refused:
            await orch.submit_job(_job({"LITERAL": "x", "TOKEN": "env:GITHUB_TOKEN"}))
    assert refused.value.field == "Tasks[0].Env.TOKEN"
    assert refused.value.to_dict()["Details"] == {"Field": "Tasks[0].Env.TOKEN"}
    assert "GITHUB_TOKEN" in str(refused.value)
    assert "Compute.Env.AllowList" in (refused.value.hint or "")


async def test_a_name_one_node_allows_by_wildcard_is_accepted(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(_node("node-a", "HOME"))
        await view.join(_node("node-b", "AWS_*", "GIT?UB_TOKEN"))
        result = await orch.submit_job(
            _job({"KEY": "env:AWS_ACCESS_KEY_ID", "TOKEN": "env:GITHUB_TOKEN"})
        )
        assert (await orch.get_job(result.job_id)).task.env["KEY"] == "env:AWS_ACCESS_KEY_ID"


async def test_a_pattern_matches_case_sensitively(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(_node("node-a", "aws_*"))
        with pytest.raises(InvalidJobSpec):
            await orch.submit_job(_job({"KEY": "env:AWS_ACCESS_KEY_ID"}))


async def test_a_job_that_may_wait_for_nodes_is_accepted(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(_node("node-a"))
        await orch.submit_job(_job({"TOKEN": "env:GITHUB_TOKEN"}, QueueTimeout=60))
    async with _orchestrator(tmp_path / "default", view, default_queue_timeout=60) as orch:
        await orch.submit_job(_job({"TOKEN": "env:GITHUB_TOKEN"}))


async def test_a_requester_settling_after_a_start_accepts_the_job(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view, rejoin_grace=600) as orch:
        await orch.submit_job(_job({"TOKEN": "env:GITHUB_TOKEN"}))
