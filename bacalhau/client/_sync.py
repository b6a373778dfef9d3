"""The synchronous facade over :class:`AsyncClient` (what the CLI uses).

It owns a private event loop, so one client reuses one connection pool across calls; it works
where a loop already runs too (a notebook: see :class:`LoopRunner`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from bacalhau.client._async import AsyncClient
from bacalhau.client._auth import AuthStatus, Credentials
from bacalhau.client._download import DownloadedResults
from bacalhau.client._logs import LogLine
from bacalhau.client._loop import LoopRunner
from bacalhau.client._outage import DEFAULT_RECONNECT_GRACE
from bacalhau.client._types import (
    DiffResponse,
    ExecutionPage,
    HistoryPage,
    JobDetails,
    JobListPage,
    NodePage,
    RerunResponse,
    SubmitResponse,
    VersionInfo,
)
from bacalhau.models import Execution, Job, JobHistory, NodeState, SpecConfig

T = TypeVar("T")


class Client:
    """Blocking client for one node's v1 API; see :class:`AsyncClient` for the semantics
    (and the arguments: ``credentials`` default to the environment's)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        connect_timeout: float = 10.0,
        namespace: str = "",
        credentials: Credentials | None = None,
        verify_tls: bool | str = True,
    ) -> None:
        """``namespace``: where job names are looked up ("": the server's ``default``);
        ``credentials`` and ``verify_tls`` as :class:`~bacalhau.client.AsyncClient` takes
        them."""
        self._runner = LoopRunner()
        self._client = AsyncClient(
            base_url,
            connect_timeout=connect_timeout,
            namespace=namespace,
            credentials=credentials,
            verify_tls=verify_tls,
        )

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def close(self) -> None:
        self._runner.close(self._client.close())

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def namespace(self) -> str:
        return self._client.namespace

    def submit(
        self, job: Job | Mapping[str, Any], *, idempotency_token: str = "", force: bool = False
    ) -> SubmitResponse:
        return self._run(self._client.submit(job, idempotency_token=idempotency_token, force=force))

    def submit_and_wait(
        self,
        job: Job | Mapping[str, Any],
        *,
        timeout: float = 600.0,
        idempotency_token: str = "",
        force: bool = False,
    ) -> tuple[SubmitResponse, JobDetails]:
        return self._run(
            self._client.submit_and_wait(
                job, timeout=timeout, idempotency_token=idempotency_token, force=force
            )
        )

    def diff_job(self, job: Job | Mapping[str, Any]) -> DiffResponse:
        return self._run(self._client.diff_job(job))

    def get_job(
        self, job_id: str, *, history: bool = False, executions: bool = False, version: int = 0
    ) -> JobDetails:
        return self._run(
            self._client.get_job(job_id, history=history, executions=executions, version=version)
        )

    def get_job_raw(
        self, job_id: str, *, history: bool = False, executions: bool = False, version: int = 0
    ) -> dict[str, Any]:
        return self._run(
            self._client.get_job_raw(
                job_id, history=history, executions=executions, version=version
            )
        )

    def list_jobs(
        self,
        *,
        namespace: str = "",
        labels: str = "",
        limit: int = 0,
        next_token: str = "",
        order_by: str = "",
        reverse: bool = False,
    ) -> JobListPage:
        return self._run(
            self._client.list_jobs(
                namespace=namespace,
                labels=labels,
                limit=limit,
                next_token=next_token,
                order_by=order_by,
                reverse=reverse,
            )
        )

    def executions(
        self,
        job_id: str,
        *,
        order_by: str = "",
        reverse: bool = False,
        limit: int = 0,
        version: int = 0,
        all_versions: bool = False,
    ) -> list[Execution]:
        return self._run(
            self._client.executions(
                job_id,
                order_by=order_by,
                reverse=reverse,
                limit=limit,
                version=version,
                all_versions=all_versions,
            )
        )

    def execution_page(
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
        return self._run(
            self._client.execution_page(
                job_id,
                order_by=order_by,
                reverse=reverse,
                limit=limit,
                next_token=next_token,
                version=version,
                all_versions=all_versions,
            )
        )

    def history(
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
        return self._run(
            self._client.history(
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
        )

    def stop_job(self, job_id: str, reason: str = "") -> str:
        return self._run(self._client.stop_job(job_id, reason))

    def rerun_job(self, job_id: str, reason: str = "", *, version: int = 0) -> RerunResponse:
        return self._run(self._client.rerun_job(job_id, reason, version=version))

    def job_versions(self, job_id: str) -> list[Job]:
        return self._run(self._client.job_versions(job_id))

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
    ) -> Iterator[LogLine]:
        """Lines of the job's output as they arrive (see :meth:`AsyncClient.logs`)."""
        lines = self._client.logs(
            job_id,
            execution_id=execution_id,
            follow=follow,
            tail=tail,
            version=version,
            resume=resume,
            reconnect_grace=reconnect_grace,
        )
        try:
            while True:
                try:
                    # Made by the runner: this loop turns once per line, so a Ctrl+C
                    # often lands here.
                    yield self._runner.call(_next, lines)
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(lines, "aclose", None)
            if aclose is not None and not self._runner.closed:
                self._run(aclose())

    def results(self, job_id: str) -> list[SpecConfig]:
        return self._run(self._client.results(job_id))

    def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        on_event: Callable[[JobHistory], None] | None = None,
        reconnect_grace: float = DEFAULT_RECONNECT_GRACE,
    ) -> JobDetails:
        return self._run(
            self._client.wait_for_job(
                job_id, timeout=timeout, on_event=on_event, reconnect_grace=reconnect_grace
            )
        )

    def download_results(
        self,
        job_id: str,
        output_dir: str | Path | None = None,
        *,
        raw: bool = False,
        timeout: float = 300.0,
    ) -> DownloadedResults:
        return self._run(
            self._client.download_results(job_id, output_dir, raw=raw, timeout=timeout)
        )

    def list_nodes(
        self,
        *,
        labels: str = "",
        order_by: str = "",
        reverse: bool = False,
        limit: int = 0,
        filter_approval: str = "",
        filter_status: str = "",
    ) -> list[NodeState]:
        return self._run(
            self._client.list_nodes(
                labels=labels,
                order_by=order_by,
                reverse=reverse,
                limit=limit,
                filter_approval=filter_approval,
                filter_status=filter_status,
            )
        )

    def node_page(
        self,
        *,
        labels: str = "",
        order_by: str = "",
        reverse: bool = False,
        limit: int = 0,
        next_token: str = "",
        filter_approval: str = "",
        filter_status: str = "",
    ) -> NodePage:
        return self._run(
            self._client.node_page(
                labels=labels,
                order_by=order_by,
                reverse=reverse,
                limit=limit,
                next_token=next_token,
                filter_approval=filter_approval,
                filter_status=filter_status,
            )
        )

    def get_node(self, node_id: str) -> NodeState:
        return self._run(self._client.get_node(node_id))

    def describe_node(self, node_id: str) -> dict[str, Any]:
        return self._run(self._client.describe_node(node_id))

    def update_node(self, node_id: str, action: str, message: str = "") -> tuple[bool, str]:
        return self._run(self._client.update_node(node_id, action, message))

    def agent_alive(self) -> bool:
        return self._run(self._client.agent_alive())

    def agent_version(self) -> VersionInfo:
        return self._run(self._client.agent_version())

    def agent_node(self) -> NodeState:
        return self._run(self._client.agent_node())

    def agent_config(self) -> dict[str, Any]:
        """The node's configuration, secrets redacted (Bacalhau's ``agent config``)."""
        return self._run(self._client.agent_config())

    def auth_status(self) -> AuthStatus:
        """See :meth:`AsyncClient.auth_status`."""
        return self._run(self._client.auth_status())

    def auth_methods(self) -> dict[str, str]:
        """See :meth:`AsyncClient.auth_methods`."""
        return self._run(self._client.auth_methods())


async def _next(lines: AsyncIterator[LogLine]) -> LogLine:
    return await anext(lines)
