"""MembershipService over mutual-TLS gRPC: the gossip core's network, and nothing more.

- :class:`MembershipServicer` turns each call into ``deliver(sender, message)`` after checking
  that the request's ``sender_node_id`` is the TLS peer (a node cannot speak for another);
  node records inside are verified by the core, which counts what it rejects.
- :class:`MembershipClient` is a :class:`bacalhau.gossip.Network`: one warm channel per peer,
  pinned to the peer's node ID when the core names one (a seed address is reached unpinned,
  but only a certificate from the cluster CA is accepted there either).
- :func:`add_membership_service` adds the service to a grpc.aio server (``NodeServer`` does
  it for every node).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any

import grpc

from bacalhau._proto.v1 import membership_pb2 as pb
from bacalhau._proto.v1 import membership_pb2_grpc
from bacalhau.errors import BacalhauError, PermissionDenied
from bacalhau.gossip import Ack, Gossip, Message, Nack, Outbound, Ping, PingReq
from bacalhau.identity import NodeFiles, NodeIdentity
from bacalhau.transport._channel import NodeChannel
from bacalhau.transport._convert_membership import (
    MembershipRequest,
    message_from_proto,
    message_to_proto,
)
from bacalhau.transport._errors import abort_with, error_from_rpc, unexpected
from bacalhau.transport._peer import peer_node_id
from bacalhau.transport._tls import TlsMaterial, tls_material

log = logging.getLogger(__name__)

#: Deadline of one membership call. Calls are one-way and the core never waits for them (its
#: own timers decide what a silence means), so this only bounds a stuck connection.
MEMBERSHIP_CALL_TIMEOUT_SECONDS = 2.0

Deliver = Callable[[str, Message], None]


class MembershipServicer(membership_pb2_grpc.MembershipServiceServicer):
    """Serves MembershipService by handing every message to ``deliver`` (non-blocking)."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        #: Messages refused before the core saw them, by reason ("misattributed": the sender
        #: named is not the TLS peer; "malformed": it does not convert).
        self.refused: Counter[str] = Counter()

    async def _handle(self, request: MembershipRequest, context: Any, method: str) -> None:
        try:
            peer = peer_node_id(context)
            if request.sender_node_id != peer:
                self.refused["misattributed"] += 1
                raise PermissionDenied(
                    f"a membership {method} from node {peer} claims to come from node "
                    f"{request.sender_node_id!r}",
                    hint="a node may only send membership messages as itself",
                )
            try:
                message = message_from_proto(request)
            except Exception:
                self.refused["malformed"] += 1
                raise
            self._deliver(peer, message)
        except Exception as e:
            err = e if isinstance(e, BacalhauError) else unexpected(e, method)
            await abort_with(context, err)

    async def Ping(self, request: pb.PingRequest, context: Any) -> pb.PingResponse:
        await self._handle(request, context, "Ping")
        return pb.PingResponse()

    async def Ack(self, request: pb.AckRequest, context: Any) -> pb.AckResponse:
        await self._handle(request, context, "Ack")
        return pb.AckResponse()

    async def PingReq(self, request: pb.PingReqRequest, context: Any) -> pb.PingReqResponse:
        await self._handle(request, context, "PingReq")
        return pb.PingReqResponse()

    async def Nack(self, request: pb.NackRequest, context: Any) -> pb.NackResponse:
        await self._handle(request, context, "Nack")
        return pb.NackResponse()

    async def Gossip(self, request: pb.GossipRequest, context: Any) -> pb.GossipResponse:
        await self._handle(request, context, "Gossip")
        return pb.GossipResponse()

    async def PushPull(self, request: pb.PushPullRequest, context: Any) -> pb.PushPullResponse:
        await self._handle(request, context, "PushPull")
        return pb.PushPullResponse()


def add_membership_service(server: Any, deliver: Deliver) -> MembershipServicer:
    """Serve MembershipService on a grpc.aio ``server`` (before it starts)."""
    servicer = MembershipServicer(deliver)
    membership_pb2_grpc.add_MembershipServiceServicer_to_server(servicer, server)
    return servicer


class MembershipClient:
    """Sends the core's messages as MembershipService calls (a gossip ``Network``).

    Every failure (unreachable peer, refused call, deadline) is raised as a
    :class:`bacalhau.errors.BacalhauError`; the runner treats it as a lost datagram.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        files: NodeFiles | TlsMaterial,
        *,
        timeout: float = MEMBERSHIP_CALL_TIMEOUT_SECONDS,
    ) -> None:
        self._identity = identity
        self._tls = tls_material(files)
        self._timeout = timeout
        self._channels: dict[tuple[str | None, str], tuple[NodeChannel, Any]] = {}

    def _stub(self, node_id: str | None, address: str) -> tuple[NodeChannel, Any]:
        key = (node_id, address)
        entry = self._channels.get(key)
        if entry is not None and entry[0].generation != self._tls.generation:
            entry[0].retire()  # renewed credentials: a new channel carries them
            entry = None
        if entry is None:
            channel = NodeChannel(address, self._tls, node_id)
            entry = (channel, membership_pb2_grpc.MembershipServiceStub(channel.channel))
            self._channels[key] = entry
        return entry

    async def send(self, outbound: Outbound) -> None:
        channel, stub = self._stub(outbound.node_id, outbound.address)
        message = outbound.message
        request = message_to_proto(message, sender=self._identity.node_id)
        if isinstance(message, Ping):
            method = stub.Ping
        elif isinstance(message, Ack):
            method = stub.Ack
        elif isinstance(message, PingReq):
            method = stub.PingReq
        elif isinstance(message, Nack):
            method = stub.Nack
        elif isinstance(message, Gossip):
            method = stub.Gossip
        else:
            method = stub.PushPull
        try:
            await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, peer=channel.describe()) from e

    async def forget(self, node_id: str) -> None:
        """Close the channels to a member that is gone for good."""
        for key in [k for k in self._channels if k[0] == node_id]:
            channel, _ = self._channels.pop(key)
            await channel.close()

    async def close(self) -> None:
        channels = [c for c, _ in self._channels.values()]
        self._channels.clear()
        for channel in channels:
            await channel.close()

    async def __aenter__(self) -> MembershipClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
