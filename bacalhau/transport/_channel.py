"""Warm, pinned channels to peer nodes and the one way calls go through them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from bacalhau.transport._errors import CODE_KEY, error_from_rpc
from bacalhau.transport._tls import TlsMaterial, channel_options

R = TypeVar("R")


def format_address(host: str, port: int) -> str:
    """``host:port``, bracketing IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


#: Default deadline of one node-to-node call. Handlers only acknowledge, so a healthy peer
#: answers in about a millisecond; the margin covers a loaded node or a slow link.
DEFAULT_TIMEOUT_SECONDS = 10.0
#: How long the single retry of a call whose connection failed waits for its channel to
#: connect again: past the longest reconnect backoff (see ``channel_options``), so a peer
#: listening again is reached; short on the job path.
_READY_WAIT_SECONDS = 0.5


class NodeChannel:
    """One long-lived gRPC channel to one node.

    With ``expected_node_id`` the channel is pinned: its TLS handshake only succeeds with a
    certificate issued for that node ID. Channels are reused for every call to the node, so
    only the first call pays for the connection and the handshake.
    """

    __slots__ = ("address", "channel", "expected_node_id", "generation")

    def __init__(self, address: str, tls: TlsMaterial, expected_node_id: str | None) -> None:
        self.address = address
        self.expected_node_id = expected_node_id
        #: The :attr:`TlsMaterial.generation` the channel was opened with.
        self.generation = tls.generation
        self.channel: Any = grpc.aio.secure_channel(
            address, tls.channel_credentials, options=channel_options(expected_node_id)
        )

    def describe(self) -> str:
        who = f"node {self.expected_node_id}" if self.expected_node_id else "the node"
        return f"{who} at {self.address}"

    async def close(self) -> None:
        await self.channel.close(None)

    def retire(self) -> None:
        """Close the channel once the calls it may carry have had time to end (it was
        replaced by one opened with renewed credentials)."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(_close_later(self))
        _retiring.add(task)
        task.add_done_callback(_retiring.discard)


#: Channels waiting to be closed (held so that their tasks are not collected).
_retiring: set[asyncio.Task[None]] = set()
#: How long a replaced channel stays open for the calls under way on it.
_RETIRE_AFTER_SECONDS = 30.0


async def _close_later(channel: NodeChannel) -> None:
    await asyncio.sleep(_RETIRE_AFTER_SECONDS)
    await channel.channel.close(None)


def _connection_failed(exc: Any) -> bool:
    """UNAVAILABLE from the transport itself, not an Unavailable error raised by the peer.

    Such a call almost always never reached the peer's handler; when a connection drops
    mid-call it may have, which is why handlers are idempotent on the execution ID.
    """
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    return not any(key == CODE_KEY for key, _ in exc.trailing_metadata() or ())


async def unary_call(
    method: Callable[..., Awaitable[R]],
    request: Any,
    *,
    channel: NodeChannel,
    timeout: float,
) -> R:
    """Make one unary call through ``channel``; retry once, quickly, if the connection
    failed.

    The retry first waits (at most :data:`_READY_WAIT_SECONDS`) for the channel to connect
    again: a channel still backing off from its peer's downtime fails calls at once, so a
    node that has just restarted at the same address would otherwise fail its first call
    ("Connection refused") though it listens.

    Every gRPC error leaves here as a :class:`bacalhau.errors.BacalhauError`.
    """
    try:
        return await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as e:
        if not _connection_failed(e):
            raise error_from_rpc(e, peer=channel.describe()) from e
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(channel.channel.channel_ready(), _READY_WAIT_SECONDS)
    try:
        return await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as e:
        raise error_from_rpc(e, peer=channel.describe()) from e
