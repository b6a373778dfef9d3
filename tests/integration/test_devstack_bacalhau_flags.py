"""The devstack started with Bacalhau's own flags: a hybrid orchestrator that runs jobs
itself (``--hybrids 1 --orchestrators 0 --computes 0``), ``--random-ports``, ``--stack-repo``,
and ``--bad-compute-actors`` (our faulty compute nodes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.devstack import Devstack, bacalhau_command

pytestmark = pytest.mark.integration


def test_a_hybrid_orchestrator_runs_jobs_itself(tmp_path: Path, wasm_modules: Path) -> None:
    stack = Devstack.start(
        tmp_path / "stack",
        compute_nodes=0,
        engines="wasm",
        args=(
            "--hybrids", "1", "--orchestrators", "0", "--random-ports",
            "--stack-repo", str(tmp_path / "stack"),
        ),
    )  # fmt: skip
    try:
        [node] = stack.nodes
        assert node.role == "requester" and "--compute" in node.args
        out = stack.ok("wasm", "run", str(wasm_modules / "hello.wasm"), "--", "hybrid")
        assert "arg[1]=hybrid" in out
        [listed] = stack.client.list_nodes()
        assert listed.info.compute is not None  # the orchestrator offers capacity too
    finally:
        stack.stop()


def test_bad_compute_actors_are_the_faulty_compute_nodes(tmp_path: Path) -> None:
    stack = Devstack.start(
        tmp_path / "stack",
        compute_nodes=2,
        engines="wasm",
        args=("--bad-compute-actors", "1"),
    )
    try:
        faulty = [n.name for n in stack.nodes if "faulty_results=corrupt" in n.args]
        assert faulty == ["compute-1"]
    finally:
        stack.stop()


def test_more_than_one_orchestrator_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        bacalhau_command("devstack", "--orchestrators", "2", "--stack-repo", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "exactly one orchestrator" in done.stderr
    assert not (tmp_path / "ca").exists()
