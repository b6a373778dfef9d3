"""One rooted hierarchy of errors with stable codes.

Every error the system raises on purpose is a :class:`BacalhauError`. Each subclass carries a
stable ``code`` (what clients match on, never the message text), an HTTP status for the REST
edge, a ``hint`` telling the user what to do, and whether retrying may help. The edges
(``api/`` for HTTP, ``transport/`` for gRPC, ``cli/`` for the terminal) translate these once.

    BacalhauError
    ├── InvalidRequest (400)
    │   ├── InvalidJobSpec       a job failed validation; ``field`` names the culprit
    │   ├── BadQuery             a query parameter is malformed
    │   └── InvalidCID           a string or bytes that are not a CID this store can verify
    ├── NotFound (404)
    │   ├── JobNotFound
    │   ├── ExecutionNotFound
    │   ├── NodeNotFound
    │   └── BlockNotFound        a block is not in the local CID store
    ├── InvalidContent (422)     stored or received content-addressed data is unusable
    │   ├── CorruptBlock         a block's bytes do not match its CID
    │   └── UnsafePath           an entry would be written outside its target directory
    ├── MultipleJobsFound (400)  an ID prefix matches several jobs (Bacalhau: 500)
    ├── ConflictJobState (409)   an operation is not allowed in the job's state (Bacalhau: 500)
    ├── JobSpecUnchanged (409)   a job submitted again by name with its spec unchanged
    ├── IdempotencyTokenReused (409)  a token sent again with another job
    ├── RevisionConflict (409)   compare-and-set lost a race
    ├── InvalidTransition (409)  the state machine refused a transition
    ├── Unauthorized (401)       API credentials missing or wrong
    ├── PermissionDenied (403)   trust: bad certificate, bad signature
    │   └── Forbidden            API credentials lack the capability a route needs
    ├── InvalidConfiguration     a node's configuration or on-disk identity is unusable
    ├── NotEnoughNodes (500)     no node can run the job
    ├── ExecutionFailed          run-time failures of an execution
    │   ├── ImageNotFound
    │   ├── EntryPointNotFound
    │   ├── ExecutionTimeout
    │   ├── ExecutionCancelled
    │   ├── ExecutorNotInstalled
    │   ├── PublishFailed
    │   ├── NodeLost             the node running it was declared dead
    │   └── VerificationFailed   a verified job's replicas disagree (no majority, or this one)
    ├── BidRejected              the compute node declined
    ├── Unavailable (503)        a peer or service cannot be reached
    └── InternalError (500)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "KIND_KEY",
    "BacalhauError",
    "BadQuery",
    "BidRejected",
    "BlockNotFound",
    "ConflictJobState",
    "CorruptBlock",
    "EntryPointNotFound",
    "ExecutionCancelled",
    "ExecutionFailed",
    "ExecutionNotFound",
    "ExecutionTimeout",
    "ExecutorNotInstalled",
    "ExecutorUnavailable",
    "Forbidden",
    "IdempotencyTokenReused",
    "ImageNotFound",
    "InternalError",
    "InvalidCID",
    "InvalidConfiguration",
    "InvalidContent",
    "InvalidJobSpec",
    "InvalidRequest",
    "InvalidTransition",
    "JobNotFound",
    "JobSpecUnchanged",
    "MultipleJobsFound",
    "NodeLost",
    "NodeNotFound",
    "NodeOutOfDisk",
    "NotEnoughNodes",
    "NotFound",
    "PermissionDenied",
    "PublishFailed",
    "RequestTooLarge",
    "RevisionConflict",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "UnsafePath",
    "VerificationFailed",
    "error_from_code",
    "wire_details",
]


class BacalhauError(Exception):
    """Base of every deliberate error.

    ``component`` says which part of the system raised it (Bacalhau's ``Component`` field);
    ``details`` carries structured, machine-readable context (always str -> str so it
    survives every edge unchanged).
    """

    code: ClassVar[str] = "InternalError"
    http_status: ClassVar[int] = 500
    default_hint: ClassVar[str] = ""
    retryable: ClassVar[bool] = False
    default_component: ClassVar[str] = "Bacalhau"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        component: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.component = component or self.default_component
        self.details: dict[str, str] = dict(details or {})
        #: The field at fault, when one is ("" otherwise): the ``Field`` detail.
        self.field: str = self.details.get("Field", "")

    def to_dict(self) -> dict[str, Any]:
        """A plain description, used by the edges and by execution failure events."""
        out: dict[str, Any] = {"Code": self.code, "Message": self.message}
        if self.hint:
            out["Hint"] = self.hint
        details = wire_details(self)
        if details:
            out["Details"] = details
        return out


class InvalidRequest(BacalhauError):
    code = "BadRequest"
    http_status = 400
    default_component = "APIServer"


class InvalidJobSpec(InvalidRequest):
    """A job (or a part of it) failed validation; ``field`` is the dotted path at fault."""

    code = "InvalidJobSpec"
    default_hint = "fix the named field of the job spec and submit it again"

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        details = {"Field": field} if field else {}
        super().__init__(message, hint=hint, details=details)
        self.field = field


class RequestTooLarge(InvalidRequest):
    """A request (a job) larger than the node accepts (its ``max_job_size`` setting)."""

    code = "RequestEntityTooLarge"
    http_status = 413


class BadQuery(InvalidRequest):
    code = "BadRequest"

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details={"Field": field} if field else None)
        self.field = field


class NotFound(BacalhauError):
    code = "NotFound"
    http_status = 404


class JobNotFound(NotFound):
    default_component = "JobStore"
    default_hint = "check the job ID or name with `bacalhau job list`"


class ExecutionNotFound(NotFound):
    default_component = "JobStore"


class NodeNotFound(NotFound):
    default_component = "NodeManager"
    default_hint = "check the node ID with `bacalhau node list`"


class InvalidCID(InvalidRequest):
    """Not a CID, or one this store cannot verify (only sha2-256 and identity multihashes);
    ``field`` names where it came from when known."""

    code = "InvalidCID"
    default_component = "CIDStore"
    default_hint = "pass a CIDv0 (Qm...) or a CIDv1 (bafy..., bafk...) as printed by `ipfs add`"

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        hint: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        merged = dict(details or {})
        if field:
            merged["Field"] = field
        super().__init__(message, hint=hint, details=merged)
        self.field = merged.get("Field", "")


class BlockNotFound(NotFound):
    """A block (``details["CID"]``) is not in the local store."""

    code = "BlockNotFound"
    default_component = "CIDStore"
    default_hint = "add or import the content first (`ipfs dag import` a CAR, or add the files)"

    def __init__(
        self,
        message: str,
        *,
        cid: str = "",
        hint: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        merged = dict(details or {})
        if cid:
            merged["CID"] = cid
        super().__init__(message, hint=hint, details=merged)
        self.cid = merged.get("CID", "")


class InvalidContent(BacalhauError):
    """Content-addressed data (a block, a DAG, a CAR file) that cannot be used as it is."""

    code = "InvalidContent"
    http_status = 422
    default_component = "CIDStore"
    default_hint = "the data is malformed or was damaged on the way; get it again from a good copy"

    def __init__(
        self,
        message: str,
        *,
        cid: str = "",
        hint: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        merged = dict(details or {})
        if cid:
            merged["CID"] = cid
        super().__init__(message, hint=hint, details=merged)
        self.cid = merged.get("CID", "")


class CorruptBlock(InvalidContent):
    """A block's bytes do not hash to its CID (``details["CID"]``); it is never returned."""

    code = "CorruptBlock"
    default_hint = (
        "the stored or received copy is damaged: delete the block and fetch or import it again"
    )


class UnsafePath(InvalidContent):
    """An entry's name would place it outside the directory it is written into (``..``, a
    slash, a name that is empty) or through an existing file or symlink."""

    code = "UnsafePath"
    default_hint = "the content is malformed or hostile; it was not written"


class MultipleJobsFound(BacalhauError):
    # A client error: Bacalhau answers 500, which tells clients to retry what cannot work.
    code = "MultipleJobsFound"
    http_status = 400
    default_component = "JobStore"
    default_hint = "Use full job ID"


class ConflictJobState(BacalhauError):
    # 409 Conflict (Bacalhau: 500): the request is valid, the job's state refuses it.
    code = "ConflictJobState"
    http_status = 409
    default_component = "JobStore"


class JobSpecUnchanged(BacalhauError):
    """A job was submitted under the name of an existing job with the same spec: an update
    that would change nothing. 409 Conflict (Bacalhau: 500): the request is valid, and
    conflicts with what the job already is; ``Force`` resolves it (a new version anyway)."""

    code = "JobSpecUnchanged"
    http_status = 409
    default_component = "Orchestrator"
    default_hint = "Use the --force flag to override this warning (a new version anyway)"


class IdempotencyTokenReused(BacalhauError):
    """A submit's idempotency token was already used by a submit of another job (another
    spec or namespace). 409 Conflict: replaying the first submit answers it, and this is
    not that submit; answering it with the first one's job would drop it unseen."""

    code = "IdempotencyTokenReused"
    http_status = 409
    default_component = "Orchestrator"
    default_hint = (
        "use a new idempotency token for a new submission; send the same token only to "
        "retry the very same submit"
    )


class RevisionConflict(BacalhauError):
    code = "ResourceInUse"
    http_status = 409
    retryable = True
    default_component = "JobStore"
    default_hint = "the object changed concurrently; read it again and retry"


class InvalidTransition(BacalhauError):
    code = "InvalidStateTransition"
    http_status = 409
    default_component = "StateMachine"


class PermissionDenied(BacalhauError):
    code = "PermissionDenied"
    http_status = 403
    default_component = "Transport"


class Unauthorized(BacalhauError):
    """The API asks for credentials (``API.Auth.Users``) and the request carried none, or
    ones it does not know (Bacalhau's ``Unauthorized``, HTTP 401, gRPC UNAUTHENTICATED)."""

    code = "Unauthorized"
    http_status = 401
    default_component = "Authorizer"


class Forbidden(PermissionDenied):
    """The API knows the caller, whose capabilities do not include the one the route needs
    (Bacalhau's ``Forbidden``, HTTP 403, gRPC PERMISSION_DENIED)."""

    code = "Forbidden"
    default_component = "Authorizer"


class InvalidConfiguration(BacalhauError):
    """A node cannot start as configured: missing or unreadable keys and certificates,
    unsafe file permissions, contradictory settings. The hint says how to fix it."""

    code = "InvalidConfiguration"
    http_status = 500
    default_component = "Config"


class NotEnoughNodes(BacalhauError):
    code = "NotEnoughNodes"
    http_status = 500
    default_component = "Scheduler"
    default_hint = (
        "each node's reason is in the message: change the job accordingly, or start or "
        "configure a compute node that can run it"
    )


class ExecutionFailed(BacalhauError):
    code = "ExecutionFailed"
    default_component = "Executor"


class ImageNotFound(ExecutionFailed):
    code = "ImageNotFound"
    default_hint = (
        "check the image's name, or load it on the compute node (`docker load`, `docker import`)"
    )


class EntryPointNotFound(ExecutionFailed):
    code = "EntryPointNotFound"
    default_hint = "pass the exported function to run with --entry-point"


class ExecutionTimeout(ExecutionFailed):
    code = "ExecutionTimeout"
    retryable = True
    default_hint = (
        "give the job more time (--timeout; in a job file Timeouts.ExecutionTimeout and "
        "TotalTimeout) or make it faster"
    )


class ExecutionCancelled(ExecutionFailed):
    """The execution was stopped on request (``Executor.cancel``) before it finished."""

    code = "ExecutionCancelled"
    default_hint = "the execution was stopped on request; submit the job again to rerun it"


class ExecutorNotInstalled(ExecutionFailed):
    code = "ExecutorNotInstalled"


class ExecutorUnavailable(ExecutionFailed):
    """The executor's engine is there but does not answer now (the Docker engine restarting,
    its socket gone for a moment): a run may be tried again, on this node too."""

    code = "ExecutorUnavailable"
    retryable = True


class NodeOutOfDisk(ExecutionFailed):
    """The compute node's own disk filled up under the execution: not the job's fault, and
    it passes once space is freed, so the run may be tried again (elsewhere, or here)."""

    code = "NodeOutOfDisk"
    retryable = True
    default_hint = "free space on the compute node's data disk; the job is tried again"


class PublishFailed(ExecutionFailed):
    code = "PublishFailed"
    default_component = "Publisher"
    retryable = True


class NodeLost(ExecutionFailed):
    """The node running an execution went silent and was declared dead; the execution is
    failed and placed elsewhere. Not the job's fault, so its replacement starts at once."""

    code = "NodeLost"
    default_component = "Orchestrator"
    retryable = True
    default_hint = (
        "nothing to do: the job is rescheduled on another node within its retry policy; "
        "check the lost node's health and network"
    )


class VerificationFailed(ExecutionFailed):
    """A verified job's results were not accepted: the replicas had no majority result, or
    this execution's results disagree with the accepted ones."""

    code = "VerificationFailed"
    default_component = "Verifier"
    default_hint = (
        "the replicas wrote different results: check that the job is deterministic (same "
        "inputs, no clocks or randomness), or raise Count so one faulty node is outvoted"
    )


class BidRejected(BacalhauError):
    code = "BidRejected"
    default_component = "Bidder"


class Unavailable(BacalhauError):
    code = "ServiceUnavailable"
    http_status = 503
    retryable = True


class TooManyRequests(BacalhauError):
    """One client holds as much of something shared as one client may (HTTP 429)."""

    code = "TooManyRequests"
    http_status = 429
    retryable = True


class InternalError(BacalhauError):
    code = "InternalError"
    http_status = 500


def _all_subclasses(cls: type[BacalhauError]) -> list[type[BacalhauError]]:
    out: list[type[BacalhauError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


#: The detail naming an error's own class when a more general class has its code (a job's,
#: an execution's or a node's ``NotFound``; a query's ``BadRequest``): clients rebuild it.
KIND_KEY = "Kind"


def wire_details(err: BacalhauError) -> dict[str, str]:
    """``err``'s details as they travel: with :data:`KIND_KEY` when its class is not the one
    its code alone rebuilds."""
    details = dict(err.details)
    cls = type(err)
    if cls.__module__ == __name__ and _general_class(cls.code) is not cls:
        details.setdefault(KIND_KEY, cls.__name__)
    return details


def _general_class(code: str) -> type[BacalhauError] | None:
    classes: list[type[BacalhauError]] = [BacalhauError, *_all_subclasses(BacalhauError)]
    for cls in classes:
        if cls.code == code:
            return cls
    return None


def error_from_code(
    code: str,
    message: str,
    *,
    hint: str | None = None,
    details: dict[str, str] | None = None,
) -> BacalhauError:
    """Rebuild an error received over the wire from its stable code.

    The class its details name (:data:`KIND_KEY`) when it has that code; else the most
    general class with that code, so codes shared by a family (``BadRequest``) come back as
    the family's base class.
    """
    details = dict(details or {})
    kind = details.pop(KIND_KEY, "")
    named = next((c for c in _all_subclasses(BacalhauError) if c.__name__ == kind), None)
    if named is None or named.code != code:
        named = _general_class(code) or BacalhauError
    if named in (InvalidJobSpec, BadQuery):
        return named(message, field=details.get("Field", ""), hint=hint)
    try:
        return named(message, hint=hint, details=details)
    except TypeError:  # a class with a constructor of its own: the most general one
        return (_general_class(code) or BacalhauError)(message, hint=hint, details=details)
