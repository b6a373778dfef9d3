"""Live logs: how fast a printed line reaches a follower, and how much output the requester
relays to several followers at once.

Starts ``bacalhau devstack`` (a requester and one compute node, separate OS processes,
mutual-TLS gRPC between them) and measures, through the REST WebSocket a client follows:

- ``line_delay_ms``: from a line being printed in a Docker container to its arrival at a
  client following the job (``logs --follow``): the line carries the kernel's boot clock as
  the container read it (``/proc/uptime``, 10 ms steps, the same clock the host reads), the
  client notes the clock on arrival. Median and p95 over ``--lines`` lines printed
  ``--interval`` apart.
- ``throughput_mb_s_4_followers``: a finished job's ``--mb`` MB of stdout (1 KiB lines)
  replayed to 4 followers at once, compute node -> requester -> WebSocket; total bytes
  received by the four divided by the wall time, and the slowest follower's own rate.
- ``plain_get_mb_s``: the same output through one plain GET (no framing), for comparison.

Prints one JSON object. Run ``bash scripts/setup.sh`` first (images).

    python bench/logs.py [--lines 100] [--interval 0.05] [--mb 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from job_latency import IMAGE, start_devstack

from bacalhau.client import AsyncClient
from bacalhau.models import Job

FOLLOWERS = 4
TARGETS = {"line_delay_p95_ms": "< 250"}


def shell_job(script: str) -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "docker",
                        "Params": {"Image": IMAGE, "Entrypoint": ["sh", "-c", script]},
                    },
                    "Publisher": {"Type": "local"},
                }
            ],
        }
    )


def boot_clock() -> float:
    """The clock ``/proc/uptime`` shows inside every container on this host."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


async def line_delays(client: AsyncClient, lines: int, interval: float) -> list[float]:
    # Wait until the follower is attached before printing, so every line is live.
    script = (
        f"sleep 2; i=0; while [ $i -lt {lines} ]; do "
        f"read up idle < /proc/uptime; echo t=$up; i=$((i+1)); sleep {interval}; done"
    )
    submitted = await client.submit(shell_job(script))
    delays: list[float] = []
    async for line in client.logs(submitted.job_id, follow=True):
        arrived = boot_clock()
        if line.text.startswith("t="):
            delays.append((arrived - float(line.text[2:])) * 1000)
    return delays


async def follow_bytes(client: AsyncClient, job_id: str) -> tuple[int, float]:
    start = time.perf_counter()
    total = 0
    async for line in client.logs(job_id, follow=True):
        total += len(line.text)
    return total, time.perf_counter() - start


async def plain_get(api: str, job_id: str) -> tuple[int, float]:
    start = time.perf_counter()
    total = 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{api}/api/v1/orchestrator/jobs/{job_id}/logs") as resp,
    ):
        async for chunk in resp.content.iter_chunked(1 << 20):
            total += len(chunk)
    return total, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    size = args.mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        proc, api = start_devstack(Path(tmp), 1)
        try:
            async with AsyncClient(f"http://{api}") as client:
                delays = await line_delays(client, args.lines, args.interval)
                # 1 KiB lines: 16 characters doubled six times, plus the newline.
                big = "s=0123456789abcdef; for _ in 1 2 3 4 5 6; do s=$s$s; done; "
                big += f'yes "$s" | head -c {size}'
                submitted = await client.submit(shell_job(big))
                details = await client.wait_for_job(submitted.job_id, timeout=600)
                assert details.job.state.wire == "Completed", details.job.state_message
                start = time.perf_counter()
                runs = await asyncio.gather(
                    *(follow_bytes(client, submitted.job_id) for _ in range(FOLLOWERS))
                )
                wall = time.perf_counter() - start
                plain_bytes, plain_seconds = await plain_get(api, submitted.job_id)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    received = sum(n for n, _ in runs)
    result["line_delay_ms"] = {
        "lines": len(delays),
        "median": round(statistics.median(delays), 1),
        "p95": round(percentile(delays, 0.95), 1),
        "max": round(max(delays), 1),
        "clock_step_ms": 10,
    }
    result["throughput_mb_s_4_followers"] = {
        "output_mb": args.mb,
        "followers": FOLLOWERS,
        "all_complete": all(n == size for n, _ in runs),
        "aggregate": round(received / wall / 1e6, 1),
        "slowest_follower": round(min(n / s for n, s in runs) / 1e6, 1),
    }
    result["plain_get_mb_s"] = round(plain_bytes / plain_seconds / 1e6, 1)
    result["targets"] = {"line_delay_p95_under_250ms": result["line_delay_ms"]["p95"] < 250}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args)), indent=2))


if __name__ == "__main__":
    main()
