"""The negative trust cases: foreign certificates, forged or misattributed signatures, and
calls that reach the wrong node are all refused, and no handler ever sees them; and a compute
node obeys only the requesters it trusts, whatever certificate the sender holds."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID

from bacalhau import errors
from bacalhau._proto.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    types_pb2,
)
from bacalhau.compute import (
    ComputeEndpoint,
    ExecutionStore,
)
from bacalhau.executor.noop import NoopExecutor
from bacalhau.identity import NodeFiles, NodeIdentity
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    ExecutionReport,
    LocalExecutionState,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.publisher import NoopPublisher
from bacalhau.transport import (
    ComputeClient,
    NodeServer,
    OrchestratorClient,
    channel_credentials,
    channel_options,
    server_credentials,
)
from bacalhau.transport._convert import execution_to_proto
from bacalhau.transport._convert_messages import (
    ask_for_bid_to_proto,
    bid_accepted_to_proto,
    bid_rejected_to_proto,
    bid_result_to_proto,
    cancel_to_proto,
    execution_report_to_proto,
)
from bacalhau.transport._signing import seal, signing_input
from tests.compute.jobs import noop_execution
from tests.compute.recording_callbacks import RecordingCallbacks
from tests.compute.waiting import eventually
from tests.transport.cluster import Cluster, Node, RecordingCompute, RecordingOrchestrator
from tests.transport.samples import full_event, full_execution
from tests.transport.wasm_compute import compute_endpoint


@asynccontextmanager
async def serving_compute(node: Node) -> AsyncIterator[tuple[NodeServer, RecordingCompute]]:
    handler = RecordingCompute()
    server = NodeServer(node.identity, node.files)
    server.add_compute_handler(handler)
    async with server:
        yield server, handler


@asynccontextmanager
async def serving_orchestrator(
    node: Node,
) -> AsyncIterator[tuple[NodeServer, RecordingOrchestrator]]:
    handler = RecordingOrchestrator()
    server = NodeServer(node.identity, node.files)
    server.add_orchestrator_handler(handler)
    async with server:
        yield server, handler


async def _cancel(client: ComputeClient, node_id: str) -> None:
    await client.cancel_execution(node_id, CancelExecutionRequest("e-1", "test"))


# -- (a) certificates from another CA ----------------------------------------------------------


async def test_server_refuses_a_client_certified_by_another_ca(
    cluster: Cluster, foreign_cluster: Cluster
) -> None:
    server_node = cluster.node()
    intruder = foreign_cluster.node()
    # The intruder trusts our CA, so only the server's check can stop it.
    foreign_cluster.trust_other_ca(intruder, cluster)
    member = cluster.node()
    async with serving_compute(server_node) as (server, handler):
        async with ComputeClient(intruder.identity, intruder.files, timeout=3) as client:
            client.register_node(server_node.node_id, server.address)
            with pytest.raises(errors.Unavailable):
                await _cancel(client, server_node.node_id)
        assert handler.calls == []
        # Control: the same call from a member of the cluster goes through.
        async with ComputeClient(member.identity, member.files) as client:
            client.register_node(server_node.node_id, server.address)
            await _cancel(client, server_node.node_id)
        assert [(m, src) for m, src, _ in handler.calls] == [("cancel_execution", member.node_id)]


async def test_client_refuses_a_server_certified_by_another_ca(
    cluster: Cluster, foreign_cluster: Cluster
) -> None:
    impostor = foreign_cluster.node()
    # The impostor trusts our CA, so it would accept our clients: only the client can refuse.
    foreign_cluster.trust_other_ca(impostor, cluster)
    member = cluster.node()
    async with serving_compute(impostor) as (server, handler):
        async with ComputeClient(member.identity, member.files, timeout=3) as client:
            client.register_node(impostor.node_id, server.address)
            with pytest.raises(errors.Unavailable):
                await _cancel(client, impostor.node_id)
        async with OrchestratorClient(member.identity, member.files, server.address) as orch:
            with pytest.raises(errors.Unavailable):
                await orch.identify()
            assert orch.orchestrator_node_id is None
        assert handler.calls == []
        # Control: a client that does trust the foreign CA (with a certificate of ours, which
        # the impostor accepts) gets through, so the refusal above was the client's.
        trusting = cluster.node()
        cluster.trust_other_ca(trusting, foreign_cluster)
        async with ComputeClient(trusting.identity, trusting.files) as client:
            client.register_node(impostor.node_id, server.address)
            await _cancel(client, impostor.node_id)
        assert len(handler.calls) == 1


async def test_certificate_without_a_node_id_is_refused(cluster: Cluster, tmp_path: Any) -> None:
    """A certificate from the right CA that names no node cannot make node-to-node calls."""
    server_node = cluster.node()
    files = _certificate_without_node_uri(cluster, tmp_path / "anonymous")
    async with serving_compute(server_node) as (server, handler):
        async with ComputeClient(NodeIdentity.generate(), files) as client:
            client.register_node(server_node.node_id, server.address)
            with pytest.raises(errors.PermissionDenied, match="exactly one node"):
                await _cancel(client, server_node.node_id)
        assert handler.calls == []


def _certificate_without_node_uri(cluster: Cluster, directory: Any) -> NodeFiles:
    ca_dir = cluster.root / "ca"
    ca_key = load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anonymous")]))
        .issuer_name(cluster.ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True)
    files = NodeFiles.in_dir(directory)
    files.tls_key.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    files.tls_key.chmod(0o600)
    files.tls_cert.write_bytes(cert.public_bytes(Encoding.PEM))
    files.ca_cert.write_bytes(cluster.ca.certificate_pem)
    return files


# -- (b) signatures by a key that is not the sender's ------------------------------------------


async def test_message_signed_by_another_key_than_the_tls_peer_is_refused(
    cluster: Cluster,
) -> None:
    requester, compute = cluster.node(), cluster.node()
    stranger = NodeIdentity.generate()  # signs, but the connection is `compute`'s
    async with serving_orchestrator(requester) as (server, handler):
        async with OrchestratorClient(
            stranger, compute.files, server.address, requester.node_id
        ) as client:
            bid = BidResult(
                execution_id="e-1", job_id="j-1", node_id=stranger.node_id, accepted=True
            )
            with pytest.raises(errors.PermissionDenied, match="arrived from node"):
                await client.on_bid_complete(bid)
            with pytest.raises(errors.PermissionDenied):
                await client.report_executions(ExecutionReport(node_id=stranger.node_id))
        assert handler.calls == []


class RawOrchestratorCaller:
    """Sends hand-made envelopes over a real, correctly authenticated mTLS channel."""

    def __init__(self, sender: Node, requester: Node, address: str) -> None:
        self.channel = grpc.aio.secure_channel(
            address, channel_credentials(sender.files), options=channel_options(requester.node_id)
        )
        self.orch = orchestrator_pb2_grpc.OrchestratorServiceStub(self.channel)
        self.node = node_pb2_grpc.NodeServiceStub(self.channel)

    async def bid(self, envelope: types_pb2.SignedPayload) -> None:
        await self.orch.OnBidComplete(
            orchestrator_pb2.OnBidCompleteRequest(bid_result=envelope), timeout=5
        )


async def _expect_permission_denied(call: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ("bacalhau-error-code", "PermissionDenied") in tuple(err.value.trailing_metadata())


async def test_forged_signatures_are_refused_with_permission_denied(cluster: Cluster) -> None:
    requester, compute = cluster.node(), cluster.node()
    stranger = NodeIdentity.generate()
    bid = bid_result_to_proto(
        BidResult(execution_id="e-1", job_id="j-1", node_id=compute.node_id, accepted=True)
    )
    payload = bid.SerializeToString()
    async with serving_orchestrator(requester) as (server, handler):
        raw = RawOrchestratorCaller(compute, requester, server.address)
        try:
            # Claims to be the TLS peer, but signed with another key.
            forged = types_pb2.SignedPayload(
                payload=payload,
                signature=stranger.sign(signing_input("bacalhau.v1.BidResult", payload)),
                signer=compute.node_id,
            )
            await _expect_permission_denied(raw.bid(forged))

            # A genuine signature over different bytes.
            genuine = seal(compute.identity, bid)
            tampered = types_pb2.SignedPayload()
            tampered.CopyFrom(genuine)
            tampered.payload = genuine.payload.replace(b"e-1", b"e-2")
            await _expect_permission_denied(raw.bid(tampered))

            # A genuine signature for another message type (a report) replayed as a bid.
            heartbeat = seal(
                compute.identity,
                execution_report_to_proto(ExecutionReport(node_id=compute.node_id)),
            )
            await _expect_permission_denied(raw.bid(heartbeat))

            # Not signed at all.
            await _expect_permission_denied(
                raw.bid(types_pb2.SignedPayload(payload=payload, signer=compute.node_id))
            )

            # Control: the genuine envelope is accepted.
            await raw.bid(genuine)
        finally:
            await raw.channel.close()
    assert [m for m, _ in handler.calls] == ["on_bid_complete"]


# -- (c) a node claiming another node's ID -----------------------------------------------------


def _claims(victim: str) -> list[tuple[str, Any]]:
    return [
        ("on_bid_complete", BidResult(execution_id="e", job_id="j", node_id=victim, accepted=True)),
        (
            "on_run_complete",
            RunResult(
                execution_id="e",
                job_id="j",
                node_id=victim,
                published_result=SpecConfig(type="local"),
                run_output=RunCommandResult(stdout="forged"),
            ),
        ),
        (
            "on_compute_failure",
            ComputeFailure(execution_id="e", job_id="j", node_id=victim, event=full_event()),
        ),
        ("report_executions", ExecutionReport(node_id=victim, execution_ids=["e"])),
    ]


@pytest.mark.parametrize(
    "method", ["on_bid_complete", "on_run_complete", "on_compute_failure", "report_executions"]
)
async def test_node_cannot_speak_for_another_node(cluster: Cluster, method: str) -> None:
    requester, liar, victim = cluster.node(), cluster.node(), cluster.node()
    message = dict(_claims(victim.node_id))[method]
    async with serving_orchestrator(requester) as (server, handler):
        async with OrchestratorClient(
            liar.identity, liar.files, server.address, requester.node_id
        ) as client:
            with pytest.raises(errors.PermissionDenied, match="claims to be from node"):
                await getattr(client, method)(message)
        assert handler.calls == []


# -- (d) a client pinned to node A reaching node B ---------------------------------------------


async def test_client_pinned_to_one_node_refuses_another_nodes_address(cluster: Cluster) -> None:
    requester, node_a, node_b = cluster.node(), cluster.node(), cluster.node()
    async with (
        serving_compute(node_a) as (server_a, handler_a),
        serving_compute(node_b) as (server_b, handler_b),
        ComputeClient(requester.identity, requester.files, timeout=3) as client,
    ):
        client.register_node(node_a.node_id, server_b.address)  # A's ID, B's address
        ask = AskForBidRequest(execution=full_execution(node_a.node_id))
        with pytest.raises(errors.Unavailable):
            await client.ask_for_bid(node_a.node_id, ask)
        assert handler_b.calls == []
        # Control: at A's real address the same call is delivered to A.
        client.register_node(node_a.node_id, server_a.address)
        await client.ask_for_bid(node_a.node_id, ask)
    assert [(m, src) for m, src, _ in handler_a.calls] == [("ask_for_bid", requester.node_id)]


async def test_compute_node_pinned_to_its_requester_refuses_another(cluster: Cluster) -> None:
    requester, other, compute = cluster.node(), cluster.node(), cluster.node()
    async with serving_orchestrator(other) as (server, handler):
        async with OrchestratorClient(
            compute.identity, compute.files, server.address, requester.node_id, timeout=3
        ) as client:
            with pytest.raises(errors.Unavailable):
                await client.identify()
            with pytest.raises(errors.Unavailable):
                await client.report_executions(ExecutionReport(node_id=compute.node_id))
        assert handler.calls == []


# -- identity statements the compute node must not believe ------------------------------------


class DishonestNodeService(node_pb2_grpc.NodeServiceServicer):
    """A node that answers a challenge with statements that do not hold up."""

    def __init__(self, identity: NodeIdentity, mode: str, caller: str) -> None:
        self.identity = identity
        self.mode = mode
        self.caller = caller

    async def Identify(
        self, request: node_pb2.IdentifyRequest, context: Any
    ) -> node_pb2.IdentifyResponse:
        statement = node_pb2.NodeIdentityStatement(
            node_id=self.identity.node_id,
            roles=["Requester"],
            caller_node_id=self.caller,
            nonce=request.nonce,
        )
        signer = self.identity
        if self.mode == "stale-nonce":
            statement.nonce = b"\x00" * 16
        elif self.mode == "other-caller":
            statement.caller_node_id = NodeIdentity.generate().node_id
        elif self.mode == "names-someone-else":
            statement.node_id = NodeIdentity.generate().node_id
        elif self.mode == "signed-by-stranger":
            signer = NodeIdentity.generate()
            statement.node_id = signer.node_id
        return node_pb2.IdentifyResponse(statement=seal(signer, statement))


@pytest.mark.parametrize(
    ("mode", "pinned"),
    [
        ("stale-nonce", False),
        ("other-caller", False),
        ("names-someone-else", False),
        ("signed-by-stranger", True),
    ],
)
async def test_compute_node_refuses_unsound_identity_statements(
    cluster: Cluster, mode: str, pinned: bool
) -> None:
    requester, compute = cluster.node(), cluster.node()
    service = DishonestNodeService(requester.identity, mode, compute.node_id)
    server = grpc.aio.server()
    node_pb2_grpc.add_NodeServiceServicer_to_server(service, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(requester.files))
    await server.start()
    try:
        async with OrchestratorClient(
            compute.identity,
            compute.files,
            f"127.0.0.1:{port}",
            requester.node_id if pinned else None,
        ) as client:
            with pytest.raises(errors.PermissionDenied):
                await client.identify()
            assert client.orchestrator_node_id == (requester.node_id if pinned else None)
    finally:
        await server.stop(None)


# -- (e) only a trusted requester may command a compute node -----------------------------------

L = LocalExecutionState
COMMANDS = ["ask_for_bid", "bid_accepted", "bid_rejected", "cancel_execution"]


@asynccontextmanager
async def serving_real_compute(
    node: Node, directory: Any, *, trusted: list[str]
) -> AsyncIterator[tuple[NodeServer, ComputeEndpoint, RecordingCallbacks]]:
    """A real compute endpoint (noop executor) behind mTLS, obeying ``trusted`` only."""
    callbacks = RecordingCallbacks()
    with ExecutionStore(directory / "compute.db") as store:
        endpoint = compute_endpoint(
            node.node_id,
            store,
            executors={"noop": NoopExecutor()},
            publishers={"noop": NoopPublisher()},
            results_root=directory / "executions",
            callbacks=callbacks,
            trusted=trusted,
        )
        server = NodeServer(node.identity, node.files)
        server.add_compute_handler(endpoint)
        async with endpoint, server:
            yield server, endpoint, callbacks


async def _command(client: ComputeClient, node_id: str, method: str, execution_id: str) -> None:
    if method == "ask_for_bid":
        injected = noop_execution(Stdout="injected")
        injected.id = execution_id
        injected.node_id = node_id
        await client.ask_for_bid(node_id, AskForBidRequest(injected, wait_for_approval=False))
    elif method == "cancel_execution":
        await client.cancel_execution(node_id, CancelExecutionRequest(execution_id, "forged"))
    else:
        decision = BidDecision(execution_id, accepted=method == "bid_accepted")
        await getattr(client, method)(node_id, decision)


@pytest.mark.parametrize("method", COMMANDS)
async def test_compute_node_obeys_only_the_requester_it_trusts(
    cluster: Cluster, tmp_path: Any, method: str
) -> None:
    requester, compute = cluster.node(), cluster.node()
    # Both hold genuine cluster certificates: a requester this node did not join, and a
    # member that never joined anything.
    other_requester, never_joined = cluster.node(), cluster.node()
    async with (
        serving_real_compute(compute, tmp_path, trusted=[requester.node_id]) as (
            server,
            endpoint,
            callbacks,
        ),
        ComputeClient(requester.identity, requester.files) as legit,
    ):
        legit.register_node(compute.node_id, server.address)
        # The trusted requester's work: a bid waiting for approval and a running execution.
        waiting, running = noop_execution(Stdout="approved"), noop_execution(SleepSeconds=60)
        for execution, wait in ((waiting, True), (running, False)):
            execution.node_id = compute.node_id
            await legit.ask_for_bid(compute.node_id, AskForBidRequest(execution, wait))
        await callbacks.wait_for(waiting.id, BidResult)
        await eventually(lambda: endpoint.store.get(running.id).state is L.RUNNING)
        target = {"ask_for_bid": "e-injected", "cancel_execution": running.id}.get(
            method, waiting.id
        )

        for sender in (other_requester, never_joined):
            async with ComputeClient(sender.identity, sender.files) as client:
                client.register_node(compute.node_id, server.address)
                with pytest.raises(errors.PermissionDenied, match="not a requester"):
                    await _command(client, compute.node_id, method, target)
        assert endpoint.trust.refused == {other_requester.node_id: 1, never_joined.node_id: 1}
        # Nothing was acted on: no injected execution, the bid still waits, the run goes on.
        assert endpoint.store.find("e-injected") is None
        assert endpoint.store.get(waiting.id).state is L.CREATED
        assert endpoint.store.get(running.id).state is L.RUNNING

        # The trusted requester still commands the node.
        await _command(legit, compute.node_id, method, target)
        expected = {
            "ask_for_bid": ("e-injected", L.COMPLETED),
            "bid_accepted": (waiting.id, L.COMPLETED),
            "bid_rejected": (waiting.id, L.BID_REJECTED),
            "cancel_execution": (running.id, L.CANCELLED),
        }[method]
        await eventually(lambda: endpoint.store.get(expected[0]).state is expected[1])


class RawComputeCaller:
    """Sends hand-made requests to a compute node over ``sender``'s genuine mTLS channel."""

    def __init__(self, sender: Node, compute: Node, address: str) -> None:
        self.channel = grpc.aio.secure_channel(
            address, channel_credentials(sender.files), options=channel_options(compute.node_id)
        )
        self.stub = compute_pb2_grpc.ComputeServiceStub(self.channel)
        self.compute_id = compute.node_id

    async def send(self, method: str, envelope: types_pb2.SignedPayload | None) -> None:
        execution = full_execution(self.compute_id)
        requests = {
            # The unsigned first version of each request (envelope None) or the signed one.
            "ask_for_bid": compute_pb2.AskForBidRequest(
                **(
                    {"bid_ask": envelope}
                    if envelope is not None
                    else {"execution": execution_to_proto(execution), "wait_for_approval": False}
                )
            ),
            "bid_accepted": compute_pb2.BidAcceptedRequest(
                **({"bid_acceptance": envelope} if envelope else {"execution_id": "e-1"})
            ),
            "bid_rejected": compute_pb2.BidRejectedRequest(
                **({"bid_rejection": envelope} if envelope else {"execution_id": "e-1"})
            ),
            "cancel_execution": compute_pb2.CancelExecutionRequest(
                **({"cancellation": envelope} if envelope else {"execution_id": "e-1"})
            ),
        }
        rpc = {
            "ask_for_bid": self.stub.AskForBid,
            "bid_accepted": self.stub.BidAccepted,
            "bid_rejected": self.stub.BidRejected,
            "cancel_execution": self.stub.CancelExecution,
        }[method]
        await rpc(requests[method], timeout=5)


def _payload(method: str, requester: str, compute: str) -> Any:
    ids = {"requester_node_id": requester, "compute_node_id": compute}
    if method == "ask_for_bid":
        return ask_for_bid_to_proto(AskForBidRequest(full_execution(compute)), **ids)
    if method == "bid_accepted":
        return bid_accepted_to_proto(BidDecision("e-1", True), **ids)
    if method == "bid_rejected":
        return bid_rejected_to_proto(BidDecision("e-1", False), **ids)
    return cancel_to_proto(CancelExecutionRequest("e-1"), **ids)


@pytest.mark.parametrize("method", COMMANDS)
async def test_unsigned_or_wrongly_signed_commands_are_refused(
    cluster: Cluster, method: str
) -> None:
    requester, compute, other = cluster.node(), cluster.node(), cluster.node()
    stranger = NodeIdentity.generate()
    genuine = seal(requester.identity, _payload(method, requester.node_id, compute.node_id))
    forged = types_pb2.SignedPayload(
        payload=genuine.payload,
        signer=requester.node_id,
        signature=stranger.sign(
            signing_input(_payload(method, "", "").DESCRIPTOR.full_name, genuine.payload)
        ),
    )
    # Signed by the requester itself, but naming another requester or another compute node.
    for_another_requester = seal(
        requester.identity, _payload(method, other.node_id, compute.node_id)
    )
    for_another_node = seal(requester.identity, _payload(method, requester.node_id, other.node_id))
    # A genuine signature over another kind of command (an acceptance sent as a cancellation).
    other_kind = seal(
        requester.identity,
        _payload(
            "bid_accepted" if method != "bid_accepted" else "cancel_execution",
            requester.node_id,
            compute.node_id,
        ),
    )
    async with serving_compute(compute) as (server, handler):
        raw = RawComputeCaller(requester, compute, server.address)
        try:
            for envelope in (None, forged, for_another_requester, for_another_node, other_kind):
                await _expect_permission_denied(raw.send(method, envelope))
            assert handler.calls == []
            # Control: the genuine envelope is delivered, attributed to the requester.
            await raw.send(method, genuine)
        finally:
            await raw.channel.close()
    assert [(m, src) for m, src, _ in handler.calls] == [(method, requester.node_id)]
