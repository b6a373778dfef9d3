"""``/api/v1/data``: content by CID for clients outside the cluster (``bacalhau data``).

- ``PUT /api/v1/data`` with a CAR v1 body (streamed to a spool file, at most the configured
  upload limit): every block is verified, each root's DAG must be complete, the roots are
  pinned in the requester's blockstore. Answers ``{"CID": root, "Roots": [...]}``. Compute
  nodes fetch the content from the requester by block exchange when a job reads it.
- ``GET /api/v1/data/{cid}?format=tar|car``: the content as an uncompressed tar (a file, or a
  directory tree, under the CID's name) or as a CAR, streamed. Content the requester lacks
  (a job's published result) is fetched from the cluster first.
- ``GET /api/v1/data/{cid}/ls``: the entries of a directory (or the one file).
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from aiohttp import web

from bacalhau.api._errors import json_response
from bacalhau.api._query import Query
from bacalhau.errors import BadQuery, InvalidRequest

log = logging.getLogger(__name__)

#: Largest upload accepted unless configured otherwise.
DEFAULT_MAX_UPLOAD_BYTES = 16 * 2**30
#: Uploads are kept in memory up to this size, then spooled to disk.
_SPOOL_IN_MEMORY = 8 * 2**20
#: Chunks streamed to the client (and buffered between the writer thread and the socket).
_CHUNK = 2**20
_QUEUED_CHUNKS = 8

FORMATS = {"tar": "application/x-tar", "car": "application/vnd.ipld.car"}


class ContentStore(Protocol):
    """The requester's content store, as the data routes use it (CIDs as text; a text that
    is not a CID raises :class:`~bacalhau.errors.InvalidCID`)."""

    def add_car(self, stream: BinaryIO) -> list[str]:
        """Import a CAR (blocking); returns its roots, pinned."""
        ...

    async def ensure(self, text: str) -> None:
        """Make the whole DAG present here (fetched from the cluster if need be)."""
        ...

    async def ensure_listing(self, text: str) -> None:
        """Make present what listing ``text`` takes (not the entries' content)."""
        ...

    def write_car(self, text: str, out: BinaryIO) -> None: ...

    def check_tar(self, text: str) -> None:
        """Raise when the content cannot be sent as a tar whose members all stay below its
        root (blocking)."""
        ...

    def write_tar(self, text: str, out: BinaryIO) -> None: ...

    def ls(self, text: str) -> list[dict[str, Any]]: ...


CONTENT = web.AppKey("bacalhau_data_content", ContentStore)
MAX_UPLOAD = web.AppKey("bacalhau_data_max_upload", int)


async def put_data(request: web.Request) -> web.Response:
    content = request.app[CONTENT]
    limit = request.app[MAX_UPLOAD]
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        size = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise InvalidRequest(
                    f"the upload is larger than this requester accepts ({limit} bytes)",
                    hint="raise the requester's data_upload_max_bytes setting, or split the data",
                )
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        roots = await asyncio.to_thread(content.add_car, spool)  # type: ignore[arg-type]
    return json_response({"CID": roots[0], "Roots": roots}, status=201)


class _QueueWriter(io.RawIOBase):
    """A file object whose writes (from a worker thread) become chunks on an asyncio queue;
    the queue is bounded, so a slow client slows the writer instead of filling memory."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]):
        self._loop = loop
        self._queue = queue
        self.abandoned = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.abandoned:
            raise BrokenPipeError("the client went away")
        chunk = bytes(data)
        asyncio.run_coroutine_threadsafe(self._queue.put(chunk), self._loop).result()
        return len(chunk)


async def get_data(request: web.Request) -> web.StreamResponse:
    content = request.app[CONTENT]
    text = request.match_info["cid"]
    fmt = Query(request).text("format", "tar").lower()
    if fmt not in FORMATS:
        raise BadQuery(f"unknown format {fmt!r}", field="format", hint="use tar or car")
    await content.ensure(text)
    if fmt == "tar":
        # Refused with an error answer, before the status line is sent.
        await asyncio.to_thread(content.check_tar, text)
    write: Callable[[str, BinaryIO], None] = (
        content.write_car if fmt == "car" else content.write_tar
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUED_CHUNKS)
    raw = _QueueWriter(loop, queue)

    def produce() -> None:
        try:
            with io.BufferedWriter(raw, _CHUNK) as out:
                write(text, out)
        finally:
            if not raw.abandoned:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    response = web.StreamResponse(headers={"Content-Type": FORMATS[fmt]})
    await response.prepare(request)
    producer = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while (chunk := await queue.get()) is not None:
            await response.write(chunk)
    except BaseException:
        raw.abandoned = True
        while not producer.done():  # unblock the writer so its thread ends
            while not queue.empty():
                queue.get_nowait()
            await asyncio.sleep(0.01)
        raise
    try:
        await producer
    except Exception:
        # The status and part of the body are sent: no error answer can follow. Cut the
        # connection, so the client sees the download cut short rather than waiting for
        # the rest of a chunked body.
        log.exception("sending %s failed part-way; the connection is cut", text)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def ls_data(request: web.Request) -> web.Response:
    content = request.app[CONTENT]
    text = request.match_info["cid"]
    await content.ensure_listing(text)
    entries = await asyncio.to_thread(content.ls, text)
    return json_response({"CID": text, "Entries": entries})


def add_routes(
    app: web.Application, content: ContentStore, *, max_upload: int = DEFAULT_MAX_UPLOAD_BYTES
) -> None:
    app[CONTENT] = content
    app[MAX_UPLOAD] = max_upload
    app.router.add_put("/api/v1/data", put_data)
    app.router.add_get("/api/v1/data/{cid}", get_data)
    app.router.add_get("/api/v1/data/{cid}/ls", ls_data)
