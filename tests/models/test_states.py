"""The state machines: the tables are the only source of truth, and they are coherent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bacalhau.errors import InvalidTransition
from bacalhau.models import (
    EXECUTION_TRANSITIONS,
    JOB_TRANSITIONS,
    LATE_RESULT_TRANSITIONS,
    LIVENESS_REVIVALS,
    LIVENESS_TRANSITIONS,
    LOCAL_TRANSITIONS,
    VERDICT_TRANSITIONS,
    ExecutionStateType,
    JobStateType,
    LivenessState,
    LocalExecutionState,
    check_execution_transition,
    check_job_transition,
    check_liveness_transition,
    check_local_transition,
)


def test_terminal_states_have_no_exits() -> None:
    for state, targets in JOB_TRANSITIONS.items():
        if state in (JobStateType.COMPLETED, JobStateType.STOPPED):
            assert not targets
    for es, etargets in EXECUTION_TRANSITIONS.items():
        # The verifier's verdict on a completed replica, and a lost node's late result kept,
        # are the only exits of terminal states.
        ordinary = etargets - _terminal_exits(es)
        assert es.is_terminal() == (not ordinary) or es == ExecutionStateType.UNDEFINED
    for ls, ltargets in LOCAL_TRANSITIONS.items():
        assert ls.is_terminal() == (not ltargets)


def _terminal_exits(state: ExecutionStateType) -> frozenset[ExecutionStateType]:
    return VERDICT_TRANSITIONS.get(state, frozenset()) | LATE_RESULT_TRANSITIONS.get(
        state, frozenset()
    )


def test_failed_job_can_only_be_stopped() -> None:
    check_job_transition(JobStateType.FAILED, JobStateType.STOPPED)
    with pytest.raises(InvalidTransition):
        check_job_transition(JobStateType.FAILED, JobStateType.RUNNING)


@given(st.sampled_from(list(JobStateType)), st.sampled_from(list(JobStateType)))
def test_job_check_agrees_with_table(old: JobStateType, new: JobStateType) -> None:
    allowed = old == new or new in JOB_TRANSITIONS[old]
    try:
        check_job_transition(old, new)
        assert allowed
    except InvalidTransition:
        assert not allowed


@given(st.lists(st.sampled_from(list(ExecutionStateType)), min_size=1, max_size=12))
def test_execution_walks_never_leave_a_terminal_state(path: list[ExecutionStateType]) -> None:
    state = ExecutionStateType.NEW
    for nxt in path:
        try:
            check_execution_transition(state, nxt)
        except InvalidTransition:
            continue
        if state.is_terminal():
            assert nxt == state or nxt in _terminal_exits(state)
        state = nxt


def test_terminal_exits_are_a_verdict_and_a_late_result_kept() -> None:
    # A completed replica fails verification; a failed (lost) execution completes late.
    check_execution_transition(ExecutionStateType.COMPLETED, ExecutionStateType.FAILED)
    check_execution_transition(ExecutionStateType.FAILED, ExecutionStateType.COMPLETED)
    with pytest.raises(InvalidTransition):
        check_execution_transition(ExecutionStateType.CANCELLED, ExecutionStateType.COMPLETED)
    for state in (ExecutionStateType.COMPLETED, ExecutionStateType.FAILED):
        with pytest.raises(InvalidTransition):
            check_execution_transition(state, ExecutionStateType.RUNNING)


@given(st.lists(st.sampled_from(list(LocalExecutionState)), min_size=1, max_size=10))
def test_local_walks_never_leave_a_terminal_state(path: list[LocalExecutionState]) -> None:
    state = LocalExecutionState.CREATED
    for nxt in path:
        try:
            check_local_transition(state, nxt)
        except InvalidTransition:
            continue
        if state.is_terminal():
            assert nxt == state
        state = nxt


def test_wire_numberings() -> None:
    assert ExecutionStateType.COMPLETED.wire() == 7
    assert ExecutionStateType.COMPLETED.wire(v152=True) == 9
    assert ExecutionStateType.RUNNING.wire() == 5
    assert ExecutionStateType.CANCELLED.wire() == 9
    assert ExecutionStateType.from_wire(7) == ExecutionStateType.COMPLETED
    assert JobStateType.parse("completed") == JobStateType.COMPLETED


@given(
    st.lists(
        st.tuples(st.sampled_from(list(LivenessState)), st.booleans()), min_size=1, max_size=12
    )
)
def test_liveness_walks_revive_only_with_a_newer_record(
    path: list[tuple[LivenessState, bool]],
) -> None:
    state = LivenessState.ALIVE
    for nxt, newer_record in path:
        try:
            check_liveness_transition(state, nxt, newer_record=newer_record)
        except InvalidTransition:
            assert nxt != state
            assert nxt not in LIVENESS_TRANSITIONS[state] or not newer_record
            continue
        if state != nxt and nxt == LivenessState.ALIVE:
            assert newer_record
        if state.is_down() and not nxt.is_down():
            assert newer_record
        state = nxt


def test_liveness_table_is_coherent() -> None:
    assert set(LIVENESS_TRANSITIONS) == set(LivenessState)
    for old, new in LIVENESS_REVIVALS:
        assert new in LIVENESS_TRANSITIONS[old]
    # Left is the member's own last word for its record: no peer can turn it into Dead.
    assert LivenessState.DEAD not in LIVENESS_TRANSITIONS[LivenessState.LEFT]
    assert [s for s in LivenessState if s.is_down()] == [LivenessState.DEAD, LivenessState.LEFT]
