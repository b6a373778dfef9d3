"""CPU of the REST edges' own work per job, in process: what the requester's handlers and the
client spend on one trivial WASM job (a ~40 KB inline module) besides HTTP and the
orchestrator.

- ``submit_handler_us``: decoding a submission body (JSON, document check, ``Job``) and
  encoding the answer, as ``PUT /jobs`` does.
- ``history_answer_us``: the last answer of ``GET /jobs/{id}/history?until=terminal&
  include=executions`` for a finished job (the handler, with the job, its executions and
  eight history items read from a small in-memory orchestrator as the store serves them).
- ``client_submit_body_us``: the client encoding the submission.
- ``client_details_us``: the client decoding that history answer into the job and its
  executions (``wait_for_job``'s result).

Each figure is the best of five rounds of ``time.process_time`` over many calls: CPU, not
wall time, so a busy machine moves it less. Prints one JSON object.

    python bench/rest_edges.py
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import make_mocked_request
from job_latency import WASM, wasm_job

from bacalhau.api._errors import json_response
from bacalhau.api._jobs import _decode_submission, job_history
from bacalhau.api._server import build_app
from bacalhau.client._async import _job_details
from bacalhau.client._transport import encode_body
from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    HistoryType,
    Job,
    JobHistory,
    JobStateType,
    RunCommandResult,
    SpecConfig,
    new_evaluation_id,
    new_execution_id,
    new_job_id,
    now_ns,
)

E = ExecutionStateType


class FinishedJob:
    """The reads the history handler makes, answered for one completed job: copies of the job
    sharing its decoded spec, as the job store hands them out."""

    def __init__(self, job: Job) -> None:
        t = now_ns()
        job.id, job.namespace, job.state = new_job_id(), "default", JobStateType.COMPLETED
        job.revision, job.version, job.create_time, job.modify_time = 3, 1, t, t + 5_000_000
        self.job = job
        self.execution = Execution(
            id=new_execution_id(),
            job_id=job.id,
            node_id="QmComputeNodeA",
            eval_id=new_evaluation_id(),
            compute_state=E.COMPLETED,
            desired_state=ExecutionDesiredStateType.STOPPED,
            run_output=RunCommandResult(stdout="hello\n"),
            published_result=SpecConfig("local", {"URL": "http://127.0.0.1:6001/e.tgz"}),
            revision=5,
            create_time=t,
            modify_time=t + 4_000_000,
        )
        steps: list[tuple[E | None, E | None, JobStateType | None, JobStateType | None]] = [
            (None, None, None, JobStateType.PENDING),
            (None, E.NEW, None, None),
            (E.NEW, E.ASK_FOR_BID, None, None),
            (E.ASK_FOR_BID, E.ASK_FOR_BID_ACCEPTED, None, None),
            (E.ASK_FOR_BID_ACCEPTED, E.BID_ACCEPTED, None, None),
            (None, None, JobStateType.PENDING, JobStateType.RUNNING),
            (E.BID_ACCEPTED, E.COMPLETED, None, None),
            (None, None, JobStateType.RUNNING, JobStateType.COMPLETED),
        ]
        self.history = [
            JobHistory(
                seq_num=i + 1,
                type=HistoryType.JOB if job_new else HistoryType.EXECUTION,
                job_id=job.id,
                event=Event(message="step", topic="Scheduling", timestamp=t + i),
                time=t + i,
                new_revision=i + 1,
                node_id="" if job_new else self.execution.node_id,
                execution_id="" if job_new else self.execution.id,
                exec_state_previous=prev,
                exec_state_new=new,
                job_state_previous=job_prev,
                job_state_new=job_new,
            )
            for i, (prev, new, job_prev, job_new) in enumerate(steps)
        ]

    def _copy(self) -> Job:
        copy = Job.__new__(Job)
        for name in Job.__slots__:
            setattr(copy, name, getattr(self.job, name))
        return copy

    async def get_job(self, job_id: str) -> Job:
        return self._copy()

    async def list_executions(self, job_id: str) -> list[Execution]:
        execution = Execution(**{k: getattr(self.execution, k) for k in Execution.__slots__})
        execution.job = self._copy()
        return [execution]

    async def job_history(self, job_id: str, **_: Any) -> list[JobHistory]:
        return list(self.history)

    async def wait_for_change(self, job_id: str, *, after_seq: int, timeout: float) -> None:
        raise AssertionError("a finished job's history is answered at once")


def best_us(call: Callable[[], object], count: int) -> float:
    call()
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(count):
            call()
        rounds.append((time.process_time() - start) / count)
    return round(min(rounds) * 1e6, 1)


async def history_answer_us(finished: FinishedJob, count: int) -> tuple[float, bytes]:
    app = build_app(finished)  # type: ignore[arg-type]
    request = make_mocked_request(
        "GET",
        f"/api/v1/orchestrator/jobs/{finished.job.id}/history"
        "?until=terminal&include=executions&wait=30&limit=100",
        app=app,
        match_info={"job_id": finished.job.id},
        headers={"X-Bacalhau-Git-Version": "v1.5.2"},
    )
    body = (await job_history(request)).body
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(count):
            await job_history(request)
        rounds.append((time.process_time() - start) / count)
    assert isinstance(body, bytes)
    return round(min(rounds) * 1e6, 1), body


def main() -> None:
    job = wasm_job(WASM.read_bytes())
    submission = json.dumps({"Job": job.to_dict()}).encode()

    def submit_handler() -> None:
        _decode_submission(submission)
        json_response({"JobID": "j-1", "EvaluationID": "e-1", "Warnings": []})

    history_us, answer = asyncio.run(
        history_answer_us(FinishedJob(wasm_job(WASM.read_bytes())), 3000)
    )
    details = json.loads(answer)["Details"]
    figures = {
        "submission_bytes": len(submission),
        "history_answer_bytes": len(answer),
        "submit_handler_us": best_us(submit_handler, 3000),
        "history_answer_us": history_us,
        "client_submit_body_us": best_us(lambda: encode_body({"Job": job.to_dict()}), 3000),
        "client_details_us": best_us(lambda: _job_details(json.loads(answer)["Details"]), 3000),
        "client_details_decode_only_us": best_us(lambda: _job_details(details), 3000),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
