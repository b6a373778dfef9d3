"""One requester under load: latency, throughput, spreading and a 100,000-job store.

Starts ``bacalhau devstack`` (one requester and two equal compute nodes as separate OS
processes, mutual-TLS gRPC between them) and measures, in one run:

- ``wasm_median_ms``: submit-to-Completed of a trivial WASM job (a cached module), one
  after another, through the REST API (one request: the submit held until the job ends).
- ``wasm_floor``: the latency's raw baseline, measured before the devstack starts: one bare
  HTTP round trip, one bare mutual-TLS gRPC round trip and the cached module's run, summed
  (see ``_floor.py``); ``wasm_vs_floor`` is ``wasm_median_ms`` divided by it.
- ``wasm_skeleton``: the throughput's raw baseline, measured before the devstack starts: the
  same submissions through a bare skeleton of the job's path in the same processes (a
  requester and two compute nodes on uvloop, aiohttp, mutual-TLS gRPC, ed25519, SQLite
  commits, the cached module's run; nothing else: see ``_skeleton.py``): its jobs/s and CPU
  per job at the same levels, and its sequential median;
  ``wasm_jobs_per_s_vs_skeleton`` and ``wasm_median_vs_skeleton`` set ours against it.
- ``wasm_jobs_per_s``: WASM jobs completed per second with 1, 4, 16 and 64 in flight,
  each job saying what a trivial WASM run needs (a tenth of a core, ``TRIVIAL_CPU``: the
  default of half a core lets 4 run or wait on each of the devstack's nodes here, which
  hold 1.4 cores and take half as much again into their queues);
  ``wasm_cpu_ms_per_job``: at each level, the CPU time per job of the requester, the compute
  nodes (together) and this client, next to what the cores allow per job at 400 jobs/s;
  ``wasm_asks_per_call``: how many asks shared a call to their node (AskForBids) at each
  level, read from the requester's ``/metrics``; ``compute_side``: over the sequential and
  throughput runs, from the compute nodes' own ``/metrics``, how many WASM runs were made
  inline (on the event loop) or on a worker, how many inline runs yielded, and the compute
  store's transactions per job.
- ``placement_imbalance``: over the 400 WASM jobs of that throughput run, the busier
  compute node's executions divided by the less busy one's.
- ``docker_vs_raw``: wall time of Docker jobs through the devstack divided by that of the
  same number of plain ``docker run --rm`` at the same concurrency (lower is better).
- ``list_page_ms_100k`` and ``requester_rss_mb_100k``: 100,000 jobs are written straight
  into the running requester's job store by a separate process through the store API (not
  through HTTP: that would take the whole run), then pages of 100 are fetched over HTTP
  (the first page, and pages deep into the listing through ``next_token``) and the
  requester process's resident memory is read from ``/proc``.

Prints one JSON object with the figures, the baselines measured in the same run, and the
targets met. Run ``bash scripts/setup.sh`` first (images, WASM samples).

    python bench/throughput.py [--jobs-100k 100000] [--only wasm]

``--only wasm`` measures the WASM figures alone (latency, jobs/s, placement), for profiling
runs that need not wait for the Docker and 100,000-job parts.
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _floor import wasm_floor
from _skeleton import Skeleton, measure_skeleton
from job_latency import WASM, docker_job, raw_docker, start_devstack, wasm_job

from bacalhau.client import AsyncClient
from bacalhau.models import Job

ROOT = Path(__file__).resolve().parent.parent
#: Jobs per in-flight level: 400 in all, for the placement figure.
LEVELS = {1: 40, 4: 40, 16: 64, 64: 256}
#: What the throughput run's trivial WASM jobs ask for (Bacalhau's compute-side default
#: for a job that asks for nothing: the requester's own default is half a core).
TRIVIAL_CPU = "100m"
DOCKER_JOBS = 16
DOCKER_CONCURRENCY = 4
TARGETS = {
    "wasm_median_ms": "< 6",
    "wasm_jobs_per_s@16": ">= 400",
    "docker_vs_raw": "<= 0.7",
    "list_page_ms_100k": "< 20",
    "requester_rss_mb_100k": "< 150",
    "placement_imbalance": "<= 1.5",
}


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU time (user + system, every thread) so far of each role's processes, and of this
    one (the client) as ``client``."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for role, ids in pids.items():
        total = 0
        for pid in ids:
            # The fields after the command's closing parenthesis: utime and stime are the
            # 12th and 13th of them.
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        used[role] = total / tick
    used["client"] = time.process_time()
    return used


async def asks_per_call(api: str) -> tuple[float, float]:
    """The requester's ``bacalhau_asks_per_call`` so far: (asks, calls)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://{api}/metrics") as r:
        text = await r.text()
    found = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for key in found:
            if line.startswith(f"bacalhau_asks_per_call_{key} "):
                found[key] = float(line.split()[1])
    return found["sum"], found["count"]


async def compute_metrics(manifest: dict[str, Any]) -> dict[str, float]:
    """The compute nodes' ``/metrics`` (each on its ``MetricsAddress``), summed by sample
    (name and labels)."""
    totals: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        for node in manifest["Nodes"]:
            if node["Role"] != "compute":
                continue
            async with http.get(f"http://{node['MetricsAddress']}/metrics") as r:
                text = await r.text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    key = sample.name + "".join(f",{v}" for _, v in sorted(sample.labels.items()))
                    totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def compute_counts(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, Any]:
    """What the compute nodes' metrics say of ``jobs`` WASM jobs: where their runs went
    (inline on the loop, or a worker; inline runs that yielded), and store transactions."""

    def grew(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    return {
        "jobs": jobs,
        "wasm_runs_inline": int(grew("bacalhau_wasm_runs_total,inline")),
        "wasm_runs_worker": int(grew("bacalhau_wasm_runs_total,worker")),
        "wasm_inline_yields": int(grew("bacalhau_wasm_inline_yields_total")),
        "store_transactions_per_job": round(
            grew("bacalhau_compute_sqlite_transaction_seconds_count") / max(jobs, 1), 2
        ),
    }


async def run_job(client: AsyncClient, job: Job) -> tuple[float, list[str]]:
    """Submit ``job``, wait for it; returns the time taken and the nodes that completed it.
    One request, as the SDK's ``submit_and_wait`` makes it (the submit held until the end)."""
    start = time.perf_counter()
    submitted, details = await client.submit_and_wait(job, timeout=300)
    elapsed = time.perf_counter() - start
    if details.job.state.wire != "Completed":
        raise RuntimeError(
            f"job {submitted.job_id} ended {details.job.state.wire}: {details.job.state_message}"
        )
    nodes = [e.node_id for e in details.executions if e.compute_state.label == "Completed"]
    return elapsed, nodes


async def in_flight(
    client: AsyncClient, make: Any, total: int, concurrency: int
) -> tuple[float, list[str]]:
    """Run ``total`` jobs with at most ``concurrency`` in flight: (wall seconds, nodes)."""
    gate = asyncio.Semaphore(concurrency)
    nodes: list[str] = []

    async def one() -> None:
        async with gate:
            _, where = await run_job(client, make())
            nodes.extend(where)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return time.perf_counter() - start, nodes


def raw_docker_wall(total: int, concurrency: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: raw_docker(), range(total)))
    return time.perf_counter() - start


_FILL = """
import sys, time
from bacalhau.models import Job, JobStateType, now_ns
from bacalhau.orchestrator import JobStore
store = JobStore(sys.argv[1])
count = int(sys.argv[2])
job = Job.from_dict({"Type": "batch", "Count": 1, "Labels": {"bench": "fill"},
    "Tasks": [{"Name": "main", "Engine": {"Type": "wasm", "Params": {"EntryModule":
    {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}}}}}]})
job.namespace, job.state, job.revision = "default", JobStateType.PENDING, 1
base = now_ns() - 86_400 * 10**9  # a day ago: older than the jobs run above
for start in range(0, count, 2000):
    with store.transaction():
        ids = []
        for i in range(start, min(count, start + 2000)):
            job.id = f"j-fill-{i:08d}-0000-0000-0000-000000000000"
            job.name = job.id
            job.create_time = job.modify_time = base + i * 1000
            store.create_job(job)
            ids.append(job.id)
        # Completed in the same transaction, so the requester never sees them pending (it
        # would evaluate them); one UPDATE instead of two state changes with history each.
        store._db.executemany(
            "UPDATE jobs SET state = ?, revision = 3 WHERE id = ?",
            [(int(JobStateType.COMPLETED), i) for i in ids],
        )
store.close()
"""


def trivial(module: bytes) -> Job:
    """The trivial WASM job of the throughput run, saying how little it needs."""
    job = wasm_job(module)
    job.tasks[0].resources.cpu = TRIVIAL_CPU
    return job


def fill_store(db: Path, count: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _FILL, str(db), str(count)], check=True, cwd=ROOT)
    return time.perf_counter() - start


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def list_pages(api: str, pages: int) -> dict[str, Any]:
    """Fetch the first page of 100 ``pages`` times, then follow ``next_token`` as deep; and
    the newest 100 (the benchmark's own WASM jobs, each spec carrying its 39 KB module)."""
    first: list[float] = []
    deep: list[float] = []
    newest: list[float] = []
    url = f"http://{api}/api/v1/orchestrator/jobs"
    async with aiohttp.ClientSession() as http:
        for _ in range(pages):
            start = time.perf_counter()
            async with http.get(url, params={"limit": "100", "reverse": "true"}) as r:
                await r.read()
            newest.append(time.perf_counter() - start)
        for _ in range(pages):
            start = time.perf_counter()
            async with http.get(url, params={"limit": "100"}) as r:
                body = await r.json()
            first.append(time.perf_counter() - start)
            assert len(body["Items"]) == 100, body
        token = body["NextToken"]
        for _ in range(pages):
            start = time.perf_counter()
            async with http.get(url, params={"limit": "100", "next_token": token}) as r:
                body = await r.json()
            deep.append(time.perf_counter() - start)
            token = body["NextToken"]
    return {
        "first_page_median_ms": round(statistics.median(first) * 1000, 2),
        "next_token_page_median_ms": round(statistics.median(deep) * 1000, 2),
        "newest_wasm_jobs_page_median_ms": round(statistics.median(newest) * 1000, 2),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    module = WASM.read_bytes()
    out: dict[str, Any] = {"wasm_floor": await wasm_floor()}
    submission = orjson.dumps({"Job": trivial(module).to_dict()})
    with Skeleton(WASM) as skeleton:
        out["wasm_skeleton"] = await measure_skeleton(skeleton, submission, LEVELS, cpu_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        proc, api = start_devstack(Path(tmp), 2)
        manifest = json.loads((Path(tmp) / "devstack.json").read_text())
        requester = next(n for n in manifest["Nodes"] if n["Role"] == "requester")
        pids: dict[str, list[int]] = {}
        for node in manifest["Nodes"]:
            pids.setdefault(node["Role"], []).append(int(node["PID"]))
        try:
            async with AsyncClient(f"http://{api}") as client:
                for _ in range(3):
                    await run_job(client, wasm_job(module))
                    if args.only != "wasm":
                        await run_job(client, docker_job())
                metrics_before = await compute_metrics(manifest)
                sequential = [
                    (await run_job(client, wasm_job(module)))[0] for _ in range(args.runs)
                ]
                out["wasm_median_ms"] = round(statistics.median(sequential) * 1000, 2)
                floor = out["wasm_floor"]["wasm_floor_ms"]
                out["wasm_vs_floor"] = round(out["wasm_median_ms"] / floor, 1)
                out["wasm_median_vs_skeleton"] = round(
                    out["wasm_median_ms"] / out["wasm_skeleton"]["median_ms"], 1
                )
                rates: dict[str, float] = {}
                cpu: dict[str, dict[str, float]] = {}
                asks: dict[str, float] = {}
                placed: list[str] = []
                for level, total in LEVELS.items():
                    calls_before = await asks_per_call(api)
                    before = cpu_seconds(pids)
                    wall, nodes = await in_flight(client, lambda: trivial(module), total, level)
                    after = cpu_seconds(pids)
                    calls_after = await asks_per_call(api)
                    sent = calls_after[1] - calls_before[1]
                    asks[str(level)] = round((calls_after[0] - calls_before[0]) / max(sent, 1), 2)
                    rates[str(level)] = round(total / wall, 1)
                    cpu[str(level)] = {
                        role: round((after[role] - before[role]) * 1000 / total, 2)
                        for role in after
                    }
                    cpu[str(level)]["total"] = round(sum(cpu[str(level)].values()), 2)
                    placed.extend(nodes)
                out["wasm_jobs_per_s"] = rates
                bare = out["wasm_skeleton"]["jobs_per_s"]
                out["wasm_jobs_per_s_vs_skeleton"] = {
                    level: round(rate / bare[level], 2) for level, rate in rates.items()
                }
                # How many of a level's asks shared a call to their node (AskForBids).
                out["wasm_asks_per_call"] = asks
                # Where the machine's time goes per job (CPU ms, every process): at 400
                # jobs/s its cores allow each job cpus * 1000 / 400 ms in all.
                out["wasm_cpu_ms_per_job"] = {
                    **cpu,
                    "budget_at_400_per_s": round((os.cpu_count() or 1) * 1000 / 400, 2),
                }
                per_node = Counter(placed)
                counts = [
                    per_node.get(n["ID"], 0) for n in manifest["Nodes"] if n["Role"] == "compute"
                ]
                out["placement_imbalance"] = round(max(counts) / max(1, min(counts)), 3)
                out["placement_per_node"] = counts
                # Read from the compute nodes' own /metrics, over the sequential and
                # throughput runs: a module that left the inline path shows here.
                out["compute_side"] = compute_counts(
                    metrics_before, await compute_metrics(manifest), args.runs + len(placed)
                )
                if args.only == "wasm":
                    return finish(out, args)
                docker_wall, _ = await in_flight(
                    client, docker_job, DOCKER_JOBS, DOCKER_CONCURRENCY
                )
            raw_wall = raw_docker_wall(DOCKER_JOBS, DOCKER_CONCURRENCY)
            out["docker_vs_raw"] = round(docker_wall / raw_wall, 3)
            out["docker_baseline"] = {
                "jobs": DOCKER_JOBS,
                "in_flight": DOCKER_CONCURRENCY,
                "through_devstack_s": round(docker_wall, 2),
                "plain_docker_run_s": round(raw_wall, 2),
            }
            rss_before = rss_mb(requester["PID"])
            db = Path(requester["DataDir"]) / "orchestrator" / "jobs.db"
            fill_s = fill_store(db, args.jobs_100k)
            pages = await list_pages(api, 20)
            out["list_page_ms_100k"] = pages["first_page_median_ms"]
            out["list_pages_100k"] = pages
            out["requester_rss_mb_100k"] = round(rss_mb(requester["PID"]), 1)
            out["requester_rss_mb_before_fill"] = round(rss_before, 1)
            out["store_fill"] = {
                "jobs": args.jobs_100k,
                "how": "written by a separate process through JobStore.create_job into the "
                "running requester's jobs.db (not over HTTP), marked Completed by SQL in the "
                "same transactions",
                "seconds": round(fill_s, 1),
                "db_mb": round(db.stat().st_size / 2**20, 1),
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return finish(out, args)


def finish(out: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Adds the targets met (for the figures measured) and the setup to ``out``."""
    checks = {
        "wasm_median_ms": lambda: out["wasm_median_ms"] < 6,
        "wasm_jobs_per_s@16": lambda: out["wasm_jobs_per_s"]["16"] >= 400,
        "docker_vs_raw": lambda: out["docker_vs_raw"] <= 0.7,
        "list_page_ms_100k": lambda: out["list_page_ms_100k"] < 20,
        "requester_rss_mb_100k": lambda: out["requester_rss_mb_100k"] < 150,
        "placement_imbalance": lambda: out["placement_imbalance"] <= 1.5,
    }
    measured = {"wasm_jobs_per_s@16": "wasm_jobs_per_s"}
    out["targets"] = {
        k: {"target": TARGETS[k], "met": check()}
        for k, check in checks.items()
        if measured.get(k, k) in out
    }
    out["setup"] = {
        "compute_nodes": 2,
        "cpus": os.cpu_count(),
        "sequential_runs": args.runs,
        "load_average": os.getloadavg(),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--jobs-100k", type=int, default=100_000)
    parser.add_argument("--only", choices=["wasm"], help="measure only these figures")
    args = parser.parse_args()
    if not WASM.exists():
        sys.exit(f"{WASM} is missing: run `bash scripts/setup.sh` first")
    print(json.dumps(asyncio.run(measure(args)), indent=2))


if __name__ == "__main__":
    main()
