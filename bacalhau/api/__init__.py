"""The REST edge: Bacalhau's v1 HTTP API (JSON), served in front of an orchestrator.

Wire-compatible with Bacalhau v1.4/v1.5 clients, including the official Python SDK. Errors
are translated once, in :mod:`bacalhau.api._errors`. Beside it, :class:`GrpcApiServer` serves
the public gRPC API (``proto/bacalhau/v1/api.proto``) over the same orchestrator Protocol.
"""

from bacalhau.api._grpc import GrpcApiServer
from bacalhau.api._server import DEFAULT_MAX_JOB_SIZE, ApiServer, build_app

__all__ = ["DEFAULT_MAX_JOB_SIZE", "ApiServer", "GrpcApiServer", "build_app"]
