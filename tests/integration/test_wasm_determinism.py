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


def outputs_per_node(
    stack: Devstack, *flags: str, module: Path, args: tuple[str, ...] = ("arg",)
) -> dict[str, str]:
    job_id = stack.ok(
        "wasm", "run", "--count", "3", "--id-only", *flags, "-e", "B=2", "-e", "A=1",
        str(module), "--", *args,
    ).strip()  # fmt: skip
    described = json.loads(stack.ok("job", "describe", job_id, "--output", "json"))
    assert described["Job"]["State"]["StateType"] == "Completed", described["Job"]["State"]
    items = described["Executions"]["Items"]
    assert {e["NodeID"] for e in items} == {n.node_id for n in stack.compute}  # one each
    # The whole stdout of each execution (the summary in RunOutput is cut at 2 KiB).
    return {e["NodeID"]: stack.ok("job", "logs", job_id, "--execution-id", e["ID"]) for e in items}


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


def test_deterministic_file_system_view_is_byte_identical_on_three_nodes(
    three_nodes: Devstack, wasm_modules: Path, tmp_path: Path
) -> None:
    # The input reaches each node through the block exchange and is written out there: each
    # node's copy has its own inode numbers, times and directory order, which a
    # deterministic run must not show.
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for name in ("zeta.txt", "alpha.txt", "sub/mid.txt", "beta.txt"):
        (data / name).write_text(f"{name}\n")
    cid = three_nodes.ok("data", "add", str(data)).strip().split()[-1]
    outputs = outputs_per_node(
        three_nodes,
        "--deterministic", "-i", f"ipfs://{cid}:/inputs", "-o", "out:/outputs",
        module=wasm_modules / "fsprobe.wasm",
        args=("tree:/inputs", "mkdir:/outputs/d", "write:/outputs/d/b", "sleep:5",
              "write:/outputs/a", "tree:/outputs"),
    )  # fmt: skip
    first, *others = outputs.values()
    assert all(out == first for out in others), outputs
    names = [line for line in first.splitlines() if "/inputs/" in line]
    assert len(names) >= 5 and "zeta.txt" in first, first
