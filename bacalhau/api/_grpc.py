"""The public gRPC API (``proto/bacalhau/v1/api.proto``), served in front of an orchestrator.

Like the REST edge it uses only :class:`~bacalhau.orchestrator.OrchestratorAPI`, and follows
the REST semantics (paging tokens, history long-polls, error codes); errors are translated
once, in :mod:`bacalhau.api._grpc_errors`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import grpc

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api._agent import redact
from bacalhau.api._api_metrics import MetricsInterceptor
from bacalhau.api._authz import Authorizer, Resource
from bacalhau.api._content import DEFAULT_MAX_UPLOAD_BYTES, ContentStore
from bacalhau.api._grpc_auth import AuthInterceptor, authorization_header, caller
from bacalhau.api._grpc_convert import (
    job_document,
    job_from_request,
    log_chunk,
    node_document,
    node_info,
    result_json,
    to_json,
)
from bacalhau.api._grpc_data import DataServicer
from bacalhau.api._grpc_errors import abort_with
from bacalhau.api._grpc_paging import (
    MAX_ANSWER_BYTES,
    MAX_PAGE_BYTES,
    carry_executions,
    execution_page,
    fitting_diff,
    fitting_history,
    list_jobs,
    version_page,
)
from bacalhau.api._grpc_reflection import enable_reflection
from bacalhau.api._grpc_requests import add_parsing_leniently, check_request
from bacalhau.api._history import (
    HISTORY_PAGE,
    check_event_type,
    check_until,
    history_filter,
    poll_history,
    wait_for_end,
)
from bacalhau.api._jobs import ResultRewriter
from bacalhau.api._nodes import described
from bacalhau.api._server import local_address
from bacalhau.errors import (
    BadQuery,
    ConflictJobState,
    InvalidRequest,
    InvalidTransition,
    NodeNotFound,
    Unavailable,
)
from bacalhau.models import JobStateType, LogPosition, Membership
from bacalhau.orchestrator._api import JobVersions, OrchestratorAPI
from bacalhau.transport._errors import written

_S = TypeVar("_S")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

_Unary = Callable[[_S, _Req, Any], Awaitable[_Resp]]


def _translated(fn: _Unary[_S, _Req, _Resp]) -> _Unary[_S, _Req, _Resp]:
    """A unary handler that sees only requests :func:`check_request` lets through, and whose
    errors end the call with their translated status."""
    name = fn.__name__

    @functools.wraps(fn)
    async def call(self: _S, request: _Req, context: Any) -> _Resp:
        try:
            check_request(request)
            return await fn(self, request, context)
        except Exception as exc:
            await abort_with(context, exc, name)

    return call


def _wait_seconds(wait: float) -> float:
    """A request's ``wait_seconds``; negative or NaN is refused, as REST refuses ``wait``."""
    if not wait >= 0:  # (also NaN)
        raise BadQuery(
            f"wait_seconds must be >= 0, got {wait}",
            field="wait_seconds",
            hint="give wait_seconds as seconds to hold the answer for (at most 30), or 0",
        )
    return wait


#: The default ``max_job_size``: jobs take it less room for the answers that carry them
#: (see :mod:`bacalhau.api._job_size`).
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024


class JobServicer(api_pb2_grpc.JobServiceServicer):
    """JobService: submit, diff, read, follow, stop and rerun jobs (by ID, name or ID
    prefix)."""

    def __init__(
        self,
        orchestrator: OrchestratorAPI,
        closing: asyncio.Event,
        result_rewriter: ResultRewriter | None = None,
        *,
        max_job_size: int = DEFAULT_MAX_MESSAGE,
        authorizer: Authorizer | None = None,
    ) -> None:
        self._orch = orchestrator
        self._closing = closing
        self._rewrite = result_rewriter
        self._max_job_size = max_job_size
        self._authorizer = authorizer

    @_translated
    async def SubmitJob(
        self, request: api_pb2.SubmitJobRequest, context: Any
    ) -> api_pb2.SubmitJobResponse:
        wait = _wait_seconds(request.wait_seconds)  # before the submit: no job left behind
        job = job_from_request(request, max_job_size=self._max_job_size)
        result = await self._orch.submit_job(
            job,
            idempotency_token=request.idempotency_token,
            handed_over=True,
            force=request.force,
        )
        out = api_pb2.SubmitJobResponse(
            job_id=result.job_id, evaluation_id=result.evaluation_id, warnings=result.warnings
        )
        ended = await wait_for_end(
            self._orch, result.job_id, job.type, wait=wait, closing=self._closing
        )
        if ended is not None:
            out.job.CopyFrom(job_document(ended))
            if request.include_executions:
                executions = await self._orch.list_executions(
                    ended.id, versions=JobVersions(version=ended.version)
                )
                carry_executions(out, executions)
        return out

    @_translated
    async def DiffJob(
        self, request: api_pb2.DiffJobRequest, context: Any
    ) -> api_pb2.DiffJobResponse:
        job = job_from_request(request, max_job_size=self._max_job_size)
        diff = await self._orch.diff_job(job)
        text, warnings = fitting_diff(diff.diff)
        return api_pb2.DiffJobResponse(diff=text, warnings=[*diff.warnings, *warnings])

    @_translated
    async def GetJob(self, request: api_pb2.GetJobRequest, context: Any) -> api_pb2.GetJobResponse:
        job = await self._orch.get_job(
            request.job_id, namespace=request.namespace, version=request.job_version
        )
        out = api_pb2.GetJobResponse(job=job_document(job))
        shown = JobVersions(version=job.version)
        if request.include_history:
            history = await self._orch.job_history(job.id, versions=shown)
            items = fitting_history(history, MAX_ANSWER_BYTES - out.ByteSize(), at_least_one=False)
            out.history.extend(items)
            out.history_more = len(items) < len(history)
        if request.include_executions:
            executions = await self._orch.list_executions(job.id, versions=shown)
            carry_executions(out, executions)
        return out

    @_translated
    async def ListJobs(
        self, request: api_pb2.ListJobsRequest, context: Any
    ) -> api_pb2.ListJobsResponse:
        return await list_jobs(self._orch, request)

    @_translated
    async def ListExecutions(
        self, request: api_pb2.ListExecutionsRequest, context: Any
    ) -> api_pb2.ListExecutionsResponse:
        executions = await self._orch.list_executions(
            request.job_id,
            namespace=request.namespace,
            versions=JobVersions(request.job_version, request.all_job_versions),
        )
        docs, next_token = execution_page(
            executions, budget=MAX_PAGE_BYTES, token=request.next_token, limit=request.limit
        )
        return api_pb2.ListExecutionsResponse(executions=docs, next_token=next_token)

    @_translated
    async def JobHistory(
        self, request: api_pb2.JobHistoryRequest, context: Any
    ) -> api_pb2.JobHistoryResponse:
        """History after ``after_seq``; with ``wait_seconds``, held until something new
        exists (or the job ends, or the wait passes), as REST's ``wait=``; with ``until`` =
        "terminal", a batch or ops job's call is held until the job ends (REST's
        ``until=terminal``); with ``include_executions``, the answer carries the job's
        executions (REST's ``include=executions``)."""
        orch = self._orch
        versions = JobVersions(request.job_version, request.all_job_versions)
        keep = history_filter(
            event_type=check_event_type(request.event_type),
            execution_id=request.execution_id,
            node_id=request.node_id,
            since=0,
        )
        poll = await poll_history(
            orch,
            request.job_id,
            keep=keep,
            after=request.after_seq,
            limit=request.limit or HISTORY_PAGE,
            wait=_wait_seconds(request.wait_seconds),
            until_terminal=check_until(request.until),
            execution_id=request.execution_id,
            closing=self._closing,
            namespace=request.namespace,
            versions=versions,
        )
        job_id = poll.job.id
        now = poll.job if poll.done else await orch.get_job(job_id)
        out = api_pb2.JobHistoryResponse(job=job_document(now))
        items = fitting_history(poll.page, MAX_ANSWER_BYTES - out.ByteSize(), at_least_one=True)
        out.items.extend(items)
        cut = len(items) < len(poll.page)
        out.next_after_seq = items[-1].seq_num if cut else poll.next_after
        out.more = cut or poll.more or not poll.done
        if request.include_executions:
            executions = await orch.list_executions(job_id, versions=versions)
            carry_executions(out, executions)
        return out

    @_translated
    async def StopJob(
        self, request: api_pb2.StopJobRequest, context: Any
    ) -> api_pb2.StopJobResponse:
        """Stop a job; FAILED_PRECONDITION (ConflictJobState) when it is Completed or
        already Stopped. REST keeps Bacalhau's answer to the stop of a Stopped job (success,
        no evaluation); here both finished states are refused alike, as api.proto says."""
        job = await self._orch.get_job(request.job_id, namespace=request.namespace)
        if job.state == JobStateType.STOPPED:
            raise ConflictJobState(
                f"cannot stop job in state {job.state.wire}",
                hint="the job was already stopped; nothing to stop",
            )
        evaluation_id = await self._orch.stop_job(job.id, request.reason)
        return api_pb2.StopJobResponse(evaluation_id=evaluation_id)

    @_translated
    async def RerunJob(
        self, request: api_pb2.RerunJobRequest, context: Any
    ) -> api_pb2.RerunJobResponse:
        job, evaluation_id = await self._orch.rerun_job(
            request.job_id,
            request.reason,
            namespace=request.namespace,
            version=request.job_version,
        )
        return api_pb2.RerunJobResponse(
            job_id=job.id, job_version=job.version, evaluation_id=evaluation_id
        )

    @_translated
    async def ListJobVersions(
        self, request: api_pb2.ListJobVersionsRequest, context: Any
    ) -> api_pb2.ListJobVersionsResponse:
        versions = await self._orch.job_versions(request.job_id, namespace=request.namespace)
        page, token = await asyncio.to_thread(
            version_page, versions, token=request.next_token, limit=request.limit
        )
        return api_pb2.ListJobVersionsResponse(versions=page, next_token=token)

    @_translated
    async def GetResults(
        self, request: api_pb2.GetResultsRequest, context: Any
    ) -> api_pb2.GetResultsResponse:
        results = await self._orch.job_results(request.job_id, namespace=request.namespace)
        if self._rewrite is not None:
            rewrite = self._rewrite
            # Signing may read credential files: off the event loop.
            results = [await asyncio.to_thread(rewrite, r) for r in results]
        return api_pb2.GetResultsResponse(result_json=[result_json(r) for r in results])

    # Writes with context.write rather than yielding (the stubs type only the latter): a
    # write under a caller that left fails here, quietly, not in gRPC's core (see written).
    async def StreamJobLogs(  # type: ignore[override]
        self, request: api_pb2.StreamJobLogsRequest, context: Any
    ) -> None:
        try:
            check_request(request)
            chunks = await self._orch.stream_logs(
                request.job_id,
                execution_id=request.execution_id,
                follow=request.follow,
                tail=request.tail,
                namespace=request.namespace,
                version=request.job_version,
                client=await caller(context, self._authorizer),
                resume=LogPosition.parse(request.resume) if request.resume else None,
            )
        except Exception as exc:
            await abort_with(context, exc, "StreamJobLogs")
        failure: Exception | None = None
        try:
            async for chunk in chunks:
                if not await written(context, log_chunk(chunk)):
                    return  # the caller left
        except Exception as exc:
            failure = exc
        finally:
            # Closing the iterator stops the relay from the compute node.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if failure is not None:
            await abort_with(context, failure, "StreamJobLogs")


class NodeServicer(api_pb2_grpc.NodeAPIServiceServicer):
    """NodeAPIService: the cluster's nodes as the requester sees them."""

    def __init__(
        self, orchestrator: OrchestratorAPI, agent_config: Mapping[str, Any] | None = None
    ) -> None:
        self._orch = orchestrator
        self._agent_config = agent_config or {}

    @_translated
    async def ListNodes(
        self, request: api_pb2.ListNodesRequest, context: Any
    ) -> api_pb2.ListNodesResponse:
        nodes = sorted(await self._orch.list_nodes(), key=lambda n: n.info.node_id)
        return api_pb2.ListNodesResponse(nodes=[node_document(n) for n in nodes])

    @_translated
    async def GetNode(
        self, request: api_pb2.GetNodeRequest, context: Any
    ) -> api_pb2.GetNodeResponse:
        node = await self._orch.get_node(request.node_id)
        body = described(node, self._orch, self._agent_config)
        return api_pb2.GetNodeResponse(node=node_document(node, body))

    @_translated
    async def UpdateNode(
        self, request: api_pb2.UpdateNodeRequest, context: Any
    ) -> api_pb2.UpdateNodeResponse:
        action = request.action.lower()
        if action not in ("approve", "reject", "delete"):
            raise BadQuery(
                f"invalid action {request.action[:100]!r}",
                field="action",
                hint="use approve, reject or delete",
            )
        success, error = await self._orch.update_node(request.node_id, action, request.message)
        if not success:
            raise await self._refusal(request.node_id, action, error)
        return api_pb2.UpdateNodeResponse(success=True)

    async def _refusal(self, node_id: str, action: str, error: str) -> Exception:
        """Why the orchestrator refused ``action`` on ``node_id`` (its words in ``error``),
        as an error with a status: REST answers a refusal as Bacalhau does, with success
        false and the reason, but a gRPC client branches on the status."""
        try:
            node = await self._orch.get_node(node_id)
        except NodeNotFound as exc:
            return exc
        if node.info.node_id == self._orch.node_info().node_id:
            return InvalidRequest(
                error,
                hint="approve, reject or delete compute nodes; this node is the requester",
                details={"Field": "node_id"},
            )
        decided = {"approve": Membership.APPROVED, "reject": Membership.REJECTED}.get(action)
        if decided is not None and decided is node.membership:
            hint = f"the node is already {decided.value.lower()}; nothing to do"
            return InvalidTransition(error, hint=hint, component="NodeManager")
        return InvalidTransition(error, component="NodeManager")


class AgentServicer(api_pb2_grpc.AgentServiceServicer):
    """AgentService: the requester itself."""

    def __init__(
        self,
        orchestrator: OrchestratorAPI,
        agent_config: Mapping[str, Any] | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self._orch = orchestrator
        self._agent_config = agent_config or {}
        self._authorizer = authorizer

    @_translated
    async def Alive(self, request: api_pb2.AliveRequest, context: Any) -> api_pb2.AliveResponse:
        return api_pb2.AliveResponse(status="OK")

    @_translated
    async def Version(
        self, request: api_pb2.VersionRequest, context: Any
    ) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(git_version=self._orch.node_info().version)

    @_translated
    async def NodeInfo(
        self, request: api_pb2.NodeInfoRequest, context: Any
    ) -> api_pb2.NodeInfoResponse:
        return node_info(self._orch.node_info())

    @_translated
    async def Config(self, request: api_pb2.ConfigRequest, context: Any) -> api_pb2.ConfigResponse:
        return api_pb2.ConfigResponse(config_json=to_json(redact(self._agent_config)))

    @_translated
    async def WhoAmI(self, request: api_pb2.WhoAmIRequest, context: Any) -> api_pb2.WhoAmIResponse:
        if self._authorizer is None:
            return api_pb2.WhoAmIResponse(auth_required=False)
        header = authorization_header(context.invocation_metadata())
        # Checked by the interceptor already (refused there when wrong); answered from the
        # authorizer's memory of it.
        principal = await self._authorizer.check(header, Resource.IDENTIFY, True)
        answer = api_pb2.WhoAmIResponse(
            auth_required=True,
            methods=list(self._authorizer.schemes),
            authenticated=principal is not None,
        )
        if principal is not None:
            answer.user.CopyFrom(
                api_pb2.ApiIdentity(
                    name=principal.name,
                    username=principal.username,
                    alias=principal.alias,
                    method=principal.scheme,
                    capabilities=list(principal.actions),
                )
            )
        return answer


#: How often the server pings a client whose connection is quiet, and how long it waits for
#: the answer before it drops the connection.
_KEEPALIVE_MS = 60_000
_KEEPALIVE_TIMEOUT_MS = 20_000

#: The public API's services, by full name (``bacalhau.v1.JobService``, ...).
API_SERVICES = tuple(s.full_name for s in api_pb2.DESCRIPTOR.services_by_name.values())
_DATA_SERVICE = "bacalhau.v1.DataService"


class GrpcApiServer:
    """Serves the public gRPC API for ``orchestrator`` on ``host:port`` (port 0 picks a free
    one), in plaintext as the REST API is served.

    An async context manager: the port is bound on entry (:attr:`port` is then the real
    port) and closed on exit, ending long-polls and log streams in flight.
    """

    def __init__(
        self,
        orchestrator: OrchestratorAPI,
        *,
        host: str = "0.0.0.0",
        port: int = 1235,
        max_message: int = DEFAULT_MAX_MESSAGE,
        result_rewriter: ResultRewriter | None = None,
        authorizer: Authorizer | None = None,
        agent_config: Mapping[str, Any] | None = None,
        content: ContentStore | None = None,
        max_upload: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        """``authorizer``: who may call what (the node's ``API.Auth.Users``, shared with the
        REST API), None for an open API; ``agent_config``: the configuration the REST API's
        ``/api/v1/agent/config`` serves (redacted when served); ``content``: the store
        ``DataService`` serves (without one the service is not offered), taking uploads of
        at most ``max_upload`` bytes."""
        self._agent_config = dict(agent_config or {})
        self._content = content
        self._max_upload = max_upload
        self._orch = orchestrator
        self._authorizer = authorizer
        self._host = host
        self._requested_port = port
        self._max_message = max_message
        self._rewrite = result_rewriter
        self._closing = asyncio.Event()
        self._server: grpc.aio.Server | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port (valid once started)."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` clients on this machine can dial."""
        host = local_address(self._host)
        return f"{host}:{self._port}"

    async def start(self) -> None:
        options = [
            # Twice the largest job: a job somewhat too large is refused by the job check,
            # which says the limit and the field, not by gRPC's bare RESOURCE_EXHAUSTED.
            ("grpc.max_receive_message_length", 2 * self._max_message),
            ("grpc.so_reuseport", 0),  # a taken port must fail, not be shared
            # A client that vanished (no FIN: a laptop closed, a cut link) is found within
            # about 80 s, not gRPC's default of two hours: its log follow or long-poll ends,
            # and gives back its place under log_streams_max.
            ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
            ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        interceptors: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor()]
        if self._authorizer is not None:
            interceptors.append(AuthInterceptor(self._authorizer))
        server = grpc.aio.server(options=options, interceptors=interceptors)
        add_parsing_leniently(
            api_pb2_grpc.add_JobServiceServicer_to_server,
            JobServicer(
                self._orch,
                self._closing,
                self._rewrite,
                max_job_size=self._max_message,
                authorizer=self._authorizer,
            ),
            server,
        )
        add_parsing_leniently(
            api_pb2_grpc.add_NodeAPIServiceServicer_to_server,
            NodeServicer(self._orch, self._agent_config),
            server,
        )
        add_parsing_leniently(
            api_pb2_grpc.add_AgentServiceServicer_to_server,
            AgentServicer(self._orch, self._agent_config, self._authorizer),
            server,
        )
        services = [s for s in API_SERVICES if s != _DATA_SERVICE]
        if self._content is not None:
            add_parsing_leniently(
                api_pb2_grpc.add_DataServiceServicer_to_server,
                DataServicer(self._content, self._max_upload),
                server,
            )
            services.append(_DATA_SERVICE)
        enable_reflection(server, tuple(services))
        host = self._host or "0.0.0.0"
        bind = (
            f"[{host}]:{self._requested_port}" if ":" in host else f"{host}:{self._requested_port}"
        )
        try:
            port = server.add_insecure_port(bind)
        except RuntimeError:
            port = 0
        if not port:
            # gRPC says only that the bind failed, not why (mostly: the port is taken).
            raise Unavailable(f"the gRPC API cannot bind {bind}", component="APIServer")
        await server.start()
        self._server, self._port = server, port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._closing.set()
        await asyncio.sleep(0)  # let long-polls see the signal before calls are cancelled
        server, self._server = self._server, None
        await server.stop(grace=1.0)

    async def __aenter__(self) -> GrpcApiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
