"""Per-job overhead of the executors against their raw baselines, in one run.

Prints one JSON object with a section per executor. Each section is a function registered in
``SECTIONS``; add an executor by adding a function (it receives the parsed arguments and
returns its figures as a dict).

``docker``: the same one-line job that writes a result file, run five ways, interleaved so
every way sees the same load:

- ``docker_cli``: ``docker run --rm --network none -v DIR:/outputs IMAGE sh -c ...``;
- ``sdk_bare``: the bare Docker API sequence through the ``docker`` SDK (create, start, wait,
  remove) with the same bind mount and no network;
- ``sdk_confined``: the same sequence with the executor's container confinement (every
  capability dropped, no-new-privileges, read-only root, a bounded tmpfs at /tmp);
- ``executor_open``: ``DockerExecutor.run`` with the read-only root and the result-folder
  disk cap turned off (capabilities and /tmp stay: they cannot be turned off);
- ``executor``: ``DockerExecutor.run`` as a node runs it, everything on (the result folder
  on its own size-capped loop-mounted filesystem when the node runs as root).

``isolation_cost_s`` is what the confinement adds to a job: the confinement flags
(``sdk_confined - sdk_bare``) plus the read-only root and disk cap (``executor -
executor_open``), each the median of the differences within a round; ``isolation_share`` is
that cost over the executor's median job latency (target: at most 0.10).

``wasm``: the WASM executor over a bare wasmtime call (``bench/_wasm_overhead.py``);
``--wasm-runs`` rounds per module (default 200: a WASM job takes milliseconds).

    python bench/executors.py [--runs N] [--wasm-runs N] [--image IMAGE] [--only docker|wasm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import docker
from docker.types import LogConfig, Mount

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bacalhau.executor import DockerExecutor, RunRequest  # noqa: E402
from bacalhau.executor._disk import capped_folders_supported  # noqa: E402
from bacalhau.models import ResultPath, SpecConfig  # noqa: E402
from bench._wasm_overhead import DEFAULT_RUNS as WASM_DEFAULT_RUNS  # noqa: E402
from bench._wasm_overhead import wasm_section  # noqa: E402

SCRIPT = "echo hi > /outputs/hi.txt"


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def _p90(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0], 4)


# -- docker -------------------------------------------------------------------------------------


def _ensure_image(image: str) -> None:
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    if probe.returncode != 0:
        subprocess.run([str(ROOT / "scripts" / "build_images.sh")], check=True)


def _docker_cli(image: str, out: Path) -> float:
    out.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "-v", f"{out}:/outputs"),
            *("--entrypoint", "sh", image, "-c", SCRIPT),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def _sdk_sequence(api: Any, image: str, out: Path, *, confined: bool) -> float:
    out.mkdir(parents=True)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if confined:
        extra = {
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,mode=1777,size=67108864"},
        }
    host_config = api.create_host_config(
        mounts=[Mount(target="/outputs", source=str(out), type="bind")],
        network_mode="none",
        pids_limit=256,
        log_config=LogConfig(type="none"),
        **extra,
    )
    created = api.create_container(
        image,
        command=[SCRIPT],
        entrypoint=["sh", "-c"],
        host_config=host_config,
        network_disabled=True,
    )
    api.start(created["Id"])
    status = api.wait(created["Id"])
    api.remove_container(created["Id"], v=True, force=True)
    elapsed = time.perf_counter() - started
    if status.get("StatusCode") != 0:
        raise RuntimeError(f"bare container failed: {status}")
    return elapsed


async def _executor_run(executor: DockerExecutor, image: str, results: Path) -> float:
    execution_id = f"e-{uuid.uuid4()}"
    request = RunRequest(
        execution_id=execution_id,
        job_id="j-bench",
        engine=SpecConfig(
            "docker", {"Image": image, "Entrypoint": ["sh", "-c"], "Parameters": [SCRIPT]}
        ),
        results_dir=results / execution_id,
        result_paths=[ResultPath(name="outputs", path="/outputs")],
    )
    started = time.perf_counter()
    result = await executor.run(request)
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or result.error_msg:
        raise RuntimeError(f"benchmark job failed: {result}")
    return elapsed


async def docker_section(args: argparse.Namespace) -> dict[str, Any]:
    _ensure_image(args.image)
    client = docker.from_env()
    api = client.api
    tag = uuid.uuid4().hex[:8]
    times: dict[str, list[float]] = {
        k: [] for k in ("docker_cli", "sdk_bare", "sdk_confined", "executor_open", "executor")
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        async with (
            DockerExecutor(
                client=client, name_prefix=f"benchc{tag}", scratch_dir=base / "scratch-c"
            ) as confined,
            DockerExecutor(
                client=client,
                name_prefix=f"bencho{tag}",
                read_only_rootfs=False,
                result_disk_limit=0,
                scratch_dir=base / "scratch-o",
            ) as open_,
        ):
            ways: dict[str, Callable[[Path], Awaitable[float]]] = {
                "docker_cli": lambda d: asyncio.to_thread(_docker_cli, args.image, d),
                "sdk_bare": lambda d: asyncio.to_thread(
                    _sdk_sequence, api, args.image, d, confined=False
                ),
                "sdk_confined": lambda d: asyncio.to_thread(
                    _sdk_sequence, api, args.image, d, confined=True
                ),
                "executor_open": lambda d: _executor_run(open_, args.image, d),
                "executor": lambda d: _executor_run(confined, args.image, d),
            }
            for i in range(args.runs + 2):  # the first two warm caches and pools
                for name, way in ways.items():
                    elapsed = await way(base / f"{name}-{i}")
                    if i >= 2:
                        times[name].append(elapsed)
    medians = {name: _median(values) for name, values in times.items()}

    def paired(a: str, b: str) -> float:
        # Median of the per-round differences: the two ran back to back, so a load change
        # on the machine between rounds cancels out.
        return statistics.median(x - y for x, y in zip(times[a], times[b], strict=True))

    flags = paired("sdk_confined", "sdk_bare")
    folders = paired("executor", "executor_open")
    isolation = max(0.0, flags) + max(0.0, folders)
    return {
        "image": args.image,
        "runs": args.runs,
        "result_folders_capped": capped_folders_supported(),
        "median_s": medians,
        "p90_s": {name: _p90(values) for name, values in times.items()},
        "overhead_over_docker_cli_s": round(medians["executor"] - medians["docker_cli"], 4),
        "overhead_over_sdk_s": round(medians["executor"] - medians["sdk_bare"], 4),
        "confinement_flags_cost_s": round(flags, 4),
        "read_only_root_and_disk_cap_cost_s": round(folders, 4),
        "isolation_cost_s": round(isolation, 4),
        "isolation_share": round(isolation / medians["executor"], 3),
        "isolation_share_max": 0.10,
    }


#: One section per executor; each returns its figures.
SECTIONS: dict[str, Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]] = {
    "docker": docker_section,
    "wasm": wasm_section,
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--wasm-runs", type=int, default=WASM_DEFAULT_RUNS)
    parser.add_argument("--image", default="local/busybox:1.37")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "executors"}
    for name in args.only or SECTIONS:
        report[name] = await SECTIONS[name](args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
