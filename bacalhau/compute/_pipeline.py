"""One execution from accepted bid to published results.

    BidAccepted ─► Running ─► (Publishing) ─► Completed ─► OnRunComplete
                      └──────────┴──────────► Failed ────► OnComputeFailure

The results directory is ``<results_root>/<execID>`` (a folder made ahead, or made fresh); once
the execution is done and its output small, the store keeps the output and the folder goes to
a later execution (see ``_spare_dirs`` and ``_logs``). A non-zero exit code is a normal
completion (Bacalhau semantics); a run with ``ErrorMsg`` set fails. Every outcome is written
to the store together with its callback, in one transaction; the endpoint's outbox delivers
it. A cancel the requester asked for is recorded by the endpoint before it cancels
the task; a task cancelled for any other reason (the node shutting down) fails the execution
so the requester can run it elsewhere. Host ports of the task's ``Network.Ports`` are held
for the run alone (see ``_ports``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from bacalhau._sqlite_errors import is_transient
from bacalhau.compute._capacity import DEFAULT_JOB_RESOURCES, job_usage
from bacalhau.compute._envvars import execution_environment
from bacalhau.compute._errors import ExecutionInterrupted
from bacalhau.compute._events import TOPIC_PUBLISHING, TOPIC_RUNNING, failure_event
from bacalhau.compute._logs import ExecutionLogs, discard_keeping_logs, logs_to_keep
from bacalhau.compute._ports import PortAllocator
from bacalhau.compute._spare_dirs import SpareDirs
from bacalhau.compute._store import ExecutionStore, LocalExecution
from bacalhau.compute._verification import publish_faultily
from bacalhau.errors import (
    BacalhauError,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorNotInstalled,
    InternalError,
    InvalidTransition,
    NodeOutOfDisk,
    PublishFailed,
    RevisionConflict,
)
from bacalhau.executor import GPU, STDERR_FILE, STDOUT_FILE, Executor, InputMount, RunRequest
from bacalhau.executor._walk import MAX_RESULT_DEPTH, depth_of
from bacalhau.models import (
    NODE_SHUTDOWN,
    ComputeFailure,
    Job,
    LocalExecutionState,
    NetworkConfig,
    PortMapping,
    Resources,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.publisher import KeptResults, Publisher, ResultsKeeper, encode_kept
from bacalhau.storage import WHOLE, Partition, StorageSource, inputs_of, prepare_inputs

_log = logging.getLogger(__name__)

L = LocalExecutionState

#: Job types whose executions are bounded by ``Timeouts.ExecutionTimeout``.
_TIMED_JOB_TYPES = ("batch", "ops", "")
#: Seconds between tries to record a failure the store could not write (doubling).
_RECORD_RETRY_FIRST = 1.0
_RECORD_RETRY_MOST = 30.0


@runtime_checkable
class InputPreparer(Protocol):
    """Materialises a job's inputs on this node (the storage plugins behind one door).

    ``prepare`` downloads or links every input the job needs (its task's input sources, and
    any an engine spec names) under ``work_dir`` and says where each is to be mounted. The
    pipeline removes ``work_dir`` once the run is over.
    """

    async def prepare(
        self, execution_id: str, job: Job, work_dir: Path, partition: Partition = WHOLE
    ) -> list[InputMount]: ...


@runtime_checkable
class InputsOfJob(Protocol):
    """An :class:`InputPreparer` that can tell a job with nothing to prepare (the pipeline
    then makes no work folder for it)."""

    def has_inputs(self, job: Job) -> bool: ...


class StorageInputs:
    """The :class:`InputPreparer` over the node's input source plugins, by type name."""

    def __init__(self, sources: Mapping[str, StorageSource]) -> None:
        self._sources = {name.lower(): source for name, source in sources.items()}

    def has_inputs(self, job: Job) -> bool:
        return bool(inputs_of(job))

    async def prepare(
        self, execution_id: str, job: Job, work_dir: Path, partition: Partition = WHOLE
    ) -> list[InputMount]:
        prepared = await prepare_inputs(self._sources, job, work_dir, partition)
        return [
            InputMount(source=p.path, target=p.target, read_only=p.read_only, alias=p.alias)
            for p in prepared
        ]


class ExecutionPipeline:
    """Runs accepted executions: inputs -> results dir -> executor -> publisher -> store."""

    def __init__(
        self,
        *,
        node_id: str,
        store: ExecutionStore,
        executors: Mapping[str, Executor],
        publishers: Mapping[str, Publisher],
        results_root: Path,
        inputs: InputPreparer | None = None,
        default_usage: Resources = DEFAULT_JOB_RESOURCES,
        timeout_grace: float = 30.0,
        cancel_timeout: float = 30.0,
        gpus_of: Callable[[str], tuple[GPU, ...]] | None = None,
        env_allow_list: Collection[str] = (),
        faulty_results: str = "",
        ports: PortAllocator | None = None,
    ) -> None:
        self._node_id = node_id
        #: Host ports of the executions' ``Network.Ports`` (shared with the bidder's check).
        self._ports = ports if ports is not None else PortAllocator()
        #: Test only (``faulty_results``, devstack): alter every result before publishing.
        self._faulty_results = faulty_results
        #: Host variables jobs may forward with ``env:NAME`` (Compute.Env.AllowList).
        self._env_allow_list = tuple(env_allow_list)
        self._store = store
        self._executors = {name.lower(): ex for name, ex in executors.items()}
        self._publishers = {name.lower(): pub for name, pub in publishers.items()}
        self._results_root = results_root
        #: Results folders made ahead (see ``_spare_dirs``).
        self._spare_dirs = SpareDirs(results_root)
        #: Where the executions' logs are read from (their folder, or the store once done).
        self._logs = ExecutionLogs(self.results_dir, store.kept_logs)
        self._inputs = inputs
        self._has_inputs = inputs.has_inputs if isinstance(inputs, InputsOfJob) else None
        self._default_usage = default_usage
        self._timeout_grace = timeout_grace
        self._cancel_timeout = cancel_timeout
        #: The GPUs the node reserved for an execution (``CapacityTracker.gpus_of``).
        self._gpus_of = gpus_of
        self._record_version: Callable[[], int] = lambda: 0

    def follow_record(self, version: Callable[[], int]) -> None:
        """Stamp each execution's end with ``version()``, the node's gossip record version
        then, so that the requester knows which of the node's records still count it."""
        self._record_version = version

    def record_version(self) -> int:
        """The node's gossip record version now (0 until :meth:`follow_record`)."""
        return self._record_version()

    @property
    def executors(self) -> Mapping[str, Executor]:
        return self._executors

    @property
    def publishers(self) -> Mapping[str, Publisher]:
        return self._publishers

    def results_dir(self, execution_id: str) -> Path:
        return self._results_root / execution_id

    @property
    def logs(self) -> ExecutionLogs:
        """The executions' stdout and stderr, wherever they are kept."""
        return self._logs

    def close(self) -> None:
        """Stop making results folders ahead."""
        self._spare_dirs.close()

    @property
    def spare_dirs_ready(self) -> int:
        """Results folders made ahead and not taken yet."""
        return self._spare_dirs.ready

    def inputs_dir(self, execution_id: str) -> Path:
        # Beside the results, never inside them: the results dir is what gets published.
        # Execution IDs start with a letter or digit, so ".inputs" never names an execution.
        return self._results_root / ".inputs" / execution_id

    async def run(
        self, execution_id: str, *, on_outcome: Callable[[str], None] | None = None
    ) -> LocalExecution:
        """Run one ``BidAccepted`` execution to a terminal state and return its record.

        ``on_outcome`` is told as soon as a completed execution's outcome is committed (its
        callback queued): an ask's answer waiting for it may go before what is left (giving
        its folder back, the log line), which is done in the next turn of the loop."""
        try:
            return await self._run(execution_id, on_outcome)
        finally:
            # Folders made ahead for the next executions: now, off this one's path.
            asyncio.get_running_loop().call_soon(self._spare_dirs.replenish)

    async def _run(
        self, execution_id: str, on_outcome: Callable[[str], None] | None
    ) -> LocalExecution:
        record = self._store.get(execution_id)
        if record.state is not L.BID_ACCEPTED:
            _log.info("not running execution %s: it is %s", execution_id, record.state.value)
            return record
        job = record.job
        task = job.task
        topic = TOPIC_RUNNING
        executor = self._executors.get(task.engine.type.lower())
        started = time.monotonic()
        try:
            if executor is None:
                raise ExecutorNotInstalled(
                    f"this node does not have the {task.engine.type!r} engine installed"
                )
            mounts = await self._prepare_inputs(
                execution_id, job, Partition(record.execution.partition_index, job.partition_count)
            )
            results_dir = self.results_dir(execution_id)
            if not self._spare_dirs.take(results_dir):
                self._fresh_dir(results_dir)
            # Deferred: a run that ends within this loop turn (an inline WASM run) commits
            # Running with its end, in one transaction.
            record = self._store.transition(record, L.RUNNING, defer=True)
            try:
                output = await self._execute(executor, record, results_dir, mounts)
            finally:
                if self._inputs is not None:
                    await self._remove_inputs(execution_id)
            if output.error_msg:
                return self._fail(execution_id, ExecutionFailed(output.error_msg), topic, output)
            published, copied = SpecConfig(), False
            kept: KeptResults | None = None
            if not task.publisher.is_empty():
                topic = TOPIC_PUBLISHING
                # (+1: the result folder itself is one level below the results directory)
                depth = await depth_of(results_dir, stop_at=MAX_RESULT_DEPTH + 2)
                if depth > MAX_RESULT_DEPTH + 1:
                    too_deep = ExecutionFailed(
                        f"the job's results are more than {MAX_RESULT_DEPTH} folders deep: "
                        "they cannot be published",
                        component="Publisher",
                        hint=f"keep the output tree under {MAX_RESULT_DEPTH} levels, or archive "
                        "a deep tree into one file (tar) before the job ends",
                    )
                    return self._fail(execution_id, too_deep, topic, output)
                # Deferred: a publish that ends within this loop turn (small results, see
                # the local publisher) commits Publishing with Completed, in one transaction.
                record = self._store.transition(record, L.PUBLISHING, defer=True)
                if self._faulty_results:
                    published = await publish_faultily(
                        self._faulty_results,
                        results_dir,
                        lambda: self._publish(record, results_dir),
                    )
                elif (left := self._leave_to_store(record, results_dir)) is not None:
                    published, kept = left
                else:
                    published = await self._publish(record, results_dir)
                copied = self._publishers[task.publisher.type.lower()].copies_results
            # Logs small enough, and nothing else in the folder (once a publisher copied the
            # rest): the store keeps the logs, the folder goes to a later execution.
            # Otherwise the folder keeps them until housekeeping forgets the execution.
            logs = _logs_of(kept) if kept is not None else logs_to_keep(results_dir)
            if logs is None and copied:
                await discard_keeping_logs(results_dir)
                logs = logs_to_keep(results_dir)
            result = RunResult(
                execution_id=execution_id,
                job_id=record.job_id,
                node_id=self._node_id,
                published_result=published,
                run_output=output,
                record_version=self._record_version(),
            )
            record = self._store.transition(
                record,
                L.COMPLETED,
                published_result=published,
                run_output=output,
                callback=result,
                logs=logs,
                kept=encode_kept(kept) if kept is not None else None,
            )
            if on_outcome is not None:
                on_outcome(execution_id)
            asyncio.get_running_loop().call_soon(
                self._completed,
                record,
                results_dir if logs is not None else None,
                time.monotonic() - started,
            )
            return record
        except asyncio.CancelledError:
            await self._interrupted(executor, execution_id, topic)
            raise
        except (RevisionConflict, InvalidTransition) as err:
            # Someone else (a cancel) moved the execution on: a final state is the last word;
            # anything else must still end the execution rather than leave it hanging.
            current = self._store.get(execution_id)
            if current.state.is_terminal():
                return current
            _log.error("execution %s changed under the pipeline: %s", execution_id, err)
            return await self._fail_surely(execution_id, InternalError(err.message), topic)
        except BacalhauError as err:
            failed = await self._fail_surely(execution_id, err, topic)
        except Exception as err:
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                # The node's disk, not the job: it may be tried again once space is freed.
                _log.error("execution %s: this node's disk is full: %s", execution_id, err)
                full = NodeOutOfDisk(f"{topic.lower()} failed: this node's disk is full: {err}")
                failed = await self._fail_surely(execution_id, full, topic)
            else:
                _log.exception("execution %s failed unexpectedly", execution_id)
                internal = InternalError(f"{topic.lower()} failed: {type(err).__name__}: {err}")
                failed = await self._fail_surely(execution_id, internal, topic)
        # What a failed run wrote is published nowhere: it goes (it would hold the node's
        # disk until housekeeping forgets the execution); its output stays for `job logs`.
        await self.discard_outputs(execution_id)
        return failed

    def _completed(self, record: LocalExecution, spare: Path | None, seconds: float) -> None:
        """After a completed execution's outcome went: give its folder back when it holds
        nothing the store does not keep (``spare``), and say so in the log."""
        if spare is not None and not self._logs.in_use(record.id):
            self._spare_dirs.give_back(spare)
        _log.info(
            "execution %s of job %s completed (exit code %d) in %.3fs",
            record.id,
            record.job_id,
            record.run_output.exit_code if record.run_output is not None else 0,
            seconds,
        )

    async def _prepare_inputs(
        self, execution_id: str, job: Job, partition: Partition
    ) -> list[InputMount]:
        if self._inputs is None:
            if job.task.input_sources:
                raise ExecutionFailed(
                    "this node cannot prepare input sources",
                    component="Compute",
                    hint="run the job on a node with storage plugins for its inputs",
                )
            return []
        if self._has_inputs is not None and not self._has_inputs(job):
            return []
        work_dir = self._fresh_dir(self.inputs_dir(execution_id))
        try:
            return await self._inputs.prepare(execution_id, job, work_dir, partition)
        except BaseException:
            await self._remove_inputs(execution_id)
            raise

    async def _remove_inputs(self, execution_id: str) -> None:
        path = self.inputs_dir(execution_id)
        try:
            # Most jobs have no inputs: no folder, or an empty one, needs no trip to a thread.
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            await asyncio.to_thread(shutil.rmtree, path, True)

    async def _execute(
        self,
        executor: Executor,
        record: LocalExecution,
        results_dir: Path,
        mounts: list[InputMount],
    ) -> RunCommandResult:
        # Held from the start of the run until the workload is gone, whatever ends it.
        ports = self._ports.allocate(record.id, record.job.task.network)
        try:
            return await self._run_workload(executor, record, results_dir, mounts, ports)
        finally:
            self._ports.release(record.id)

    async def _run_workload(
        self,
        executor: Executor,
        record: LocalExecution,
        results_dir: Path,
        mounts: list[InputMount],
        ports: list[PortMapping],
    ) -> RunCommandResult:
        job = record.job
        task = job.task
        network = task.network
        if ports:
            network = NetworkConfig(type=network.type, domains=network.domains, ports=ports)
        limit: float = task.timeouts.execution_timeout if job.type in _TIMED_JOB_TYPES else 0
        total = task.timeouts.total_timeout if job.type in _TIMED_JOB_TYPES else 0
        left = _total_left(total, job.create_time)
        by_total = False
        if left is not None:
            if left <= 0:
                raise ExecutionTimeout(
                    f"execution timed out: the job's TotalTimeout of {total}s had passed "
                    f"{-left:.1f}s before this execution could start"
                )
            if limit <= 0 or left < limit:
                # A retry gets what is left of the job's TotalTimeout, not a whole
                # ExecutionTimeout: the job must end when its TotalTimeout says.
                limit, by_total = round(left, 3), True
        request = RunRequest(
            execution_id=record.id,
            job_id=record.job_id,
            engine=task.engine,
            results_dir=results_dir,
            result_paths=list(task.result_paths),
            resources=job_usage(job, defaults=self._default_usage),
            network=network,
            env=execution_environment(
                record.execution,
                job,
                node_id=self._node_id,
                allow_list=self._env_allow_list,
                ports=ports,
            ),
            timeout=float(limit) if limit > 0 else None,
            inputs=mounts,
            gpus=self._gpus_of(record.id) if self._gpus_of is not None else (),
        )
        if limit <= 0:
            return await executor.run(request)
        # The executor enforces the timeout itself; this deadline only guards against an
        # executor that fails to, so a job can never hold the node forever.
        try:
            async with asyncio.timeout(limit + self._timeout_grace):
                return await executor.run(request)
        except TimeoutError:
            await self._stop_workload(executor, record.id)
            if by_total:
                raise ExecutionTimeout(_past_total(total, limit)) from None
            raise ExecutionTimeout(f"execution timed out after {limit:g}s") from None
        except ExecutionTimeout:
            if by_total:
                raise ExecutionTimeout(_past_total(total, limit)) from None
            raise

    def _leave_to_store(
        self, record: LocalExecution, results_dir: Path
    ) -> tuple[SpecConfig, KeptResults] | None:
        """Small results the store keeps, committed with the execution's end, instead of a
        publish (see ``publisher._kept``): their address and them; None when the publisher
        cannot leave them to the store (publish them)."""
        publisher = self._publishers.get(record.job.task.publisher.type.lower())
        if not isinstance(publisher, ResultsKeeper):
            return None
        kept = publisher.keep_small_results(results_dir)
        return None if kept is None else (publisher.publish_kept(record.id, kept), kept)

    async def _publish(self, record: LocalExecution, results_dir: Path) -> SpecConfig:
        spec = record.job.task.publisher
        publisher = self._publishers.get(spec.type.lower())
        if publisher is None:
            raise PublishFailed(f"this node does not have the {spec.type!r} publisher installed")
        try:
            published = await publisher.publish(record.id, record.job, results_dir)
        except BacalhauError:
            raise
        except Exception as err:
            raise PublishFailed(
                f"publishing with {spec.type!r} failed: {type(err).__name__}: {err}"
            ) from err
        return published

    def _fresh_dir(self, path: Path) -> Path:
        try:
            try:
                path.mkdir(parents=True)
            except FileExistsError:
                shutil.rmtree(path)  # left by an earlier attempt: runs must not mix
                path.mkdir()
        except OSError as err:
            raise ExecutionFailed(
                f"cannot create the directory {path}: {err}",
                component="Compute",
                hint="check the compute node's data directory (space, permissions)",
            ) from err
        return path

    async def discard_outputs(self, execution_id: str) -> None:
        """Delete what an execution that failed wrote to its result folders, keeping its
        stdout and stderr for `job logs` (until housekeeping forgets it)."""
        try:
            await discard_keeping_logs(self.results_dir(execution_id))
        except OSError as err:
            _log.warning("cannot delete the results of execution %s: %s", execution_id, err)

    async def _fail_surely(
        self, execution_id: str, err: BacalhauError, topic: str
    ) -> LocalExecution:
        """:meth:`_fail`, tried again while the store cannot write (the node's disk full):
        a failure that is not recorded is never reported, and the execution would show as
        running for good, here and on the requester."""
        delay = _RECORD_RETRY_FIRST
        while True:
            try:
                return self._fail(execution_id, err, topic)
            except sqlite3.OperationalError as store_err:
                if not is_transient(store_err):
                    raise
                _log.warning(
                    "cannot record the failure of execution %s (%s): trying again in %.0fs",
                    execution_id,
                    store_err,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECORD_RETRY_MOST)

    def _fail(
        self,
        execution_id: str,
        err: BacalhauError,
        topic: str,
        run_output: RunCommandResult | None = None,
    ) -> LocalExecution:
        current = self._store.get(execution_id)
        if current.state.is_terminal():
            return current
        _log.warning(
            "execution %s of job %s failed (%s): %s", execution_id, current.job_id, topic, err
        )
        failure = ComputeFailure(
            execution_id=execution_id,
            job_id=current.job_id,
            node_id=self._node_id,
            event=failure_event(err, topic=topic),
            record_version=self._record_version(),
        )
        return self._store.transition(
            current, L.FAILED, message=err.message, run_output=run_output, callback=failure
        )

    async def _interrupted(self, executor: Executor | None, execution_id: str, topic: str) -> None:
        if executor is not None:
            await self._stop_workload(executor, execution_id)
        current = self._store.get(execution_id)
        if current.state is L.CANCELLED:
            # Its results go; what it printed stays for `job logs` (as a failed execution's
            # does) until housekeeping forgets the execution.
            await discard_keeping_logs(self.results_dir(execution_id))
            _log.info("execution %s cancelled", execution_id)
            return
        if not current.state.is_terminal():
            # A shutdown the operator asked for: no attempt of the job's (a crash, which a
            # job may have caused, is recovered at the next start and counts).
            err = ExecutionInterrupted(
                "node shut down while the execution was running",
                details={NODE_SHUTDOWN: "true"},
            )
            self._fail(execution_id, err, topic)

    async def _stop_workload(self, executor: Executor, execution_id: str) -> None:
        try:
            async with asyncio.timeout(self._cancel_timeout):
                await executor.cancel(execution_id)
        except Exception:
            _log.exception("could not stop the workload of execution %s", execution_id)


def _logs_of(kept: KeptResults) -> tuple[bytes, bytes]:
    """The stdout and stderr among kept results (the store keeps them as it keeps the logs
    of a folder it reuses)."""
    return kept.data_of(STDOUT_FILE) or b"", kept.data_of(STDERR_FILE) or b""


def _total_left(total: int, created_ns: int) -> float | None:
    """Seconds left of a job's TotalTimeout, counted from its creation (None: no limit)."""
    if total <= 0 or created_ns <= 0:
        return None
    return total - (time.time_ns() - created_ns) / 1e9


def _past_total(total: int, left: float) -> str:
    return (
        f"execution timed out: the job's TotalTimeout of {total}s passed ({left:.1f}s of it "
        "were left when this execution started)"
    )
