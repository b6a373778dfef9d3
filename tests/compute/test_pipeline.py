from __future__ import annotations

import asyncio
import io
import tarfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import ANY

import aiohttp
import pytest

from bacalhau.compute import (
    CallbackOutbox,
    ExecutionPipeline,
    ExecutionStore,
    InputPreparer,
    LocalExecution,
    StorageInputs,
)
from bacalhau.errors import ExecutionTimeout, InvalidJobSpec
from bacalhau.executor import InputMount
from bacalhau.executor.noop import NoopExecutor
from bacalhau.executor.wasm import WasmExecutor
from bacalhau.models import (
    ComputeFailure,
    Execution,
    InputSource,
    Job,
    LocalExecutionState,
    ResultPath,
    RunResult,
    SpecConfig,
)
from bacalhau.publisher import LocalPublisher, LocalResultServer, NoopPublisher
from bacalhau.storage import WHOLE, Partition
from tests.compute.fs_calls import record_fs_calls
from tests.compute.jobs import make_execution, noop_execution
from tests.compute.recording_callbacks import RecordingCallbacks
from tests.compute.shell_executor import ShellExecutor
from tests.compute.waiting import eventually
from tests.compute.wasm_jobs import module_url

L = LocalExecutionState
OUTPUTS = [ResultPath(name="outputs", path="/outputs")]


@dataclass
class Rig:
    store: ExecutionStore
    pipeline: ExecutionPipeline
    server: LocalResultServer
    results_root: Path

    async def run(self, execution: Execution) -> LocalExecution:
        self.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
        record = await self.pipeline.run(execution.id)
        await asyncio.sleep(0)  # what follows the outcome: the folder given back, the log
        return record

    def callbacks(self) -> list[object]:
        return [e.message for e in self.store.pending_callbacks("requester")]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        with ExecutionStore(tmp_path / "compute.db") as store:
            pipeline = ExecutionPipeline(
                node_id="compute-node",
                store=store,
                executors={"noop": NoopExecutor(), "shell": ShellExecutor()},
                publishers={"local": server.publisher(), "noop": NoopPublisher()},
                results_root=tmp_path / "executions",
            )
            yield Rig(store, pipeline, server, tmp_path / "executions")


async def test_run_publish_and_download(rig: Rig) -> None:
    execution = noop_execution(
        publisher="local",
        result_paths=OUTPUTS,
        Stdout="hello from noop\n",
        Stderr="a warning\n",
        ExitCode=0,
        ResultFiles={"outputs/data/result.txt": "42"},
    )
    record = await rig.run(execution)

    assert record.state is L.COMPLETED
    assert record.run_output is not None and record.run_output.stdout == "hello from noop\n"
    url = f"http://127.0.0.1:{rig.server.port}/{execution.id}.tar.gz"
    published = record.published_result
    assert published == SpecConfig(type="urlDownload", params={"URL": url, "CID": ANY})
    assert published.params["CID"].startswith("Qm")  # the results directory's CID
    assert rig.store.get(execution.id).state is L.COMPLETED
    # The local publisher made a copy: the store keeps the output (for logs), and the
    # results folder went back to be reused.
    assert not (rig.results_root / execution.id).exists()
    assert rig.store.kept_logs(execution.id) == (b"hello from noop\n", b"a warning\n")

    (result,) = rig.callbacks()
    assert isinstance(result, RunResult)
    assert result.published_result == record.published_result
    assert result.run_output.stderr == "a warning\n"
    assert result.node_id == "compute-node"

    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        body = await resp.read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        files = {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }
    assert names == [
        "exitCode",
        "outputs",
        "outputs/data",
        "outputs/data/result.txt",
        "stderr",
        "stdout",
    ]
    assert files["stdout"] == b"hello from noop\n"
    assert files["exitCode"] == b"0"
    assert files["outputs/data/result.txt"] == b"42"


async def test_a_trivial_wasm_execution_creates_only_its_layout_and_archive(
    tmp_path: Path,
) -> None:
    # The file system changes of one execution, the costliest of its steps: its folder (a
    # spare made ahead, renamed to its name), the layout's three files (opened, not created:
    # the spare holds them), and, once it is done, its folder given back (renamed): the logs
    # are kept in the store. The archive is a row of the result server's store, not a file
    # (only a stale file of that name is removed, if any); no inputs folder is made, only
    # the removal of any left by a crash. What the thread making spares does meanwhile
    # (emptying the folders given back) is not the execution's.
    async with LocalResultServer(directory=tmp_path / "published", port=0) as server:
        with ExecutionStore(tmp_path / "compute.db") as store:
            pipeline = ExecutionPipeline(
                node_id="compute-node",
                store=store,
                executors={"wasm": WasmExecutor()},
                publishers={"local": server.publisher()},
                results_root=tmp_path / "executions",
                inputs=StorageInputs({}),
            )
            module = {"Source": {"Type": "inline", "Params": {"URL": module_url("hello")}}}
            records = []
            for _ in range(2):
                execution = make_execution(
                    engine="wasm", params={"EntryModule": module}, publisher="local"
                )
                store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
                with record_fs_calls(tmp_path) as calls:
                    records.append(await pipeline.run(execution.id))
                    await asyncio.sleep(0)  # the folder is given back after the outcome
                # The first took no spare (none was made yet); the second does.
                await eventually(lambda: pipeline.spare_dirs_ready > 0)
            kept = store.kept_logs(execution.id)
            await pipeline.executors["wasm"].close()  # type: ignore[attr-defined]
            pipeline.close()
        assert server.archives.get(f"{execution.id}.tar.gz") is not None
    assert all(r.state is L.COMPLETED for r in records), [r.message for r in records]
    run = f"executions/{execution.id}"
    own = [
        ("rename", "executions/.spare/*") if path.startswith("executions/.spare/") else (c, path)
        for c, path in calls
        if not path.startswith("executions/.spare/") or c == "rename"
    ]
    assert sorted(own) == sorted(
        [
            ("rename", "executions/.spare/*"),
            ("open-write", f"{run}/stdout"),
            ("open-write", f"{run}/stderr"),
            ("open-write", f"{run}/exitCode"),
            ("remove", f"published/{execution.id}.tar.gz"),
            ("rename", run),
            ("rmdir", f"executions/.inputs/{execution.id}"),
        ]
    )
    output = records[-1].run_output
    assert output is not None and output.stdout
    assert not (tmp_path / run).exists()
    assert kept == (output.stdout.encode(), b"")


async def test_callbacks_reach_the_requester_through_the_outbox(rig: Rig) -> None:
    recorder = RecordingCallbacks()
    execution = noop_execution(Stdout="x")
    async with CallbackOutbox(store=rig.store, callbacks=recorder) as outbox:
        await rig.run(execution)
        outbox.kick("requester")
        (result,) = await recorder.wait_for(execution.id, RunResult)
    assert recorder.received[0].requester_id == "requester"
    assert isinstance(result, RunResult) and result.run_output.stdout == "x"
    assert rig.store.pending_callbacks("requester") == []


async def test_non_zero_exit_is_a_completion(rig: Rig) -> None:
    record = await rig.run(make_execution("echo out; echo err >&2; exit 7"))
    assert record.state is L.COMPLETED
    assert record.run_output is not None
    assert (record.run_output.exit_code, record.run_output.stdout) == (7, "out\n")
    assert record.run_output.stderr == "err\n"
    # No publisher: nothing published; the output stays on the node, in its store (the
    # folder held nothing else), and the exit code in the record.
    assert record.published_result == SpecConfig()
    assert rig.store.kept_logs(record.id) == (b"out\n", b"err\n")
    assert not (rig.results_root / record.id).exists()


async def test_the_outcome_is_told_once_committed_and_before_the_housekeeping(
    rig: Rig,
) -> None:
    """An ask's answer waiting for the outcome may go before the folder is given back."""
    execution = make_execution("echo out")
    rig.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
    told: list[tuple[str, L, list[type], bool]] = []

    def on_outcome(execution_id: str) -> None:
        queued = [type(c) for c in rig.callbacks()]
        folder = (rig.results_root / execution_id).exists()
        told.append((execution_id, rig.store.get(execution_id).state, queued, folder))

    await rig.pipeline.run(execution.id, on_outcome=on_outcome)
    assert told == [(execution.id, L.COMPLETED, [RunResult], True)]
    await asyncio.sleep(0)
    assert not (rig.results_root / execution.id).exists()


async def test_noop_publisher_keeps_the_results_dir(rig: Rig) -> None:
    record = await rig.run(
        noop_execution(
            publisher="noop",
            result_paths=OUTPUTS,
            Stdout="kept",
            ResultFiles={"outputs/data/result.txt": "42"},
        )
    )
    assert record.state is L.COMPLETED
    assert record.published_result == SpecConfig()
    kept = rig.results_root / record.id
    assert (kept / "stdout").read_text() == "kept"
    assert (kept / "outputs/data/result.txt").read_text() == "42"
    assert rig.store.kept_logs(record.id) is None


async def test_error_message_fails_the_execution(rig: Rig) -> None:
    record = await rig.run(noop_execution(ErrorMessage="memory limit exceeded", Stdout="partial"))
    assert record.state is L.FAILED
    assert record.message == "memory limit exceeded"
    assert record.run_output is not None and record.run_output.stdout == "partial"
    (failure,) = rig.callbacks()
    assert isinstance(failure, ComputeFailure)
    assert failure.event.message == "memory limit exceeded"
    assert failure.event.topic == "Running Execution"
    assert failure.event.details["IsError"] == "true"
    assert failure.event.details["ErrorCode"] == "ExecutionFailed"
    assert failure.event.details["FailsExecution"] == "true"
    assert failure.event.details["Retryable"] == "false"
    assert "Hint" in failure.event.details


async def test_timeout_fails_retryably(rig: Rig) -> None:
    record = await rig.run(make_execution("sleep 30", timeout=1))
    assert record.state is L.FAILED
    (failure,) = rig.callbacks()
    assert isinstance(failure, ComputeFailure)
    assert failure.event.details["ErrorCode"] == "ExecutionTimeout"
    assert failure.event.details["Retryable"] == "true"
    assert failure.event.details["Hint"] == ExecutionTimeout.default_hint


async def test_a_retry_gets_what_is_left_of_the_total_timeout(rig: Rig) -> None:
    """The job was created 4 s ago with a TotalTimeout of 5 s: this execution (a retry) may
    run 1 s, not its whole ExecutionTimeout of 3 s."""
    execution = make_execution("sleep 30", timeout=3)
    assert execution.job is not None
    execution.job.task.timeouts.total_timeout = 5
    execution.job.create_time = time.time_ns() - 4_000_000_000
    started = time.monotonic()
    record = await rig.run(execution)
    assert record.state is L.FAILED and time.monotonic() - started < 2.5
    (failure,) = rig.callbacks()
    assert isinstance(failure, ComputeFailure)
    assert failure.event.details["ErrorCode"] == "ExecutionTimeout"
    assert "the job's TotalTimeout of 5s passed" in failure.event.message

    late = make_execution("echo never", timeout=3)
    assert late.job is not None
    late.job.task.timeouts.total_timeout = 5
    late.job.create_time = time.time_ns() - 6_000_000_000
    record = await rig.run(late)
    assert record.state is L.FAILED
    (failure,) = rig.callbacks()[1:]
    assert "TotalTimeout of 5s had passed 1." in failure.event.message
    assert "s before this execution could start" in failure.event.message


async def test_publish_failure_is_reported_in_its_phase(rig: Rig, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the publish directory should be")
    pipeline = ExecutionPipeline(
        node_id="compute-node",
        store=rig.store,
        executors={"noop": NoopExecutor()},
        publishers={"local": LocalPublisher(directory=blocked, address="127.0.0.1", port=1)},
        results_root=rig.results_root,
    )
    execution = noop_execution(
        publisher="local",
        result_paths=OUTPUTS,
        Stdout="x",
        ResultFiles={"outputs/data/result.txt": "42"},
    )
    rig.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
    record = await pipeline.run(execution.id)
    assert record.state is L.FAILED
    (failure,) = rig.callbacks()
    assert isinstance(failure, ComputeFailure)
    assert failure.event.topic == "Publishing Results"
    assert failure.event.details["ErrorCode"] == "PublishFailed"
    # Publishing failed: what it printed stays for `job logs`; what it wrote, published
    # nowhere, does not hold the node's disk.
    assert (rig.results_root / execution.id / "stdout").read_text() == "x"
    assert not (rig.results_root / execution.id / "outputs").exists()


async def test_unknown_engine_fails_without_running(rig: Rig) -> None:
    record = await rig.run(make_execution(engine="docker"))
    assert record.state is L.FAILED
    (failure,) = rig.callbacks()
    assert isinstance(failure, ComputeFailure)
    assert failure.event.details["ErrorCode"] == "ExecutorNotInstalled"


async def test_results_dir_starts_fresh(rig: Rig) -> None:
    execution = make_execution("ls -A")
    stale = rig.results_root / execution.id
    stale.mkdir(parents=True)
    (stale / "leftover").write_text("from an earlier attempt")
    record = await rig.run(execution)
    assert record.run_output is not None
    assert record.run_output.stdout.split() == ["stderr", "stdout"]  # ls ran in it: no leftover


async def test_only_accepted_executions_run(rig: Rig) -> None:
    execution = make_execution("echo hi")
    rig.store.create(execution, requester_id="requester")  # Created: still bidding
    record = await rig.pipeline.run(execution.id)
    assert record.state is L.CREATED
    assert rig.callbacks() == []


class InlineTextInputs:
    """A real (if tiny) input preparer: ``{"Type": "text", "Params": {"Text": ...}}`` inputs."""

    def __init__(self) -> None:
        self.prepared: list[Path] = []
        self.partitions: list[Partition] = []

    async def prepare(
        self, execution_id: str, job: Job, work_dir: Path, partition: Partition = WHOLE
    ) -> list[InputMount]:
        self.partitions.append(partition)
        mounts = []
        for i, source in enumerate(job.task.input_sources):
            if source.source.type != "text":
                raise InvalidJobSpec(f"cannot prepare {source.source.type!r} inputs")
            path = work_dir / f"input-{i}"
            path.write_text(str(source.source.params["Text"]))
            self.prepared.append(path)
            mounts.append(InputMount(source=path, target=source.target))
        return mounts


def with_text_input(execution: Execution, text: str) -> Execution:
    assert execution.job is not None
    source = SpecConfig(type="text", params={"Text": text})
    execution.job.task.input_sources = [InputSource(source=source, target="/inputs/data")]
    return execution


async def test_inputs_are_prepared_handed_over_and_removed(rig: Rig) -> None:
    preparer = InlineTextInputs()
    assert isinstance(preparer, InputPreparer)
    pipeline = ExecutionPipeline(
        node_id="compute-node",
        store=rig.store,
        executors={"shell": ShellExecutor()},
        publishers={},
        results_root=rig.results_root,
        inputs=preparer,
    )
    execution = with_text_input(
        make_execution('cat "$BACALHAU_INPUT_0"; echo " at $BACALHAU_TARGET_0"'), "the data"
    )
    rig.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
    record = await pipeline.run(execution.id)
    assert record.state is L.COMPLETED
    assert record.run_output is not None
    assert record.run_output.stdout == "the data at /inputs/data\n"
    assert not preparer.prepared[0].exists()  # cleaned up after the run
    assert not pipeline.inputs_dir(execution.id).exists()
    assert preparer.partitions == [Partition(0, 1)]

    # Partition 2 of a job of 3: the preparer is told which share of the inputs to take.
    third = with_text_input(make_execution("true"), "x")
    assert third.job is not None
    third.job.count, third.partition_index = 3, 2
    rig.store.create(third, requester_id="requester", state=L.BID_ACCEPTED)
    assert (await pipeline.run(third.id)).state is L.COMPLETED
    assert preparer.partitions[-1] == Partition(2, 3)

    bad = make_execution("true")
    assert bad.job is not None
    bad.job.task.input_sources = [InputSource(source=SpecConfig(type="s3"), target="/x")]
    rig.store.create(bad, requester_id="requester", state=L.BID_ACCEPTED)
    failed = await pipeline.run(bad.id)
    assert (failed.state, failed.message) == (L.FAILED, "cannot prepare 's3' inputs")
    assert not pipeline.inputs_dir(bad.id).exists()


async def test_inputs_without_a_preparer_fail_clearly(rig: Rig) -> None:
    record = await rig.run(with_text_input(make_execution("true"), "x"))
    assert (record.state, record.message) == (L.FAILED, "this node cannot prepare input sources")


async def test_a_job_without_inputs_gets_no_inputs_folder(rig: Rig) -> None:
    pipeline = ExecutionPipeline(
        node_id="compute-node",
        store=rig.store,
        executors={"shell": ShellExecutor()},
        publishers={},
        results_root=rig.results_root,
        inputs=StorageInputs({}),
    )
    inputs_root = pipeline.inputs_dir("e-1").parent
    check = f'test -e "{inputs_root}/$BACALHAU_EXECUTION_ID" && echo present || echo absent'
    for leftover in (False, True):
        execution = make_execution(check)
        folder = pipeline.inputs_dir(execution.id)
        if leftover:  # as a crash mid-preparation leaves it: removed after the run
            (folder / "0").mkdir(parents=True)
            (folder / "0" / "part").write_text("half a download")
        rig.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
        record = await pipeline.run(execution.id)
        assert record.state is L.COMPLETED and record.run_output is not None
        assert record.run_output.stdout == ("present\n" if leftover else "absent\n")
        assert not folder.exists()


async def test_each_end_carries_the_nodes_record_version_then(rig: Rig) -> None:
    # The requester counts an ended execution as gone from its node until a record newer
    # than this one arrives; the stamp survives the outbox (a restart) too.
    versions = iter([7, 9])
    rig.pipeline.follow_record(lambda: next(versions))
    await rig.run(noop_execution(publisher="noop", Stdout="x"))
    await rig.run(noop_execution(ErrorMessage="memory limit exceeded"))
    result, failure = rig.callbacks()
    assert isinstance(result, RunResult) and result.record_version == 7
    assert isinstance(failure, ComputeFailure) and failure.record_version == 9
