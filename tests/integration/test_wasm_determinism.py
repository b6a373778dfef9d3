"""A deterministic WASM job gives byte-identical output on three compute nodes (separate
processes), and a job that did not ask for it does not.

``ambient.wasm`` prints the clocks, a sleep's effect on them, random bytes, its arguments and
its environment: every ambient input a module could tell the nodes apart by.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.devstack import Devstack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("wasm-determinism")]


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory, wasm_modules: Path) -> Iterator[Devstack]:
    stack = Devstack.start(tmp_path_factory.mktemp("devstack"), compute_nodes=3)
    try:
        yield stack
    finally:
        stack.stop()


def outputs_per_node(stack: Devstack, *flags: str, module: Path) -> dict[str, str]:
    job_id = stack.ok(
        "wasm", "run", "--count", "3", "--id-only", *flags, "-e", "B=2", "-e", "A=1",
        str(module), "--", "arg",
    ).strip()  # fmt: skip
    described = json.loads(stack.ok("job", "describe", job_id, "--output", "json"))
    assert described["Job"]["State"]["StateType"] == "Completed", described["Job"]["State"]
    items = described["Executions"]["Items"]
    by_node = {e["NodeID"]: e["RunOutput"]["Stdout"] for e in items}
    assert set(by_node) == {n.node_id for n in stack.compute}  # one execution on each node
    assert not any(e["RunOutput"]["StdoutTruncated"] for e in items)
    return by_node


def test_deterministic_job_is_byte_identical_on_three_nodes(
    three_nodes: Devstack, wasm_modules: Path
) -> None:
    outputs = outputs_per_node(three_nodes, "--deterministic", module=wasm_modules / "ambient.wasm")
    first, *others = outputs.values()
    assert all(out == first for out in others)
    assert first.startswith("realtime=946684800.000000000\n")
    assert "env A=1\nenv B=2\n" in first


def test_without_determinism_the_nodes_differ(three_nodes: Devstack, wasm_modules: Path) -> None:
    outputs = outputs_per_node(three_nodes, module=wasm_modules / "ambient.wasm")
    randoms = {
        line for out in outputs.values() for line in out.splitlines() if line.startswith("random=")
    }
    assert len(randoms) == 3
