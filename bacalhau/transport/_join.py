"""The Join call: a node without a cluster certificate gets one with the join token.

See :mod:`bacalhau.identity._join_token` for the scheme. The requester serves
:class:`JoinServicer`; a joining node calls :func:`join_cluster`. Both ends run over the
requester's usual gRPC port: the requester picks its join certificate by SNI, and TLS
succeeds only when both ends derived the same join CA from the same token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from bacalhau._proto.v1 import node_pb2, node_pb2_grpc
from bacalhau.errors import BacalhauError, InvalidConfiguration, InvalidRequest, Unavailable
from bacalhau.identity import NodeIdentity, verify
from bacalhau.identity._join_token import (
    JOIN_SERVER_NAME,
    JoinAuthority,
    join_proof_payload,
    spki_der,
)
from bacalhau.transport._errors import abort_with, error_from_metadata, unexpected
from bacalhau.transport._peer import joining_peer

__all__ = ["MAX_JOIN_HOSTS", "Certify", "JoinServicer", "Joined", "join_cluster"]

log = logging.getLogger(__name__)

#: The most host names a joining node may ask its certificate to carry.
MAX_JOIN_HOSTS = 32
#: What issues a certificate: (node ID, TLS key, hosts) -> (certificate PEM, CA PEM).
Certify = Callable[[str, ec.EllipticCurvePublicKey, Sequence[str]], tuple[bytes, bytes]]


class JoinServicer(node_pb2_grpc.JoinServiceServicer):
    """Serves JoinService on a requester that has a join token and the cluster CA's key."""

    def __init__(self, certify: Certify) -> None:
        self._certify = certify

    async def Join(self, request: node_pb2.JoinRequest, context: Any) -> node_pb2.JoinResponse:
        try:
            node_id, tls_key = joining_peer(context)
            verify(node_id, join_proof_payload(spki_der(tls_key)), request.identity_signature)
            hosts = list(request.hosts)
            if len(hosts) > MAX_JOIN_HOSTS or any(len(h) > 253 for h in hosts):
                raise InvalidRequest(
                    f"a joining node may name at most {MAX_JOIN_HOSTS} hosts of up to 253 "
                    "characters",
                    details={"Field": "hosts"},
                    component="Transport",
                )
            cert, ca = self._certify(node_id, tls_key, hosts)
            return node_pb2.JoinResponse(certificate=cert, ca_certificate=ca)
        except Exception as e:
            err = e if isinstance(e, BacalhauError) else unexpected(e, "Join")
            await abort_with(context, err)


@dataclass(frozen=True, slots=True)
class Joined:
    """What joining gave: the TLS key (PEM, PKCS#8), its certificate and the cluster CA's."""

    tls_key: bytes
    certificate: bytes
    ca_certificate: bytes


async def join_cluster(
    address: str,
    identity: NodeIdentity,
    authority: JoinAuthority,
    hosts: Sequence[str],
    *,
    timeout: float = 10.0,
) -> Joined:
    """Ask the requester at ``address`` for a cluster certificate, with a new TLS key.

    Raises :class:`InvalidConfiguration` when the requester does not take this node's token
    (the TLS handshake fails: the tokens differ, or it has none), :class:`Unavailable` when it
    cannot be reached, and the requester's own error when it refuses the request.
    """
    tls_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = tls_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    cert = authority.client_certificate(tls_key.public_key(), identity.node_id)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=authority.certificate_pem,
        private_key=key_pem,
        certificate_chain=cert.public_bytes(Encoding.PEM),
    )
    options = [("grpc.ssl_target_name_override", JOIN_SERVER_NAME)]
    proof = identity.sign(join_proof_payload(spki_der(tls_key.public_key())))
    request = node_pb2.JoinRequest(identity_signature=proof, hosts=list(hosts))
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        try:
            answer = await node_pb2_grpc.JoinServiceStub(channel).Join(request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            _raise_join_error(address, e)
    return Joined(key_pem, answer.certificate, answer.ca_certificate)


def _raise_join_error(address: str, exc: grpc.aio.AioRpcError) -> NoReturn:
    message = exc.details() or exc.code().name
    err = error_from_metadata(exc.trailing_metadata(), message)
    if err is not None:
        raise type(err)(
            f"the requester at {address} refused to let this node join: {err.message}",
            hint=err.hint,
            component=err.component,
            details=err.details,
        )
    if "WRONG_VERSION_NUMBER" in message or "http2" in message.lower():
        # Something answered, but not TLS (an HTTP port such as the REST API's).
        raise InvalidConfiguration(
            f"{address} does not speak TLS: it is not a requester's gRPC port",
            hint="give the requester's gRPC port (Orchestrator.Port, 4222 by default), not "
            "its API port",
            details={"Field": "Compute.Orchestrators"},
        )
    if "handshake" in message.lower():
        raise InvalidConfiguration(
            f"the requester at {address} did not take this node's join token (the TLS "
            "handshake failed)",
            hint="set the same token on both nodes (Compute.Auth.Token here, Orchestrator.Auth."
            "Token on the requester), and check that the address is the requester's gRPC port",
            details={"Field": "Compute.Auth.Token"},
        )
    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
        raise InvalidConfiguration(
            f"the requester at {address} lets no node join with a token",
            hint="set Orchestrator.Auth.Token on the requester, or certify this node with "
            "`bacalhau ca issue`",
        )
    raise Unavailable(
        f"the requester at {address} is unreachable: {message}",
        hint="check that it runs and that the address is its gRPC port",
        component="Transport",
    )
