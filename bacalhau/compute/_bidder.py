"""Whether this node bids for a job: small strategies, run in order, first "no" wins.

Each strategy is a pure decision over the job and what the node has installed (the only I/O
is asking a plugin whether it is installed or can run an engine spec). Reasons use Bacalhau's
wording, "this node does not ...", because users read them in job history.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bacalhau.compute._capacity import DEFAULT_JOB_RESOURCES, job_usage
from bacalhau.errors import BacalhauError
from bacalhau.executor import Executor
from bacalhau.models import Job, Resources, format_cpu, format_size
from bacalhau.publisher import Publisher
from bacalhau.storage import SizedSource, StorageSource, parse_cid_path, validate_inputs
from bacalhau.storage.cid import CID

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BidVerdict:
    """A strategy's (or the bidder's) answer."""

    should_bid: bool
    reason: str = ""

    @classmethod
    def accept(cls, reason: str = "") -> BidVerdict:
        return cls(True, reason)

    @classmethod
    def reject(cls, reason: str) -> BidVerdict:
        return cls(False, reason)


@dataclass(frozen=True, slots=True)
class BidRequest:
    """What a strategy looks at: the job and what it will use on this node."""

    node_id: str
    job: Job
    usage: Resources


class BidStrategy(Protocol):
    """One rule of bidding. Raising counts as a rejection with the error's message."""

    async def evaluate(self, request: BidRequest) -> BidVerdict: ...


class EngineInstalled:
    """The job's engine has a registered executor that is installed right now."""

    def __init__(self, executors: Mapping[str, Executor]) -> None:
        self._executors = executors

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        engine = request.job.task.engine.type
        executor = self._executors.get(engine.lower())
        if executor is None or not await executor.is_installed():
            return BidVerdict.reject(f"this node does not have the {engine!r} engine installed")
        return BidVerdict.accept(f"this node does have the {engine!r} engine installed")


class EngineSpecSupported:
    """The executor accepts the engine spec (``Executor.validate``; e.g. the image exists)."""

    def __init__(self, executors: Mapping[str, Executor]) -> None:
        self._executors = executors

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        engine = request.job.task.engine
        executor = self._executors.get(engine.type.lower())
        if executor is None:
            return BidVerdict.reject(f"this node does not support the {engine.type!r} engine")
        try:
            await executor.validate(engine)
        except BacalhauError as err:
            # The engine is there; this job's use of it is what cannot run (an image the
            # node cannot get, an entry point the module lacks): say that, not "unsupported".
            return BidVerdict.reject(f"the job's {engine.type} task cannot run: {err.message}")
        return BidVerdict.accept("this node does support this job's engine")


class PublisherInstalled:
    """The job's publisher (if any) is registered, installed and accepts its spec."""

    def __init__(self, publishers: Mapping[str, Publisher]) -> None:
        self._publishers = publishers

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        spec = request.job.task.publisher
        if spec.is_empty():
            return BidVerdict.accept("this node does not need a publisher for this job")
        publisher = self._publishers.get(spec.type.lower())
        if publisher is None or not await publisher.is_installed():
            return BidVerdict.reject(
                f"this node does not have the {spec.type!r} publisher installed"
            )
        try:
            await publisher.validate(spec)
        except BacalhauError as err:
            return BidVerdict.reject(
                f"this node does not support this job's publisher: {err.message}"
            )
        return BidVerdict.accept(f"this node does have the {spec.type!r} publisher installed")


class InputSourcesInstalled:
    """Every input source type of the job can be prepared on this node."""

    def __init__(self, storage_sources: Collection[str]) -> None:
        self._installed = {name.lower() for name in storage_sources}

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        for source in request.job.task.input_sources:
            kind = source.source.type
            if kind.lower() not in self._installed:
                return BidVerdict.reject(
                    f"this node does not have the {kind!r} input source installed"
                )
        return BidVerdict.accept("this node does have every input source installed")


class InputSourcesSupported:
    """Every input can be prepared here: its spec is well formed and allowed on this node
    (a local directory the operator did not allow-list is refused with that reason)."""

    def __init__(self, sources: Mapping[str, StorageSource]) -> None:
        self._sources = {name.lower(): source for name, source in sources.items()}

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        try:
            await validate_inputs(self._sources, request.job)
        except BacalhauError as err:
            return BidVerdict.reject(f"this node cannot read this job's inputs: {err.message}")
        return BidVerdict.accept("this node can read every input of this job")


class InputsFitDisk:
    """The inputs fit in the disk this node offers a job, and each within this node's
    limit for one input: sized before bidding where their source can say (an S3 listing, a
    ``HEAD`` of a URL, content held here), as Bacalhau sizes input volumes. A job whose
    inputs cannot be sized is not refused for it; its ``Resources.Disk`` still counts."""

    def __init__(self, sources: Mapping[str, StorageSource], max_job_disk: int) -> None:
        self._sources = {name.lower(): source for name, source in sources.items()}
        self._max_disk = max_job_disk

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        total = 0
        for spec in request.job.task.input_sources:
            source = self._sources.get(spec.source.type.lower())
            if not isinstance(source, SizedSource):
                continue
            try:
                size = await source.size(spec.source)
            except BacalhauError as err:
                return BidVerdict.reject(f"this node cannot read this job's inputs: {err.message}")
            total += size or 0
        if self._max_disk and total > self._max_disk:
            return BidVerdict.reject(
                f"insufficient disk for the job's inputs - inputs: {format_size(total)}, "
                f"available: {format_size(self._max_disk)}"
            )
        return BidVerdict.accept("this node does have enough disk for this job's inputs")


class NetworkPolicy:
    """Jobs asking for network access only run where the operator allows it."""

    def __init__(self, *, accept_networked_jobs: bool = False) -> None:
        self._accept = accept_networked_jobs

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        if not request.job.task.network.type.networked or self._accept:
            return BidVerdict.accept("this node does accept jobs that require network access")
        # Bacalhau's words first (scripts look for them), then what its operator can do.
        return BidVerdict.reject(
            "this node does not accept jobs that require network access (its operator "
            "allows them with JobAdmissionControl.AcceptNetworkedJobs=true, or "
            "accept_networked_jobs: true)"
        )


class WithinMaxJobRequirements:
    """The job fits in what this node offers a single job."""

    def __init__(self, max_job_requirements: Resources) -> None:
        self._max = max_job_requirements

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        if request.usage.fits_in(self._max):
            return BidVerdict.accept("this node does have enough resources for this job")
        return BidVerdict.reject(
            f"insufficient resources - requested: {describe_resources(request.usage)}, "
            f"available: {describe_resources(self._max)}"
        )


class RejectStatelessJobs:
    """``JobAdmissionControl.RejectStatelessJobs``: jobs without inputs go elsewhere."""

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        if request.job.task.input_sources:
            return BidVerdict.accept("this node does accept jobs with inputs")
        return BidVerdict.reject("this node does not accept jobs without inputs")


class DataLocality(Protocol):
    """Whether all of a job's input data is already on this node."""

    def has_data(self, job: Job) -> bool: ...


class BlockHolder(Protocol):
    """The part of the CID blockstore locality needs."""

    def has(self, cid: CID) -> bool: ...


class LocalInputs:
    """The node's view of "here": the blockstore holds every ``ipfs`` input's root block,
    every ``localDirectory`` input exists, and ``inline`` data travels with the job. Inputs
    fetched from elsewhere (``urlDownload``, ``s3``) are never here."""

    def __init__(self, blocks: BlockHolder) -> None:
        self._blocks = blocks

    def has_data(self, job: Job) -> bool:
        return all(
            self._has(source.source.type.lower(), source.source.params)
            for source in job.task.input_sources
        )

    def _has(self, kind: str, params: dict[str, Any]) -> bool:
        if kind == "inline":
            return True
        if kind in ("localdirectory", "local"):
            path = params.get("SourcePath")
            return isinstance(path, str) and Path(path).exists()
        if kind == "ipfs":
            try:
                cid, _ = parse_cid_path(str(params.get("CID", "")))
            except BacalhauError:
                return False
            return self._blocks.has(cid)
        return False


class Locality:
    """``JobAdmissionControl.Locality``: ``local`` takes only jobs whose data is here;
    ``anywhere`` (the default) takes any."""

    MODES = ("anywhere", "local")

    def __init__(self, data: DataLocality) -> None:
        self._data = data

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        # A few indexed lookups and stat calls: cheap enough to make on the loop.
        if self._data.has_data(request.job):
            return BidVerdict.accept("this node does have this job's input data locally")
        return BidVerdict.reject("this node does not have this job's input data locally")


def describe_resources(res: Resources) -> str:
    return (
        f"{{CPU: {format_cpu(res.cpu)}, Memory: {format_size(res.memory)}, "
        f"Disk: {format_size(res.disk)}, GPU: {res.gpu}}}"
    )


def default_strategies(
    *,
    executors: Mapping[str, Executor],
    publishers: Mapping[str, Publisher],
    max_job_requirements: Resources,
    storage_sources: Collection[str] = (),
    input_sources: Mapping[str, StorageSource] | None = None,
    accept_networked_jobs: bool = False,
    reject_stateless_jobs: bool = False,
    locality: DataLocality | None = None,
    probes: Sequence[BidStrategy] = (),
) -> list[BidStrategy]:
    """The standard rules, cheapest first: the engine spec check (which may ask the Docker
    engine about an image) and then the operator's ``probes`` (exec/HTTP programs, the
    costliest, shown only jobs the node could run) come last, so that jobs failing a plain
    rule are answered fast. ``locality`` given: only jobs whose data is here are taken.

    ``input_sources`` are the node's input source plugins: their names are what it has
    installed (unless ``storage_sources`` says otherwise) and each checks its inputs' specs
    (a local path the operator did not allow is refused here, with that reason)."""
    sources = dict(input_sources or {})
    strategies: list[BidStrategy] = [
        EngineInstalled(executors),
        NetworkPolicy(accept_networked_jobs=accept_networked_jobs),
        *([RejectStatelessJobs()] if reject_stateless_jobs else []),
        PublisherInstalled(publishers),
        InputSourcesInstalled(storage_sources or list(sources)),
    ]
    if sources:
        strategies.append(InputSourcesSupported(sources))
    if locality is not None:
        strategies.append(Locality(locality))
    strategies.append(WithinMaxJobRequirements(max_job_requirements))
    if sources:  # after the cheap rules: sizing may list a bucket or ask a server
        strategies.append(InputsFitDisk(sources, max_job_requirements.disk))
    strategies += [
        EngineSpecSupported(executors),
        *probes,
    ]
    return strategies


class Bidder:
    """Runs the strategies in order; the first rejection (or strategy error) is the answer."""

    def __init__(
        self,
        *,
        node_id: str,
        strategies: Sequence[BidStrategy],
        default_usage: Resources = DEFAULT_JOB_RESOURCES,
    ) -> None:
        self._node_id = node_id
        self._strategies = list(strategies)
        self._default_usage = default_usage

    async def bid(self, job: Job) -> BidVerdict:
        if not job.tasks:
            return BidVerdict.reject("this node does not accept jobs without a task")
        try:
            usage = job_usage(job, defaults=self._default_usage)
        except BacalhauError as err:
            return BidVerdict.reject(err.message)
        request = BidRequest(node_id=self._node_id, job=job, usage=usage)
        for strategy in self._strategies:
            try:
                verdict = await strategy.evaluate(request)
            except BacalhauError as err:
                return BidVerdict.reject(err.message)
            except Exception as err:  # a broken strategy must not crash bidding
                _log.exception("bid strategy %s failed for job %s", type(strategy).__name__, job.id)
                return BidVerdict.reject(f"{type(strategy).__name__} failed: {err}")
            if not verdict.should_bid:
                return verdict
        return BidVerdict.accept("this node does accept this job")
