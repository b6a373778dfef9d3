"""Authentication on the public gRPC API: a server interceptor asking the REST edge's
:class:`~bacalhau.api._authz.Authorizer`, with the credentials in the ``authorization``
metadata key (``Basic ...`` or ``Bearer ...``, as the HTTP header).

A call is refused before its handler runs: UNAUTHENTICATED (credentials missing or wrong) or
PERMISSION_DENIED (the user lacks the capability), with the stable code (``Unauthorized``,
``Forbidden``), hint and reason in the trailing metadata as every error of this API. Each
method reads or writes the resource of its service, as the REST route it mirrors does: the
job service jobs, the node service nodes, the agent service the agent (its ``Alive`` and
``Version`` are open, as REST's are; so is server reflection, which describes the public
``.proto`` only). A method not listed as reading writes. Installed only when the node has
users: an open API runs no authentication (only the metrics interceptor).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from bacalhau.api._authz import Authorizer, Resource
from bacalhau.api._grpc_errors import capped, error_metadata
from bacalhau.errors import BacalhauError
from bacalhau.transport._errors import status_for

__all__ = ["AuthInterceptor", "caller", "requirement"]

log = logging.getLogger(__name__)

_SERVICES = {
    "bacalhau.v1.JobService": Resource.JOB,
    # As REST's /api/v1/data: content jobs read and results they published.
    "bacalhau.v1.DataService": Resource.JOB,
    "bacalhau.v1.NodeAPIService": Resource.NODE,
    "bacalhau.v1.AgentService": Resource.AGENT,
}
_READS = frozenset(
    {
        "/bacalhau.v1.JobService/GetJob",
        "/bacalhau.v1.JobService/ListJobs",
        "/bacalhau.v1.JobService/ListExecutions",
        "/bacalhau.v1.JobService/JobHistory",
        "/bacalhau.v1.JobService/ListJobVersions",
        "/bacalhau.v1.JobService/GetResults",
        "/bacalhau.v1.JobService/StreamJobLogs",
        "/bacalhau.v1.DataService/GetData",
        "/bacalhau.v1.DataService/ListData",
        "/bacalhau.v1.NodeAPIService/ListNodes",
        "/bacalhau.v1.NodeAPIService/GetNode",
        "/bacalhau.v1.AgentService/NodeInfo",
        "/bacalhau.v1.AgentService/Config",
    }
)
#: Open, but credentials sent are checked (REST's /api/v1/agent/whoami).
WHO_AM_I = "/bacalhau.v1.AgentService/WhoAmI"
_OPEN = frozenset(
    {
        "/bacalhau.v1.AgentService/Alive",
        "/bacalhau.v1.AgentService/Version",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
)


def requirement(method: str) -> tuple[Resource, bool]:
    """What the method ``/package.Service/Method`` reaches, and whether it only reads. A
    method of none of the API's services needs a known user (it is then unimplemented)."""
    if method in _OPEN:
        return Resource.OPEN, True
    if method == WHO_AM_I:
        return Resource.IDENTIFY, True
    service = method.lstrip("/").partition("/")[0]
    resource = _SERVICES.get(service)
    if resource is None:
        return Resource.ANY_USER, True
    return resource, method in _READS


async def caller(context: Any, authorizer: Authorizer | None) -> str:
    """Who makes the call, for caps per client: the user, when the API has users and the
    call's credentials name one, else the peer's address (without its port: one machine's
    connections are one client)."""
    if authorizer is not None:
        header = authorization_header(context.invocation_metadata())
        # Checked by the interceptor already; answered from the authorizer's memory of it.
        principal = await authorizer.check(header, Resource.IDENTIFY, True)
        if principal is not None:
            return f"user {principal.name!r}"
    peer = str(context.peer() or "")
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        address = address.rpartition(":")[0]  # ipv6 peers are [addr]:port
    return f"client {address or peer or 'unknown'}"


def authorization_header(metadata: Any) -> str | None:
    """The ``authorization`` metadata of a call (as the HTTP header), if sent."""
    for key, value in metadata or ():
        if key == "authorization":
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Lets a call through only as :func:`requirement` and the authorizer allow."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        resource, read = requirement(details.method)
        if resource is not Resource.OPEN:
            try:
                await self._authorizer.check(
                    authorization_header(details.invocation_metadata), resource, read
                )
            except BacalhauError as err:
                log.info(
                    "gRPC API call refused (%s): %s: %s",
                    err.code,
                    details.method,
                    err.details.get("reason", err.message),
                )
                return _refusing(await continuation(details), err)
        return await continuation(details)


def _refusing(handler: Any, err: BacalhauError) -> Any:
    """A handler of ``handler``'s kind that ends the call with ``err``."""
    if handler is None:
        return None

    async def refuse(request: Any, context: Any) -> None:
        await context.abort(status_for(err), capped(err.message), error_metadata(err))

    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for attr, make in kinds:
        if getattr(handler, attr) is not None:
            return make(
                refuse,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return None
