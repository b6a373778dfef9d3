"""The warning for a lost node says how long ago it was last known alive, or that nobody knows:
a node first heard of as already dead (after the requester restarted) is not "0.0s ago"."""

from __future__ import annotations

import logging

import pytest

from tests.orchestrator.test_callbacks import Setup, _running_on, setup

__all__ = ["setup"]


def _lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " lost (" in r.getMessage()]


async def test_a_lost_node_is_logged_with_how_long_it_was_silent(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    await _running_on(setup.orch, setup.compute, "node-a")
    with caplog.at_level(logging.WARNING, logger="bacalhau"):
        await setup.view.kill("node-a", silent_for=12.5)
    (line,) = _lost_lines(caplog)
    assert "last known alive: 12.5s ago" in line
    assert "re-scheduling 1 job(s)" in line


async def test_a_node_last_seen_at_an_unknown_time_is_not_said_to_be_just_seen(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    await _running_on(setup.orch, setup.compute, "node-a")
    with caplog.at_level(logging.WARNING, logger="bacalhau"):
        await setup.view.kill("node-a", silent_for=None)
    (line,) = _lost_lines(caplog)
    assert "last known alive: unknown" in line
    assert "0.0s" not in line
