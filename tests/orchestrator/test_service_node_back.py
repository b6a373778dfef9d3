"""A running service short of a replica (one per node, and no node free for it) is looked at
again the moment a node joins or comes back, not only at its next timed look: a node's return
is when the replica can be placed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bacalhau.models import AskForBidRequest, BidResult, Job, JobStateType
from bacalhau.orchestrator import SchedulerSettings
from tests.orchestrator.node_view import compute_node_info
from tests.orchestrator.test_callbacks import requester_with_node_a

#: Timed looks far apart: only the node's return can place the replica within the test.
SLOW_LOOKS = SchedulerSettings(pre_approve=False, queue_backoff=60, queue_backoff_max=60)


def _service(count: int) -> Job:
    return Job.from_dict(
        {"Type": "service", "Count": count, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
    )


async def test_a_replica_waiting_for_a_node_is_placed_when_the_node_comes_back(
    tmp_path: Path,
) -> None:
    async with requester_with_node_a(tmp_path, SLOW_LOOKS) as ready:
        orch, compute, view = ready.orch, ready.compute, ready.view
        await view.join(compute_node_info("node-b"))
        job_id = (await orch.submit_job(_service(2))).job_id
        for _ in range(2):
            node, ask = await compute.next("ask")
            assert isinstance(ask, AskForBidRequest)
            await orch.on_bid_complete(BidResult(ask.execution.id, job_id, node, accepted=True))
            await compute.next("accept")
        await view.kill("node-b")
        for _ in range(100):  # the loss is evaluated in the background
            job = await orch.get_job(job_id)
            if job.state_message.startswith("1 of 2 replicas waiting for a node"):
                break
            await asyncio.sleep(0.02)
        assert job.state == JobStateType.RUNNING, job.state
        assert job.state_message.startswith("1 of 2 replicas waiting"), job.state_message

        await view.come_back("node-b")
        node, ask = await compute.next("ask")  # within a few seconds, not the 60 s look
        assert node == "node-b" and isinstance(ask, AskForBidRequest)
