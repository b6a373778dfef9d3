"""Verified results with real processes: three compute nodes, the last of which corrupts
every result it publishes (``bacalhau devstack --faulty-compute-nodes 1``).

A verified deterministic WASM job runs one replica on each node: the two honest nodes agree,
so their results are accepted and returned; the faulty node's execution fails verification,
its reputation drops, and the next verified job avoids it. Two replicas, one of them on the
faulty node, have no majority: that job fails saying so.

A verified Docker job runs on the nodes whose operator lists its image as deterministic
(``deterministic_images``); a node that does not declines the bid saying so, and a job needing
more replicas than the nodes that accept fails naming that reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bacalhau.compute._verification import FAULTY_MARK
from bacalhau.models import Connection, short_id
from bacalhau.models import ExecutionStateType as E
from tests.integration.devstack import Devstack, NodeProcess, eventually, run_bacalhau

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

    # node list shows the record once a node has one: score (+agreements -disagreements);
    # node describe has it in full.
    listed = stack.ok("node", "list", "--show", "labels")
    header, *rows = listed.splitlines()
    assert "REPUTATION" in header.split()
    [faulty_row] = [row for row in rows if row.startswith(short_id(faulty))]
    assert "0.33 (+0 -1)" in faulty_row
    described_node = stack.ok("node", "describe", faulty)
    assert "Reputation:\n  Agreements: 0\n  Disagreements: 1\n" in described_node

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


# -- verified Docker jobs: only on images the operator vouches for ------------------------------

DETERMINISTIC = "local/busybox:1.37"


@pytest.fixture(scope="module")
def docker_stack(
    tmp_path_factory: pytest.TempPathFactory, busybox_image: str
) -> Iterator[tuple[Devstack, str]]:
    """Two compute nodes listing the busybox image as deterministic, and a third (joined by
    hand) whose operator lists nothing; yields the stack and the third node's ID."""
    root = tmp_path_factory.mktemp("docker-verified")
    stack = Devstack.start(
        root / "devstack",
        compute_nodes=2,
        engines="docker",
        config=(f"deterministic_images={DETERMINISTIC}",),
    )
    unlisted: NodeProcess | None = None
    try:
        node_dir = root / "unlisted"
        node_id = stack.certify(node_dir)
        unlisted = NodeProcess.compute(
            node_dir, stack.requester.grpc_address, "--engines", "docker", "--name", "unlisted"
        )

        def joined() -> bool:
            state = {n.info.node_id: n for n in stack.client.list_nodes()}.get(node_id)
            return state is not None and state.connection == Connection.CONNECTED

        eventually(joined, timeout=30, what="the unlisted node joining")
        yield stack, node_id
    finally:
        if unlisted is not None:
            unlisted.stop()
        stack.stop()


def write_x(*flags: str) -> list[str]:
    return [
        "docker", "run", "--verify", "--id-only", "-o", "out:/outputs", *flags,
        DETERMINISTIC, "--", "sh", "-c", "echo x > /outputs/x",
    ]  # fmt: skip


def test_a_verified_docker_job_runs_where_its_image_is_vouched_for(
    docker_stack: tuple[Devstack, str], tmp_path: Path
) -> None:
    stack, unlisted = docker_stack
    listing = {stack.node_named(f"compute-{i}").node_id for i in range(2)}
    job_id = stack.ok(*write_x("--count", "2")).strip()
    described = describe(stack, job_id)
    state = described["Job"]["State"]
    assert state["StateType"] == "Completed", state
    assert "2 of 2 replicas agree" in state["Message"]
    executions = described["Executions"]["Items"]
    done = E.COMPLETED.wire(v152=True)
    completed = [e for e in executions if e["ComputeState"]["StateType"] == done]
    assert {e["NodeID"] for e in completed} == listing
    assert {e["ComputeState"]["Details"]["Verification"] for e in completed} == {"accepted"}
    # The requester checked what each published against the CID it claimed.
    assert {e["ComputeState"]["Details"]["ResultCheck"] for e in completed} == {"matched"}
    # Asked first or not, the unlisted node never ran a replica.
    for e in executions:
        if e["NodeID"] == unlisted:
            assert "does not list the image" in e["ComputeState"]["Message"], e
    results = tmp_path / "results"
    stack.ok("job", "get", job_id, "--output-dir", str(results))
    assert (results / "out" / "x").read_text() == "x\n"


def test_a_node_that_does_not_vouch_for_the_image_declines_saying_why(
    docker_stack: tuple[Devstack, str],
) -> None:
    stack, unlisted = docker_stack
    # Three replicas on distinct nodes: the third node would have to be the unlisted one.
    done = stack.cli(*write_x("--count", "3"))
    assert done.returncode != 0, done.stdout
    job_id = done.stdout.strip().splitlines()[0]
    described = describe(stack, job_id)
    state = described["Job"]["State"]
    assert state["StateType"] == "Failed", state
    assert "replicas on distinct nodes" in state["Message"]
    assert "deterministic_images" in state["Message"], state["Message"]
    [declined] = [e for e in described["Executions"]["Items"] if e["NodeID"] == unlisted]
    message = declined["ComputeState"]["Message"]
    assert f"does not list the image '{DETERMINISTIC}' as deterministic" in message


# -- a node that lies about its results: claims the honest CID, publishes something else ------


@pytest.fixture(scope="module")
def lying_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    stack = Devstack.start(
        tmp_path_factory.mktemp("misclaim"),
        compute_nodes=3,
        engines="wasm",
        faulty_compute_nodes=1,
        faulty_results="misclaim",
    )
    try:
        yield stack
    finally:
        stack.stop()


def test_a_claim_its_published_results_belie_fails_verification(
    lying_stack: Devstack, wasm_modules: Path
) -> None:
    liar = lying_stack.node_named("compute-2").node_id
    job_id = lying_stack.ok(*wordcount(lying_stack, wasm_modules, "--count", "3")).strip()
    described = describe(lying_stack, job_id)
    state = described["Job"]["State"]
    assert state["StateType"] == "Completed", state
    by_node = {e["NodeID"]: e["ComputeState"] for e in described["Executions"]["Items"]}
    lied = by_node.pop(liar)
    [accepted_cid] = {c["Details"]["ResultsCID"] for c in by_node.values()}
    # It claimed the very CID the honest nodes published: only the check of what it
    # published (its archive, downloaded and hashed by the requester) tells it apart.
    assert lied["Details"]["ResultsCID"] == accepted_cid
    assert lied["StateType"] == E.FAILED.wire(v152=True)
    assert lied["Details"]["Verification"] == "rejected"
    published = lied["Details"]["PublishedCID"]
    assert published != accepted_cid
    assert lied["Message"] == (
        f"failed verification: its node claims results {accepted_cid} but published "
        f"{published} (the accepted results are {accepted_cid})"
    )
    assert reputations(lying_stack)["compute-2"]["Disagreements"] == 1
