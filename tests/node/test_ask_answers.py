"""Callbacks in the answer to an ask: a requester node and a compute node (noop engine) in
this process, over mutual-TLS gRPC, built by the composition root as ``bacalhau serve``
builds them. A short execution's bid answer and result come back in the answer to its
pre-approved ask; the next ask acknowledges them and the node forgets them; answered
callbacks nobody acknowledges are delivered again by a call; a requester that allows no
linger gets every callback by call, as before."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.models import Job, JobStateType
from bacalhau.node import RunningNode, start_node
from bacalhau.orchestrator._metrics import ANSWERED_CALLBACKS
from tests.node.test_hybrid import _config, sees, until


def _answered() -> float:
    return ANSWERED_CALLBACKS._value.get()


def _job(sleep: float = 0.0, cpu: float = 0.0) -> Job:
    params: dict[str, object] = {"Stdout": "hi\n"}
    if sleep:
        params["SleepSeconds"] = sleep
    task: dict[str, object] = {"Name": "main", "Engine": {"Type": "noop", "Params": params}}
    if cpu:
        task["Resources"] = {"CPU": f"{cpu:.3f}"}
    return Job.from_dict({"Type": "batch", "Tasks": [task]})


async def _cluster(
    tmp_path: Path, stack: AsyncExitStack, **requester_settings: object
) -> tuple[RunningNode, RunningNode]:
    ca = ClusterCA.create(tmp_path / "ca")
    for name in ("requester", "compute"):
        ca.issue_node_certificate(
            NodeIdentity.load_or_create(tmp_path / name), data_dir=tmp_path / name
        )
    # The longest linger a node grants: a noop run ends well within it, even on a busy
    # machine, so the answers carry what the tests expect of them.
    requester_settings.setdefault("ask_answer_linger", 0.1)
    requester = await start_node(
        _config(tmp_path / "requester", orchestrator=True, **requester_settings), stack
    )
    compute = await start_node(
        _config(tmp_path / "compute", compute=True, seeds=requester.grpc_address), stack
    )
    assert compute.compute is not None
    endpoint = compute.compute
    await until(lambda: sees(requester, compute.node_id), "the requester seeing the node")
    await until(lambda: endpoint.trust.is_trusted(requester.node_id), "trusting the requester")
    return requester, compute


async def _run(requester: RunningNode, job: Job) -> str:
    orch = requester.orchestrator
    assert orch is not None
    submitted = await orch.submit_job(job)
    for _ in range(400):
        current = await orch.get_job(submitted.job_id)
        if current.state.is_terminal():
            break
        await orch.wait_for_change(current.id, after_seq=orch.store.last_seq(current.id), timeout=1)
    assert current.state == JobStateType.COMPLETED, current.state_message
    return current.id


def _queued(compute: RunningNode, requester: RunningNode) -> int:
    assert compute.compute is not None
    return len(compute.compute.store.pending_callbacks(requester.node_id, limit=1000))


async def _history(requester: RunningNode, job_id: str) -> list[tuple[str, str]]:
    orch = requester.orchestrator
    assert orch is not None
    return [(str(h.type), h.event.message) for h in orch.store.history_of(job_id)]


async def test_a_short_execution_comes_back_in_the_answer_and_the_next_ask_acks_it(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        requester, compute = await _cluster(tmp_path, stack)
        before = _answered()
        first = await _run(requester, _job())
        # Its bid answer and its result, both in the answer: no call of the node's own.
        assert _answered() - before == 2
        # Kept at the node until acknowledged: the answer may have been lost on the way.
        assert _queued(compute, requester) == 2
        await _run(requester, _job())
        assert _answered() - before == 4
        # The second ask acknowledged the first's callbacks (deleted a moment later, with any
        # other acknowledgements of that moment); its own wait for the next ask.
        await until(lambda: _queued(compute, requester) == 2, "the first's callbacks forgotten")
        history = await _history(requester, first)
        assert ("ExecutionLevel", "Bid accepted by node") in history
        assert history[-1] == ("JobLevel", "Job completed")


async def test_callbacks_an_answer_carried_are_not_sent_again_by_a_call_at_once(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        requester, compute = await _cluster(tmp_path, stack)
        assert compute.compute is not None
        outbox = compute.compute.outbox
        await _run(requester, _job())
        # The end of the run's task comes after the answer took its result: it must not
        # send what the answer carried again at once (a call that would delete them). They
        # wait, unacknowledged, for the next ask or the grace.
        await until(lambda: outbox.pending_count() == 0, "the node's delivery idle")
        assert _queued(compute, requester) == 2


async def test_answered_callbacks_nobody_acknowledges_are_delivered_by_a_call(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        requester, compute = await _cluster(tmp_path, stack)
        job_id = await _run(requester, _job())
        history = await _history(requester, job_id)
        assert _queued(compute, requester) == 2
        # No further ask: after their grace (2 s) they go by DeliverCallbacks, where the
        # requester applies them as repeats, and the node forgets them.
        await until(lambda: _queued(compute, requester) == 0, "the node forgetting them", 10)
        assert await _history(requester, job_id) == history  # nothing applied twice


async def test_a_long_execution_answers_its_bid_and_sends_its_result_by_call(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        requester, compute = await _cluster(tmp_path, stack)
        before = _answered()
        await _run(requester, _job(sleep=0.5))
        assert _answered() - before == 1  # the bid answer; the result came by call
        # That call carried the answered bid answer again, first (the requester may not
        # have applied the answer yet): the node holds nothing more.
        await until(lambda: _queued(compute, requester) == 0, "the result delivered")


async def test_a_requester_that_allows_no_linger_gets_every_callback_by_call(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        requester, compute = await _cluster(tmp_path, stack, ask_answer_linger=0)
        before = _answered()
        await _run(requester, _job())
        assert _answered() == before
        await until(lambda: _queued(compute, requester) == 0, "the callbacks delivered")


async def test_a_queued_execution_that_ends_within_the_linger_comes_back_in_its_answer(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        requester, compute = await _cluster(tmp_path, stack)
        assert compute.compute is not None
        # Each job takes more than half of the node: the second waits in its queue for the
        # first to end, then runs; both end well within the linger.
        room = (await compute.compute.node_info()).max_capacity.cpu
        before = _answered()
        await asyncio.gather(*(_run(requester, _job(sleep=0.02, cpu=room * 0.6)) for _ in "ab"))
        assert _answered() - before == 4
