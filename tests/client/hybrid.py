"""A hybrid node (requester + compute, noop engine, every port picked free) for the tests
that need a real one, started in the test's own process."""

from __future__ import annotations

from pathlib import Path

from bacalhau.config import NodeConfig
from bacalhau.identity import ClusterCA, NodeIdentity


def hybrid_node_config(data_dir: Path, **overrides: object) -> NodeConfig:
    """The node's configuration in ``data_dir`` (which must hold its certificate), with
    ``overrides`` (``NodeConfig`` field names) applied."""
    base = NodeConfig(
        data_dir=data_dir,
        orchestrator=True,
        compute=True,
        api_host="127.0.0.1",
        api_port=0,
        grpc_host="127.0.0.1",
        grpc_port=0,
        publisher_host="127.0.0.1",
        publisher_port=0,
        engines=("noop",),
    )
    return base.with_overrides(overrides)


def hybrid_config(tmp_path: Path) -> NodeConfig:
    """The node's configuration, its certificate issued by a CA of its own."""
    data_dir = tmp_path / "hybrid"
    ClusterCA.create(tmp_path / "ca").issue_node_certificate(
        NodeIdentity.load_or_create(data_dir), data_dir=data_dir
    )
    return hybrid_node_config(data_dir)
