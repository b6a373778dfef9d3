"""Jobs addressed by name through the orchestrator: a job submitted under an existing name
becomes that job's next version (Bacalhau v1.8+), the previous version's executions stopped;
refused when it changes nothing unless forced, or when it changes the job's type; the diff
such a submission would make; every call that takes a job ID takes its name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bacalhau.errors import ConflictJobState, InvalidJobSpec, JobNotFound, JobSpecUnchanged
from bacalhau.models import (
    AskAnswer,
    AskForBidRequest,
    BidDecision,
    CancelExecutionRequest,
    ExecutionDesiredStateType,
    Job,
    JobStateType,
    LogChunk,
    LogRequest,
    NodeInfo,
    NodeType,
)
from bacalhau.orchestrator import Orchestrator
from tests.orchestrator.node_view import StaticNodeView, compute_node_info

D = ExecutionDesiredStateType


class UnansweredAsks:
    """A compute transport whose nodes never answer: executions stay where the requester
    put them, and every message sent is recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (method, execution ID)

    def register_node(self, node_id: str, address: str) -> None:
        pass

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        self.sent.append(("AskForBid", request.execution.id))
        return None

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None:
        self.sent.append(("BidAccepted", decision.execution_id))

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None:
        self.sent.append(("BidRejected", decision.execution_id))

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None:
        self.sent.append(("CancelExecution", request.execution_id))

    async def stream_logs(self, node_id: str, request: LogRequest) -> AsyncIterator[LogChunk]:
        if False:  # pragma: no cover
            yield LogChunk()


@pytest.fixture
async def requester(tmp_path: Path) -> AsyncIterator[tuple[Orchestrator, UnansweredAsks]]:
    transport = UnansweredAsks()
    view = StaticNodeView()
    async with Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path / "requester",
        compute=transport,
        node_view=view,
    ) as orch:
        await view.join(compute_node_info("node-a"))
        yield orch, transport


def _job(name: str = "", *, stdout: str = "hi\n", job_type: str = "batch") -> Job:
    return Job.from_dict(
        {
            "Name": name,
            "Type": job_type,
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "noop", "Params": {"Stdout": stdout}},
                    "Publisher": {"Type": "noop"},
                    "Resources": {"CPU": "100m", "Memory": "64Mb"},
                }
            ],
        }
    )


async def _placed(orch: Orchestrator, job_id: str, version: int) -> None:
    for _ in range(200):
        if any(e.job_version == version for e in await orch.list_executions(job_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"version {version} of {job_id} was not placed")


async def test_submitting_a_name_again_makes_a_new_version_and_stops_the_old_one(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, transport = requester
    first = await orch.submit_job(_job("web"))
    await _placed(orch, first.job_id, 1)
    [old] = await orch.list_executions("web")
    again = await orch.submit_job(_job("web", stdout="bye\n"))
    assert again.job_id == first.job_id and again.evaluation_id != first.evaluation_id
    await _placed(orch, first.job_id, 2)
    job = await orch.get_job("web")
    assert (job.version, job.task.engine.params["Stdout"]) == (2, "bye\n")
    executions = {e.id: e for e in await orch.list_executions(first.job_id)}
    assert executions[old.id].desired_state == D.STOPPED
    assert "superseded by version 2" in executions[old.id].desired_message
    assert [e.job_version for e in executions.values() if e.id != old.id] == [2]
    assert ("CancelExecution", old.id) in transport.sent or ("BidRejected", old.id) in (
        transport.sent
    )
    history = await orch.job_history("web", event_type="job")
    updated = [h for h in history if h.event.message == "Job updated as version 2"]
    assert len(updated) == 1 and updated[0].job_state_new == JobStateType.PENDING
    await orch.stop_job("web", "done with it")
    versions = await orch.job_versions("web")
    assert [v.version for v in versions] == [1, 2]
    # Each in the state it has now, as a read of that version gives it.
    for v in versions:
        now = await orch.get_job("web", version=v.version)
        assert (v.state, v.revision, v.modify_time) == (now.state, now.revision, now.modify_time)
    assert versions[-1].state == JobStateType.STOPPED


async def test_an_unchanged_spec_is_refused_unless_forced(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, _ = requester
    first = await orch.submit_job(_job("nightly"))
    # Upper-case units and the requester's own stamps do not make a change.
    same = _job("nightly")
    same.task.resources.memory = "64MB"
    same.meta["bacalhau.org/client.instance.id"] = "another-client"
    with pytest.raises(JobSpecUnchanged) as refused:
        await orch.submit_job(same)
    assert "--force" in refused.value.hint
    assert refused.value.http_status == 409
    assert (await orch.get_job(first.job_id)).version == 1
    forced = await orch.submit_job(_job("nightly"), force=True)
    assert forced.job_id == first.job_id
    job = await orch.get_job("nightly")
    assert job.version == 2
    messages = [h.event.message for h in await orch.job_history(first.job_id)]
    assert "Job submitted again unchanged, as version 2 (forced)" in messages


async def test_another_type_under_the_same_name_is_refused_naming_the_type(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, _ = requester
    await orch.submit_job(_job("svc"))
    with pytest.raises(InvalidJobSpec) as refused:
        await orch.submit_job(_job("svc", job_type="ops"))
    assert refused.value.field == "Type"
    assert "batch job" in refused.value.message


async def test_jobs_without_a_name_get_a_new_id_each_time(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, _ = requester
    one = await orch.submit_job(_job())
    two = await orch.submit_job(_job())
    assert one.job_id != two.job_id
    assert (await orch.get_job(one.job_id)).name == one.job_id
    # The same name in another namespace is another job.
    dev = _job("web")
    dev.namespace = "dev"
    here = await orch.submit_job(_job("web"))
    there = await orch.submit_job(dev)
    assert here.job_id != there.job_id
    assert (await orch.get_job("web", namespace="dev")).id == there.job_id


async def test_an_idempotency_token_answers_the_first_submission_again(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, _ = requester
    await orch.submit_job(_job("tok"))
    first = await orch.submit_job(_job("tok", stdout="v1\n"), idempotency_token="t-1")
    again = await orch.submit_job(_job("tok", stdout="v1\n"), idempotency_token="t-1")
    assert (again.job_id, again.evaluation_id) == (first.job_id, first.evaluation_id)
    assert (await orch.get_job("tok")).version == 2


async def test_the_diff_compares_with_the_job_of_the_name(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, _ = requester
    first = await orch.submit_job(_job("report"))
    changed = await orch.diff_job(_job("report", stdout="new\n"))
    assert f"--- report (version 1, {first.job_id})" in changed.diff
    assert "+++ report (submitted)" in changed.diff
    lines = changed.diff.splitlines()
    assert any(line.startswith("-") and "Stdout" in line and "hi" in line for line in lines)
    assert any(line.startswith("+") and "Stdout" in line and "new" in line for line in lines)
    assert (await orch.diff_job(_job("report"))).diff == ""
    kind = await orch.diff_job(_job("report", job_type="ops"))
    assert any("type cannot change" in w for w in kind.warnings)
    with pytest.raises(JobNotFound, match="no job named 'unknown'"):
        await orch.diff_job(_job("unknown"))
    with pytest.raises(InvalidJobSpec) as unnamed:
        await orch.diff_job(_job())
    assert unnamed.value.field == "Name"
    # Diffing changes nothing.
    assert (await orch.get_job(first.job_id)).version == 1


async def test_stop_history_and_results_take_a_name(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, _ = requester
    submitted = await orch.submit_job(_job("stoppable"))
    assert await orch.job_history("stoppable")
    assert await orch.job_results("stoppable") == []
    await orch.stop_job("stoppable", "enough")
    assert (await orch.get_job(submitted.job_id)).state == JobStateType.STOPPED
    rerun, _ = await orch.rerun_job("stoppable")
    assert (rerun.id, rerun.version) == (submitted.job_id, 2)


async def test_a_job_that_has_not_run_yet_cannot_be_rerun(
    requester: tuple[Orchestrator, UnansweredAsks],
) -> None:
    orch, _ = requester
    first = await orch.submit_job(_job("waiting"))
    assert (await orch.get_job(first.job_id)).state in (JobStateType.PENDING, JobStateType.QUEUED)
    with pytest.raises(ConflictJobState, match="cannot rerun job in state") as refused:
        await orch.rerun_job(first.job_id)
    assert "stop it first" in refused.value.hint
    assert (await orch.get_job(first.job_id)).version == 1
    await orch.stop_job(first.job_id)
    rerun, _ = await orch.rerun_job(first.job_id)
    assert rerun.version == 2
