"""The compute node's Prometheus metrics (served at ``/metrics`` on the metrics port, see
``bacalhau serve --metrics-port``, and on the API port of a hybrid node).

One set per process, in prometheus-client's default registry, as the requester's
(:mod:`bacalhau.orchestrator._metrics`): a process runs one compute node.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from bacalhau._metrics import LATENCY_BUCKETS, of_role

EXECUTIONS_FINISHED = Counter(
    "bacalhau_compute_executions_finished_total",
    "Executions this node ended, by final state (BidRejected: declined at the bid).",
    ["state"],
)
QUEUE_DEPTH = Gauge(
    "bacalhau_compute_queue_depth",
    "Executions accepted and waiting for room on this node (not yet running).",
)
ASK_SECONDS = Histogram(
    "bacalhau_compute_ask_seconds",
    "Handling one ask for a bid, until its answer: the bid, and for a pre-approved ask whose"
    " run ends within the answer's linger, the run (a WASM run inline, most often).",
    buckets=LATENCY_BUCKETS,
)
SQLITE_TRANSACTION_SECONDS = Histogram(
    "bacalhau_compute_sqlite_transaction_seconds",
    "Execution store transactions, from BEGIN to COMMIT or ROLLBACK.",
    buckets=LATENCY_BUCKETS,
)

# Served by compute nodes only.
of_role("compute", EXECUTIONS_FINISHED, QUEUE_DEPTH, ASK_SECONDS, SQLITE_TRANSACTION_SECONDS)
