"""The asynchronous client: every v1 API call the CLI and SDK users need."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from bacalhau.client import _download, _fetch
from bacalhau.client._answers import (
    LONG_RUNNING_JOB_TYPES,
    is_started,
    items_of,
    job_details,
    submitted,
)
from bacalhau.client._auth import Credentials
from bacalhau.client._cluster_calls import ClusterCalls, quote_id
from bacalhau.client._decode import history_from_dict
from bacalhau.client._logs import LogLine, resumed, stream_log_lines
from bacalhau.client._outage import DEFAULT_RECONNECT_GRACE, Outage
from bacalhau.client._session import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    RestSession,
    api_url,
    url_from_env,
)
from bacalhau.client._types import (
    DiffResponse,
    ExecutionPage,
    HistoryPage,
    JobDetails,
    JobListPage,
    RerunResponse,
    SubmitResponse,
    WaitTimedOut,
)
from bacalhau.models import (
    Execution,
    Job,
    JobHistory,
    Obj,
    SpecConfig,
)

__all__ = [
    "DEFAULT_API_HOST",
    "DEFAULT_API_PORT",
    "LONG_POLL_SECONDS",
    "LONG_RUNNING_JOB_TYPES",
    "AsyncClient",
    "RestSession",
    "api_url",
    "is_started",
    "url_from_env",
]

# The name bench/rest_edges.py reads the decoder by.
_job_details = job_details

#: Longest the server holds one history long-poll; the client asks for at most this.
LONG_POLL_SECONDS = 30.0


class AsyncClient(ClusterCalls):
    """Talks to one node's v1 REST API. Use as ``async with AsyncClient(url) as client``.

    A job is addressed by its ID, a unique prefix of it, or its name in ``namespace`` (""
    for the server's ``default``), which also applies to submitted jobs that name none.
    ``credentials`` (default: the environment's, see
    :class:`~bacalhau.client.Credentials`) go with every request; ``verify_tls`` false
    accepts any certificate of an ``https`` API, and a path checks it against that CA bundle.

    Every failure is a :class:`~bacalhau.errors.BacalhauError`: the server's errors come back
    as the same classes (by code), an unreachable node is
    :class:`~bacalhau.errors.Unavailable` with a hint naming the address flags.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        connect_timeout: float = 10.0,
        namespace: str = "",
        credentials: Credentials | None = None,
        verify_tls: bool | str = True,
    ) -> None:
        super().__init__(
            base_url,
            connect_timeout=connect_timeout,
            credentials=credentials,
            verify_tls=verify_tls,
        )
        self.namespace = namespace

    def _in_namespace(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``params`` with the client's namespace, which job names are looked up in."""
        return {**(params or {}), "namespace": self.namespace}

    # -- jobs -------------------------------------------------------------------------------

    async def submit(
        self,
        job: Job | Mapping[str, Any],
        *,
        idempotency_token: str = "",
        force: bool = False,
    ) -> SubmitResponse:
        """Submit a job (a :class:`Job` or its wire dict). A job named as an existing job of
        its namespace updates that job (a new version); with the same spec that is refused
        (:class:`~bacalhau.errors.JobSpecUnchanged`) unless ``force``."""
        return submitted(await self._submit(job, idempotency_token=idempotency_token, force=force))

    async def submit_and_wait(
        self,
        job: Job | Mapping[str, Any],
        *,
        timeout: float = 600.0,
        idempotency_token: str = "",
        force: bool = False,
    ) -> tuple[SubmitResponse, JobDetails]:
        """Submit a job (as :meth:`submit`) and wait for it as :meth:`wait_for_job` does;
        returns the submit's answer and the job with its executions.

        One request when the server can (our extension: the submit is held until a batch
        or ops job ends, and answers with the finished job); otherwise, and for a job still
        running when that wait ends, :meth:`wait_for_job` goes on from there. Raises
        :class:`WaitTimedOut` after ``timeout`` seconds (the job itself goes on).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = await self._submit(
            job,
            idempotency_token=idempotency_token,
            force=force,
            wait=max(0.0, min(timeout, LONG_POLL_SECONDS)),
        )
        answer = submitted(data)
        found = data.get("Details") if isinstance(data, dict) else None
        if isinstance(found, dict):
            details = job_details(found)
            if details.job.state.is_terminal():
                return answer, details
        remaining = max(0.0, deadline - loop.time())
        return answer, await self.wait_for_job(answer.job_id, timeout=remaining)

    async def _submit(
        self,
        job: Job | Mapping[str, Any],
        *,
        idempotency_token: str,
        force: bool = False,
        wait: float = 0.0,
    ) -> Any:
        """One submit request (its decoded answer); with ``wait``, held until the job ends
        (our extension), the answer then carrying the job with its executions."""
        body = self._job_body(job)
        if idempotency_token:
            body["idempotencyToken"] = idempotency_token
        if force:
            body["Force"] = True
        params = {"wait": f"{wait:.3f}", "include": "executions"} if wait else None
        return await self._http.request(
            "PUT", "/api/v1/orchestrator/jobs", body=body, params=params, timeout=wait + 60.0
        )

    def _job_body(self, job: Job | Mapping[str, Any]) -> dict[str, Any]:
        """``{"Job": ...}``, with the client's namespace for a job that names none."""
        body: dict[str, Any] = {"Job": job.to_dict() if isinstance(job, Job) else dict(job)}
        if self.namespace:
            body["namespace"] = self.namespace
        return body

    async def diff_job(self, job: Job | Mapping[str, Any]) -> DiffResponse:
        """What submitting ``job`` would change in the existing job of its name (Bacalhau
        v1.8's ``PUT /jobs/diff``): the diff of the job's YAML, "" when nothing would change.
        Raises :class:`~bacalhau.errors.NotFound` when no job has the name."""
        data = await self._http.request(
            "PUT", "/api/v1/orchestrator/jobs/diff", body=self._job_body(job)
        )
        o = Obj(data, "")
        return DiffResponse(diff=o.get_str("Diff"), warnings=o.str_list("Warnings"))

    async def get_job_raw(
        self, job_id: str, *, history: bool = False, executions: bool = False, version: int = 0
    ) -> dict[str, Any]:
        include = ",".join(
            name for name, wanted in (("history", history), ("executions", executions)) if wanted
        )
        data = await self._http.request(
            "GET",
            f"/api/v1/orchestrator/jobs/{quote_id(job_id)}",
            params=self._in_namespace({"include": include, "job_version": version or None}),
        )
        return data if isinstance(data, dict) else {}

    async def get_job(
        self, job_id: str, *, history: bool = False, executions: bool = False, version: int = 0
    ) -> JobDetails:
        """A job by ID, name or unique ID prefix, optionally with its history and
        executions: its latest version, or ``version`` (versions count from 1)."""
        raw = await self.get_job_raw(
            job_id, history=history, executions=executions, version=version
        )
        return job_details(raw)

    async def list_jobs(
        self,
        *,
        namespace: str = "",
        labels: str = "",
        limit: int = 0,
        next_token: str = "",
        order_by: str = "",
        reverse: bool = False,
    ) -> JobListPage:
        data = await self._http.request(
            "GET",
            "/api/v1/orchestrator/jobs",
            params={
                "namespace": namespace,
                "labels": labels,
                "limit": limit or None,
                "next_token": next_token,
                "order_by": order_by,
                "reverse": reverse or None,
            },
        )
        return JobListPage(
            items=[Job.from_dict(j, path="Job") for j in items_of(data)],
            next_token=Obj(data, "").get_str("NextToken"),
        )

    async def executions(
        self,
        job_id: str,
        *,
        order_by: str = "",
        reverse: bool = False,
        limit: int = 0,
        version: int = 0,
        all_versions: bool = False,
    ) -> list[Execution]:
        """The executions of the job's latest version, of ``version``, or (``all_versions``)
        of every version; the first ``limit`` of them (0: all)."""
        page = await self.execution_page(
            job_id,
            order_by=order_by,
            reverse=reverse,
            limit=limit,
            version=version,
            all_versions=all_versions,
        )
        return page.items

    async def execution_page(
        self,
        job_id: str,
        *,
        order_by: str = "",
        reverse: bool = False,
        limit: int = 0,
        next_token: str = "",
        version: int = 0,
        all_versions: bool = False,
    ) -> ExecutionPage:
        """One page of the job's executions (as :meth:`executions`): pass the answer's
        ``next_token`` for the next ("" on the last; a server without paging, as Bacalhau's,
        always answers ""). A token carries the order and size it was made with."""
        data = await self._http.request(
            "GET",
            f"/api/v1/orchestrator/jobs/{quote_id(job_id)}/executions",
            params=self._in_namespace(
                {
                    "order_by": order_by,
                    "reverse": reverse or None,
                    "limit": limit or None,
                    "next_token": next_token or None,
                    "job_version": version or None,
                    "all_job_versions": all_versions or None,
                }
            ),
        )
        return ExecutionPage(
            items=[Execution.from_dict(e) for e in items_of(data)],
            next_token=Obj(data, "").get_str("NextToken"),
        )

    async def history(
        self,
        job_id: str,
        *,
        event_type: str = "all",
        execution_id: str = "",
        node_id: str = "",
        since: int = 0,
        limit: int = 0,
        next_token: str = "",
        wait: float = 0.0,
        version: int = 0,
        all_versions: bool = False,
    ) -> HistoryPage:
        """One page of history: of the job's latest version, of ``version``, or
        (``all_versions``) of every version. With ``wait`` > 0 the server holds the request
        until there is something new (or ``wait`` seconds pass): pass the previous
        ``next_token`` to follow a job as it runs."""
        page, _, _, _ = await self._history(
            job_id,
            event_type=event_type,
            execution_id=execution_id,
            node_id=node_id,
            since=since,
            limit=limit,
            next_token=next_token,
            wait=wait,
            version=version,
            all_versions=all_versions,
        )
        return page

    async def _history(
        self,
        job_id: str,
        *,
        event_type: str = "all",
        execution_id: str = "",
        node_id: str = "",
        since: int = 0,
        limit: int = 0,
        next_token: str = "",
        wait: float = 0.0,
        until_terminal: bool = False,
        details: bool = False,
        decode: bool = True,
        version: int = 0,
        all_versions: bool = False,
    ) -> tuple[HistoryPage, str, JobDetails | None, int]:
        """One page of history, the job's type as the answer gives it ("" from a server
        that does not say), with ``details`` the job with its executions when the answer is
        the last of a finished job and carries them (our extension; None otherwise), and how
        many items the page holds. ``until_terminal`` asks the server to hold a batch or ops
        job's request until the job ends (our extension; other servers answer at the first
        change, which the callers' loops handle the same way). Without ``decode`` the page's
        items are left out (a caller that only waits does not read them)."""
        wait = max(0.0, min(wait, LONG_POLL_SECONDS))
        data = await self._http.request(
            "GET",
            f"/api/v1/orchestrator/jobs/{quote_id(job_id)}/history",
            params={
                "namespace": self.namespace,
                "event_type": event_type,
                "execution_id": execution_id,
                "node_id": node_id,
                "since": since or None,
                "limit": limit or None,
                "next_token": next_token,
                "wait": f"{wait:.3f}" if wait else None,
                "until": "terminal" if until_terminal and wait else None,
                "include": "executions" if details else None,
                "job_version": version or None,
                "all_job_versions": all_versions or None,
            },
            timeout=wait + 60.0,
        )
        items = items_of(data)
        page = HistoryPage(
            items=[history_from_dict(h) for h in items] if decode else [],
            next_token=Obj(data, "").get_str("NextToken"),
        )
        job = data.get("Job") if isinstance(data, dict) else None
        kind = job.get("Type") if isinstance(job, dict) else None
        found = data.get("Details") if details and isinstance(data, dict) else None
        return (
            page,
            kind if isinstance(kind, str) else "",
            job_details(found) if isinstance(found, dict) and not page.next_token else None,
            len(items),
        )

    async def stop_job(self, job_id: str, reason: str = "") -> str:
        """Stop a job; returns the evaluation ID ("" when there was nothing to do)."""
        data = await self._http.request(
            "DELETE",
            f"/api/v1/orchestrator/jobs/{quote_id(job_id)}",
            params=self._in_namespace(),
            body={"reason": reason},
        )
        return Obj(data, "").get_str("EvaluationID")

    async def rerun_job(self, job_id: str, reason: str = "", *, version: int = 0) -> RerunResponse:
        """Run a job again as a new version of the same spec (Bacalhau v1.8's rerun): the
        latest version's spec, or ``version``'s."""
        body: dict[str, Any] = {"reason": reason} if reason else {}
        if version:
            body["JobVersion"] = version
        data = await self._http.request(
            "PUT",
            f"/api/v1/orchestrator/jobs/{quote_id(job_id)}/rerun",
            params=self._in_namespace(),
            body=body,
        )
        o = Obj(data, "")
        return RerunResponse(
            job_id=o.get_str("JobID"),
            job_version=o.get_int("JobVersion"),
            evaluation_id=o.get_str("EvaluationID"),
            warnings=o.str_list("Warnings"),
        )

    async def job_versions(self, job_id: str) -> list[Job]:
        """Every version of a job's spec, oldest first."""
        data = await self._http.request(
            "GET",
            f"/api/v1/orchestrator/jobs/{quote_id(job_id)}/versions",
            params=self._in_namespace(),
        )
        return [Job.from_dict(j, path=f"Items[{i}]") for i, j in enumerate(items_of(data))]

    def logs(
        self,
        job_id: str,
        *,
        execution_id: str = "",
        follow: bool = False,
        tail: int = 0,
        version: int = 0,
        resume: str = "",
        reconnect_grace: float = DEFAULT_RECONNECT_GRACE,
    ) -> AsyncIterator[LogLine]:
        """The output of the job's latest execution (of its latest version, or of
        ``version``; or ``execution_id``) line by line: what was written so far (its last
        ``tail`` lines per stream when ``tail`` > 0), then, with ``follow``, new lines until
        the execution ends. An unknown job raises at once.

        Each line carries the position after it (:attr:`LogLine.resume`); given back as
        ``resume``, the output goes on from there. A stream lost to a requester restart is
        so resumed by itself, tried again for up to ``reconnect_grace`` seconds."""

        def opened(position: str) -> AsyncIterator[LogLine]:
            return stream_log_lines(
                self._http,
                job_id,
                execution_id=execution_id,
                follow=follow,
                tail=tail,
                namespace=self.namespace,
                version=version,
                resume=position or resume,
            )

        return resumed(opened, job_id, grace=reconnect_grace)

    async def results(self, job_id: str) -> list[SpecConfig]:
        data = await self._http.request(
            "GET",
            f"/api/v1/orchestrator/jobs/{quote_id(job_id)}/results",
            params=self._in_namespace(),
        )
        return [SpecConfig.from_obj(Obj(r, f"Items[{i}]")) for i, r in enumerate(items_of(data))]

    async def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        on_event: Callable[[JobHistory], None] | None = None,
        reconnect_grace: float = DEFAULT_RECONNECT_GRACE,
    ) -> JobDetails:
        """Follow a job until it is terminal and return it with its executions.

        A daemon or service job runs until stopped: for those the wait ends once the job
        runs, with its executions started (as Bacalhau's ``--wait`` does). Uses the history
        long-poll, so a change is seen as soon as it happens. Raises :class:`WaitTimedOut`
        after ``timeout`` seconds (the job itself goes on). An API that stops answering (a
        requester restarting) is tried again for up to ``reconnect_grace`` seconds, with a
        warning logged; then :class:`~bacalhau.errors.Unavailable` names the job.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        long_running: bool | None = None
        token = ""
        backoff = 0.0
        outage = Outage(job_id, reconnect_grace)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimedOut(f"job {job_id} is still running after {timeout:g}s")
            asked = loop.time()
            # Nobody watches the events go by: the server may hold the request until the job
            # ends, one request instead of one per change.
            page, kind, finished, count = await outage.ride(
                functools.partial(
                    self._history,
                    job_id,
                    next_token=token,
                    limit=100,
                    until_terminal=on_event is None,
                    details=True,
                    decode=on_event is not None,
                ),
                deadline,
            )
            if long_running is None:
                # The answer names the job's type; a server that does not is asked for it.
                kind = kind or (await self.get_job(job_id)).job.type
                long_running = kind in LONG_RUNNING_JOB_TYPES
            if on_event is not None:
                for item in page.items:
                    on_event(item)
            if not page.next_token:
                if finished is not None:
                    # The last answer carried the finished job and its executions.
                    return finished
                break
            if long_running and count:
                details = await self.get_job(job_id, executions=True)
                if is_started(details):
                    return details
            token = page.next_token
            if count or loop.time() - asked > 0.1:
                backoff = 0.0
            else:
                # An empty answer that came back at once: a server without the long-poll
                # extension (upstream Bacalhau). Poll politely instead of spinning.
                backoff = min(max(backoff * 2, 0.1), 1.0)
                await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
        return await self.get_job(job_id, executions=True)

    async def download_results(
        self,
        job_id: str,
        output_dir: str | Path | None = None,
        *,
        raw: bool = False,
        timeout: float = 300.0,
    ) -> _download.DownloadedResults:
        """Download the job's results into ``output_dir`` (default ``./job-<short id>``).

        Raises :class:`~bacalhau.client.NoResults` (creating no folder) when the job has
        published nothing; archive entries that may not be created here (links leaving the
        result) are left out and listed in the answer's ``skipped``.
        """
        results = await self.results(job_id)
        job = (await self.get_job(job_id)).job
        return await _fetch.download_results(
            _fetch.RestFetcher(self._http),
            job_id,
            job,
            results,
            output_dir,
            raw=raw,
            timeout=timeout,
        )
