"""One compute node's cost per trivial WASM execution, in process, without the network.

Runs ``hello.wasm`` executions one after the other through the real ``ExecutionPipeline``
(SQLite execution store, WASM executor, local publisher) and prints one JSON object: the
process CPU and wall time per execution (all threads), and the counts that do not depend on
how busy the machine is: SQL statements and commits, and file system changes (folders made,
files opened for writing, renames, removals) per execution. On a shared machine the times
swing between runs; compare them over several runs, and trust the counts.

    python bench/compute_pipeline.py [--runs N] [--dir PATH]

``--dir`` picks where the node's data goes (default: a temporary folder under /tmp; a tmpfs
such as /dev/shm leaves out the disk's cost of creating files).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from job_latency import wasm_job  # noqa: E402

from bacalhau.compute import ExecutionPipeline, ExecutionStore  # noqa: E402
from bacalhau.executor.wasm import WasmExecutor  # noqa: E402
from bacalhau.models import (  # noqa: E402
    Execution,
    LocalExecutionState,
    SpecConfig,
    new_execution_id,
    new_job_id,
)
from bacalhau.publisher import LocalPublisher  # noqa: E402

MODULE = ROOT / ".build" / "wasm" / "hello.wasm"
_WARMUP = 20
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT
_FS_EVENTS = {"os.mkdir": "mkdir", "os.rename": "rename", "os.remove": "remove"}
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE"})


def _execution(module: bytes) -> Execution:
    job = wasm_job(module)
    job.id = new_job_id()
    job.task.publisher = SpecConfig(type="local")
    return Execution(id=new_execution_id(), job_id=job.id, node_id="bench", job=job)


class _FsCounter:
    """File system changes under one folder, counted through audit hooks while on."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.abspath(root) + os.sep
        self.on = False
        self.counts: Counter[str] = Counter()
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.on or not args:
            return
        if event == "open":
            flags = args[2] if len(args) > 2 else 0
            if not isinstance(flags, int) or not flags & _WRITING:
                return
            kind = "open_for_writing"
        else:
            kind = _FS_EVENTS.get(event, "")
            if not kind:
                return
        path = args[0]
        if isinstance(path, str | os.PathLike) and os.path.abspath(path).startswith(self.root):
            self.counts[kind] += 1


async def _measure(runs: int, data_dir: Path) -> dict[str, object]:
    module = MODULE.read_bytes()
    fs = _FsCounter(data_dir)
    sql: Counter[str] = Counter()
    with ExecutionStore(data_dir / "compute.db") as store:
        executor = WasmExecutor()
        pipeline = ExecutionPipeline(
            node_id="bench",
            store=store,
            executors={"wasm": executor},
            publishers={
                "local": LocalPublisher(
                    directory=data_dir / "published", address="127.0.0.1", port=6001
                )
            },
            results_root=data_dir / "executions",
        )
        executions = [_execution(module) for _ in range(_WARMUP + runs)]
        for execution in executions:
            store.create(execution, requester_id="r", state=LocalExecutionState.BID_ACCEPTED)
        for execution in executions[:_WARMUP]:
            await pipeline.run(execution.id)
        db = store._db
        commits = 0

        def trace(statement: str) -> None:
            nonlocal commits
            kind = statement.split()[0].upper()
            sql[kind] += 1
            # (Called as the statement starts.) A write outside BEGIN ... COMMIT commits alone.
            if kind == "COMMIT" or (kind in _WRITES and not db.in_transaction):
                commits += 1

        db.set_trace_callback(trace)
        fs.on = True
        cpu, wall = time.process_time(), time.perf_counter()
        for execution in executions[_WARMUP:]:
            record = await pipeline.run(execution.id)
            if record.state is not LocalExecutionState.COMPLETED:
                raise SystemExit(f"execution ended {record.state.value}: {record.message}")
            await asyncio.sleep(0)  # let the deferred commit of this turn run, as a node would
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        fs.on = False
        db.set_trace_callback(None)
        await executor.close()
    statements = sum(sql.values())
    return {
        "runs": runs,
        "cpu_ms_per_execution": round(cpu * 1000 / runs, 3),
        "wall_ms_per_execution": round(wall * 1000 / runs, 3),
        "sql_statements_per_execution": round(statements / runs, 2),
        "sql_by_kind_per_execution": {k: round(v / runs, 2) for k, v in sorted(sql.items())},
        "commits_per_execution": round(commits / runs, 2),
        "fs_changes_per_execution": {k: round(v / runs, 2) for k, v in sorted(fs.counts.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if not MODULE.exists():
        sys.exit(f"{MODULE} is missing: run `bash scripts/build_wasm.sh` first")
    data_dir = Path(tempfile.mkdtemp(prefix="compute-bench-", dir=args.dir))
    try:
        print(json.dumps(asyncio.run(_measure(args.runs, data_dir)), indent=2))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
