"""The Python SDK for a node's v1 REST API: an asyncio core and a blocking facade.

    from bacalhau.client import Client
    with Client("http://127.0.0.1:1234") as client:
        job_id = client.submit(job).job_id
        details = client.wait_for_job(job_id)

The client never imports server code; it speaks the same JSON as Bacalhau's own clients.
:class:`AsyncGrpcClient` reaches a requester's public gRPC API instead and answers with the
same models (imported on first use: plain REST users do not load gRPC).
"""

from typing import TYPE_CHECKING, Any

from bacalhau.client._answers import LONG_RUNNING_JOB_TYPES
from bacalhau.client._async import AsyncClient
from bacalhau.client._auth import (
    API_KEY_ENV,
    PASSWORD_ENV,
    USERNAME_ENV,
    AuthStatus,
    Credentials,
    Identity,
)
from bacalhau.client._data import AsyncDataClient, DataClient, DataEntry, content_cid
from bacalhau.client._download import (
    APPENDED_FILES,
    DownloadedResults,
    NoResults,
    SkippedEntry,
    SkipReason,
    merge_results,
)
from bacalhau.client._logs import LogLine
from bacalhau.client._session import DEFAULT_API_HOST, DEFAULT_API_PORT, api_url, url_from_env
from bacalhau.client._sync import Client
from bacalhau.client._transport import CLIENT_WIRE_VERSION
from bacalhau.client._types import (
    DiffResponse,
    ExecutionPage,
    HistoryPage,
    JobDetails,
    JobListPage,
    NodePage,
    RerunResponse,
    ResultOverwritten,
    ResultsConflict,
    SubmitResponse,
    UnsupportedResult,
    VersionInfo,
    WaitTimedOut,
)

if TYPE_CHECKING:
    from bacalhau.client._grpc import (
        DEFAULT_GRPC_API_PORT,
        AsyncGrpcClient,
        GrpcHistoryPage,
        grpc_target_from_env,
    )
    from bacalhau.client._grpc_data import AsyncGrpcDataClient

__all__ = [
    "API_KEY_ENV",
    "APPENDED_FILES",
    "CLIENT_WIRE_VERSION",
    "DEFAULT_API_HOST",
    "DEFAULT_API_PORT",
    "DEFAULT_GRPC_API_PORT",
    "LONG_RUNNING_JOB_TYPES",
    "PASSWORD_ENV",
    "USERNAME_ENV",
    "AsyncClient",
    "AsyncDataClient",
    "AsyncGrpcClient",
    "AsyncGrpcDataClient",
    "AuthStatus",
    "Client",
    "Credentials",
    "DataClient",
    "DataEntry",
    "DiffResponse",
    "DownloadedResults",
    "ExecutionPage",
    "GrpcHistoryPage",
    "HistoryPage",
    "Identity",
    "JobDetails",
    "JobListPage",
    "LogLine",
    "NoResults",
    "NodePage",
    "RerunResponse",
    "ResultOverwritten",
    "ResultsConflict",
    "SkipReason",
    "SkippedEntry",
    "SubmitResponse",
    "UnsupportedResult",
    "VersionInfo",
    "WaitTimedOut",
    "api_url",
    "content_cid",
    "grpc_target_from_env",
    "merge_results",
    "url_from_env",
]

_GRPC_NAMES = frozenset(
    {"DEFAULT_GRPC_API_PORT", "AsyncGrpcClient", "GrpcHistoryPage", "grpc_target_from_env"}
)


def __getattr__(name: str) -> Any:
    # The gRPC client's names load grpc and the generated code only when first asked for.
    if name in _GRPC_NAMES:
        from bacalhau.client import _grpc

        return getattr(_grpc, name)
    if name == "AsyncGrpcDataClient":
        from bacalhau.client._grpc_data import AsyncGrpcDataClient

        return AsyncGrpcDataClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
