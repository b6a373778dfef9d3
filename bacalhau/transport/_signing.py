"""Signed envelopes for the messages a node vouches for.

A :class:`SignedPayload` holds a serialized message, its signer's node ID and the signer's
ed25519 signature over::

    b"bacalhau.v1.signed\\x00" + <full protobuf type name> + b"\\x00" + <payload bytes>

Binding the type name stops a signature for one kind of message from passing as another. The
receiver verifies the exact bytes received before parsing them, so no canonical encoding is
needed. Together with the TLS binding (the signer must be the TLS peer) a node can neither
speak for another node nor have its words replayed by one.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from bacalhau._proto.v1.types_pb2 import SignedPayload
from bacalhau.errors import InvalidRequest, PermissionDenied
from bacalhau.identity import NodeIdentity, verify

M = TypeVar("M", bound=Message)

_DOMAIN = b"bacalhau.v1.signed\x00"


def signing_input(type_name: str, payload: bytes) -> bytes:
    return b"".join((_DOMAIN, type_name.encode("ascii"), b"\x00", payload))


def seal(identity: NodeIdentity, message: Message) -> SignedPayload:
    """Serialize ``message`` and sign it as ``identity``."""
    payload = message.SerializeToString()
    signature = identity.sign(signing_input(message.DESCRIPTOR.full_name, payload))
    return SignedPayload(payload=payload, signature=signature, signer=identity.node_id)


def open_sealed(envelope: SignedPayload, message_type: type[M], *, expected_signer: str) -> M:
    """Check an envelope and return its message.

    ``expected_signer`` is the node the envelope must come from (server side: the TLS peer).
    Raises :class:`PermissionDenied` if the signer differs or the signature does not verify,
    :class:`InvalidRequest` if the verified payload does not parse.
    """
    if not envelope.signer or not envelope.signature:
        raise PermissionDenied("the message is not signed", hint="upgrade the sending node")
    if envelope.signer != expected_signer:
        raise PermissionDenied(
            f"a message signed by node {envelope.signer} arrived from node {expected_signer}",
            hint="a node may only send messages it signed itself",
        )
    verify(
        envelope.signer,
        signing_input(message_type.DESCRIPTOR.full_name, envelope.payload),
        envelope.signature,
    )
    try:
        return message_type.FromString(envelope.payload)
    except DecodeError:
        raise InvalidRequest(
            f"signed {message_type.DESCRIPTOR.full_name} from {envelope.signer} does not parse",
            component="Transport",
        ) from None


def check_speaker(claimed_node_id: str, signer: str, what: str) -> None:
    """Refuse a payload whose node ID is not its signer's: a node speaks only for itself."""
    if claimed_node_id != signer:
        raise PermissionDenied(
            f"{what} signed by node {signer} claims to be from node {claimed_node_id!r}",
            hint="a node may only report on its own behalf",
        )


def check_addressee(addressee: str, node_id: str, what: str) -> None:
    """Refuse a signed command meant for another node: a signature vouches for one receiver."""
    if addressee != node_id:
        raise PermissionDenied(
            f"{what} is addressed to node {addressee!r}, not to this node ({node_id})",
            hint="a requester's signed command is valid only at the node it names",
        )
