"""Job submission: the checks a job passes, its defaults, and its first scheduling pass, made
in its submit's own transaction; a job submitted under an existing job's name updates that
job (a new version); and the diff such a submission would make."""

from __future__ import annotations

import asyncio
import logging

from bacalhau.errors import (
    IdempotencyTokenReused,
    InvalidJobSpec,
    JobNotFound,
    JobSpecUnchanged,
)
from bacalhau.models import (
    MANAGED_PUBLISHER,
    Connection,
    Event,
    Job,
    JobHistory,
    JobStateType,
    Membership,
    NodeInfo,
    NodeState,
    SpecConfig,
    TriggeredBy,
    env_name_allowed,
    forwarded_env_name,
    new_job_id,
    normalise_job,
    now_ns,
    validate_job,
)
from bacalhau.orchestrator._api import JobDiff, SubmitResult
from bacalhau.orchestrator._evaluations import EvaluationRunner
from bacalhau.orchestrator._job_diff import same_spec, spec_diff
from bacalhau.orchestrator._managed import ManagedResultBucket

log = logging.getLogger(__name__)

#: Loop turns a new job's first message is given before the submit answers: the dispatch
#: task's first step (which encodes, signs and hands the ask to gRPC), then gRPC's own call
#: task (which sends it). About half a millisecond off a job's submit-to-end on 2 cores; the
#: answer itself leaves that much later.
_HEAD_START_TURNS = 2


def _type_change(current: Job, submitted: Job) -> InvalidJobSpec:
    """The error of a job submitted under the name of a job of another type: a job's
    type picks its scheduler and what its executions are (a batch job's partitions, a
    service's replicas), so a new version of another type would not be the same job.
    (Bacalhau keeps the existing type and drops the submitted one without a word.)"""
    return InvalidJobSpec(
        f"job {current.name!r} ({current.id}) is a {current.type} job and a job's type "
        f"cannot change (submitted: {submitted.type})",
        field="Type",
        hint=f"keep Type {current.type}, or give the {submitted.type} job another name",
    )


class JobSubmission(EvaluationRunner):
    """Accepts jobs (``submit_job``): a new job is placed at once when it can be; a job
    submitted under an existing job's name becomes that job's next version."""

    _info: NodeInfo
    _default_publisher: str
    _default_cpu: str
    _default_memory: str
    _installation_id: str
    _managed_bucket: ManagedResultBucket | None

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
        if idempotency_token:
            seen = self.store.idempotent_result(idempotency_token)
            if seen is not None:
                self._check_replay(seen[0], job, client_meta)
                return SubmitResult(seen[0], seen[1], seen[2])
        warnings = self._prepare(job, client_meta)
        self._check_partitions(job)
        self._check_env_forwarding(job)
        # A Name that is already a job's in its namespace makes this an update of that job.
        # Looked up and acted on with nothing awaited in between, so no other submit of the
        # name comes between (and the store's unique index would refuse a second job of it).
        existing = self.store.job_id_named(job.namespace, job.name) if job.name else None
        if existing is not None and update_named:
            return self._update_job(
                existing, job, warnings, force=force, idempotency_token=idempotency_token
            )
        if existing is not None:
            # A client of Bacalhau before v1.8 makes a new job each time, whatever its name:
            # the name moves to the new job, and the earlier one goes on under its ID.
            warnings.append(
                f"job {existing} already had the name {job.name!r}: this is a new job, found "
                "by that name from now on (clients of Bacalhau v1.8+ update the job instead)"
            )
        now = now_ns()
        job.id = new_job_id()
        if not job.name:
            job.name = job.id
        job.state = JobStateType.PENDING
        job.state_message = ""
        job.revision = 1
        # Versions count from 1 (Bacalhau v1.8): 0 in a read means the latest.
        job.version = 1
        job.create_time = job.modify_time = now
        ev = self._new_eval(job, TriggeredBy.JOB_REGISTER)
        with self.store.transaction():
            if existing is not None:
                self.store.release_name(existing)
            self.store.create_job(job, handed_over=handed_over)
            self.store.add_history(
                JobHistory(
                    seq_num=0,
                    type="JobLevel",
                    job_id=job.id,
                    event=Event(message="Job submitted", topic="Submission", timestamp=now),
                    time=now,
                    new_revision=1,
                    job_state_new=JobStateType.PENDING,
                    job_version=job.version,
                )
            )
            self.store.create_evaluation(ev)
            if idempotency_token:
                self.store.remember_idempotent(idempotency_token, job.id, ev.id, warnings)
            placed = self._place_now(ev)
        if not placed:
            self._broker.enqueue(ev)
        else:
            # The first message gets a head start on the answer: the submitter's next
            # request (most often the wait for the job) would otherwise be served while it
            # is still on its way, and the two compete for the CPU.
            for _ in range(_HEAD_START_TURNS):
                await asyncio.sleep(0)
        return SubmitResult(job.id, ev.id, warnings)

    def _check_replay(self, job_id: str, job: Job, client_meta: dict[str, str] | None) -> None:
        """A token already used answers its first submit only if this is that submit again:
        the same namespace, and the spec of one of the versions of the job it made (the
        job may have moved on since); anything else is :class:`IdempotencyTokenReused`."""
        try:
            versions = self.store.job_versions(job_id)
        except JobNotFound:
            return  # gone with retention: the token answers what it answered
        self._prepare(job, client_meta)
        first = versions[0]
        if not job.name:
            job.name = first.name  # a job without a Name was named after its ID
        if job.namespace == first.namespace and any(same_spec(v, job) for v in versions):
            return
        where = "namespace" if job.namespace != first.namespace else "spec"
        raise IdempotencyTokenReused(
            f"the idempotency token was used by the submit of job {job_id} "
            f"(namespace {first.namespace}), and this submit's {where} differs from it",
            details={"Field": "idempotencyToken"},
        )

    async def diff_job(self, job: Job) -> JobDiff:
        """What submitting ``job`` would change in the job of its Name (see
        :meth:`OrchestratorAPI.diff_job <bacalhau.orchestrator.OrchestratorAPI.diff_job>`)."""
        if not job.name.strip():
            raise InvalidJobSpec(
                "the job has no Name: there is no existing job to compare it with",
                field="Name",
                hint="a diff compares a job with the job of the same name; give it a Name",
            )
        warnings = self._prepare(job, None)
        existing = self.store.job_id_named(job.namespace, job.name)
        if existing is None:
            raise JobNotFound(
                f"no job named {job.name!r} in namespace {job.namespace}",
                hint="submitting it creates a new job",
            )
        current = self.store.get_job(existing)
        if job.type != current.type:
            warnings.append(_type_change(current, job).message)
        return JobDiff(spec_diff(current, job), warnings)

    def _prepare(self, job: Job, client_meta: dict[str, str] | None) -> list[str]:
        """Normalise and validate a submitted job, and give it what the requester adds (its
        stamps in ``Meta``, default resources and publisher); returns the warnings."""
        warnings = normalise_job(job)
        validate_job(job)
        job.meta["bacalhau.org/requester.id"] = self._info.node_id
        job.meta["bacalhau.org/orchestrator.id"] = self._info.node_id
        if self._installation_id:
            job.meta["bacalhau.org/server.installation.id"] = self._installation_id
        for key, value in (client_meta or {}).items():
            job.meta[key] = value
        task = job.task
        if not task.resources.cpu:
            task.resources.cpu = self._default_cpu
        if not task.resources.memory:
            task.resources.memory = self._default_memory
        if task.publisher.is_empty() and self._default_publisher:
            # Results without a publisher would be unreachable: default to one.
            task.publisher = SpecConfig(type=self._default_publisher)
        shared = _shared_s3_key(job)
        if shared:
            warnings.append(shared)
        if task.publisher.type.lower() == MANAGED_PUBLISHER and self._managed_bucket is None:
            # Every node would publish into a bucket this requester does not have.
            raise InvalidJobSpec(
                "this requester has no managed bucket for the s3managed publisher",
                field="Tasks[0].Publisher.Type",
                hint="publish with s3 (your bucket) or local, or have the operator set "
                "Publishers.Types.S3Managed.Bucket on the requester",
            )
        return warnings

    def _update_job(
        self,
        job_id: str,
        spec: Job,
        warnings: list[str],
        *,
        force: bool,
        idempotency_token: str,
    ) -> SubmitResult:
        """Make ``spec`` the next version of job ``job_id`` (submitted under its name), as a
        rerun makes one: Pending again, placed anew, the previous version's executions
        stopped by the scheduler."""
        current = self.store.get_job(job_id)
        if spec.type != current.type:
            raise _type_change(current, spec)
        unchanged = same_spec(current, spec)
        if unchanged and not force:
            # The hint is the class's: "Use the --force flag ..." (Force in a request).
            raise JobSpecUnchanged(
                # Bacalhau's words first (scripts look for them), then which version.
                f"no changes detected for new job spec. Job Name: {current.name!r} "
                f"({current.id}): the spec is the same as its version {current.version}"
            )
        version = current.version + 1
        message = (
            f"Job submitted again unchanged, as version {version} (forced)"
            if unchanged
            else f"Job updated as version {version}"
        )
        with self.store.transaction():
            updated = self.store.add_job_version(
                job_id,
                event=Event(message=message, topic="Submission", timestamp=now_ns()),
                spec=spec,
            )
            ev = self._new_eval(updated, TriggeredBy.JOB_REGISTER)
            self.store.create_evaluation(ev)
            if idempotency_token:
                self.store.remember_idempotent(idempotency_token, job_id, ev.id, warnings)
        self._broker.enqueue(ev)
        return SubmitResult(job_id, ev.id, warnings)

    def _check_partitions(self, job: Job) -> None:
        """A batch job's partitions (a service's or a verified job's replicas) each need a
        node of their own: more of them than the cluster has compute nodes could never all
        run, so such a job is refused here, naming ``Count``, unless it may wait for nodes to
        join (a QueueTimeout) or the requester has just started and may not know every node
        yet."""
        if job.type not in ("batch", "service") or self._may_wait_for_nodes(job):
            return
        nodes = len(self._ready_compute_nodes())
        if job.count > max(nodes, 1) and job.verified:
            # Not partitions: replicas of the same work, whose results are compared.
            raise InvalidJobSpec(
                f"Count {job.count} asks for {job.count} replicas of a verified job, each on "
                f"a distinct node, and this cluster has {nodes} compute node(s)",
                field="Count",
                hint=(f"lower Count to {nodes} or less" if nodes >= 2 else "add compute nodes")
                + ", or set Timeouts.QueueTimeout to wait for nodes to join",
            )
        if job.count > max(nodes, 1):
            what = "replicas" if job.type == "service" else "partitions"
            raise InvalidJobSpec(
                f"Count {job.count} asks for more {what} than the {nodes} compute "
                "node(s) of this cluster can run (one per node)",
                field="Count",
                hint="lower Count, or set Timeouts.QueueTimeout to wait for nodes to join",
            )

    def _check_env_forwarding(self, job: Job) -> None:
        """An ``env:NAME`` reference is filled only by a node whose operator allows ``NAME``
        (``Compute.Env.AllowList``, advertised in each node's record): when no node of the
        cluster does, every node would decline the job, so it is refused here, naming the
        ``Env`` key, unless it may wait for nodes as :meth:`_check_partitions` allows."""
        if not job.tasks or self._may_wait_for_nodes(job):
            return
        references = {
            key: name
            for key, value in job.task.env.items()
            if (name := forwarded_env_name(value)) is not None
        }
        if not references:
            return
        allow_lists = [
            n.info.compute.env_allow_list
            for n in self._ready_compute_nodes()
            if n.info.compute is not None
        ]
        for key, name in sorted(references.items()):
            if not any(env_name_allowed(name, patterns) for patterns in allow_lists):
                raise InvalidJobSpec(
                    f"Tasks[0].Env.{key} forwards the host variable {name}, which no compute "
                    "node of this cluster forwards",
                    field=f"Tasks[0].Env.{key}",
                    hint=f"ask the operator to add {name} to Compute.Env.AllowList, "
                    "or set the value directly",
                )

    def _may_wait_for_nodes(self, job: Job) -> bool:
        """Whether a job may wait for nodes to join (a QueueTimeout of its own or the
        operator's default), or the requester has just started and may not know every node
        yet: then what the current nodes lack is no reason to refuse it."""
        return bool(
            job.task.timeouts.queue_timeout
            or self._settings.default_queue_timeout
            or now_ns() < self._settling_until
        )

    def _ready_compute_nodes(self) -> list[NodeState]:
        """The compute nodes that are approved and connected now."""
        return [
            n
            for n in self.nodes.compute_nodes()
            if n.membership == Membership.APPROVED and n.connection == Connection.CONNECTED
        ]


def _shared_s3_key(job: Job) -> str:
    """A warning when several executions of ``job`` would publish to the same S3 object: a
    job of more than one partition (or a daemon, one per node) whose Key names neither the
    execution nor the node. Each upload would replace the last, and all but one result
    would be lost; Bacalhau does the same, so the job is not refused."""
    publisher = job.task.publisher
    if publisher.type.lower() != "s3":
        return ""
    key = str(publisher.params.get("Key") or "")
    many = job.type == "daemon" or (job.type in ("batch", "service") and job.count > 1)
    if not many or "{executionID}" in key or "{nodeID}" in key:
        return ""
    return (
        f"every execution of this job publishes to the same S3 key {key!r}: each upload "
        "replaces the last, and only one result is kept; add {executionID} to the Key"
    )
