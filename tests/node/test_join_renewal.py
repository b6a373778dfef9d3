"""A compute node that joined with the token renews its certificate at a start within a month
of its expiry, over real mutual-TLS gRPC against a requester serving joins; a node stopped
half-way through joining (no TLS key) joins again; a fresh certificate is left alone."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from bacalhau.config import NodeConfig
from bacalhau.identity import ClusterCA, JoinAuthority, NodeFiles, NodeIdentity, check_node_files
from bacalhau.identity._files import write_private, write_public
from bacalhau.node._cert_watch import watch_certificate
from bacalhau.node._join import join_with_token, renew_while_running
from bacalhau.transport import NodeServer, TlsMaterial
from tests.compute.waiting import eventually
from tests.transport.cluster import Cluster, RecordingCompute

TOKEN = "renewal-test-join-token-0123456789"


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


@asynccontextmanager
async def _requester(cluster: Cluster) -> AsyncIterator[str]:
    node = cluster.node()
    server = NodeServer(node.identity, node.files)
    server.add_compute_handler(RecordingCompute())

    def certify(
        node_id: str, key: ec.EllipticCurvePublicKey, hosts: Sequence[str]
    ) -> tuple[bytes, bytes]:
        cert = cluster.ca.sign_node_certificate(node_id, key, hosts=hosts)
        return cert.public_bytes(Encoding.PEM), cluster.ca.certificate_pem

    server.add_join_service(JoinAuthority.from_token(TOKEN), certify)
    async with server:
        yield server.address


def _certify_for(ca: ClusterCA, identity: NodeIdentity, data_dir: Path, days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.sign_node_certificate(identity.node_id, key.public_key(), days=days)
    files = NodeFiles.in_dir(data_dir)
    write_public(files.ca_cert, ca.certificate_pem)
    write_public(files.tls_cert, cert.public_bytes(Encoding.PEM))
    write_private(
        files.tls_key, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )


def _expires(data_dir: Path) -> datetime.datetime:
    cert = x509.load_pem_x509_certificate(NodeFiles.in_dir(data_dir).tls_cert.read_bytes())
    return cert.not_valid_after_utc


async def test_a_certificate_near_its_end_is_renewed_and_a_fresh_one_kept(
    cluster: Cluster, tmp_path: Path
) -> None:
    data_dir = tmp_path / "compute"
    identity = NodeIdentity.load_or_create(data_dir)
    config = NodeConfig(data_dir=data_dir, compute=True, orchestrator=False, join_token=TOKEN)
    async with _requester(cluster) as address:
        _certify_for(cluster.ca, identity, data_dir, days=10)
        assert await join_with_token(config, identity, [address])
        assert check_node_files(NodeFiles.in_dir(data_dir)) == identity.node_id
        renewed = _expires(data_dir)
        assert renewed - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=300)

        assert not await join_with_token(config, identity, [address])  # fresh: kept
        assert _expires(data_dir) == renewed

        # Stopped half-way through a join: the old key is gone first, so it joins again.
        NodeFiles.in_dir(data_dir).tls_key.unlink()
        assert await join_with_token(config, identity, [address])
        assert check_node_files(NodeFiles.in_dir(data_dir)) == identity.node_id


async def test_without_a_token_nothing_is_renewed(cluster: Cluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "compute"
    identity = NodeIdentity.load_or_create(data_dir)
    _certify_for(cluster.ca, identity, data_dir, days=10)
    config = NodeConfig(data_dir=data_dir, compute=True, orchestrator=False)
    assert not await join_with_token(config, identity, ["127.0.0.1:1"])


async def test_a_running_node_renews_in_its_last_month_and_uses_the_new_certificate(
    cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "compute"
    identity = NodeIdentity.load_or_create(data_dir)
    config = NodeConfig(data_dir=data_dir, compute=True, orchestrator=False, join_token=TOKEN)
    _certify_for(cluster.ca, identity, data_dir, days=10)
    files = NodeFiles.in_dir(data_dir)
    tls = TlsMaterial(files)
    async with _requester(cluster) as address:
        renew = functools.partial(renew_while_running, config, identity, [address], tls)
        with caplog.at_level(logging.WARNING, logger="bacalhau.node._cert_watch"):
            watch = asyncio.create_task(watch_certificate(files, renew=renew, interval=0.05))
            try:
                await eventually(lambda: tls.generation > 0, timeout=20)
                await asyncio.sleep(0.2)  # more checks: nothing left to renew or warn of
            finally:
                watch.cancel()
    assert tls.generation == 1
    assert _expires(data_dir) - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=300)
    assert x509.load_pem_x509_certificate(tls.cert).not_valid_after_utc == _expires(data_dir)
    watched = [r for r in caplog.records if r.name == "bacalhau.node._cert_watch"]
    assert [r.getMessage() for r in watched] == []
