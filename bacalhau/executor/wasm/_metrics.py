"""The WASM executor's Prometheus metrics (in the process's default registry, served by the
node's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

from bacalhau._metrics import of_role

RUNS = Counter(
    "bacalhau_wasm_runs_total",
    "WASM runs started, by where: inline (on the event loop's thread, for a module known to"
    " end within its slice) or worker (a worker thread).",
    ["where"],
)
INLINE_YIELDS = Counter(
    "bacalhau_wasm_inline_yields_total",
    "Inline runs that used up their slice (or were about to block) and ran again on a worker;"
    " their module runs on workers from then on.",
)

# Served by compute nodes only (they run the executors).
of_role("compute", RUNS, INLINE_YIELDS)
