"""BlockService over mutual-TLS gRPC: the wire of the block exchange.

- :class:`BlockServicer` serves blocks from the node's store to any cluster member (the TLS
  handshake already proved the caller is one). It reads and verifies blocks off the event
  loop, a few at a time, so a large request neither blocks other calls nor sits in memory.
- :class:`BlockClient` is the exchange's :class:`bacalhau.storage.BlockPeers`: one warm
  channel per member, pinned to its node ID.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Protocol

import grpc

from bacalhau._proto.v1 import blocks_pb2 as pb
from bacalhau._proto.v1 import blocks_pb2_grpc
from bacalhau.errors import BacalhauError, BlockNotFound, CorruptBlock, InvalidCID, InvalidRequest
from bacalhau.identity import NodeFiles
from bacalhau.storage import BlockPeer
from bacalhau.storage.cid import CID
from bacalhau.transport._channel import NodeChannel
from bacalhau.transport._errors import abort_with, error_from_rpc, unexpected
from bacalhau.transport._peer import peer_node_id
from bacalhau.transport._tls import TlsMaterial, tls_material

#: Most CIDs one GetBlocks or HasBlocks call may name (bounds the work one call asks for).
MAX_CIDS_PER_CALL = 1024
#: Blocks read from the store per trip to the reading thread.
_READ_CHUNK = 4
#: Deadline of one GetBlocks call: generous, a batch is a few MiB.
BLOCK_CALL_TIMEOUT_SECONDS = 60.0


class BlockReader(Protocol):
    """What the server needs of a blockstore."""

    def has(self, cid: CID) -> bool: ...

    def get(self, cid: CID) -> bytes:
        """Verified bytes; :class:`BlockNotFound` or :class:`CorruptBlock` otherwise."""
        ...


def _cids(raw: Sequence[bytes]) -> list[CID]:
    if len(raw) > MAX_CIDS_PER_CALL:
        raise InvalidRequest(
            f"{len(raw)} CIDs in one call; at most {MAX_CIDS_PER_CALL}", component="Blocks"
        )
    try:
        return [CID(bytes(b)) for b in raw]
    except InvalidCID as err:
        raise InvalidRequest(err.message, component="Blocks") from None


class BlockServicer(blocks_pb2_grpc.BlockServiceServicer):
    """Serves BlockService from ``store``."""

    def __init__(self, store: BlockReader) -> None:
        self._store = store

    def _read(self, cids: list[CID]) -> list[pb.GetBlocksResponse]:
        out = []
        for cid in cids:
            try:
                data = self._store.get(cid)
            except (BlockNotFound, CorruptBlock):
                # A damaged local copy is as good as none: the caller asks elsewhere.
                out.append(pb.GetBlocksResponse(cid=cid.binary, missing=True))
                continue
            out.append(pb.GetBlocksResponse(cid=cid.binary, data=data))
        return out

    async def GetBlocks(
        self, request: pb.GetBlocksRequest, context: Any
    ) -> AsyncIterator[pb.GetBlocksResponse]:
        try:
            peer_node_id(context)  # a cluster member (not a node that is only joining)
            cids = _cids(request.cids)
        except BacalhauError as err:
            await abort_with(context, err)
        for start in range(0, len(cids), _READ_CHUNK):
            try:
                answers = await asyncio.to_thread(self._read, cids[start : start + _READ_CHUNK])
            except Exception as e:
                failure = e if isinstance(e, BacalhauError) else unexpected(e, "GetBlocks")
                await abort_with(context, failure)
            for answer in answers:
                yield answer

    async def HasBlocks(self, request: pb.HasBlocksRequest, context: Any) -> pb.HasBlocksResponse:
        try:
            peer_node_id(context)
            cids = _cids(request.cids)
            has = await asyncio.to_thread(lambda: [self._store.has(c) for c in cids])
        except Exception as e:
            failure = e if isinstance(e, BacalhauError) else unexpected(e, "HasBlocks")
            await abort_with(context, failure)
        return pb.HasBlocksResponse(has=has)


def add_block_service(server: Any, store: BlockReader) -> BlockServicer:
    """Serve BlockService from ``store`` on a grpc.aio ``server`` (before it starts)."""
    servicer = BlockServicer(store)
    blocks_pb2_grpc.add_BlockServiceServicer_to_server(servicer, server)
    return servicer


class BlockClient:
    """Asks members for blocks (a :class:`bacalhau.storage.BlockPeers`); every failure is a
    :class:`bacalhau.errors.BacalhauError`."""

    def __init__(
        self, files: NodeFiles | TlsMaterial, *, timeout: float = BLOCK_CALL_TIMEOUT_SECONDS
    ) -> None:
        self._tls = tls_material(files)
        self._timeout = timeout
        self._channels: dict[tuple[str, str], tuple[NodeChannel, Any]] = {}

    def _stub(self, peer: BlockPeer) -> tuple[NodeChannel, Any]:
        key = (peer.node_id, peer.address)
        entry = self._channels.get(key)
        if entry is not None and entry[0].generation != self._tls.generation:
            entry[0].retire()  # renewed credentials: a new channel carries them
            entry = None
        if entry is None:
            channel = NodeChannel(peer.address, self._tls, peer.node_id)
            entry = (channel, blocks_pb2_grpc.BlockServiceStub(channel.channel))
            self._channels[key] = entry
        return entry

    async def get_blocks(
        self, peer: BlockPeer, cids: Sequence[CID]
    ) -> AsyncIterator[tuple[CID, bytes | None]]:
        channel, stub = self._stub(peer)
        call = stub.GetBlocks(
            pb.GetBlocksRequest(cids=[c.binary for c in cids]), timeout=self._timeout
        )
        asked = {c.binary: c for c in cids}
        try:
            async for answer in call:
                cid = asked.get(answer.cid)
                if cid is None:
                    continue  # not asked for: ignore rather than trust
                yield cid, None if answer.missing else answer.data
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, peer=channel.describe()) from e

    async def has_blocks(self, peer: BlockPeer, cids: Sequence[CID]) -> list[bool]:
        channel, stub = self._stub(peer)
        try:
            reply = await stub.HasBlocks(
                pb.HasBlocksRequest(cids=[c.binary for c in cids]), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, peer=channel.describe()) from e
        return list(reply.has)

    async def close(self) -> None:
        channels = [c for c, _ in self._channels.values()]
        self._channels.clear()
        for channel in channels:
            await channel.close()

    async def __aenter__(self) -> BlockClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
