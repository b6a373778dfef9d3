"""A small, real, in-memory implementation of :class:`OrchestratorAPI` for edge tests.

It keeps jobs, executions, history and nodes in dicts and follows the v1 semantics the API
relies on (prefix lookup, namespaces, label selectors, paging, stop rules, long-poll
notification). There is no scheduler: tests drive executions with :meth:`start_execution`,
:meth:`complete_execution` and :meth:`fail_execution`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from bacalhau.errors import ConflictJobState, JobNotFound, MultipleJobsFound, NodeNotFound
from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    HistoryType,
    Job,
    JobHistory,
    JobStateType,
    LabelSelectorRequirement,
    Membership,
    NodeInfo,
    NodeState,
    NodeType,
    RunCommandResult,
    SpecConfig,
    new_evaluation_id,
    new_execution_id,
    new_job_id,
    normalise_job,
    now_ns,
    selector_matches,
    validate_job,
)
from bacalhau.orchestrator._api import (
    ALL_VERSIONS,
    JobDiff,
    JobPage,
    JobVersions,
    SubmitResult,
    job_sort_value,
)
from bacalhau.orchestrator._job_diff import spec_diff


@dataclass
class _Record:
    job: Job
    executions: dict[str, Execution] = field(default_factory=dict)
    history: list[JobHistory] = field(default_factory=list)


#: Decides how an automatically run job ends: (stdout, exit code, error message or "").
AutoRun = Callable[[Job], tuple[str, int, str]]


class MemoryOrchestrator:
    """With ``auto_run``, every submitted job gets one execution that ends as ``auto_run``
    decides, shortly after submission (a stand-in for a scheduler and a compute node)."""

    def __init__(
        self, node_id: str = "n-memory-requester", *, auto_run: AutoRun | None = None
    ) -> None:
        self._auto_run = auto_run
        self._background: set[asyncio.Task[None]] = set()
        self._info = NodeInfo(node_id=node_id, node_type=NodeType.REQUESTER, version="v1.5.2")
        self._jobs: dict[str, _Record] = {}
        self._tokens: dict[str, SubmitResult] = {}
        self._nodes: dict[str, NodeState] = {node_id: NodeState(info=self._info)}
        self._changed: asyncio.Condition | None = None
        self.submissions: list[dict[str, str]] = []

    # -- helpers ----------------------------------------------------------------------------

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def _record(self, job_id: str, namespace: str = "") -> _Record:
        """A job by full ID, else by its name in ``namespace`` (the latest of that name:
        this stand-in does not update jobs by name), else by unique ID prefix."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        named = [
            r
            for r in self._jobs.values()
            if job_id and r.job.name == job_id and r.job.namespace == (namespace or "default")
        ]
        if named:
            return named[-1]
        found = [r for jid, r in self._jobs.items() if jid.startswith(job_id)] if job_id else []
        if not found:
            raise JobNotFound(f"job not found: {job_id}")
        if len(found) > 1:
            raise MultipleJobsFound(f"multiple jobs found for ID prefix {job_id}")
        return found[0]

    def _add_history(
        self,
        rec: _Record,
        message: str,
        topic: str,
        *,
        execution: Execution | None = None,
        exec_prev: ExecutionStateType | None = None,
        job_prev: JobStateType | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        t = now_ns()
        item = JobHistory(
            seq_num=len(rec.history) + 1,
            type=HistoryType.EXECUTION if execution else HistoryType.JOB,
            job_id=rec.job.id,
            event=Event(message=message, topic=topic, timestamp=t, details=details or {}),
            time=t,
            new_revision=rec.job.revision,
        )
        if execution is not None:
            item.node_id = execution.node_id
            item.execution_id = execution.id
            item.exec_state_previous = exec_prev
            item.exec_state_new = execution.compute_state
        else:
            item.job_state_previous = job_prev
            item.job_state_new = rec.job.state
        rec.history.append(item)

    def _set_job_state(self, rec: _Record, state: JobStateType, message: str = "") -> None:
        prev = rec.job.state
        rec.job.state = state
        rec.job.state_message = message
        rec.job.revision += 1
        rec.job.modify_time = now_ns()
        self._add_history(rec, message or state.wire, "State Update", job_prev=prev)

    # -- OrchestratorAPI --------------------------------------------------------------------

    def node_info(self) -> NodeInfo:
        return self._info

    async def submit_job(
        self,
        job: Job,
        *,
        client_meta: dict[str, str] | None = None,
        idempotency_token: str = "",
        handed_over: bool = False,
        force: bool = False,
        update_named: bool = True,
    ) -> SubmitResult:
        if idempotency_token and idempotency_token in self._tokens:
            return self._tokens[idempotency_token]
        warnings = normalise_job(job)
        validate_job(job)
        job.id = new_job_id()
        job.name = job.name or job.id
        job.state = JobStateType.PENDING
        job.revision = 1
        job.create_time = job.modify_time = now_ns()
        job.meta["bacalhau.org/requester.id"] = self._info.node_id
        job.meta.update(client_meta or {})
        self.submissions.append(dict(client_meta or {}))
        rec = _Record(job=job)
        self._jobs[job.id] = rec
        self._add_history(rec, "Job submitted", "Submission")
        result = SubmitResult(job.id, new_evaluation_id(), warnings)
        if idempotency_token:
            self._tokens[idempotency_token] = result
        await self._notify()
        if self._auto_run is not None:
            task = asyncio.create_task(self._run_automatically(job.id, self._auto_run))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return result

    async def diff_job(self, job: Job) -> JobDiff:
        """The requester's diff, against the latest job of the name (this stand-in keeps
        specs as submitted, without the requester's defaults)."""
        warnings = normalise_job(job)
        named = [
            r.job
            for r in self._jobs.values()
            if job.name and r.job.name == job.name and r.job.namespace == job.namespace
        ]
        if not named:
            raise JobNotFound(f"no job named {job.name!r} in namespace {job.namespace}")
        return JobDiff(spec_diff(named[-1], job), warnings)

    async def _run_automatically(self, job_id: str, auto_run: AutoRun) -> None:
        # A job stopped meanwhile stays stopped, as the real scheduler has it (a stop within
        # the first 50 ms, on a loaded machine, used to be overwritten by Running).
        await asyncio.sleep(0.05)
        if self._record(job_id).job.state.is_terminal():
            return
        ex = await self.start_execution(job_id)
        await asyncio.sleep(0.05)
        if self._record(job_id).job.state.is_terminal():
            return
        stdout, exit_code, error = auto_run(self._record(job_id).job)
        if error:
            await self.fail_execution(ex, error, hint="try a different image")
        else:
            await self.complete_execution(ex, stdout=stdout, exit_code=exit_code)

    async def get_job(self, job_id: str, *, namespace: str = "", version: int = 0) -> Job:
        job = self._record(job_id, namespace).job
        if version and version != job.version:  # one version per job here
            raise JobNotFound(f"job {job.id} has no version {version}")
        return job.copy()

    async def list_jobs(
        self,
        *,
        namespace: str = "",
        selector: list[LabelSelectorRequirement] | None = None,
        order_by: str = "created_at",
        reverse: bool = False,
        limit: int = 0,
        offset: int = 0,
        after: tuple[int | str, str] | None = None,
    ) -> JobPage:
        jobs = [
            r.job
            for r in self._jobs.values()
            if namespace in ("", "*", r.job.namespace)
            and selector_matches(selector or [], r.job.labels)
        ]

        def key(j: Job) -> tuple[int | str, str]:
            return job_sort_value(j, order_by), j.id

        jobs.sort(key=key, reverse=reverse)
        if after is not None:
            jobs = [j for j in jobs if (key(j) < after if reverse else key(j) > after)]
        end = offset + limit if limit else len(jobs)
        return JobPage([j.copy() for j in jobs[offset:end]], has_more=end < len(jobs))

    async def list_executions(
        self, job_id: str, *, namespace: str = "", versions: JobVersions = ALL_VERSIONS
    ) -> list[Execution]:
        rec = self._record(job_id, namespace)
        kept = [
            e for e in rec.executions.values() if versions.keeps(e.job_version, rec.job.version)
        ]
        return sorted(kept, key=lambda e: e.create_time)

    async def job_history(
        self,
        job_id: str,
        *,
        since_ns: int = 0,
        event_type: str = "all",
        execution_id: str = "",
        node_id: str = "",
        namespace: str = "",
        versions: JobVersions = ALL_VERSIONS,
    ) -> list[JobHistory]:
        rec = self._record(job_id, namespace)
        out = []
        for h in rec.history:
            if not versions.keeps(h.job_version, rec.job.version):
                continue
            if h.time < since_ns:
                continue
            if event_type == "job" and h.type != HistoryType.JOB:
                continue
            if event_type == "execution" and h.type != HistoryType.EXECUTION:
                continue
            if execution_id and not h.execution_id.startswith(execution_id):
                continue
            if node_id and not h.node_id.startswith(node_id):
                continue
            out.append(h)
        return out

    async def wait_for_change(self, job_id: str, *, after_seq: int, timeout: float) -> None:
        rec = self._record(job_id)
        cond = self._condition()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: len(rec.history) > after_seq), timeout)
            except TimeoutError:
                return

    async def stop_job(self, job_id: str, reason: str = "", *, namespace: str = "") -> str:
        rec = self._record(job_id, namespace)
        state = rec.job.state
        if state == JobStateType.STOPPED:
            return ""
        if state == JobStateType.COMPLETED:
            raise ConflictJobState(f"cannot stop job in state {state.wire}")
        self._set_job_state(rec, JobStateType.STOPPED, reason or "stopped by user")
        for e in rec.executions.values():
            if not e.compute_state.is_terminal():
                prev = e.compute_state
                e.compute_state = ExecutionStateType.CANCELLED
                e.desired_state = ExecutionDesiredStateType.STOPPED
                self._add_history(
                    rec, "Execution cancelled", "Execution", execution=e, exec_prev=prev
                )
        await self._notify()
        return "" if state == JobStateType.FAILED else new_evaluation_id()

    async def job_results(self, job_id: str, *, namespace: str = "") -> list[SpecConfig]:
        rec = self._record(job_id, namespace)
        return [
            e.published_result
            for e in sorted(rec.executions.values(), key=lambda e: e.create_time)
            if e.compute_state == ExecutionStateType.COMPLETED
            and e.published_result is not None
            and e.published_result.type
        ]

    async def list_nodes(self) -> list[NodeState]:
        return list(self._nodes.values())

    async def get_node(self, node_id: str) -> NodeState:
        if node_id in self._nodes:
            return self._nodes[node_id]
        found = [n for nid, n in self._nodes.items() if nid.startswith(node_id)] if node_id else []
        if len(found) != 1:
            raise NodeNotFound(f"node not found: {node_id}")
        return found[0]

    async def update_node(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        node = await self.get_node(node_id)
        if action == "approve":
            if node.membership == Membership.APPROVED:
                return False, "node already approved"
            node.membership = Membership.APPROVED
        elif action == "reject":
            node.membership = Membership.REJECTED
        elif action == "delete":
            del self._nodes[node.info.node_id]
        else:
            return False, "unsupported action"
        return True, ""

    # -- test drivers -----------------------------------------------------------------------

    def add_node(self, node: NodeState) -> None:
        self._nodes[node.info.node_id] = node

    async def start_execution(self, job_id: str, node_id: str = "n-memory-compute") -> str:
        rec = self._record(job_id)
        t = now_ns()
        e = Execution(
            id=new_execution_id(),
            job_id=rec.job.id,
            node_id=node_id,
            namespace=rec.job.namespace,
            name=rec.job.name,
            job=rec.job.copy(),
            compute_state=ExecutionStateType.NEW,
            create_time=t,
            modify_time=t,
        )
        rec.executions[e.id] = e
        self._add_history(rec, f"Requested execution on {node_id}", "Scheduling", execution=e)
        e.compute_state = ExecutionStateType.BID_ACCEPTED
        e.desired_state = ExecutionDesiredStateType.RUNNING
        self._add_history(
            rec, "Running", "Execution", execution=e, exec_prev=ExecutionStateType.NEW
        )
        if rec.job.state != JobStateType.RUNNING:
            self._set_job_state(rec, JobStateType.RUNNING)
        await self._notify()
        return e.id

    async def complete_execution(
        self,
        execution_id: str,
        *,
        stdout: str = "",
        stderr: str = "",
        exit_code: int = 0,
        published: SpecConfig | None = None,
        complete_job: bool = True,
    ) -> None:
        rec, e = self._find_execution(execution_id)
        prev = e.compute_state
        e.compute_state = ExecutionStateType.COMPLETED
        e.desired_state = ExecutionDesiredStateType.STOPPED
        e.run_output = RunCommandResult(stdout=stdout, stderr=stderr, exit_code=exit_code)
        e.published_result = published
        e.modify_time = now_ns()
        e.revision += 1
        self._add_history(rec, "Completed successfully", "Execution", execution=e, exec_prev=prev)
        if complete_job:
            self._set_job_state(rec, JobStateType.COMPLETED)
        await self._notify()

    async def fail_execution(self, execution_id: str, message: str, hint: str = "") -> None:
        rec, e = self._find_execution(execution_id)
        prev = e.compute_state
        e.compute_state = ExecutionStateType.FAILED
        e.compute_message = message
        e.desired_state = ExecutionDesiredStateType.STOPPED
        e.modify_time = now_ns()
        details = {"IsError": "true"}
        if hint:
            details["Hint"] = hint
        self._add_history(rec, message, "Execution", execution=e, exec_prev=prev, details=details)
        self._set_job_state(rec, JobStateType.FAILED, f"execution failed: {message}")
        await self._notify()

    def _find_execution(self, execution_id: str) -> tuple[_Record, Execution]:
        for rec in self._jobs.values():
            if execution_id in rec.executions:
                return rec, rec.executions[execution_id]
        raise KeyError(execution_id)
