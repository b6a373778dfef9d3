"""What the client returns: small typed views of the API's responses."""

from __future__ import annotations

from dataclasses import dataclass, field

from bacalhau.errors import BacalhauError
from bacalhau.models import Execution, Job, JobHistory, NodeState


@dataclass(slots=True)
class SubmitResponse:
    job_id: str
    evaluation_id: str
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DiffResponse:
    """``PUT /jobs/diff``: what submitting a job would change in the job of its name."""

    #: A unified diff of the job's YAML, from the stored version to the job as it would be
    #: stored; "" when submitting it would change nothing.
    diff: str
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RerunResponse:
    """``PUT /jobs/{id}/rerun``: the job's new version and the evaluation placing it."""

    job_id: str
    job_version: int
    evaluation_id: str
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class JobDetails:
    """``GET /jobs/{id}``: the job, and its history and executions when asked for."""

    job: Job
    history: list[JobHistory] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)


@dataclass(slots=True)
class JobListPage:
    items: list[Job]
    next_token: str = ""


@dataclass(slots=True)
class ExecutionPage:
    """A page of a job's executions; ``next_token`` (empty on the last page) asks for the
    next."""

    items: list[Execution]
    next_token: str = ""


@dataclass(slots=True)
class NodePage:
    """A page of the node list; ``next_token`` (empty on the last page) asks for the next."""

    items: list[NodeState]
    next_token: str = ""


@dataclass(slots=True)
class HistoryPage:
    """History items after the token; an empty ``next_token`` means the job is finished and
    nothing more will come."""

    items: list[JobHistory]
    next_token: str = ""


@dataclass(slots=True)
class VersionInfo:
    """Bacalhau's BuildVersionInfo."""

    git_version: str = ""
    git_commit: str = ""
    build_date: str = ""
    goos: str = ""
    goarch: str = ""
    major: str = ""
    minor: str = ""


class WaitTimedOut(BacalhauError):
    """The client stopped waiting for a job that is still running (the job goes on)."""

    code = "TimeOut"
    default_component = "Client"
    retryable = True
    default_hint = (
        "the job keeps running: follow it with `bacalhau job describe <id>`, "
        "or wait longer with --wait-timeout-secs"
    )


class ResultsConflict(BacalhauError):
    """Several results hold the same file, so they cannot be merged into one folder."""

    code = "ResultsConflict"
    http_status = 409
    default_component = "Client"
    default_hint = "download with --raw to keep each result in its own folder"


class ResultOverwritten(BacalhauError):
    """A result's object no longer holds what its execution published (another execution
    wrote the same key since)."""

    code = "ResultOverwritten"
    http_status = 409
    default_component = "Client"
    default_hint = (
        "the publisher's key is shared by several executions: put {executionID} in the key "
        "so that each keeps its own result ({jobID} alone is shared by a job's partitions, "
        "retries and versions)"
    )


class UnsupportedResult(BacalhauError):
    """A result is published somewhere this client cannot download from."""

    code = "NotImplemented"
    http_status = 501
    default_component = "Client"
