"""Docker executor latency against a plain ``docker run --rm --network none IMAGE true``.

Prints one JSON object: the median (and p90) wall time of a whole job through
``DockerExecutor.run`` (create, attach, start, wait, results files, remove) and of the same
container run by the docker CLI, plus their ratio. Runs alternate so both see the same load.

    python bench/executor_docker.py [--runs N] [--image IMAGE]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bacalhau.executor import DockerExecutor, RunRequest  # noqa: E402
from bacalhau.models import SpecConfig  # noqa: E402


def _ensure_image(image: str) -> None:
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    if probe.returncode != 0:
        subprocess.run([str(ROOT / "scripts" / "build_images.sh")], check=True)


def _docker_run(image: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "true"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


async def _executor_run(executor: DockerExecutor, image: str, results: Path) -> float:
    execution_id = f"e-{uuid.uuid4()}"
    request = RunRequest(
        execution_id=execution_id,
        job_id="j-bench",
        engine=SpecConfig("docker", {"Image": image, "Parameters": ["true"]}),
        results_dir=results / execution_id,
    )
    started = time.perf_counter()
    result = await executor.run(request)
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or result.error_msg:
        raise RuntimeError(f"benchmark job failed: {result}")
    return elapsed


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--image", default="local/busybox:1.37")
    args = parser.parse_args()
    _ensure_image(args.image)
    executor = DockerExecutor(name_prefix=f"bench{uuid.uuid4().hex[:8]}")
    ours: list[float] = []
    plain: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        for _ in range(2):  # warm-up: connection pool, page cache, the engine's own caches
            await _executor_run(executor, args.image, results)
            await asyncio.to_thread(_docker_run, args.image)
        for _ in range(args.runs):
            ours.append(await _executor_run(executor, args.image, results))
            plain.append(await asyncio.to_thread(_docker_run, args.image))
    executor_median = statistics.median(ours)
    docker_median = statistics.median(plain)
    print(
        json.dumps(
            {
                "benchmark": "executor_docker",
                "image": args.image,
                "runs": args.runs,
                "executor_median_s": round(executor_median, 4),
                "executor_p90_s": round(_p90(ours), 4),
                "docker_run_median_s": round(docker_median, 4),
                "docker_run_p90_s": round(_p90(plain), 4),
                "ratio_median": round(executor_median / docker_median, 3),
                "target_ratio_max": 1.3,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
