"""What a user does to a submitted job: stop it, run it again as a new version, list its
versions."""

from __future__ import annotations

from bacalhau.errors import ConflictJobState
from bacalhau.models import Event, Job, JobStateType, TriggeredBy, now_ns
from bacalhau.orchestrator._evaluations import EvaluationRunner
from bacalhau.orchestrator._queries import OrchestratorQueries


class JobControl(OrchestratorQueries, EvaluationRunner):
    """Stops and reruns jobs, each change recorded with the evaluation that carries it out."""

    async def stop_job(self, job_id: str, reason: str = "", *, namespace: str = "") -> str:
        job = await self.get_job(job_id, namespace=namespace)
        if job.state == JobStateType.STOPPED:
            return ""
        if job.state == JobStateType.COMPLETED:
            raise ConflictJobState(
                f"cannot stop job in state {job.state.wire}",
                hint="the job already finished; nothing to stop",
            )
        message = reason or "Job requested to stop before completion"
        was_failed = job.state == JobStateType.FAILED
        with self.store.transaction():
            self.store.update_job_state(
                job.id,
                JobStateType.STOPPED,
                message=message,
                event=Event(
                    message="Job requested to stop before completion"
                    + (f": {reason}" if reason else ""),
                    topic="State Update",
                    timestamp=now_ns(),
                ),
            )
            if was_failed:
                return ""
            ev = self._new_eval(job, TriggeredBy.JOB_CANCEL)
            self.store.create_evaluation(ev)
        self._broker.enqueue(ev)
        return ev.id

    async def rerun_job(
        self, job_id: str, reason: str = "", *, namespace: str = "", version: int = 0
    ) -> tuple[Job, str]:
        """Run a job again as a new version of the same spec (the latest version's, or
        ``version``'s); returns the new version and the evaluation that places it (what the
        previous version still runs is stopped)."""
        job = await self.get_job(job_id, namespace=namespace)
        if job.state in (JobStateType.PENDING, JobStateType.QUEUED):
            # As Bacalhau: a version that has not run yet has nothing to run again.
            raise ConflictJobState(
                f"cannot rerun job in state {job.state.wire}",
                hint="it has not run yet: wait for it, or stop it first; `bacalhau job run` "
                "submits a changed spec",
            )
        spec = None
        if version and version != job.version:
            spec = await self.get_job(job.id, version=version)
        message = f"Job rerun as version {job.version + 1}"
        if spec is not None:
            message += f" (the spec of version {version})"
        message += f": {reason}" if reason else ""
        with self.store.transaction():
            rerun = self.store.add_job_version(
                job.id,
                event=Event(message=message, topic="Submission", timestamp=now_ns()),
                spec=spec,
            )
            ev = self._new_eval(rerun, TriggeredBy.JOB_REGISTER)
            self.store.create_evaluation(ev)
        self._broker.enqueue(ev)
        return rerun, ev.id

    async def job_versions(self, job_id: str, *, namespace: str = "") -> list[Job]:
        """Every version of a job's spec, oldest first, each in the state it has now."""
        job = self.store.get_job(self.store.resolve_job_id(job_id, namespace))
        return self._in_their_states(job, self.store.job_versions(job.id))
