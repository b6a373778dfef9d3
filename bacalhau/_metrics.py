"""What the Prometheus metrics of every node role share (see ``orchestrator._metrics`` and
``compute._metrics``)."""

from __future__ import annotations

#: Latency buckets from a tenth of a millisecond to ten seconds.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
