"""Joining with a token over real mutual-TLS gRPC: a node holding the requester's token gets a
cluster certificate that the cluster then accepts; a wrong token, a requester without one, a
forged or borrowed identity and bad host names are refused; and a certificate the token's join
CA signed reaches the Join call and nothing else, whatever node it claims to be."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from bacalhau import errors
from bacalhau._proto.v1 import blocks_pb2, blocks_pb2_grpc, node_pb2, node_pb2_grpc
from bacalhau.identity import (
    JoinAuthority,
    NodeFiles,
    NodeIdentity,
    check_node_files,
    node_uri,
)
from bacalhau.identity._files import write_private, write_public
from bacalhau.identity._join_token import JOIN_SERVER_NAME, join_proof_payload, spki_der
from bacalhau.models import CancelExecutionRequest
from bacalhau.storage.cid import Blockstore
from bacalhau.transport import ComputeClient, Joined, NodeServer, join_cluster
from tests.transport.cluster import Cluster, Node, RecordingCompute

TOKEN = "a-long-enough-join-token-0123456789"


@pytest.fixture(scope="module")
def authority() -> JoinAuthority:
    return JoinAuthority.from_token(TOKEN)


@asynccontextmanager
async def requester(
    cluster: Cluster, authority: JoinAuthority | None
) -> AsyncIterator[tuple[Node, NodeServer, RecordingCompute]]:
    """A node serving ComputeService (a recording handler: something to call once joined)
    and, with ``authority``, JoinService backed by the cluster CA."""
    node = cluster.node()
    handler = RecordingCompute()
    server = NodeServer(node.identity, node.files)
    server.add_compute_handler(handler)
    server.add_block_service(Blockstore(cluster.root / "blocks"))
    if authority is not None:

        def certify(
            node_id: str, key: ec.EllipticCurvePublicKey, hosts: Sequence[str]
        ) -> tuple[bytes, bytes]:
            cert = cluster.ca.sign_node_certificate(node_id, key, hosts=hosts)
            return cert.public_bytes(Encoding.PEM), cluster.ca.certificate_pem

        server.add_join_service(authority, certify)
    async with server:
        yield node, server, handler


def install(data_dir: Path, joined: Joined) -> NodeFiles:
    files = NodeFiles.in_dir(data_dir)
    write_public(files.ca_cert, joined.ca_certificate)
    write_public(files.tls_cert, joined.certificate)
    write_private(files.tls_key, joined.tls_key)
    return files


async def cancel_from(files: NodeFiles, identity: NodeIdentity, node: Node, address: str) -> None:
    async with ComputeClient(identity, files, timeout=3) as client:
        client.register_node(node.node_id, address)
        await client.cancel_execution(node.node_id, CancelExecutionRequest("e-1", "test"))


async def test_a_node_with_the_token_joins_and_the_cluster_accepts_it(
    cluster: Cluster, authority: JoinAuthority, tmp_path: Path
) -> None:
    newcomer = NodeIdentity.load_or_create(tmp_path / "newcomer")
    async with requester(cluster, authority) as (node, server, handler):
        joined = await join_cluster(
            server.address, newcomer, JoinAuthority.from_token(TOKEN), ["10.1.2.3", "worker-7"]
        )
        files = install(tmp_path / "newcomer", joined)
        assert check_node_files(files) == newcomer.node_id
        cert = x509.load_pem_x509_certificate(joined.certificate)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "worker-7" in sans.get_values_for_type(x509.DNSName)
        assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
        assert joined.ca_certificate == cluster.ca.certificate_pem
        # The new certificate is an ordinary cluster certificate: calls are the newcomer's.
        await cancel_from(files, newcomer, node, server.address)
        assert [(m, src) for m, src, _ in handler.calls] == [("cancel_execution", newcomer.node_id)]


async def test_a_wrong_token_is_refused_in_the_handshake_naming_the_token(
    cluster: Cluster, authority: JoinAuthority, tmp_path: Path
) -> None:
    newcomer = NodeIdentity.load_or_create(tmp_path / "newcomer")
    async with requester(cluster, authority) as (_, server, _handler):
        with pytest.raises(errors.InvalidConfiguration) as caught:
            await join_cluster(
                server.address, newcomer, JoinAuthority.from_token("another-token-entirely"), []
            )
    assert "did not take this node's join token" in caught.value.message
    assert caught.value.details["Field"] == "Compute.Auth.Token"
    assert "Orchestrator.Auth.Token" in caught.value.hint


async def test_a_requester_without_a_token_lets_nobody_join(
    cluster: Cluster, authority: JoinAuthority, tmp_path: Path
) -> None:
    newcomer = NodeIdentity.load_or_create(tmp_path / "newcomer")
    async with requester(cluster, None) as (_, server, _handler):
        with pytest.raises(errors.InvalidConfiguration, match="join token"):
            await join_cluster(server.address, newcomer, authority, [])


async def test_nobody_at_the_address_is_unavailable(
    authority: JoinAuthority, tmp_path: Path
) -> None:
    newcomer = NodeIdentity.load_or_create(tmp_path / "newcomer")
    with pytest.raises(errors.Unavailable, match="unreachable"):
        await join_cluster("127.0.0.1:1", newcomer, authority, [], timeout=3)


def _signed_by_join_ca(
    authority: JoinAuthority, data_dir: Path, cluster: Cluster, uri: str
) -> tuple[NodeFiles, ec.EllipticCurvePrivateKey]:
    """A node directory whose certificate the join CA signed, naming ``uri``: what anyone
    holding the token can make. It trusts the cluster CA, so it can reach cluster nodes."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = authority._leaf(  # the join CA signing what an attacker with the token asks
        key.public_key(),
        "forged",
        [x509.UniformResourceIdentifier(uri)],
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    assert cert.not_valid_after_utc > now
    files = NodeFiles.in_dir(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_public(files.ca_cert, cluster.ca.certificate_pem)
    write_public(files.tls_cert, cert.public_bytes(Encoding.PEM))
    write_private(
        files.tls_key, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    return files, key


def test_join_certificates_hold_whatever_the_clocks_say(authority: JoinAuthority) -> None:
    """The join leaves take the join CA's window: a requester's (made once, at its start)
    does not expire while it runs, and a joining node's clock days off the requester's
    does not fail the handshake. Nothing is lost: any token holder can sign any window."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    for cert in (authority.server_certificate(key), authority.client_certificate(key, "n")):
        assert cert.not_valid_before_utc == authority.certificate.not_valid_before_utc
        assert cert.not_valid_after_utc == authority.certificate.not_valid_after_utc
        assert cert.not_valid_after_utc.year == 9999


@pytest.mark.parametrize("claims", ["join", "node"])
async def test_a_certificate_the_join_ca_signed_reaches_nothing_but_join(
    cluster: Cluster, authority: JoinAuthority, tmp_path: Path, claims: str
) -> None:
    # "node": a token holder's forged certificate claiming a member's node ID.
    intruder = NodeIdentity.load_or_create(tmp_path / "intruder")
    async with requester(cluster, authority) as (node, server, handler):
        member = cluster.node()
        uri = (
            f"bacalhau://join/{intruder.node_id}" if claims == "join" else node_uri(member.node_id)
        )
        files, key = _signed_by_join_ca(authority, tmp_path / "intruder", cluster, uri)
        with pytest.raises(errors.PermissionDenied, match="signed with the join token"):
            await cancel_from(files, intruder, node, server.address)
        assert handler.calls == []
        # Nor the block exchange, which members serve each other.
        credentials = grpc.ssl_channel_credentials(
            root_certificates=cluster.ca.certificate_pem,
            private_key=key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
            certificate_chain=files.tls_cert.read_bytes(),
        )
        options = [("grpc.ssl_target_name_override", "localhost")]
        async with grpc.aio.secure_channel(server.address, credentials, options=options) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await blocks_pb2_grpc.BlockServiceStub(ch).HasBlocks(
                    blocks_pb2.HasBlocksRequest(), timeout=5
                )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def _join_call(
    address: str, authority: JoinAuthority, key: ec.EllipticCurvePrivateKey, cert: bytes,
    request: node_pb2.JoinRequest,
) -> node_pb2.JoinResponse:  # fmt: skip
    credentials = grpc.ssl_channel_credentials(
        root_certificates=authority.certificate_pem,
        private_key=key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        certificate_chain=cert,
    )
    options = [("grpc.ssl_target_name_override", JOIN_SERVER_NAME)]
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        answer: node_pb2.JoinResponse = await node_pb2_grpc.JoinServiceStub(channel).Join(
            request, timeout=5
        )
        return answer


async def test_a_token_holder_cannot_join_as_another_node(
    cluster: Cluster, authority: JoinAuthority, tmp_path: Path
) -> None:
    # The attacker has the token and names a member's node ID, but cannot sign as it.
    attacker = NodeIdentity.generate()
    async with requester(cluster, authority) as (_node, server, _handler):
        victim = cluster.node()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = authority.client_certificate(key.public_key(), victim.node_id)
        proof = attacker.sign(join_proof_payload(spki_der(key.public_key())))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _join_call(
                server.address, authority, key, cert.public_bytes(Encoding.PEM),
                node_pb2.JoinRequest(identity_signature=proof),
            )  # fmt: skip
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "signature does not verify" in (caught.value.details() or "")
        # A signature by the victim over another TLS key does not do either.
        other = ec.generate_private_key(ec.SECP256R1())
        replayed = victim.identity.sign(join_proof_payload(spki_der(other.public_key())))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _join_call(
                server.address, authority, key, cert.public_bytes(Encoding.PEM),
                node_pb2.JoinRequest(identity_signature=replayed),
            )  # fmt: skip
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_member_with_a_cluster_certificate_cannot_call_join(
    cluster: Cluster, authority: JoinAuthority
) -> None:
    async with requester(cluster, authority) as (_node, server, _handler):
        member = cluster.node()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=member.files.ca_cert.read_bytes(),
            private_key=member.files.tls_key.read_bytes(),
            certificate_chain=member.files.tls_cert.read_bytes(),
        )
        options = [("grpc.ssl_target_name_override", "localhost")]
        async with grpc.aio.secure_channel(server.address, credentials, options=options) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await node_pb2_grpc.JoinServiceStub(ch).Join(node_pb2.JoinRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only a node joining" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("hosts", "says"),
    [
        (["not a host!"], "neither an IP address nor a DNS name"),
        ([f"h{i}" for i in range(33)], "at most 32 hosts"),
        (["a" * 254], "at most 32 hosts of up to 253"),
    ],
)
async def test_bad_host_names_are_refused_naming_them(
    cluster: Cluster, authority: JoinAuthority, tmp_path: Path, hosts: list[str], says: str
) -> None:
    newcomer = NodeIdentity.load_or_create(tmp_path / "newcomer")
    async with requester(cluster, authority) as (_, server, _handler):
        with pytest.raises(errors.InvalidRequest) as caught:
            await join_cluster(server.address, newcomer, authority, hosts)
    assert says in caught.value.message
    assert "refused to let this node join" in caught.value.message


def test_the_same_token_derives_the_same_join_ca_and_another_token_another() -> None:
    one, two = JoinAuthority.from_token(TOKEN), JoinAuthority.from_token(TOKEN)
    other = JoinAuthority.from_token(TOKEN + "x")
    assert one.certificate.public_key() == two.certificate.public_key()
    assert one.certificate.public_key() != other.certificate.public_key()
    constraints = one.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca and constraints.value.path_length == 0
    with pytest.raises(errors.InvalidConfiguration, match="empty"):
        JoinAuthority.from_token("")


async def test_a_port_that_does_not_speak_tls_is_named_as_the_wrong_port(
    authority: JoinAuthority, tmp_path: Path
) -> None:
    # Bacalhau operators sometimes give the API port (1234) where the gRPC port belongs.
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        newcomer = NodeIdentity.load_or_create(tmp_path / "newcomer")
        with pytest.raises(errors.InvalidConfiguration) as caught:
            await join_cluster(f"127.0.0.1:{port}", newcomer, authority, [], timeout=5)
    finally:
        await runner.cleanup()
    assert "does not speak TLS" in caught.value.message
    assert "gRPC port" in caught.value.hint
