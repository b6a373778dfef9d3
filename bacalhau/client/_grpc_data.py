"""Content by CID through the public gRPC API's ``DataService`` (``bacalhau data`` add, get
and ls, and a job's IPFS results), as :mod:`bacalhau.client._data` does through REST."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
import grpc

from bacalhau._proto.v1 import api_pb2
from bacalhau.client._data import (
    DATA_TIMEOUT_SECONDS,
    DataEntry,
    add_content,
    receive_content,
)
from bacalhau.client._download import SkippedEntry
from bacalhau.client._grpc_channel import GrpcChannel
from bacalhau.client._transport import download

__all__ = ["AsyncGrpcDataClient", "GrpcFetcher"]

#: Bytes per message of an upload (well under gRPC's 4 MiB message limit).
_CHUNK = 1 << 20


class GrpcFetcher:
    """Where :meth:`AsyncGrpcClient.download_results` gets results: content by CID through
    ``GetData``, URLs (a compute node's local publisher, a pre-signed S3 URL) over HTTP.
    Close it (:meth:`close`) when done."""

    def __init__(self, channel: GrpcChannel) -> None:
        self._channel = channel
        self._session: aiohttp.ClientSession | None = None

    async def cid(self, cid: str, dest: BinaryIO, *, timeout: float) -> None:
        await self._channel._get_data(cid, "tar", dest, timeout)

    async def url(self, url: str, dest: BinaryIO, *, timeout: float) -> dict[str, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await download(self._session, url, dest, timeout=timeout)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class AsyncGrpcDataClient(GrpcChannel):
    """``bacalhau data`` against one requester's public gRPC API: the same calls as
    :class:`~bacalhau.client.AsyncDataClient` (see it for what they do), and the same
    arguments as :class:`~bacalhau.client.AsyncGrpcClient` to connect. Use as
    ``async with AsyncGrpcDataClient("127.0.0.1:1235") as data``."""

    async def add(self, path: Path, *, cid_version: int = 0, only_hash: bool = False) -> str:
        """Add ``path`` (a file or a directory); returns its CID. Without ``only_hash`` the
        content is uploaded to the cluster (the requester pins it)."""

        async def send(car: Path) -> str:
            try:
                resp: api_pb2.PutDataResponse = await self._data_service.PutData(
                    _chunks_of(car), timeout=DATA_TIMEOUT_SECONDS, metadata=self._metadata
                )
            except grpc.aio.AioRpcError as exc:
                raise self._failure(exc) from None
            return resp.cid

        return await add_content(path, cid_version=cid_version, only_hash=only_hash, send=send)

    async def get(
        self,
        cid: str,
        dest: Path,
        *,
        car: bool = False,
        skipped: list[SkippedEntry] | None = None,
    ) -> Path:
        """Download ``cid`` (or ``CID/path/inside``) into directory ``dest``: as
        ``dest/CID``, or with ``car`` as ``dest/CID.car``; returns what was written."""
        fmt = "car" if car else "tar"

        async def fetch(out: BinaryIO) -> None:
            await self._get_data(cid, fmt, out, DATA_TIMEOUT_SECONDS)

        return await receive_content(dest, car=car, skipped=skipped, download=fetch)

    async def ls(self, cid: str) -> list[DataEntry]:
        """The entries of directory ``cid`` (or the one file it is)."""
        resp: api_pb2.ListDataResponse = await self._call(
            self._data_service.ListData, api_pb2.ListDataRequest(cid=cid)
        )
        return [DataEntry(e.name, e.cid, e.type, e.size) for e in resp.entries]


async def _chunks_of(car: Path) -> AsyncIterator[api_pb2.PutDataRequest]:
    with car.open("rb") as body:
        while chunk := await asyncio.to_thread(body.read, _CHUNK):
            yield api_pb2.PutDataRequest(chunk=chunk)
