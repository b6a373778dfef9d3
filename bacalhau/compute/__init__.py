"""The compute role: bidding, the execution store, the run queue and the execution pipeline.

Wiring (done by ``bacalhau.node``)::

    store = ExecutionStore(data_dir / "compute.db")
    capacity = CapacityTracker(allocated_capacity(data_dir))
    ports = PortAllocator(20000, 32000)                 # host ports for Network.Ports
    bidder = Bidder(node_id=..., strategies=[PortsAvailable(ports), *default_strategies(...)])
    pipeline = ExecutionPipeline(node_id=..., store=store, executors=..., publishers=...,
                                 results_root=data_dir / "executions", ports=ports)
    trust = RequesterTrust(configured_ids, expect_identify=True)  # + requesters at seeds
    async with ComputeEndpoint(node_id=..., store=store, bidder=bidder, pipeline=pipeline,
                               callbacks=..., capacity=capacity, trust=trust) as endpoint:
        ...  # transport serves ``endpoint`` as the ComputeHandler; ``node`` publishes
             # ``endpoint.node_info()`` in the node's gossip record
"""

from bacalhau.compute._bidder import (
    Bidder,
    BidRequest,
    BidStrategy,
    BidVerdict,
    BlockHolder,
    DataLocality,
    EngineInstalled,
    EngineSpecSupported,
    InputSourcesInstalled,
    InputSourcesSupported,
    LocalInputs,
    Locality,
    NetworkPolicy,
    PublisherInstalled,
    RejectStatelessJobs,
    WithinMaxJobRequirements,
    default_strategies,
)
from bacalhau.compute._callbacks import Callback, OrchestratorCallbacks
from bacalhau.compute._capacity import (
    DEFAULT_ALLOCATED_FRACTION,
    DEFAULT_JOB_RESOURCES,
    CapacityTracker,
    allocated_capacity,
    host_resources,
    job_usage,
)
from bacalhau.compute._endpoint import RESTART_MESSAGE, ComputeEndpoint
from bacalhau.compute._envvars import EnvForwardingAllowed
from bacalhau.compute._errors import ExecutionInterrupted, NotEnoughCapacity
from bacalhau.compute._events import TOPIC_BIDDING, TOPIC_PUBLISHING, TOPIC_RUNNING
from bacalhau.compute._host_fit import HostCpusFit
from bacalhau.compute._modules import ModuleResolver, ModuleSource
from bacalhau.compute._outbox import CallbackOutbox
from bacalhau.compute._pipeline import (
    ExecutionPipeline,
    InputPreparer,
    InputsOfJob,
    StorageInputs,
)
from bacalhau.compute._ports import (
    DEFAULT_PORT_RANGE_END,
    DEFAULT_PORT_RANGE_START,
    PortAllocator,
    PortsAvailable,
    host_port_free,
)
from bacalhau.compute._probes import DEFAULT_PROBE_TIMEOUT, ExecProbe, HttpProbe, probe_payload
from bacalhau.compute._queue import RunQueue
from bacalhau.compute._requester_clock import RequesterClocks
from bacalhau.compute._retention import DEFAULT_EXECUTION_RETENTION, ExecutionRetention
from bacalhau.compute._store import ExecutionStore, LocalExecution, OutboxEntry
from bacalhau.compute._trust import RequesterTrust
from bacalhau.compute._verification import DeterministicImages, corrupt_results

__all__ = [
    "DEFAULT_ALLOCATED_FRACTION",
    "DEFAULT_EXECUTION_RETENTION",
    "DEFAULT_JOB_RESOURCES",
    "DEFAULT_PORT_RANGE_END",
    "DEFAULT_PORT_RANGE_START",
    "DEFAULT_PROBE_TIMEOUT",
    "RESTART_MESSAGE",
    "TOPIC_BIDDING",
    "TOPIC_PUBLISHING",
    "TOPIC_RUNNING",
    "BidRequest",
    "BidStrategy",
    "BidVerdict",
    "Bidder",
    "BlockHolder",
    "Callback",
    "CallbackOutbox",
    "CapacityTracker",
    "ComputeEndpoint",
    "DataLocality",
    "DeterministicImages",
    "EngineInstalled",
    "EngineSpecSupported",
    "EnvForwardingAllowed",
    "ExecProbe",
    "ExecutionInterrupted",
    "ExecutionPipeline",
    "ExecutionRetention",
    "ExecutionStore",
    "HostCpusFit",
    "HttpProbe",
    "InputPreparer",
    "InputSourcesInstalled",
    "InputSourcesSupported",
    "InputsOfJob",
    "LocalExecution",
    "LocalInputs",
    "Locality",
    "ModuleResolver",
    "ModuleSource",
    "NetworkPolicy",
    "NotEnoughCapacity",
    "OrchestratorCallbacks",
    "OutboxEntry",
    "PortAllocator",
    "PortsAvailable",
    "PublisherInstalled",
    "RejectStatelessJobs",
    "RequesterClocks",
    "RequesterTrust",
    "RunQueue",
    "StorageInputs",
    "WithinMaxJobRequirements",
    "allocated_capacity",
    "corrupt_results",
    "default_strategies",
    "host_port_free",
    "host_resources",
    "job_usage",
    "probe_payload",
]
