"""``bacalhau node describe`` on a requester shows its approval hooks as configured and which
hook decided its latest bids: the CLI against a real API server in front of a real
Orchestrator (SQLite store) whose hook is a real bash program."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bacalhau.api import ApiServer
from bacalhau.cli import cli
from bacalhau.models import AskForBidRequest, BidResult, Job, NodeInfo, NodeType
from bacalhau.orchestrator import ApprovalChain, ExecApprovalHook, Orchestrator
from tests.api.server_thread import ServerThread
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_callbacks import RecordingCompute


class RequesterThread(ServerThread):
    """A real Orchestrator behind the API server, its hooks in the agent config as a node
    serving them puts them."""

    def __init__(self, data_dir: Path) -> None:
        self.chain = ApprovalChain(
            [ExecApprovalHook("no-friday", "echo 'not on node-a today'; exit 1", timeout=7)]
        )
        self.compute = RecordingCompute()
        self.view = StaticNodeView()
        super().__init__(
            Orchestrator(
                node_info=NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER),
                data_dir=data_dir,
                compute=self.compute,
                node_view=self.view,
                approval_hooks=self.chain,
            )
        )

    def start(self) -> RequesterThread:
        self._thread.start()
        orch = self.orchestrator
        assert isinstance(orch, Orchestrator)
        self.run(orch.__aenter__())
        server = ApiServer(
            orch,
            host="127.0.0.1",
            port=0,
            agent_config={"Orchestrator": {"ApprovalHooks": self.chain.describe()}},
        )
        self.run(server.start())
        self._server = server
        return self

    def stop(self) -> None:
        orch = self.orchestrator
        assert isinstance(orch, Orchestrator)
        if self._server is not None:
            self.run(self._server.stop())
            self._server = None
        self.run(orch.__aexit__(None, None, None))
        self.run(self.chain.aclose())
        super().stop()


@pytest.fixture
def requester(tmp_path: Path) -> Iterator[RequesterThread]:
    server = RequesterThread(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def _cli(server: RequesterThread, *args: str) -> str:
    address = ["--api-host", "127.0.0.1", "--api-port", str(server.port)]
    result = CliRunner().invoke(cli, [*address, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


async def _bid_decided(orch: Orchestrator, server: RequesterThread) -> str:
    await server.view.join(compute_node_info("node-a"))
    job = Job.from_dict({"Type": "batch", "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]})
    job_id = (await orch.submit_job(job)).job_id
    node, ask = await server.compute.next("ask")
    assert isinstance(ask, AskForBidRequest)
    await orch.on_bid_complete(BidResult(ask.execution.id, job_id, node, accepted=True))
    await server.compute.next("reject")
    return ask.execution.id


def test_node_describe_shows_the_requesters_hooks_and_who_decided(
    requester: RequesterThread,
) -> None:
    described = yaml.safe_load(_cli(requester, "node", "describe", "n-req"))
    assert described["Info"]["NodeID"] == "n-requester"
    [hook] = described["Orchestrator"]["ApprovalHooks"]
    assert (hook["Name"], hook["Type"], hook["Timeout"]) == ("no-friday", "exec", 7)
    assert described["Orchestrator"]["RecentBidDecisions"] == []

    orch = requester.orchestrator
    assert isinstance(orch, Orchestrator)
    execution_id = requester.run(asyncio.wait_for(_bid_decided(orch, requester), 20))
    described = json.loads(_cli(requester, "node", "describe", "n-requester", "--output", "json"))
    [decision] = described["Orchestrator"]["RecentBidDecisions"]
    assert decision["ExecutionID"] == execution_id and decision["NodeID"] == "node-a"
    assert decision["Accepted"] is False and decision["DecidedBy"] == "no-friday"
    assert decision["Reasons"] == ["no-friday: not on node-a today"]
    # A compute node's description has no requester section.
    compute = yaml.safe_load(_cli(requester, "node", "describe", "node-a"))
    assert compute["Info"]["NodeID"] == "node-a" and "Orchestrator" not in compute
