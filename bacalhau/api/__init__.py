"""The REST edge: Bacalhau's v1 HTTP API (JSON), served in front of an orchestrator.

Wire-compatible with Bacalhau v1.4/v1.5 clients, including the official Python SDK. Errors
are translated once, in :mod:`bacalhau.api._errors`. Beside it, :class:`GrpcApiServer` serves
the public gRPC API (``proto/bacalhau/v1/api.proto``) over the same orchestrator Protocol.
Given an :class:`Authorizer` (the node's ``API.Auth.Users``), both ask for credentials and
check each user's capabilities against the route or method called.
"""

from bacalhau.api._authz import Authorizer, Principal, Resource, has_capability
from bacalhau.api._grpc import GrpcApiServer
from bacalhau.api._metrics import MetricsServer
from bacalhau.api._server import DEFAULT_MAX_JOB_SIZE, ApiServer, build_app

__all__ = [
    "DEFAULT_MAX_JOB_SIZE",
    "ApiServer",
    "Authorizer",
    "GrpcApiServer",
    "MetricsServer",
    "Principal",
    "Resource",
    "build_app",
    "has_capability",
]
