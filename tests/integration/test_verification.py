"""Verified results with real processes: three compute nodes, the last of which corrupts
every result it publishes (``bacalhau devstack --faulty-compute-nodes 1``).

A verified deterministic WASM job runs one replica on each node: the two honest nodes agree,
so their results are accepted and returned; the faulty node's execution fails verification,
its reputation drops, and the next verified job avoids it. Two replicas, one of them on the
faulty node, have no majority: that job fails saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bacalhau.compute._verification import FAULTY_MARK
from bacalhau.models import ExecutionStateType as E
from bacalhau.models import short_id
from tests.integration.devstack import Devstack, run_bacalhau

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("verification")]

TEXT = ("one two three", "four")
COUNTS = "3 one two three\n1 four\ntotal 4\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wasm_modules: Path) -> Iterator[Devstack]:
    stack = Devstack.start(
        tmp_path_factory.mktemp("devstack"),
        compute_nodes=3,
        engines="wasm",
        faulty_compute_nodes=1,
    )
    try:
        yield stack
    finally:
        stack.stop()


def wordcount(stack: Devstack, wasm_modules: Path, *flags: str) -> list[str]:
    return [
        "wasm", "run", "--verify", "--id-only", "-o", "out:/outputs", *flags,
        str(wasm_modules / "wordcount.wasm"), "--", "/outputs", *TEXT,
    ]  # fmt: skip


def describe(stack: Devstack, job_id: str) -> dict[str, Any]:
    return dict(json.loads(stack.ok("job", "describe", job_id, "--output", "json")))


def reputations(stack: Devstack) -> dict[str, dict[str, Any]]:
    nodes = json.loads(stack.ok("node", "list", "--output", "json"))
    return {n["Info"]["Labels"].get("name", ""): n.get("Reputation", {}) for n in nodes}


def test_the_majority_wins_and_the_faulty_node_is_avoided_next(
    stack: Devstack, wasm_modules: Path, tmp_path: Path
) -> None:
    faulty = stack.node_named("compute-2").node_id
    job_id = stack.ok(*wordcount(stack, wasm_modules, "--count", "3")).strip()
    described = describe(stack, job_id)
    state = described["Job"]["State"]
    assert state["StateType"] == "Completed", state
    assert state["Message"].startswith("Verification accepted results ")
    assert "2 of 3 replicas agree, 1 rejected" in state["Message"]
    by_node = {e["NodeID"]: e["ComputeState"] for e in described["Executions"]["Items"]}
    assert set(by_node) == {n.node_id for n in stack.compute}  # one replica per node
    rejected = by_node.pop(faulty)
    assert rejected["StateType"] == E.FAILED.wire(v152=True)
    assert rejected["Message"].startswith("failed verification: results ")
    assert rejected["Details"]["Verification"] == "rejected"
    accepted_cids = {c["Details"]["ResultsCID"] for c in by_node.values()}
    assert [c["StateType"] for c in by_node.values()] == [E.COMPLETED.wire(v152=True)] * 2
    assert {c["Details"]["Verification"] for c in by_node.values()} == {"accepted"}
    [accepted_cid] = accepted_cids
    assert rejected["Message"].endswith(f"disagree with the accepted {accepted_cid}")
    assert rejected["Details"]["ResultsCID"] != accepted_cid

    # The accepted results, once: what `job get` downloads is the honest nodes' output.
    results = tmp_path / "results"
    stack.ok("job", "get", job_id, "--output-dir", str(results))
    assert (results / "out" / "counts.txt").read_text() == COUNTS
    assert FAULTY_MARK not in (results / "out" / "counts.txt").read_bytes()

    # The text describe says so per execution.
    text = stack.ok("job", "describe", job_id)
    section = text.split("\nVerification\n", 1)[1].split("\nJob History", 1)[0]
    assert f"Outcome  = {state['Message']}" in section
    verdicts = [line.split() for line in section.splitlines() if short_id(faulty) in line]
    assert verdicts == [
        [verdicts[0][0], short_id(faulty), "rejected", rejected["Details"]["ResultsCID"]]
    ]
    rows = [line.split()[2:] for line in section.splitlines() if line.startswith("e-")]
    assert sorted(rows)[:2] == [["accepted", accepted_cid]] * 2, section

    scores = reputations(stack)
    assert scores["compute-2"]["Disagreements"] == 1
    assert scores["compute-0"]["Agreements"] == scores["compute-1"]["Agreements"] == 1
    assert scores["compute-2"]["Score"] < scores["compute-0"]["Score"]

    # The next verified job (two replicas) goes to the two honest nodes.
    second = stack.ok(*wordcount(stack, wasm_modules, "--count", "2")).strip()
    again = describe(stack, second)
    assert again["Job"]["State"]["StateType"] == "Completed", again["Job"]["State"]
    assert faulty not in {e["NodeID"] for e in again["Executions"]["Items"]}


def test_without_a_majority_the_job_fails_saying_so(stack: Devstack, wasm_modules: Path) -> None:
    # Two replicas, one of them on the faulty node (placed there by a constraint).
    flags = ("--count", "2", "-s", "name in (compute-0,compute-2)")
    done = stack.cli(*wordcount(stack, wasm_modules, *flags))
    assert done.returncode != 0, done.stdout
    job_id = done.stdout.strip().splitlines()[0]
    state = describe(stack, job_id)["Job"]["State"]
    assert state["StateType"] == "Failed", state
    assert state["Message"].startswith(
        "Verification failed: no results were agreed on by a majority of the 2 replicas"
    )
    assert " x1, " in state["Message"]  # each CID held by one replica


def test_serve_refuses_a_faulty_node_outside_a_devstack(tmp_path: Path) -> None:
    done = run_bacalhau(
        ["serve", "--compute", "--seed", "127.0.0.1:1", "--data-dir", str(tmp_path),
         "-c", "faulty_results=corrupt"],
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "faulty_results" in done.stderr and "devstack" in done.stderr
