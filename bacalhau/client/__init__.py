"""The Python SDK for a node's v1 REST API: an asyncio core and a blocking facade.

    from bacalhau.client import Client
    with Client("http://127.0.0.1:1234") as client:
        job_id = client.submit(job).job_id
        details = client.wait_for_job(job_id)

The client never imports server code; it speaks the same JSON as Bacalhau's own clients.
"""

from bacalhau.client._async import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    LONG_RUNNING_JOB_TYPES,
    AsyncClient,
    api_url,
    url_from_env,
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
from bacalhau.client._sync import Client
from bacalhau.client._transport import CLIENT_WIRE_VERSION
from bacalhau.client._types import (
    HistoryPage,
    JobDetails,
    JobListPage,
    RerunResponse,
    ResultsConflict,
    SubmitResponse,
    UnsupportedResult,
    VersionInfo,
    WaitTimedOut,
)

__all__ = [
    "APPENDED_FILES",
    "CLIENT_WIRE_VERSION",
    "DEFAULT_API_HOST",
    "DEFAULT_API_PORT",
    "LONG_RUNNING_JOB_TYPES",
    "AsyncClient",
    "AsyncDataClient",
    "Client",
    "DataClient",
    "DataEntry",
    "DownloadedResults",
    "HistoryPage",
    "JobDetails",
    "JobListPage",
    "LogLine",
    "NoResults",
    "RerunResponse",
    "ResultsConflict",
    "SkipReason",
    "SkippedEntry",
    "SubmitResponse",
    "UnsupportedResult",
    "VersionInfo",
    "WaitTimedOut",
    "api_url",
    "content_cid",
    "merge_results",
    "url_from_env",
]
