"""Scheduling figures through real devstacks: what accept hooks add to a job, and (with the
daemon job type) how long a daemon job takes to run on every node; and, in this process, what
one scheduling pass costs by cluster size (``--only passes``, see ``_passes.py``).

Accept hooks: three devstacks in turn (one requester, one compute node, the ``noop`` engine so
that only scheduling is measured): without approval hooks, with a trivial exec hook
(``cat >/dev/null``: reads the bid, says yes), and with a trivial HTTP hook (an aiohttp server
in this process that reads the bid and says yes). Trivial jobs are submitted one after another
through the REST API and followed to completion; the added latency of a hook is the median
with it minus the median without, in the same run. The cost of one call of each hook, asked
directly, is reported next to it. Target: under 10 ms added per job for each trivial hook.

Prints one JSON document.

    python bench/scheduling.py [--runs 30] [--warmup 3] [--only hooks|daemon|passes]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from _passes import pass_figures
from aiohttp import web

from bacalhau.client import AsyncClient
from bacalhau.models import Execution, ExecutionStateType, Job, NodeInfo, NodeState, NodeType
from bacalhau.orchestrator import ApprovalChain, ExecApprovalHook, HttpApprovalHook

TARGET_ADDED_MS = 10.0


def summary(samples: list[float]) -> dict[str, float | int]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
    }


def noop_job() -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop", "Params": {"Stdout": "hi"}}}],
        }
    )


# -- a trivial HTTP approval hook ---------------------------------------------------------------


async def _approve(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response({"Accept": True, "Reason": "trivial"})


@asynccontextmanager
async def approval_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/approve", _approve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/approve"
    finally:
        await runner.cleanup()


# -- devstacks ----------------------------------------------------------------------------------


def start_devstack(
    data_dir: Path, *, compute_nodes: int, config: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    settings = [part for item in config for part in ("-c", item)]
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "bacalhau", "devstack",
            "--compute-nodes", str(compute_nodes),
            "--engines", "noop",
            "--api-port", "0",
            "--data-dir", str(data_dir),
            *settings,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    manifest = data_dir / "devstack.json"
    deadline = time.monotonic() + 90
    while not manifest.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"devstack exited early:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("devstack did not become ready in 90 s")
        time.sleep(0.1)
    return proc, json.loads(manifest.read_text())["APIAddress"]


async def job_latency(client: AsyncClient) -> float:
    start = time.perf_counter()
    submitted = await client.submit(noop_job())
    details = await client.wait_for_job(submitted.job_id, timeout=120)
    elapsed = time.perf_counter() - start
    if details.job.state.wire != "Completed":
        raise RuntimeError(f"job {submitted.job_id} ended {details.job.state.wire}")
    return elapsed


async def latencies(hooks: list[dict[str, Any]], args: argparse.Namespace) -> list[float]:
    """Submit-to-completed of trivial jobs, one after another, with these approval hooks."""
    config = ["Orchestrator.ApprovalHooks=" + json.dumps(hooks)] if hooks else []
    with tempfile.TemporaryDirectory(prefix="bench-scheduling-") as tmp:
        proc, api = await asyncio.to_thread(
            start_devstack, Path(tmp), compute_nodes=1, config=config
        )
        try:
            async with AsyncClient(f"http://{api}") as client:
                for _ in range(args.warmup):
                    await job_latency(client)
                return [await job_latency(client) for _ in range(args.runs)]
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)


async def hook_calls(chain: ApprovalChain, runs: int) -> list[float]:
    """One hook asked directly about a bid, ``runs`` times."""
    job = noop_job()
    job.id = "j-bench"
    execution = Execution(id="e-bench", job_id=job.id, node_id="n-bench")
    node = NodeState(info=NodeInfo(node_id="n-bench", node_type=NodeType.COMPUTE))
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        decision = await chain.decide(job, execution, node)
        samples.append(time.perf_counter() - start)
        if not decision.accepted:
            raise RuntimeError(f"the trivial hook said no: {decision.reason}")
    return samples


async def hook_figures(args: argparse.Namespace) -> dict[str, Any]:
    async with approval_server() as url:
        exec_hook = {"Name": "trivial-exec", "Type": "exec", "Command": "cat >/dev/null"}
        http_hook = {"Name": "trivial-http", "Type": "http", "URL": url}
        none = await latencies([], args)
        with_exec = await latencies([exec_hook], args)
        with_http = await latencies([http_hook], args)
        exec_chain = ApprovalChain([ExecApprovalHook("exec", "cat >/dev/null")])
        http_chain = ApprovalChain([HttpApprovalHook("http", url)])
        try:
            exec_calls = await hook_calls(exec_chain, args.runs)
            http_calls = await hook_calls(http_chain, args.runs)
        finally:
            await http_chain.aclose()
    base = statistics.median(none)
    exec_added = round((statistics.median(with_exec) - base) * 1000, 2)
    http_added = round((statistics.median(with_http) - base) * 1000, 2)
    return {
        "job_no_hook": summary(none),
        "job_exec_hook": summary(with_exec),
        "job_http_hook": summary(with_http),
        "exec_hook_added_ms_per_job": exec_added,
        "http_hook_added_ms_per_job": http_added,
        "exec_hook_call": summary(exec_calls),
        "http_hook_call": summary(http_calls),
        "targets": {
            "exec_hook_added_under_10ms": exec_added < TARGET_ADDED_MS,
            "http_hook_added_under_10ms": http_added < TARGET_ADDED_MS,
        },
    }


# -- daemon jobs --------------------------------------------------------------------------------


DAEMON_NODES = 8
#: Execution states in which the requester has told a node to run the execution (it hears
#: of the run itself only when it ends).
_STARTED = (ExecutionStateType.BID_ACCEPTED, ExecutionStateType.RUNNING)


def daemon_job() -> Job:
    """A daemon that keeps running (the noop engine sleeping) until stopped."""
    return Job.from_dict(
        {
            "Type": "daemon",
            "Tasks": [
                {"Name": "main", "Engine": {"Type": "noop", "Params": {"SleepSeconds": 600}}}
            ],
        }
    )


async def daemon_all_running(client: AsyncClient, nodes: int) -> float:
    """Seconds from submit until the daemon job has a started execution on every node."""
    start = time.perf_counter()
    submitted = await client.submit(daemon_job())
    try:
        deadline = start + 120
        while time.perf_counter() < deadline:
            executions = await client.executions(submitted.job_id)
            if len({e.node_id for e in executions if e.compute_state in _STARTED}) >= nodes:
                return time.perf_counter() - start
            await asyncio.sleep(0.01)
        raise RuntimeError(f"daemon job {submitted.job_id} did not reach {nodes} nodes")
    finally:
        await client.stop_job(submitted.job_id)


async def daemon_figures(args: argparse.Namespace) -> dict[str, Any]:
    """Time from submit to every execution running for a daemon job on 8 compute nodes
    (one devstack, ``noop`` engine; the median over the runs), as
    ``daemon_8_nodes_all_running_s``."""
    runs = max(1, args.runs // 6)
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        proc, api = await asyncio.to_thread(
            start_devstack, Path(tmp), compute_nodes=DAEMON_NODES, config=[]
        )
        try:
            async with AsyncClient(f"http://{api}") as client:
                await daemon_all_running(client, DAEMON_NODES)  # warm-up
                samples = [await daemon_all_running(client, DAEMON_NODES) for _ in range(runs)]
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
    return {
        "daemon_8_nodes_all_running_s": round(statistics.median(samples), 3),
        "daemon_8_nodes": summary(samples),
    }


def daemon_section(args: argparse.Namespace) -> dict[str, Any]:
    """The daemon figure alone (``--only daemon``)."""
    return asyncio.run(daemon_figures(args))


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if args.only in ("", "hooks"):
        result["hooks"] = await hook_figures(args)
    if args.only in ("", "daemon"):
        result.update(await daemon_figures(args))
    if args.only in ("", "passes"):
        result.update(await asyncio.to_thread(pass_figures, args.runs))
    result["setup"] = {"runs": args.runs, "warmup": args.warmup, "cpus": os.cpu_count()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--only", choices=["hooks", "daemon", "passes"], default="", help="One section."
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args)), indent=2))


if __name__ == "__main__":
    main()
