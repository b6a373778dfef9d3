"""The composition root: configuration -> wired components; ``serve`` and ``devstack``."""

from bacalhau.node._devstack import run_devstack, stop_nodes, write_manifest
from bacalhau.node._devstack_plan import plan_devstack
from bacalhau.node._plugins import build_executors
from bacalhau.node._serve import RunningNode, serve, start_node

__all__ = [
    "RunningNode",
    "build_executors",
    "plan_devstack",
    "run_devstack",
    "serve",
    "start_node",
    "stop_nodes",
    "write_manifest",
]
