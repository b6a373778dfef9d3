"""The answers one node's batch of asks brought back are applied in one store transaction
(one commit), each answer as alone: its failure is undone and reported alone, and every
caller learns its own outcomes once the commit went through."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from bacalhau.errors import InvalidRequest
from bacalhau.models import (
    BidResult,
    ComputeFailure,
    Event,
    HistoryType,
    JobHistory,
    RunResult,
    now_ns,
)
from bacalhau.orchestrator import JobStore
from bacalhau.orchestrator._answer_groups import AnswerGroups
from tests.orchestrator.test_job_versions import _wasm_job


def _store(tmp_path: Path) -> JobStore:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_wasm_job("j-answers"))
    return store


def _applier(store: JobStore, commits: list[int]):  # type: ignore[no-untyped-def]
    """Applies an answer as the requester's reports do: a transaction of its own (nested in
    the group's), one history item per callback; an execution named e-bad fails it."""

    async def apply(
        callbacks: Sequence[BidResult | RunResult | ComputeFailure],
    ) -> list[BaseException | None]:
        with store.transaction():
            for c in callbacks:
                store.add_history(
                    JobHistory(
                        seq_num=0,
                        type=HistoryType.EXECUTION,
                        job_id="j-answers",
                        event=Event(message=c.execution_id, topic="test"),
                        time=now_ns(),
                        execution_id=c.execution_id,
                    )
                )
                if c.execution_id == "e-bad":
                    raise InvalidRequest("e-bad cannot be applied")
        commits.append(store._depth)  # 0: a transaction of its own; 1: in the group's
        return [None] * len(callbacks)

    return apply


def _bid(execution_id: str) -> BidResult:
    return BidResult(execution_id, "j-answers", "n-1", accepted=True)


def _applied(store: JobStore) -> list[str]:
    rows = store._db.execute(
        "SELECT json_extract(data, '$.exec') FROM history WHERE job_id = 'j-answers'"
        " AND json_extract(data, '$.exec') != '' ORDER BY seq"
    ).fetchall()
    return [r[0] for r in rows]


async def test_one_turns_answers_share_one_commit_and_keep_their_own_outcomes(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    depths: list[int] = []
    groups = AnswerGroups(_applier(store, depths), store.transaction)
    outcomes = await asyncio.gather(
        groups.apply("n-1", [_bid("e-1"), _bid("e-2")]),
        groups.apply("n-1", [_bid("e-bad")]),
        groups.apply("n-1", [_bid("e-3")]),
        groups.apply("n-2", [_bid("e-other")]),  # another node: its own transaction
        return_exceptions=True,
    )
    assert outcomes[0] == [None, None] and outcomes[2] == [None]
    assert isinstance(outcomes[1], InvalidRequest)
    assert outcomes[3] == [None]
    assert (groups.group_commits, groups.grouped_answers) == (1, 3)
    assert sorted(depths) == [0, 1, 1]  # e-bad raised before it counted
    # The failed answer was undone alone; the others committed.
    assert sorted(_applied(store)) == ["e-1", "e-2", "e-3", "e-other"]


async def test_a_lone_answer_is_applied_as_before(tmp_path: Path) -> None:
    store = _store(tmp_path)
    depths: list[int] = []
    groups = AnswerGroups(_applier(store, depths), store.transaction)
    assert await groups.apply("n-1", [_bid("e-1")]) == [None]
    assert (groups.group_commits, depths) == (0, [0])
    assert _applied(store) == ["e-1"]


async def test_a_caller_that_leaves_does_not_take_the_others_answers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    groups = AnswerGroups(_applier(store, []), store.transaction)
    first = asyncio.ensure_future(groups.apply("n-1", [_bid("e-1")]))
    await asyncio.sleep(0)  # the first waits for the turn to end
    second = asyncio.ensure_future(groups.apply("n-1", [_bid("e-2")]))
    first.cancel()
    assert await second == [None]
    assert _applied(store) == ["e-2"]
