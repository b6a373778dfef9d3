"""Submit-to-completed latency of trivial jobs through a real devstack, next to raw baselines.

Starts ``bacalhau devstack`` (separate OS processes, mTLS gRPC between them), then submits
trivial WASM and Docker jobs one after another through the REST API and waits for each to
complete (the client's history long-poll). In the same run it measures the raw workloads:
a plain ``docker run --rm --network none`` of the same image and command, and a plain
wasmtime call of the same module (compile + instantiate + run, and with a cached module).

Prints one JSON document. Run ``bash scripts/setup.sh`` first (images, WASM samples).

    python bench/job_latency.py [--runs 20] [--compute-nodes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import wasmtime

from bacalhau.client import AsyncClient
from bacalhau.models import Job

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "local/busybox:1.37"
WASM = ROOT / ".build" / "wasm" / "hello.wasm"


def summary(samples: list[float]) -> dict[str, float | int]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
    }


def docker_job() -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "docker",
                        "Params": {"Image": IMAGE, "Entrypoint": ["echo"], "Parameters": ["hello"]},
                    },
                }
            ],
        }
    )


def wasm_job(module: bytes) -> Job:
    url = "data:application/wasm;base64," + base64.b64encode(module).decode()
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "wasm",
                        "Params": {
                            "EntryModule": {
                                "Source": {"Type": "inline", "Params": {"URL": url}},
                                "Target": "/app/main.wasm",
                            },
                            "EntryPoint": "_start",
                        },
                    },
                }
            ],
        }
    )


async def through_devstack(client: AsyncClient, job: Job, expect: str) -> float:
    start = time.perf_counter()
    submitted = await client.submit(job)
    details = await client.wait_for_job(submitted.job_id, timeout=120)
    elapsed = time.perf_counter() - start
    state = details.job.state.wire
    outputs = [e.run_output.stdout for e in details.executions if e.run_output]
    if state != "Completed" or not any(expect in o for o in outputs):
        raise RuntimeError(f"job {submitted.job_id} ended {state}: {details.job.state_message}")
    return elapsed


def raw_docker() -> float:
    start = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", IMAGE, "echo", "hello"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def raw_wasm(module_bytes: bytes, engine: wasmtime.Engine, cached: wasmtime.Module | None) -> float:
    start = time.perf_counter()
    module = cached or wasmtime.Module(engine, module_bytes)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    with tempfile.TemporaryDirectory() as d:
        wasi.stdout_file = os.path.join(d, "stdout")
        store.set_wasi(wasi)
        instance = linker.instantiate(store, module)
        start_fn = instance.exports(store)["_start"]
        try:
            start_fn(store)  # type: ignore[operator]
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                raise
    return time.perf_counter() - start


def start_devstack(data_dir: Path, compute_nodes: int) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "bacalhau", "devstack",
            "--compute-nodes", str(compute_nodes),
            "--api-port", "0",
            "--data-dir", str(data_dir),
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


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    module = WASM.read_bytes()
    engine = wasmtime.Engine()
    cached = wasmtime.Module(engine, module)
    result: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="bench-devstack-") as tmp:
        proc, api = start_devstack(Path(tmp), args.compute_nodes)
        try:
            async with AsyncClient(f"http://{api}") as client:
                for _ in range(args.warmup):
                    await through_devstack(client, wasm_job(module), "hello from wasm")
                    await through_devstack(client, docker_job(), "hello")
                wasm = [
                    await through_devstack(client, wasm_job(module), "hello from wasm")
                    for _ in range(args.runs)
                ]
                docker = [
                    await through_devstack(client, docker_job(), "hello") for _ in range(args.runs)
                ]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    for _ in range(args.warmup):
        raw_docker()
    docker_raw = [raw_docker() for _ in range(args.runs)]
    wasm_raw = [raw_wasm(module, engine, None) for _ in range(args.runs)]
    wasm_raw_cached = [raw_wasm(module, engine, cached) for _ in range(args.runs)]

    result["wasm_job"] = summary(wasm)
    result["wasm_raw_wasmtime_compile_and_run"] = summary(wasm_raw)
    result["wasm_raw_wasmtime_cached_module"] = summary(wasm_raw_cached)
    result["docker_job"] = summary(docker)
    result["docker_raw_docker_run"] = summary(docker_raw)
    ratio = result["docker_job"]["median_ms"] / result["docker_raw_docker_run"]["median_ms"]
    result["docker_job_vs_raw_median_ratio"] = round(ratio, 3)
    result["targets"] = {
        "docker_job_within_1.3x_of_docker_run": ratio <= 1.3,
        "wasm_job_median_under_100ms": result["wasm_job"]["median_ms"] < 100,
    }
    result["setup"] = {"compute_nodes": args.compute_nodes, "cpus": os.cpu_count()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compute-nodes", type=int, default=2)
    args = parser.parse_args()
    if not WASM.exists():
        sys.exit(f"{WASM} is missing: run `bash scripts/setup.sh` first")
    print(json.dumps(asyncio.run(measure(args)), indent=2))


if __name__ == "__main__":
    main()
