"""Jobs by name on a real devstack: ``docker run --name`` again updates the running job (its
old version's container is stopped, the new version runs and completes), and the commands
that take a job ID take the name, ``job logs`` included."""

from __future__ import annotations

import json
import uuid

import pytest

from bacalhau.models import (
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobStateType,
)
from tests.integration.devstack import Devstack, containers, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-cli")]

E = ExecutionStateType


def test_a_name_run_again_replaces_the_running_version(
    devstack: Devstack, busybox_image: str
) -> None:
    name = f"named-{uuid.uuid4().hex[:8]}"
    job_id = devstack.ok(
        "docker", "run", "--no-wait", "--id-only", "--name", name, busybox_image,
        "--", "sleep", "60",
    ).strip()  # fmt: skip

    def first_running() -> Execution | None:
        executions = devstack.client.executions(job_id)
        running = [e for e in executions if e.compute_state in (E.BID_ACCEPTED, E.RUNNING)]
        if running and containers(f"bacalhau-executionID={running[0].id}"):
            return running[0]
        return None

    old = eventually(first_running, timeout=30, what="version 1's container")
    out = devstack.ok("docker", "run", "--name", name, busybox_image, "--", "echo", "version two")
    assert f"Job {job_id} completed." in out
    assert "version two" in out

    def old_stopped() -> Execution | None:
        every = devstack.client.executions(job_id, all_versions=True)
        current = next(e for e in every if e.id == old.id)
        if current.compute_state.is_terminal() and not containers(f"bacalhau-executionID={old.id}"):
            return current
        return None

    stopped = eventually(old_stopped, timeout=15, what="version 1's execution stopped")
    assert stopped.desired_state == ExecutionDesiredStateType.STOPPED
    assert "superseded by version 2" in stopped.desired_message
    described = json.loads(devstack.ok("job", "describe", name, "--output", "json"))
    assert described["Job"]["ID"] == job_id
    assert (described["Job"]["Version"], described["Job"]["State"]["StateType"]) == (
        2,
        JobStateType.COMPLETED.wire,
    )
    assert devstack.ok("job", "logs", name) == "version two\n"
    versions = json.loads(devstack.ok("job", "versions", name, "--output", "json"))
    assert [v["Version"] for v in versions] == [1, 2]
    # The same command again changes nothing: refused, unless forced.
    again = devstack.cli(
        "docker", "run", "--name", name, busybox_image, "--", "echo", "version two"
    )
    assert again.returncode != 0 and "--force" in again.stderr
    forced = devstack.ok(
        "docker", "run", "--force", "--id-only", "--name", name, busybox_image,
        "--", "echo", "version two",
    ).strip()  # fmt: skip
    assert forced == job_id
