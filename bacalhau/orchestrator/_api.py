"""What the orchestrator offers to its edges (REST, gRPC API): the endpoint contract.

``api/`` depends on this Protocol only; :class:`bacalhau.orchestrator.Orchestrator` implements it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from bacalhau.models import (
    Execution,
    Job,
    JobHistory,
    LabelSelectorRequirement,
    LogChunk,
    LogPosition,
    NodeInfo,
    NodeState,
    SpecConfig,
)


@dataclass(slots=True)
class SubmitResult:
    job_id: str
    evaluation_id: str
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class JobDiff:
    """What submitting a job would change in the existing job of its name."""

    #: A unified diff of the job's YAML, from the stored version to the submitted spec;
    #: "" when submitting it would change nothing.
    diff: str
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class JobPage:
    items: list[Job]
    #: True when more items exist past ``offset + limit``.
    has_more: bool = False


@dataclass(frozen=True, slots=True)
class JobVersions:
    """Which versions of a job a read covers, as Bacalhau v1.8 asks (``job_version``,
    ``all_job_versions``): one version, or every version, or (neither: the default) the
    latest. Versions count from 1; 0 names none."""

    version: int = 0
    every: bool = False

    def keeps(self, item_version: int, latest: int) -> bool:
        """Whether an item of ``item_version`` is read when the job's latest is ``latest``
        (a version asked for wins over ``every``, as Bacalhau has it)."""
        if self.version:
            return item_version == self.version
        return self.every or item_version == latest


#: Every version of a job: what the orchestrator's own reads cover.
ALL_VERSIONS = JobVersions(every=True)


def job_sort_value(job: Job, order_by: str) -> int | str:
    """The value a job listing ordered by ``order_by`` sorts ``job`` on (for keyset cursors)."""
    if order_by == "modified_at":
        return job.modify_time
    if order_by == "id":
        return job.id
    return job.create_time


class OrchestratorAPI(Protocol):
    """The orchestrator's endpoint, as the API servers see it.

    Every call that takes a ``job_id`` takes a job's full ID, its Name in ``namespace``
    ("": ``default``) or a unique prefix of its ID, in that order of precedence
    (:class:`~bacalhau.errors.JobNotFound` / :class:`~bacalhau.errors.MultipleJobsFound`).
    """

    def node_info(self) -> NodeInfo:
        """This node's own description (``/api/v1/agent/node``)."""
        ...

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
        """Normalise, validate and store a job with its first evaluation, in one transaction.

        A job whose Name is already a job's in its namespace updates that job instead (as
        Bacalhau v1.8+): same ID, a new version holding the submitted spec, Pending again,
        what the previous version runs stopped. A spec that would change nothing raises
        :class:`~bacalhau.errors.JobSpecUnchanged` unless ``force``; another job type than
        the existing job's raises :class:`~bacalhau.errors.InvalidJobSpec` naming ``Type``.
        Without ``update_named`` (a client of Bacalhau before v1.8, where names were not
        unique) it is a new job all the same, which takes the name; the earlier job keeps
        running under its ID, and a warning says so.

        Raises :class:`~bacalhau.errors.InvalidJobSpec` naming the field at fault. The same
        ``idempotency_token`` submitted twice returns the first submission's result. With
        ``handed_over`` the caller is done with ``job`` (an API server's freshly decoded
        request): the store keeps the object itself instead of a copy.
        """
        ...

    async def diff_job(self, job: Job) -> JobDiff:
        """What submitting ``job`` would change in the existing job of its Name, after the
        normalisation and defaults a submission gets (JobNotFound when no job has that
        name; InvalidJobSpec when ``job`` has none or fails validation)."""
        ...

    async def get_job(self, job_id: str, *, namespace: str = "", version: int = 0) -> Job:
        """A job by ID, name or unique ID prefix: its latest version, or ``version`` (an
        earlier version with the state it ended in; NotFound when the job has no such
        version)."""
        ...

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
        """Jobs of a namespace ("" or "*" = all) matching a label selector, sorted then paged
        (``limit`` 0 = all). ``order_by``: created_at, modified_at, id (ties by ID).

        ``after`` is a keyset cursor: the sort value and ID of the last job of the previous
        page (see :func:`job_sort_value`); ``offset`` skips jobs instead (older paging tokens).
        """
        ...

    async def list_executions(
        self, job_id: str, *, namespace: str = "", versions: JobVersions = ALL_VERSIONS
    ) -> list[Execution]:
        """The executions of a job (by ID or prefix) that run the ``versions`` asked for
        (default: all), oldest first, each with its job copy."""
        ...

    async def stream_logs(
        self,
        job_id: str,
        *,
        execution_id: str = "",
        follow: bool = False,
        tail: int = 0,
        namespace: str = "",
        version: int = 0,
        client: str = "",
        resume: LogPosition | None = None,
    ) -> AsyncIterator[LogChunk]:
        """An execution's stdout and stderr as chunks (the latest non-discarded execution
        of the job's latest version, or of ``version``, unless ``execution_id``, full or a
        unique prefix, is given). ``client`` names who asks (``user 'alice'``, ``client
        10.0.0.7``): one client holds at most ``log_streams_per_client_max`` streams.

        Awaiting it checks the job at once (:class:`~bacalhau.errors.JobNotFound`,
        :class:`~bacalhau.errors.ExecutionNotFound`); the iterator then replays what was
        written (the last ``tail`` lines of each stream when ``tail`` > 0) and, with
        ``follow``, continues until the execution ends; ``resume`` (a position the stream gave
        with a line) goes on from there instead. Closing it stops the relay. Too
        many open already: :class:`~bacalhau.errors.Unavailable` (the requester's cap) or
        :class:`~bacalhau.errors.TooManyRequests` (the client's).
        """
        ...

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
        """History in SeqNum order; ``event_type`` all|job|execution; ID filters are
        prefixes; items of the ``versions`` asked for (default: all)."""
        ...

    async def wait_for_change(self, job_id: str, *, after_seq: int, timeout: float) -> None:
        """Return as soon as the job has a history item with SeqNum > ``after_seq``, or when
        ``timeout`` seconds pass (long-poll support for clients that wait on a job)."""
        ...

    async def stop_job(self, job_id: str, reason: str = "", *, namespace: str = "") -> str:
        """Stop a job; returns the evaluation ID ("" when there was nothing to do).
        Completed jobs raise :class:`~bacalhau.errors.ConflictJobState`."""
        ...

    async def rerun_job(
        self, job_id: str, reason: str = "", *, namespace: str = "", version: int = 0
    ) -> tuple[Job, str]:
        """Run the job again as a new version of its spec (of its latest version, or of
        ``version``); returns that new version and the evaluation ID."""
        ...

    async def job_versions(self, job_id: str, *, namespace: str = "") -> list[Job]:
        """Every version of the job's spec, oldest first."""
        ...

    async def job_results(self, job_id: str, *, namespace: str = "") -> list[SpecConfig]:
        """Published results of the completed executions of the job's latest version (noop
        results skipped)."""
        ...

    async def list_nodes(self) -> list[NodeState]:
        """Every known node, this requester included."""
        ...

    async def get_node(self, node_id: str) -> NodeState:
        """A node by ID or unique prefix (NodeNotFound)."""
        ...

    async def update_node(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        """approve | reject | delete a node; returns (success, error message)."""
        ...
