from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from bacalhau.cli import cli
from bacalhau.models import Job, param
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.server_thread import ServerThread


def echo_runner(job: Job) -> tuple[str, int, str]:
    """How the stand-in compute node 'runs' a job: echo prints, false exits 1, and an image
    called missing:image fails like an image that is not there."""
    params = job.task.engine.params
    if param(params, "Image") == "missing:image":
        return "", 0, "image missing:image not found locally, and no registry is reachable"
    words = list(param(params, "Entrypoint") or []) + list(param(params, "Parameters") or [])
    if words[:1] == ["echo"]:
        return " ".join(words[1:]) + "\n", 0, ""
    if words[:1] == ["false"]:
        return "", 1, ""
    return "", 0, ""


@dataclass
class Cli:
    server: ServerThread

    @property
    def orch(self) -> MemoryOrchestrator:
        assert isinstance(self.server.orchestrator, MemoryOrchestrator)
        return self.server.orchestrator

    def __call__(self, args: Sequence[str], *, input: str | None = None) -> Result:
        address = ["--api-host", "127.0.0.1", "--api-port", str(self.server.port)]
        return CliRunner().invoke(cli, [*address, *args], input=input, catch_exceptions=False)


@pytest.fixture
def bacalhau() -> Iterator[Cli]:
    server = ServerThread(MemoryOrchestrator(auto_run=echo_runner)).start()
    try:
        yield Cli(server)
    finally:
        server.stop()
