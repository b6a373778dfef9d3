"""A running node's certificate expiry is a metric, and its last month a warning that says
how to renew it (restart for a node that joined with the token, `ca issue` otherwise)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.node._cert_watch import check_certificate, watch_certificate
from tests.node.test_join_renewal import _certify_for

GAUGE = "bacalhau_tls_certificate_expiry_timestamp_seconds"


def _node_with_certificate(tmp_path: Path, days: int) -> NodeFiles:
    ca = ClusterCA.create(tmp_path / "ca")
    data_dir = tmp_path / "node"
    identity = NodeIdentity.load_or_create(data_dir)
    _certify_for(ca, identity, data_dir, days=days)
    return NodeFiles.in_dir(data_dir)


def test_a_fresh_certificate_is_a_metric_and_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _node_with_certificate(tmp_path, days=365)
    with caplog.at_level(logging.WARNING, logger="bacalhau.node._cert_watch"):
        ends = check_certificate(files, joined_with_token=True)
    assert ends is not None
    assert REGISTRY.get_sample_value(GAUGE) == ends.timestamp()
    assert caplog.records == []


@pytest.mark.parametrize(
    ("joined", "advice"),
    [(True, "restart the node: it joined with Compute.Auth.Token"), (False, "bacalhau ca issue")],
)
def test_the_last_month_is_a_warning_naming_the_renewal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, joined: bool, advice: str
) -> None:
    files = _node_with_certificate(tmp_path, days=10)
    with caplog.at_level(logging.WARNING, logger="bacalhau.node._cert_watch"):
        check_certificate(files, joined_with_token=joined)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "TLS certificate expires on" in record.getMessage()
    assert "(in 9 days)" in record.getMessage()  # 10 days less the seconds since issue
    assert advice in record.getMessage()


async def test_the_watch_reads_the_certificate_again_as_it_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate replaced on disk while the node runs is what the watch reports."""
    files = _node_with_certificate(tmp_path / "first", days=365)
    with caplog.at_level(logging.WARNING, logger="bacalhau.node._cert_watch"):
        watching = watch_certificate(files, interval=0.05)
        watch = asyncio.create_task(watching)
        await asyncio.sleep(0.2)
        assert caplog.records == []
        short = _node_with_certificate(tmp_path / "second", days=5)
        files.tls_cert.write_bytes(short.tls_cert.read_bytes())
        await asyncio.sleep(0.2)
        watch.cancel()
    assert any("in 4 days" in r.getMessage() for r in caplog.records)
