"""A requester, and the CLI, never load the Docker SDK or boto3 (about 35 MB of a process's
memory and a third of a second of its start): they load with the first compute node that
runs Docker or reads or publishes S3. Checked in fresh interpreters, since this one has
loaded everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "boto3", "botocore", "requests")

_REQUESTER = """
import asyncio, json, sys
from contextlib import AsyncExitStack
from pathlib import Path
from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.node import start_node
from tests.node.test_hybrid import _config

async def main() -> None:
    root = Path(sys.argv[1])
    ca = ClusterCA.create(root / "ca")
    ca.issue_node_certificate(NodeIdentity.load_or_create(root / "node"), data_dir=root / "node")
    async with AsyncExitStack() as stack:
        node = await start_node(_config(root / "node", orchestrator=True), stack)
        assert node.orchestrator is not None
        await node.orchestrator.list_jobs()

asyncio.run(main())
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def _loaded(script: str, *args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_the_cli_and_the_node_package_load_neither() -> None:
    script = (
        "import json, sys, bacalhau.node, bacalhau.cli\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    assert _loaded(script) == []


def test_a_running_requester_loads_neither(tmp_path: Path) -> None:
    assert _loaded(_REQUESTER.replace("{heavy}", repr(HEAVY)), str(tmp_path)) == []


def test_they_load_when_named() -> None:
    script = (
        "import json, sys\n"
        "from bacalhau.executor import DockerExecutor\n"
        "from bacalhau.storage import S3Source, s3_client\n"
        "from bacalhau.publisher import S3Publisher, presign_result\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    assert _loaded(script) == sorted(HEAVY)
