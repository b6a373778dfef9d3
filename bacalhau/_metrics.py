"""What the Prometheus metrics of every node role share (see ``orchestrator._metrics`` and
``compute._metrics``), and which role each belongs to.

prometheus-client keeps every metric in one default registry, and a process imports every
role's modules: a compute-only node would otherwise serve the requester's series as constant
zeros (and the other way round), which misleads dashboards and alerts written per target.
Each role's metrics are marked with :func:`of_role`; :func:`served_registry` gives what a
node with some roles serves: the process's own series, the shared ones, and its roles'.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import Literal, Protocol

from prometheus_client import REGISTRY, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = [
    "EVENT_LOOP_LAG_SECONDS",
    "LATENCY_BUCKETS",
    "Role",
    "of_role",
    "served_registry",
]

#: A node role that owns metrics of its own.
Role = Literal["requester", "compute"]

#: Latency buckets from a tenth of a millisecond to ten seconds.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip

EVENT_LOOP_LAG_SECONDS = Histogram(
    "bacalhau_event_loop_lag_seconds",
    "How late the event loop runs a timer (how long other work held it).",
    buckets=LATENCY_BUCKETS,
)


class Described(Protocol):
    """A metric, or a collector of its own, that names its families without collecting."""

    def describe(self) -> Iterable[Metric]: ...


_OWNED: dict[Role, list[Described]] = {"requester": [], "compute": []}


def of_role(role: Role, *metrics: Described) -> None:
    """Mark ``metrics`` as ``role``'s own: a node without that role does not serve them."""
    _OWNED[role].extend(metrics)


class _Served:
    """The default registry without the families of the roles a node does not have."""

    def __init__(self, roles: Collection[Role]) -> None:
        self._roles = frozenset(roles)

    def collect(self) -> Iterator[Metric]:
        hidden = {
            family.name
            for role, metrics in _OWNED.items()
            if role not in self._roles
            for metric in metrics
            for family in metric.describe()
        }
        for family in REGISTRY.collect():
            if family.name not in hidden:
                yield family


def served_registry(roles: Collection[Role] | None) -> Collector:
    """What ``/metrics`` serves for a node with ``roles`` (None: every series, as an
    embedding that names no roles gets)."""
    return REGISTRY if roles is None else _Served(roles)
