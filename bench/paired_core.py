"""CPU per job of the requester's core, this tree against another revision, measured in pairs.

This machine's speed swings by 25-60% within minutes, so two runs made one after the other
cannot show a change of a few percent. Here both trees run at once, each in a worker process
of its own holding a requester and a noop compute node in that process (the in-process wiring
of ``tests/orchestrator/test_fast_path.py``: no HTTP, no gRPC, the real store, scheduler,
callbacks and compute pipeline). The driver has them run batches of jobs in turn (ABAB, then
BABA...), so each pair of batches meets the same machine, and reports the median of the
per-pair differences of CPU milliseconds per job, and in how many pairs this tree was faster.

    python bench/paired_core.py --base HEAD~1 [--concurrency 1 16] [--rounds 30] [--batch 150]

``--base`` is any revision: it is checked out into a temporary worktree. Prints one JSON
object. Use it to decide about a change too small for ``bench/throughput.py`` to see.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Run in each tree: holds one requester and one noop node, and runs a batch of jobs (with
#: the given number in flight) for each line read, answering with its CPU ms per job.
_WORKER = r"""
import asyncio, os, sys, tempfile, time
from contextlib import AsyncExitStack
from pathlib import Path
sys.path.insert(0, os.getcwd())
from tests.orchestrator.test_fast_path import _job, requester_with_one_node
from bacalhau.api._history import wait_for_end

async def main(concurrency):
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncExitStack() as stack:
            orch, _ = await requester_with_one_node(stack, Path(tmp))
            closing = asyncio.Event()
            gate = asyncio.Semaphore(concurrency)

            async def one():
                # The node view is static: nothing ever drops what ends counted as freed.
                orch.nodes._released.clear()
                async with gate:
                    submitted = await orch.submit_job(_job())
                    job = await wait_for_end(
                        orch, submitted.job_id, "batch", wait=30, closing=closing
                    )
                    assert job is not None and job.state.wire == "Completed", job

            for _ in range(50):
                await one()
            loop = asyncio.get_running_loop()
            while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
                count = int(line)
                began = time.process_time()
                await asyncio.gather(*(one() for _ in range(count)))
                print((time.process_time() - began) / count * 1000, flush=True)

import uvloop
uvloop.run(main(int(sys.argv[1])))
"""


def _worker(tree: Path, concurrency: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(concurrency)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _batch(worker: subprocess.Popen[str], count: int) -> float:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(f"{count}\n")
    worker.stdin.flush()
    answer = worker.stdout.readline()
    if not answer:
        raise RuntimeError(f"a worker stopped (exit code {worker.wait()})")
    return float(answer)


def paired(base: Path, concurrency: int, rounds: int, batch: int) -> dict[str, Any]:
    """Alternate batches between the two trees; their CPU ms per job and the paired
    differences (this tree minus the base)."""
    workers = {"base": _worker(base, concurrency), "this": _worker(ROOT, concurrency)}
    spent: dict[str, list[float]] = {"base": [], "this": []}
    try:
        for i in range(rounds):
            for name in ("base", "this") if i % 2 == 0 else ("this", "base"):
                spent[name].append(_batch(workers[name], batch))
    finally:
        for worker in workers.values():
            if worker.stdin is not None:
                worker.stdin.close()
            worker.wait(timeout=60)
    diffs = [new - old for new, old in zip(spent["this"], spent["base"], strict=True)]
    return {
        "base_cpu_ms_per_job": round(statistics.median(spent["base"]), 3),
        "this_cpu_ms_per_job": round(statistics.median(spent["this"]), 3),
        "paired_difference_ms": round(statistics.median(diffs), 3),
        "this_faster_in": f"{sum(d < 0 for d in diffs)} of {len(diffs)} pairs",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare with")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=150)
    args = parser.parse_args()
    revision = subprocess.run(
        ["git", "rev-parse", "--short", args.base],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-paired-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(base), revision],
            cwd=ROOT,
            check=True,
        )
        try:
            out: dict[str, Any] = {"base": revision}
            for concurrency in args.concurrency:
                out[f"in_flight_{concurrency}"] = paired(base, concurrency, args.rounds, args.batch)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False
            )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
