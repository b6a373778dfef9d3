"""The requester's Prometheus metrics (served at ``/metrics`` on the API port).

One set per process, in prometheus-client's default registry (which also carries the
process collector: resident memory, CPU time, open files). Names follow Prometheus'
conventions: ``_total`` for counters, base units (seconds).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from bacalhau._metrics import LATENCY_BUCKETS, of_role

#: The job states counted by ``bacalhau_jobs_active``: every state a job has not ended in.
ACTIVE_STATES = ("Pending", "Queued", "Running")


class ActiveJobs:
    """``bacalhau_jobs_active{state}``: the jobs not yet ended, by state, counted in the
    requester's store when scraped (a Queued job waits for a node with room: the queue an
    operator watches). Each running requester is watched while it runs."""

    def __init__(self) -> None:
        self._counts: list[Callable[[], Mapping[str, int]]] = []

    def watch(self, counts: Callable[[], Mapping[str, int]]) -> Callable[[], None]:
        """Count ``counts()`` in; returns what stops counting it (idempotent)."""
        self._counts.append(counts)

        def unwatch() -> None:
            if counts in self._counts:
                self._counts.remove(counts)

        return unwatch

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        total: Tally[str] = Tally()
        for counts in self._counts:
            total.update(counts())
        family = self._family()
        for state in ACTIVE_STATES:
            family.add_metric([state], total[state])
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "bacalhau_jobs_active", "Jobs not yet ended, by state.", labels=["state"]
        )


ACTIVE_JOBS = ActiveJobs()
REGISTRY.register(ACTIVE_JOBS)

JOBS_SUBMITTED = Counter("bacalhau_jobs_submitted_total", "Jobs accepted by the requester.")
JOBS_FINISHED = Counter(
    "bacalhau_jobs_finished_total", "Jobs that reached a terminal state, by state.", ["state"]
)
QUEUE_DEPTH = Gauge(
    "bacalhau_evaluation_queue_depth", "Evaluations waiting for a scheduler worker."
)
LOG_STREAMS_OPEN = Gauge(
    "bacalhau_log_streams_open", "Job log streams the requester relays now (both APIs)."
)
LOG_STREAMS_REFUSED = Counter(
    "bacalhau_log_streams_refused_total",
    "Job log streams refused because log_streams_max were open already, or as many as one "
    "client may hold (log_streams_per_client_max), by which cap.",
    ["cap"],
)
SCHEDULING_SECONDS = Histogram(
    "bacalhau_scheduling_seconds",
    "From an evaluation's creation to its plan stored (evaluations due at once).",
    buckets=LATENCY_BUCKETS,
)
SCHEDULING_PASSES = Counter(
    "bacalhau_scheduling_passes_total",
    "Scheduling passes, by path: a queued evaluation, or in place (in the transaction of the"
    " node's report that made the job's next state certain).",
    ["path"],
)
DISPATCH_SECONDS = Histogram(
    "bacalhau_dispatch_seconds",
    "Sending one plan's messages to compute nodes.",
    buckets=LATENCY_BUCKETS,
)
GRPC_CALL_SECONDS = Histogram(
    "bacalhau_grpc_call_seconds",
    "The requester's calls to compute nodes, by bprotocol method.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
SQLITE_TRANSACTION_SECONDS = Histogram(
    "bacalhau_sqlite_transaction_seconds",
    "Job store transactions, from BEGIN to COMMIT or ROLLBACK.",
    buckets=LATENCY_BUCKETS,
)
MODULES_SERVED = Counter(
    "bacalhau_modules_served_total",
    "Inline WASM modules compute nodes fetched by hash (once per module and node), by outcome.",
    ["outcome"],
)
CALLBACK_BATCH_ITEMS = Histogram(
    "bacalhau_callback_batch_items",
    "Callbacks applied per batch a compute node delivered (one store commit per batch).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
ANSWERED_CALLBACKS = Counter(
    "bacalhau_answered_callbacks_total",
    "Callbacks that came back in the answer to an ask rather than by a call of the node's own.",
)
QUEUE_MOVES = Counter(
    "bacalhau_queue_moves_total",
    "Executions waiting in a compute node's run queue that the requester tried to move to a "
    "node with room, by outcome: moved; started (it had started meanwhile, and stays); "
    "stopped (the requester stopped it meanwhile); failed (the node could not be asked).",
    ["outcome"],
)

# Served by requesters only (a compute-only node has none of them).
of_role(
    "requester",
    JOBS_SUBMITTED,
    JOBS_FINISHED,
    QUEUE_DEPTH,
    SCHEDULING_SECONDS,
    SCHEDULING_PASSES,
    DISPATCH_SECONDS,
    GRPC_CALL_SECONDS,
    SQLITE_TRANSACTION_SECONDS,
    MODULES_SERVED,
    CALLBACK_BATCH_ITEMS,
    ANSWERED_CALLBACKS,
    QUEUE_MOVES,
    ACTIVE_JOBS,
)
