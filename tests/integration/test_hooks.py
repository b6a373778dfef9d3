"""Accept hooks end to end, with real node processes and the operator's real programs:

- a compute node whose exec probe (``JobAdmissionControl.ProbeExec``) refuses jobs labelled
  ``team=blue`` never runs one, while another node runs them all;
- the requester's approval hooks (``Orchestrator.ApprovalHooks``): an HTTP hook (a local
  aiohttp server started by the test) that rejects every bid from one node steers all jobs to
  the others, and an exec hook that sleeps past its timeout for one job holds only that job:
  the others keep completing, and the sleeper's bid is rejected at the timeout, the history
  naming the hook.

Jobs use the ``noop`` engine (a real executor plugin), so no image is involved.
"""

from __future__ import annotations

import asyncio
import json
import stat
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bacalhau.models import ComputeNodeInfo, Connection, ExecutionStateType, JobStateType
from tests.integration.devstack import Devstack, NodeProcess, eventually, run_bacalhau

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-hooks")]


class ComputeNodes:
    """Compute nodes started by the test (``bacalhau serve``, noop engine) around a devstack
    that runs only the requester; each joins and is stopped at the end."""

    def __init__(self, stack: Devstack, root: Path) -> None:
        self._stack = stack
        self._root = root
        self.started: list[NodeProcess] = []

    def add(self, name: str, *extra: str, env: dict[str, str] | None = None) -> str:
        """Start a node named ``name`` (with ``env`` over the usual environment); returns its
        ID once the requester sees it."""
        node_dir = self._root / name
        issued = run_bacalhau(
            ["ca", "issue", "--ca-dir", str(self._stack.ca_dir), "--data-dir", str(node_dir),
             "--host", "127.0.0.1"]
        )  # fmt: skip
        assert issued.returncode == 0, issued.stderr
        node_id = issued.stdout.split("Node ID: ", 1)[1].split()[0]
        self.started.append(
            NodeProcess.compute(
                node_dir,
                self._stack.requester.grpc_address,
                "--engines",
                "noop",
                "--name",
                name,
                *extra,
                env=env,
            )
        )

        def joined() -> bool:
            state = {n.info.node_id: n for n in self._stack.client.list_nodes()}.get(node_id)
            return state is not None and state.connection == Connection.CONNECTED

        eventually(joined, timeout=60, what=f"node {name} joining")
        return node_id

    def stop(self) -> None:
        codes = [(node.stop(), node) for node in self.started]
        for code, node in codes:
            assert code == 0, node.output()


def noop_job(name: str, labels: dict[str, str], *, on_node: str = "") -> dict[str, Any]:
    job: dict[str, Any] = {
        "Name": name,
        "Type": "batch",
        "Count": 1,
        "Labels": labels,
        "Tasks": [{"Name": "main", "Engine": {"Type": "noop", "Params": {"Stdout": name}}}],
    }
    if on_node:
        job["Constraints"] = [{"Key": "name", "Operator": "=", "Values": [on_node]}]
    return job


def requester_with_hooks(
    tmp_path: Path, hooks: list[dict[str, Any]]
) -> tuple[Devstack, ComputeNodes]:
    """A devstack of a requester with these approval hooks, and no compute node yet."""
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=0,
        config=["Orchestrator.ApprovalHooks=" + json.dumps(hooks)],
    )
    return stack, ComputeNodes(stack, tmp_path)


def executable(path: Path, body: str) -> str:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


#: Credentials boto3 finds (no S3 call is made with them here).
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}
#: Nowhere for boto3 to find credentials (an empty variable counts as unset).
NO_AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_SESSION_TOKEN": "",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
}


def _compute_info(stack: Devstack, node_id: str) -> ComputeNodeInfo:
    [state] = [n for n in stack.client.list_nodes() if n.info.node_id == node_id]
    assert state.info.compute is not None
    return state.info.compute


def node_ran(stack: Devstack, job_id: str) -> str:
    """The node that completed the job (which must have completed)."""
    details = stack.client.wait_for_job(job_id, timeout=90)
    assert details.job.state == JobStateType.COMPLETED, details.job.state_message
    [done] = [e for e in details.executions if e.compute_state == ExecutionStateType.COMPLETED]
    return done.node_id


def test_exec_probe_keeps_blue_jobs_off_its_node(tmp_path: Path) -> None:
    probe = executable(
        tmp_path / "no-blue.sh",
        """if grep -q '"team": "blue"'; then echo "blue jobs go elsewhere" >&2; exit 1; fi\n""",
    )
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=0)
    nodes = ComputeNodes(stack, tmp_path)
    try:
        # Bacalhau's InputSources.Disabled: the node offers no s3 input source, though it
        # has credentials (and so the s3 publisher).
        plain = nodes.add("plain", "-c", "InputSources.Disabled=s3", env=AWS_KEYS)
        plain_info = _compute_info(stack, plain)
        assert "s3" not in plain_info.storage_sources, plain_info
        assert "ipfs" in plain_info.storage_sources and "s3" in plain_info.publishers
        # Without AWS credentials a node offers no S3 at all: an S3 call would fail before it
        # is sent, so the requester places such jobs elsewhere instead of failing attempts.
        keyless = nodes.add("keyless", env=NO_AWS_CREDENTIALS)
        keyless_info = _compute_info(stack, keyless)
        assert "s3" not in keyless_info.storage_sources, keyless_info
        assert "s3" not in keyless_info.publishers and "local" in keyless_info.publishers
        probed_id = nodes.add("probed", "-c", f"JobAdmissionControl.ProbeExec={probe}")

        blue = [stack.client.submit(noop_job(f"blue-{i}", {"team": "blue"})).job_id
                for i in range(4)]  # fmt: skip
        green = stack.client.submit(noop_job("green", {"team": "green"}, on_node="probed"))
        pinned = stack.client.submit(noop_job("blue-pinned", {"team": "blue"}, on_node="probed"))

        # Every blue job runs, and none on the probed node; a green one runs there.
        assert all(node_ran(stack, job_id) != probed_id for job_id in blue)
        assert node_ran(stack, green.job_id) == probed_id
        # A blue job that only the probed node may take fails with the probe's reason.
        refused = stack.client.wait_for_job(pinned.job_id, timeout=90)
        assert refused.job.state == JobStateType.FAILED
        assert "blue jobs go elsewhere" in refused.job.state_message
    finally:
        try:
            nodes.stop()
        finally:
            stack.stop()


class ApprovalServer:
    """The operator's HTTP approval hook: an aiohttp server on its own thread that rejects
    every bid from ``banned`` (set once node IDs are known) and records what it was asked."""

    def __init__(self) -> None:
        self.banned = ""
        self.asked: list[str] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    async def _approve(self, request: web.Request) -> web.Response:
        body = await request.json()
        node = body["Execution"]["NodeID"]
        self.asked.append(node)
        if node == self.banned:
            return web.json_response({"Accept": False, "Reason": f"node {node} is banned"})
        return web.json_response({"Accept": True, "Reason": "welcome"})

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/approve", self._approve)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/approve"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> ApprovalServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def approval_server() -> Iterator[ApprovalServer]:
    with ApprovalServer() as server:
        yield server


def test_requester_hooks_steer_bids_and_a_slow_hook_holds_only_its_job(
    tmp_path: Path, approval_server: ApprovalServer
) -> None:
    # The first hook sleeps far past its timeout for jobs labelled slow=yes, and says yes
    # at once to the others; the second is the HTTP server's ban.
    slow_hook = executable(
        tmp_path / "slow.sh",
        """if grep -q '"slow": "yes"'; then exec sleep 600; fi\necho "not slow"\n""",
    )
    hooks = [
        {"Name": "slowpoke", "Type": "exec", "Command": slow_hook, "Timeout": 12},
        {"Name": "steer", "Type": "http", "URL": approval_server.url, "Timeout": 5},
    ]
    stack, nodes = requester_with_hooks(tmp_path, hooks)
    try:
        banned_name = "banned"
        approval_server.banned = banned = nodes.add(banned_name)
        nodes.add("other-1")
        nodes.add("other-2")

        # node describe on the requester lists its hooks, in order.
        api = f"{stack.api_url}/api/v1/orchestrator/nodes/{stack.requester.node_id}"
        with urllib.request.urlopen(api, timeout=10) as resp:
            described = json.load(resp)["Node"]
        assert [h["Name"] for h in described["Orchestrator"]["ApprovalHooks"]] == [
            "slowpoke",
            "steer",
        ]

        slow = stack.client.submit(noop_job("slow", {"slow": "yes"})).job_id
        eventually(
            lambda: any(
                "asking approval hooks: slowpoke, steer" in h.event.message
                for h in stack.client.get_job(slow, history=True).history
            ),
            timeout=60,
            what="the slow job's bid reaching the hooks",
        )
        jobs = [stack.client.submit(noop_job(f"job-{i}", {})).job_id for i in range(6)]
        pinned = stack.client.submit(noop_job("pinned", {}, on_node=banned_name)).job_id

        # The others complete while the slow job's hook still sleeps, none on the banned node.
        assert all(node_ran(stack, job_id) != banned for job_id in jobs)
        slow_now = stack.client.get_job(slow, history=True)
        assert not slow_now.job.state.is_terminal()
        assert not any(
            h.event.details.get("ApprovalHook") == "slowpoke" for h in slow_now.history
        ), "the slow hook decided before the other jobs completed"
        # A job only the banned node may take fails, the history naming the hook.
        refused = stack.client.wait_for_job(pinned, timeout=90)
        assert refused.job.state == JobStateType.FAILED
        history = stack.client.get_job(pinned, history=True).history
        decided = [h.event for h in history if h.event.details.get("ApprovalHook") == "steer"]
        assert decided, [h.event.message for h in history]
        assert decided[0].message == (
            f"bid rejected by approval hook steer: node {banned} is banned"
        )
        assert approval_server.asked.count(banned) >= 1

        # At its timeout the sleeping hook's answer is a no, named in the history.
        def timed_out() -> bool:
            events = stack.client.get_job(slow, history=True).history
            return any(
                h.event.details.get("ApprovalHook") == "slowpoke"
                and "did not answer within 12s" in h.event.message
                for h in events
            )

        eventually(timed_out, timeout=60, what="the slow hook's timeout")
    finally:
        try:
            nodes.stop()
        finally:
            stack.stop()


def test_a_daemon_a_hook_turned_down_runs_once_the_hook_says_yes(tmp_path: Path) -> None:
    """A hook's "no" may be for now: the node is asked again after a pause (10 s the first
    time), and the daemon job runs there once the hook agrees."""
    allow = tmp_path / "allow"
    hook = executable(
        tmp_path / "gate.sh",
        f"cat >/dev/null\n[ -e {allow} ] && echo open && exit 0\necho closed >&2\nexit 1\n",
    )
    hooks = [{"Name": "gate", "Type": "exec", "Command": hook, "Timeout": 5}]
    stack, nodes = requester_with_hooks(tmp_path, hooks)
    try:
        node_id = nodes.add("gated")
        daemon = noop_job("gated-daemon", {})
        daemon["Type"] = "daemon"
        daemon["Tasks"][0]["Engine"]["Params"]["SleepSeconds"] = 600
        job_id = stack.client.submit(daemon).job_id

        def executions() -> list[ExecutionStateType]:
            found = stack.client.get_job(job_id, executions=True).executions
            return [e.compute_state for e in found if e.node_id == node_id]

        eventually(
            lambda: ExecutionStateType.BID_REJECTED in executions(),
            timeout=30,
            what="the hook turning the bid down",
        )
        # Waiting for it ends with it queued, saying why: it may wait as long as the hook
        # says no (`job run --wait` returns, not after its --wait-timeout).
        started = time.monotonic()
        waited = stack.client.wait_for_job(job_id, timeout=60)
        assert time.monotonic() - started < 20
        assert waited.job.state == JobStateType.QUEUED, waited.job.state_message
        assert waited.job.state_message.startswith("waiting for a node")
        allow.touch()
        eventually(
            lambda: (
                ExecutionStateType.RUNNING in executions()
                or ExecutionStateType.BID_ACCEPTED in executions()
            ),
            timeout=40,
            what="the node asked again and running the daemon",
        )
        assert stack.client.get_job(job_id).job.state == JobStateType.RUNNING
        stack.client.stop_job(job_id)
    finally:
        nodes.stop()
        stack.stop(check=False)
