"""A compute node on a GPU host advertises its GPUs, and a job asking for more GPUs than any
node has fails at once saying so.

The GPU host is simulated at the one seam where the node meets it: an ``nvidia-smi`` on the
node's PATH that prints output recorded on a 4 x A100 machine. Everything else is the real
devstack (separate processes, real gRPC).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.devstack import Devstack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gpu-nodes")]

RECORDED = Path(__file__).resolve().parents[1] / "compute" / "fixtures" / "nvidia-smi-4xa100.csv"


@pytest.fixture(scope="module")
def gpu_devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    bin_dir = tmp_path_factory.mktemp("bin")
    tool = bin_dir / "nvidia-smi"
    tool.write_text(
        "#!/bin/sh\n"
        'case "$1" in --query-gpu=*) exec cat "' + str(RECORDED) + '";; esac\n'
        "echo unexpected arguments >&2; exit 1\n"
    )
    tool.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        stack = Devstack.start(tmp_path_factory.mktemp("devstack"), compute_nodes=1)
    try:
        yield stack
    finally:
        stack.stop()


def test_the_node_advertises_its_gpus_as_capacity_and_labels(gpu_devstack: Devstack) -> None:
    nodes = json.loads(gpu_devstack.ok("node", "list", "--output", "json"))
    (compute,) = [n for n in nodes if n["Info"]["NodeType"] == "Compute"]
    labels = compute["Info"]["Labels"]
    assert [labels[f"GPU-{i}"] for i in range(4)] == ["NVIDIA A100-SXM4-40GB"] * 4
    assert labels["gpu-vendor"] == "NVIDIA"
    assert compute["Info"]["ComputeNodeInfo"]["MaxCapacity"]["GPU"] == 4


def test_a_job_asking_for_more_gpus_than_any_node_fails_at_once(
    gpu_devstack: Devstack,
) -> None:
    done = gpu_devstack.cli("docker", "run", "--gpu", "8", "local/busybox:1.37", "--", "true")
    assert done.returncode != 0
    assert "GPU 8; the most any node offers:" in done.stdout + done.stderr
    assert "GPU 4" in done.stdout + done.stderr
