"""Following an execution's output from the requester: choose the execution, relay its stream.

The output lives on the compute node that runs the execution (its ``stdout`` and ``stderr``
files); the requester relays it chunk by chunk and holds nothing but the chunk in flight, so
a slow follower slows only its own stream. When the node no longer has it (forgotten, or the
node is gone: a node the cluster holds dead is not even asked, so nobody waits on it) a
finished execution's short summary (``RunOutput``) is replayed instead, as Bacalhau does for
every finished execution; a summary that cut the output short ends with an error saying so,
never as if it were the whole output.

Following a job (no execution named) follows the job, not one attempt: when the followed
execution fails or its node is lost and the job retries that partition elsewhere, the stream
goes on with the retry's output, until the job's work ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Protocol

from bacalhau.errors import (
    BadQuery,
    ExecutionNotFound,
    MultipleJobsFound,
    NodeNotFound,
    NotFound,
    TooManyRequests,
    Unavailable,
)
from bacalhau.models import (
    Execution,
    ExecutionStateType,
    Job,
    LogChunk,
    LogPosition,
    LogRequest,
    LogStream,
    now_ns,
)
from bacalhau.orchestrator._metrics import LOG_STREAMS_OPEN, LOG_STREAMS_REFUSED

__all__ = ["ExecutionLogs", "LogSource", "choose_execution"]

_log = logging.getLogger(__name__)

E = ExecutionStateType

#: Executions that never ran (or were dropped before running): chosen only if nothing else is.
_DISCARDED = frozenset({E.ASK_FOR_BID_REJECTED, E.BID_REJECTED, E.CANCELLED})
#: States in which the execution's node has not yet been told to run it.
_NOT_YET_ON_NODE = frozenset({E.UNDEFINED, E.NEW, E.ASK_FOR_BID, E.ASK_FOR_BID_ACCEPTED})
#: How often a follower waiting for an execution to be placed looks again.
_PLACEMENT_POLL_SECONDS = 0.1


class LogSource(Protocol):
    """Reaches the compute node running an execution (implemented by the transport client)."""

    def stream_logs(self, node_id: str, request: LogRequest) -> AsyncIterator[LogChunk]: ...


def choose_execution(job: Job, executions: list[Execution], execution_id: str) -> Execution:
    """The execution whose output is wanted: ``execution_id`` (full ID or unique prefix) when
    given, else the latest-modified one running, else that completed, else of the rest
    (those discarded last)."""
    if execution_id:
        matches = [e for e in executions if e.id == execution_id]
        if not matches:
            matches = [e for e in executions if e.id.startswith(execution_id)]
        if len(matches) > 1:
            raise MultipleJobsFound(
                f"execution ID prefix {execution_id!r} matches {len(matches)} executions",
                hint="use the full execution ID",
                details={"Field": "execution_id"},
            )
        if not matches:
            raise ExecutionNotFound(
                f"unable to find execution {execution_id} in job {job.id}",
                hint=f"list them with `bacalhau job executions {job.id}`",
            )
        return matches[0]
    if not executions:
        # Why there is none is in the job's state: a job that ended before any node ran it
        # (none could) says so, rather than leave the user to guess.
        reason = f" (it is {job.state.wire}: {job.state_message})" if job.state_message else ""
        raise ExecutionNotFound(
            f"no executions found for job {job.id}{reason}",
            hint=f"`bacalhau job describe {job.id}` shows what happened to it",
        )
    kept = [e for e in executions if e.compute_state not in _DISCARDED] or executions

    def preference(e: Execution) -> tuple[int, int, int]:
        # One running now, else one that completed, else the latest: a failed execution
        # touched later (a late report from a node that came back) must not hide the run
        # that produced the job's result.
        tier = 2 if e.is_active() else 1 if e.compute_state == ExecutionStateType.COMPLETED else 0
        return tier, e.modify_time, e.create_time

    return max(kept, key=preference)


class _Jobs(Protocol):
    async def get_job(self, job_id: str) -> Job: ...

    async def list_executions(self, job_id: str) -> list[Execution]: ...


class ExecutionLogs:
    """Streams executions' output to the orchestrator's edges (REST WebSocket, SDK, CLI)."""

    def __init__(
        self,
        *,
        jobs: _Jobs,
        source: LogSource,
        poll_interval: float = _PLACEMENT_POLL_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        reachable: Callable[[str], bool] = lambda node_id: True,
        max_streams: int = 0,
        max_per_client: int = 0,
    ) -> None:
        """``reachable`` says whether the cluster holds a node connected (a dead or lost
        node's output is not asked for); at most ``max_streams`` streams are open at once
        (0: no cap), one more is refused as busy; at most ``max_per_client`` of them for one
        client (0: no cap), so that one client cannot take every place."""
        self._jobs = jobs
        self._source = source
        self._reachable = reachable
        self._poll = poll_interval
        self._sleep = sleep
        self._max_streams = max_streams
        self._max_per_client = max_per_client
        #: Streams open now: from :meth:`open` until each ends or is closed.
        self.open_streams = 0
        #: The same, by client (those with none open are not kept).
        self._by_client: dict[str, int] = {}

    async def open(
        self,
        job_id: str,
        *,
        execution_id: str = "",
        follow: bool = False,
        tail: int = 0,
        version: int = 0,
        client: str = "",
        resume: LogPosition | None = None,
    ) -> AsyncIterator[LogChunk]:
        """Check the job and pick its execution now (so that an unknown job fails at once),
        and return the stream of that execution's output: one of the job's latest version,
        or of ``version`` (an earlier version's output is replayed, not followed).
        ``client`` names who asks (a user, else an address) for the per-client cap.

        Not following: what the execution has written so far, then the end. Following: that,
        then new output until the execution ends; a job not yet placed is waited for.

        ``resume`` (a position a stream gave with a line) starts at that execution's bytes
        instead, ``tail`` and ``version`` aside: a follower whose stream broke goes on where
        it was, then (following the job) on to the retries.
        """
        self._check_room(client)
        self._opened(client)  # taken while the execution is chosen (or awaited) too
        try:
            job = await self._jobs.get_job(job_id)
            if resume is not None:
                execution = await self._resumed(job, execution_id, resume)
                tail = 0
            else:
                version = version or job.version
                if version != job.version:
                    follow = False  # nothing of an earlier version runs any more
                execution = await self._placed(job, execution_id, follow=follow, version=version)
        except BaseException:
            self._stream_ended(client)
            raise
        if not follow or execution_id:
            stream = self._relay(execution, follow=follow, tail=tail, start=resume)
        else:
            stream = self._follow_attempts(job.id, execution, tail=tail, start=resume)
        return _Counted(stream, lambda: self._stream_ended(client))

    async def _resumed(self, job: Job, execution_id: str, resume: LogPosition) -> Execution:
        """The execution a ``resume`` position names, which must be the job's (and the one
        ``execution_id`` names, if one is)."""
        if execution_id and not resume.execution_id.startswith(execution_id):
            raise BadQuery(
                f"resume names execution {resume.execution_id}, not {execution_id}, the one "
                "asked for",
                field="resume",
                hint="pass back the position a stream of that execution gave",
            )
        executions = await self._jobs.list_executions(job.id)
        found = next((e for e in executions if e.id == resume.execution_id), None)
        if found is None:
            raise ExecutionNotFound(
                f"job {job.id} has no execution {resume.execution_id} to resume the output of",
                hint=f"follow the job from the start: `bacalhau job logs --follow {job.id}`",
                details={"Field": "resume"},
            )
        return found

    def _check_room(self, client: str) -> None:
        if self._max_streams and self.open_streams >= self._max_streams:
            LOG_STREAMS_REFUSED.labels(cap="total").inc()
            raise Unavailable(
                f"this requester already relays {self.open_streams} log streams, the most it "
                "relays at once (its log_streams_max)",
                hint="try again shortly; the operator can raise log_streams_max",
                component="Orchestrator",
            )
        held = self._by_client.get(client, 0)
        if self._max_per_client and held >= self._max_per_client:
            LOG_STREAMS_REFUSED.labels(cap="client").inc()
            raise TooManyRequests(
                f"{client or 'this client'} already has {held} log streams open, the most "
                "one client may have (the requester's log_streams_per_client_max)",
                hint="close log streams you no longer read (a `job logs --follow` left "
                "running holds one), or ask the operator to raise log_streams_per_client_max",
                component="Orchestrator",
            )

    def _opened(self, client: str) -> None:
        self.open_streams += 1
        self._by_client[client] = self._by_client.get(client, 0) + 1
        LOG_STREAMS_OPEN.inc()

    def _stream_ended(self, client: str) -> None:
        self.open_streams -= 1
        left = self._by_client[client] - 1
        if left:
            self._by_client[client] = left
        else:
            del self._by_client[client]
        LOG_STREAMS_OPEN.dec()

    async def _follow_attempts(
        self, job_id: str, execution: Execution, *, tail: int, start: LogPosition | None
    ) -> AsyncGenerator[LogChunk, None]:
        """Follow ``execution`` (from ``start`` if given), then each retry of its partition
        while the job retries it. When the execution's node is out of reach mid-way (it is
        lost, or this requester has just restarted and does not hear it yet), the follow
        goes on where it was once the node is back or the execution has ended (its rest
        then comes from the node, or from its summary), or with a retry elsewhere."""
        followed = {execution.id}
        reached = start or LogPosition(execution.id)
        while True:
            lost = False
            try:
                async for chunk in self._relay(
                    execution, follow=True, tail=tail, start=start, moving_on=True
                ):
                    reached = reached.past(chunk)
                    yield chunk
            except _OutOfReach:
                lost = True
            if lost:
                after = await self._after_loss(job_id, execution, followed)
                if after is not None and after.id == execution.id:
                    execution, tail, start = after, 0, reached
                    continue
            else:
                after = await self._retry_of(job_id, execution, followed)
            if after is None:
                return
            _log.info("job %s: following retry %s after %s", job_id, after.id, execution.id)
            followed.add(after.id)
            execution = after
            tail, start = 0, None  # a retry's output is new to the follower: all of it
            reached = LogPosition(execution.id)

    async def _after_loss(
        self, job_id: str, lost: Execution, followed: set[str]
    ) -> Execution | None:
        """After ``lost``'s node went out of reach: ``lost`` again (refreshed) once its node
        is back or it has ended, a retry of its partition once one runs on a node while it
        is still out of reach, or None when the job ends without either. Looks first after
        a pause: a node that answers but cannot give the stream is not asked in a loop."""
        while True:
            await self._sleep(self._poll)
            executions = await self._jobs.list_executions(job_id)
            current = next((e for e in executions if e.id == lost.id), lost)
            if current.compute_state.is_terminal() or (
                current.node_id and self._reachable(current.node_id)
            ):
                return current
            retry = self._placed_retry(executions, current, followed)
            if retry is not None:
                return retry
            job = await self._jobs.get_job(job_id)
            if job.state.is_terminal():
                return None

    async def _retry_of(
        self, job_id: str, ended: Execution, followed: set[str]
    ) -> Execution | None:
        """The execution that retries ``ended``'s partition once it is on a node, or None when
        ``ended`` completed or the job stops retrying it."""
        while True:
            executions = await self._jobs.list_executions(job_id)
            current = next((e for e in executions if e.id == ended.id), ended)
            if current.compute_state == E.COMPLETED:
                return None
            retries = _retries(executions, ended, followed)
            placed = self._placed_retry(executions, ended, followed)
            if placed is not None and current.compute_state.is_terminal():
                return placed
            job = await self._jobs.get_job(job_id)
            if job.state.is_terminal() and not retries:
                return None
            await self._sleep(self._poll)

    @staticmethod
    def _placed_retry(
        executions: list[Execution], ended: Execution, followed: set[str]
    ) -> Execution | None:
        """The latest retry of ``ended``'s partition that is on a node, if any."""
        placed = [
            e
            for e in _retries(executions, ended, followed)
            if e.compute_state not in _NOT_YET_ON_NODE
        ]
        return max(placed, key=lambda e: (e.create_time, e.modify_time)) if placed else None

    async def _placed(
        self, job: Job, execution_id: str, *, follow: bool, version: int
    ) -> Execution:
        while True:
            executions = await self._jobs.list_executions(job.id)
            if not execution_id:
                executions = [e for e in executions if e.job_version == version]
            try:
                chosen = choose_execution(job, executions, execution_id)
            except ExecutionNotFound:
                if not follow or job.state.is_terminal() or execution_id:
                    raise
            else:
                if not follow or chosen.compute_state not in _NOT_YET_ON_NODE:
                    return chosen
            await self._sleep(self._poll)
            job = await self._jobs.get_job(job.id)

    async def _relay(
        self,
        execution: Execution,
        *,
        follow: bool,
        tail: int,
        start: LogPosition | None = None,
        moving_on: bool = False,
    ) -> AsyncGenerator[LogChunk, None]:
        """One execution's output (from ``start``'s bytes if given), each chunk naming the
        execution. With ``moving_on`` (the caller follows the job on to a retry) losing the
        execution's node while it runs raises :class:`_OutOfReach` for the caller to wait on,
        rather than failing the stream."""
        request = LogRequest(
            execution_id=execution.id,
            follow=follow,
            tail=tail,
            stdout_from=start.stdout if start else 0,
            stderr_from=start.stderr if start else 0,
        )
        if execution.compute_state in _NOT_YET_ON_NODE or not execution.node_id:
            return  # nothing ran yet, and the caller does not wait for it
        try:
            if not self._reachable(execution.node_id):
                raise Unavailable(
                    f"node {execution.node_id} is disconnected",
                    hint="`bacalhau node list` shows when it is back",
                )
            stream = self._source.stream_logs(execution.node_id, request)
            try:
                async for chunk in stream:
                    yield dataclasses.replace(chunk, execution_id=execution.id)
                return
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
        except (NotFound, NodeNotFound, Unavailable) as err:
            if moving_on and not execution.compute_state.is_terminal():
                _log.info("execution %s: its stream ended early (%s)", execution.id, err.message)
                raise _OutOfReach from err
            if not execution.compute_state.is_terminal():
                raise
            _log.info("execution %s: replaying its summary (%s)", execution.id, err.message)
            why = err.message
        for chunk in _summary(execution, request):
            yield chunk
        out = execution.run_output
        if out is not None and (out.stdout_truncated or out.stderr_truncated):
            raise Unavailable(
                f"only the start of execution {execution.id}'s output is kept here, and the "
                f"node that holds all of it cannot give it: {why}",
                hint="try again once the node is back (`bacalhau node list`), or "
                f"`bacalhau job get {execution.job_id}` if its results were published",
            )


class _OutOfReach(Exception):
    """A followed execution's node could not be reached (or was lost) mid-way."""


def _retries(executions: list[Execution], ended: Execution, followed: set[str]) -> list[Execution]:
    """The executions that retry ``ended``'s partition, not followed yet."""
    return [
        e
        for e in executions
        if e.id not in followed
        and e.partition_index == ended.partition_index
        and e.create_time >= ended.create_time
        and e.compute_state not in _DISCARDED
    ]


class _Counted:
    """``stream``, calling ``ended`` once when it ends, fails or is closed (even if it was
    never iterated: an async generator closed before its start runs no ``finally``)."""

    def __init__(self, stream: AsyncGenerator[LogChunk, None], ended: Callable[[], None]):
        self._stream = stream
        self._ended: Callable[[], None] | None = ended

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> LogChunk:
        try:
            return await self._stream.__anext__()
        except BaseException:  # the end (StopAsyncIteration), a failure or a cancellation
            self._end()
            raise

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._end()

    def _end(self) -> None:
        ended, self._ended = self._ended, None
        if ended is not None:
            ended()


def _summary(execution: Execution, request: LogRequest) -> list[LogChunk]:
    """The execution's kept summary as chunks: the start of each stream (from the bytes
    ``request`` starts at, or its last ``tail`` lines)."""
    out = execution.run_output
    if out is None:
        return []
    chunks: list[LogChunk] = []
    starts = request.starts()
    for stream, text in ((LogStream.STDOUT, out.stdout), (LogStream.STDERR, out.stderr)):
        data = text.encode("utf-8")
        offset = 0
        if starts is not None:
            offset = min(starts[stream], len(data))
        elif request.tail > 0:
            lines = data.splitlines(keepends=True)
            offset = len(data) - len(b"".join(lines[-request.tail :]))
        if offset < len(data):
            chunks.append(LogChunk(stream, offset, data[offset:], now_ns(), execution.id))
    return chunks
