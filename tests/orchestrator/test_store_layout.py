"""The job store's layout: the spec written once per version, state in columns, decoded
jobs cached by version, and a store written before this layout migrated on open."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

from bacalhau.models import Event, ExecutionStateType, Job, JobHistory, JobStateType, now_ns
from bacalhau.orchestrator import JobStore

#: A store written by the version before specs had their own table (jobs.data held the
#: whole job and was rewritten on every state change): three jobs, one completed after
#: running, one failed, one pending; one execution asked to bid.
BEFORE = Path(__file__).parent / "data" / "jobs-before-spec-table.db"


def _job(job_id: str) -> Job:
    j = Job.from_dict(
        {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
    )
    j.id, j.name, j.namespace = job_id, job_id, "default"
    j.state, j.revision = JobStateType.PENDING, 1
    j.create_time = j.modify_time = now_ns()
    return j


def test_a_store_of_the_previous_layout_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    shutil.copy(BEFORE, path)
    store = JobStore(path)
    jobs = {j.id: j for j in store.list_jobs()}
    assert sorted(jobs) == ["j-old-0", "j-old-1", "j-old-2"]
    done, failed, pending = jobs["j-old-0"], jobs["j-old-1"], jobs["j-old-2"]
    assert (done.state, done.state_message, done.revision) == (JobStateType.COMPLETED, "done", 3)
    assert (failed.state, failed.state_message) == (JobStateType.FAILED, "it failed")
    assert pending.state == JobStateType.PENDING and pending.name == "old-2"
    history = store.history_of("j-old-0")
    assert [h.job_state_new for h in history if h.job_state_new] == [
        JobStateType.RUNNING,
        JobStateType.COMPLETED,
    ]
    assert [h.exec_state_new for h in history if h.exec_state_new] == [
        ExecutionStateType.ASK_FOR_BID
    ]
    assert store.get_execution("e-old-0").compute_state == ExecutionStateType.ASK_FOR_BID
    assert store.placed()["n-1"].count == 1
    team_a = store.page_jobs(labels_match=lambda labels: labels.get("team") == "a")
    assert team_a.ids == ["j-old-0"]
    assert store.jobs_in_states([JobStateType.PENDING]) == ["j-old-2"]
    # It goes on working, and a second open finds nothing left to migrate.
    store.update_job_state("j-old-2", JobStateType.RUNNING, message="on its way")
    store.close()
    again = JobStore(path)
    job = again.get_job("j-old-2")
    assert (job.state, job.state_message, job.revision) == (JobStateType.RUNNING, "on its way", 2)
    columns = {r[1] for r in again._db.execute("PRAGMA table_info(jobs)")}
    assert "data" not in columns
    again.close()


def test_a_state_change_does_not_rewrite_the_spec(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-1"))
    spec = store._db.execute("SELECT rowid, data FROM job_specs").fetchall()
    store.update_job_state("j-1", JobStateType.RUNNING, message="running")
    store.update_job_state("j-1", JobStateType.COMPLETED)
    assert store._db.execute("SELECT rowid, data FROM job_specs").fetchall() == spec
    job = store.get_job("j-1")
    assert (job.state, job.revision, job.state_message) == (JobStateType.COMPLETED, 3, "")
    # Read back, a job is a copy: changing it does not change what the store returns next.
    job.state_message = "changed by a caller"
    assert store.get_job("j-1").state_message == ""
    assert store.read_jobs(["j-1"], own_connection=True)[0].state == JobStateType.COMPLETED
    store.close()


def test_history_log_in_memory_follows_commits_not_rollbacks(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-1"))
    assert store.history_of("j-1") == []  # the log is loaded (empty)
    store.update_job_state("j-1", JobStateType.RUNNING)
    try:
        with store.transaction():
            store.update_job_state("j-1", JobStateType.COMPLETED)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert [h.job_state_new for h in store.history_of("j-1")] == [JobStateType.RUNNING]
    store.update_job_state("j-1", JobStateType.FAILED, message="no")
    assert [h.seq_num for h in store.history_of("j-1", after_seq=1)] == [2]
    store.close()
    again = JobStore(tmp_path / "jobs.db")
    assert [h.job_state_new for h in again.history_of("j-1")] == [
        JobStateType.RUNNING,
        JobStateType.FAILED,
    ]
    again.close()


def _wasm_job(job_id: str, module: bytes) -> Job:
    url = "data:application/wasm;base64," + base64.b64encode(module).decode()
    j = Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "wasm",
                        "Params": {
                            "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": url}}},
                            "EntryPoint": "_start",
                        },
                    },
                }
            ],
        }
    )
    j.id, j.name, j.namespace = job_id, job_id, "default"
    j.state, j.revision = JobStateType.PENDING, 1
    j.create_time = j.modify_time = now_ns()
    return j


def test_an_inline_module_is_stored_once_by_content_hash(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    module, other = bytes(range(256)) * 40, b"\x00asm" * 600
    with store.transaction():
        for i in range(3):
            store.create_job(_wasm_job(f"j-same-{i}", module))
        store.create_job(_wasm_job("j-other", other))
    assert store._db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 2
    stored = store._db.execute("SELECT MAX(length(data)) FROM job_specs").fetchone()[0]
    assert stored < 2000  # the specs themselves no longer carry the module
    for job_id, expected in (("j-same-2", module), ("j-other", other)):
        wanted = _wasm_job(job_id, expected).task.engine.params
        store._specs = type(store._specs)()  # decode from SQL, not from the cache
        assert store.get_job(job_id).task.engine.params == wanted
        assert store.read_jobs([job_id], own_connection=True)[0].task.engine.params == wanted
    # Retention drops a module with the last job that uses it.
    for job_id in ("j-same-0", "j-same-1", "j-same-2", "j-other"):
        store.update_job_state(job_id, JobStateType.STOPPED)
    deleted = store.delete_terminal_jobs(modified_before=now_ns() + 1, limit=3)
    assert len(deleted) == 3
    assert store._db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1
    store.delete_terminal_jobs(modified_before=now_ns() + 1, limit=3)
    assert store._db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 0
    store.close()


def test_lookups_by_state_use_the_one_state_index(tmp_path: Path) -> None:
    """``jobs_by_state_modified`` serves lookups by state; the index on state alone that
    earlier versions made (one more page written per state change) is dropped on open."""
    path = tmp_path / "jobs.db"
    JobStore(path).close()
    made_earlier = JobStore(path)
    made_earlier._db.execute("CREATE INDEX jobs_by_state ON jobs(state)")
    made_earlier.close()
    store = JobStore(path)
    indexes = {str(r[1]) for r in store._db.execute("PRAGMA index_list(jobs)")}
    assert "jobs_by_state" not in indexes
    plan = store._db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state IN (1, 2)"
    ).fetchall()
    assert "jobs_by_state_modified" in str(plan)
    store.close()


def test_a_new_job_reads_back_as_its_stored_document_without_sql(tmp_path: Path) -> None:
    """A job is cached as it is created (no spec read from SQL right after), decoded as a
    read of its stored document would be, and apart from the caller's object."""
    store = JobStore(tmp_path / "jobs.db")
    module = bytes(range(256)) * 40
    submitted = _wasm_job("j-fresh", module)
    with store.transaction():
        store.create_job(submitted)
    submitted.task.engine.params["EntryModule"] = "changed by the caller afterwards"
    submitted.labels["late"] = "label"
    reads: list[str] = []
    store._db.set_trace_callback(reads.append)
    cached = store.get_job("j-fresh")
    store._db.set_trace_callback(None)
    assert not any("job_specs" in sql for sql in reads), reads
    fresh = JobStore(tmp_path / "jobs.db")  # decodes the stored document
    assert cached.to_dict() == fresh.get_job("j-fresh").to_dict()
    assert cached.task.engine.params == _wasm_job("j-fresh", module).task.engine.params
    fresh.close()
    store.close()


def _submitted(job_id: str) -> JobHistory:
    now = now_ns()
    return JobHistory(
        seq_num=0,
        type="JobLevel",
        job_id=job_id,
        event=Event(message="Job submitted", topic="Submission", timestamp=now),
        time=now,
        new_revision=1,
        job_state_new=JobStateType.PENDING,
    )


def test_a_new_jobs_history_log_starts_with_its_first_item(tmp_path: Path) -> None:
    """The log of a job created here is in memory from its first committed item on: its
    first reader (a client waiting for it) reads no SQL; a rolled-back job leaves none."""
    store = JobStore(tmp_path / "jobs.db")
    try:
        with store.transaction():
            store.create_job(_job("j-rolled-back"))
            store.add_history(_submitted("j-rolled-back"))
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    with store.transaction():
        store.create_job(_job("j-new"))
        store.add_history(_submitted("j-new"))
    store.update_job_state("j-new", JobStateType.RUNNING)
    reads: list[str] = []
    store._db.set_trace_callback(reads.append)
    assert [h.seq_num for h in store.history_of("j-new")] == [1, 2]
    store._db.set_trace_callback(None)
    assert not any("FROM history" in sql for sql in reads), reads
    assert store.history_of("j-rolled-back") == []
    store.close()
