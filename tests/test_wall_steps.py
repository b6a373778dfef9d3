"""Forward steps of the wall clock are left out of the time elapsed since earlier instants;
instants written after a step, and steps back, are counted as the wall clock says."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from bacalhau import _wall_steps
from bacalhau._wall_steps import WallSteps, elapsed_ns
from bacalhau.models import (
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    Job,
    JobStateType,
    Task,
    TimeoutConfig,
    TriggeredBy,
)
from bacalhau.orchestrator import SchedulerSettings, overdue_trigger

S = 1_000_000_000
MINUTE = 60 * S


def test_a_forward_step_is_left_out_of_what_came_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = WallSteps()
    t0 = 1_000_000 * S
    assert steps.look(t0, 50 * S) == 0
    assert steps.look(t0 + 1 * S, 51 * S) == 0  # in step
    with caplog.at_level(logging.WARNING, logger="bacalhau"):
        assert steps.look(t0 + 2 * S + 10 * MINUTE, 52 * S) == 10 * MINUTE
    assert "stepped forward by 600.0s" in caplog.text
    now = t0 + 5 * S + 10 * MINUTE
    # An instant of before the step: 5 s ago, not 10 minutes and 5 s.
    assert steps.elapsed(t0, now) == 5 * S
    # One written after the step, in the new frame: as the wall clock says.
    assert steps.elapsed(t0 + 3 * S + 10 * MINUTE, now) == 2 * S
    # Between two instants before the step, nothing is taken out.
    assert steps.elapsed(t0, t0 + 1 * S) == 1 * S


def test_a_step_back_and_drift_change_nothing() -> None:
    steps = WallSteps()
    t0 = 1_000_000 * S
    steps.look(t0, 50 * S)
    assert steps.look(t0 + 1 * S - 10 * MINUTE, 51 * S) == 0  # back: work is late, not early
    assert steps.look(t0 + 2 * S - 10 * MINUTE + S // 2, 52 * S) == 0  # half a second: drift
    assert steps.elapsed(t0, t0 + 7 * S) == 7 * S


def test_the_process_wide_clock_counts_as_the_wall_clock_without_steps() -> None:
    now = time.time_ns()
    assert elapsed_ns(now - 3 * S, now) == 3 * S


def _running_job(create_time: int, started: int) -> tuple[Job, list[Execution]]:
    job = Job(
        id="j-steps",
        name="steps",
        namespace="default",
        type="batch",
        count=1,
        state=JobStateType.RUNNING,
        create_time=create_time,
        tasks=[Task(name="main", timeouts=TimeoutConfig(execution_timeout=60, total_timeout=3600))],
    )
    ex = Execution(
        id="e-steps",
        job_id=job.id,
        node_id="n-1",
        compute_state=ExecutionStateType.BID_ACCEPTED,
        desired_state=ExecutionDesiredStateType.RUNNING,
        modify_time=started,
    )
    return job, [ex]


def test_the_requesters_backstops_do_not_fire_for_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """An execution 20 s into an ExecutionTimeout of 60 s (plus the 30 s grace), when the wall
    clock steps forward by 10 minutes: not overdue. Without the step it would be, later."""
    steps = WallSteps()
    monkeypatch.setattr(_wall_steps, "_STEPS", steps)
    t0 = time.time_ns()
    job, executions = _running_job(create_time=t0 - 20 * S, started=t0 - 20 * S)
    settings = SchedulerSettings()
    steps.look(t0, 100 * S)
    steps.look(t0 + 1 * S + 10 * MINUTE, 101 * S)
    stepped_now = t0 + 1 * S + 10 * MINUTE
    assert overdue_trigger(job, executions, stepped_now, settings) == ""
    really_late = stepped_now + 80 * S
    assert overdue_trigger(job, executions, really_late, settings) == TriggeredBy.EXEC_TIMEOUT


def test_a_step_made_while_the_process_was_down_is_seen_on_the_same_boot() -> None:
    t0 = 1_000_000 * S
    before = WallSteps()
    before.look(t0, 50 * S)
    saved = before.saved()
    # Down for 30 s of boot time, during which the wall clock stepped 10 minutes forward.
    after = WallSteps()
    now = t0 + 30 * S + 10 * MINUTE
    assert after.resume(saved, now, 80 * S, same_boot=True) == 10 * MINUTE
    assert after.elapsed(t0 - 5 * S, now) == 35 * S
    # On another boot the boot-time clock started again: nothing can be told.
    other = WallSteps()
    assert other.resume(saved, now, 3 * S, same_boot=False) == 0
    assert other.elapsed(t0 - 5 * S, now) == 35 * S + 10 * MINUTE


def test_steps_seen_before_a_restart_still_count_after_it() -> None:
    t0 = 1_000_000 * S
    first = WallSteps()
    first.look(t0, 50 * S)
    first.look(t0 + 1 * S + 10 * MINUTE, 51 * S)
    second = WallSteps()
    now = t0 + 20 * S + 10 * MINUTE
    assert second.resume(first.saved(), now, 2 * S, same_boot=False) == 0  # rebooted
    assert second.elapsed(t0, now) == 20 * S


def test_a_node_keeps_its_steps_in_its_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_wall_steps, "_STEPS", WallSteps())
    monkeypatch.setattr(_wall_steps, "_kept_in", None)
    kept = tmp_path / _wall_steps.WALL_STEPS_FILE
    now = time.time_ns()
    boottime = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    # As a run of a moment ago left it, the wall clock 10 minutes behind where it is now.
    kept.write_text(
        json.dumps(
            {
                "boot_id": _wall_steps._boot_id(),
                "wall_ns": now - 10 * MINUTE,
                "boottime_ns": boottime,
                "steps": [],
            }
        )
    )
    with caplog.at_level(logging.WARNING, logger="bacalhau"):
        _wall_steps.remember_in(kept)
    assert "stepped forward by 600" in caplog.text and "while this node was down" in caplog.text
    created = now - 10 * MINUTE - 5 * S  # a job stamped before the step
    assert elapsed_ns(created, time.time_ns()) < 10 * S
    # Kept for the next start: the step, and the clocks as they are now.
    saved = json.loads(kept.read_text())
    assert [step for _, step in saved["steps"]] == [pytest.approx(10 * MINUTE, abs=S)]
    # An unreadable file loses the earlier steps, not the node's start.
    kept.write_text('{"steps": "garbage"')
    monkeypatch.setattr(_wall_steps, "_STEPS", WallSteps())
    with caplog.at_level(logging.WARNING, logger="bacalhau"):
        _wall_steps.remember_in(kept)
    assert "cannot be read" in caplog.text
    assert json.loads(kept.read_text())["steps"] == []
