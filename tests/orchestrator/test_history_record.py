"""What a job's run leaves behind, field by field: its history items, its final state and
its executions' (times and IDs aside), for the paths most jobs take: one round (the ask goes
out pre-approved), two rounds, a declined bid placed on another node, a failed run, a stop.

The records below were taken from the requester before its scheduling passes were folded
into the callbacks that make them certain; any change to what a client reads of a job fails
here. Real components in one process, as in ``test_fast_path``: the orchestrator, real
compute endpoints with the noop executor, the callbacks through the hybrid node's wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from bacalhau.models import Job, JobStateType
from bacalhau.orchestrator import Orchestrator, SchedulerSettings
from tests.orchestrator.test_fast_path import (
    requester_with_one_node,
)


def _job(**params: Any) -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "noop", "Params": {"Stdout": "hi\n", **params}},
                    "Publisher": {"Type": "noop"},
                }
            ],
        }
    )


async def _until(orch: Orchestrator, job_id: str, done: Any) -> Job:
    for _ in range(400):
        job = await orch.get_job(job_id)
        if done(job):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never got there: {job.state}")


async def _record(
    tmp: Path,
    job: Job,
    *,
    settings: SchedulerSettings | None = None,
    picky_first: bool = False,
    stop: bool = False,
) -> dict[str, Any]:
    """Run ``job`` to its end; returns its history, state and executions without times and
    IDs (executions named by their order of appearance)."""
    async with AsyncExitStack() as stack:
        orch, _ = await requester_with_one_node(stack, tmp, settings, picky_first=picky_first)
        job_id = (await orch.submit_job(job)).job_id
        if stop:
            await _until(orch, job_id, lambda j: j.state == JobStateType.RUNNING)
            await orch.stop_job(job_id, "enough")
        await _until(orch, job_id, lambda j: j.state.is_terminal())
        # Let the evaluation that follows the end (stopping what still runs) settle.
        await _until(
            orch, job_id, lambda _: not any(e.is_active() for e in orch.store.executions_of(job_id))
        )
        await asyncio.sleep(0.05)
        executions = await orch.list_executions(job_id)
        history = await orch.job_history(job_id)
        final = await orch.get_job(job_id)
    with contextlib.closing(sqlite3.connect(tmp / "orchestrator" / "jobs.db")) as db:
        [(evaluations,)] = db.execute(
            "SELECT count(*) FROM evaluations WHERE job_id = ?", (job_id,)
        )
    names: dict[str, str] = {}
    for h in history:
        if h.execution_id:
            names.setdefault(h.execution_id, f"ex{len(names)}")

    def text(s: str) -> str:
        for ex_id, name in names.items():
            s = s.replace(ex_id, name)
        return s.replace(job_id, "job")

    record = {
        "history": [
            (
                h.seq_num,
                h.type,
                names.get(h.execution_id, ""),
                h.node_id,
                h.new_revision,
                h.job_state_previous and h.job_state_previous.wire,
                h.job_state_new and h.job_state_new.wire,
                h.exec_state_previous and h.exec_state_previous.label,
                h.exec_state_new and h.exec_state_new.label,
                h.event.topic,
                text(h.event.message),
                {k: text(v) for k, v in h.event.details.items()},
            )
            for h in history
        ],
        "job": [final.state.wire, text(final.state_message), final.revision, final.version],
        "executions": sorted(
            (
                names[e.id],
                e.node_id,
                e.compute_state.label,
                e.desired_state.name,
                text(e.compute_message),
                text(e.desired_message),
                e.revision,
                {k: text(v) for k, v in e.compute_details.items()},
                e.partition_index,
            )
            for e in executions
        ),
    }
    record["evaluations"] = evaluations
    # As JSON reads it back (tuples become lists).
    loaded: dict[str, Any] = json.loads(json.dumps(record))
    return loaded


RECORDS = Path(__file__).parent / "data" / "history_record.json"

SCENARIOS: dict[str, dict[str, Any]] = {
    "one_round": {"job": _job()},
    "two_rounds": {"job": _job(), "settings": SchedulerSettings(pre_approve=False)},
    "declined": {"job": _job(), "picky_first": True},
    "failed": {"job": _job(ErrorMessage="boom"), "settings": SchedulerSettings(max_attempts=1)},
    "stopped": {"job": _job(SleepSeconds=30), "stop": True},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_a_job_leaves_the_same_record(tmp_path: Path, scenario: str) -> None:
    expected = json.loads(RECORDS.read_text())[scenario]
    got = await _record(tmp_path, **SCENARIOS[scenario])
    assert got["history"] == expected["history"]
    assert got["job"] == expected["job"]
    assert got["executions"] == expected["executions"]


async def test_a_pass_that_only_records_the_next_state_needs_no_evaluation(tmp_path: Path) -> None:
    # One round: the submit's evaluation places the job; Running (its bid accepted) and
    # Completed (its run completed) are recorded with the node's reports.
    assert (await _record(tmp_path / "one", _job()))["evaluations"] == 1
    # Two rounds: the bid still waits for the scheduler's approval in an evaluation.
    two = await _record(tmp_path / "two", _job(), settings=SchedulerSettings(pre_approve=False))
    assert two["evaluations"] == 2


async def test_a_new_job_is_placed_in_its_submits_transaction(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        orch, transport = await requester_with_one_node(stack, tmp_path)
        submitted = await orch.submit_job(_job())
        # Committed with the job, before any other task ran: its execution, asked for, and
        # its evaluation done.
        [ex] = orch.store.executions_of(submitted.job_id)
        assert (ex.node_id, ex.compute_state.label) == ("node-a", "AskForBid")
        assert not [e for e in orch.store.pending_evaluations() if e.id == submitted.evaluation_id]
        job = await _until(orch, submitted.job_id, lambda j: j.state.is_terminal())
        assert job.state == JobStateType.COMPLETED
        assert transport.sent == [("AskForBid", "node-a", ex.id)]
