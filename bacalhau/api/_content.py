"""Content by CID for both API edges (REST ``/api/v1/data`` and gRPC ``DataService``): an
upload spooled and imported, and a download streamed from a worker thread.

The content store's reads and writes block (files, SQLite), so they run in a worker thread;
what crosses to the event loop is a bounded queue of chunks, so a slow client slows the
writer instead of filling memory.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import Any, BinaryIO, Protocol

from bacalhau.errors import BacalhauError, BadQuery, RequestTooLarge

#: Largest upload accepted unless configured otherwise.
DEFAULT_MAX_UPLOAD_BYTES = 16 * 2**30
#: Uploads are kept in memory up to this size, then spooled to disk.
_SPOOL_IN_MEMORY = 8 * 2**20
#: Chunks streamed to the client (and buffered between the writer thread and the socket).
CHUNK = 2**20
_QUEUED_CHUNKS = 8

#: The formats content is sent in, and their media types.
FORMATS = {"tar": "application/x-tar", "car": "application/vnd.ipld.car"}


class ContentStore(Protocol):
    """The requester's content store, as the data APIs use it (CIDs as text; a text that
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


async def import_upload(
    content: ContentStore, chunks: AsyncIterable[bytes], limit: int, *, field: str | None = None
) -> list[str]:
    """Spool the CAR arriving in ``chunks`` (refused once past ``limit`` bytes: ``field``
    names where they come from) and import it; returns its roots, pinned."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(
                    f"the upload is larger than this requester accepts ({limit} bytes)",
                    details={"Field": field} if field else None,
                    hint="raise the requester's data_upload_max_bytes setting, or split the data",
                )
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        try:
            return await asyncio.to_thread(content.add_car, spool)  # type: ignore[arg-type]
        except BacalhauError as err:
            # The upload is at fault (not a CAR, incomplete, a block not matching its CID):
            # named where it came from. A fault of the node's (a full disk) is not.
            if field and not err.field and err.http_status < 500:
                err.details["Field"] = err.field = field
            raise


def check_format(fmt: str, *, field: str = "format") -> str:
    """``fmt`` in lower case ("" is ``tar``), or :class:`BadQuery` naming ``field``."""
    fmt = (fmt or "tar").lower()
    if fmt not in FORMATS:
        raise BadQuery(f"unknown format {fmt[:100]!r}", field=field, hint="use tar or car")
    return fmt


async def open_content(content: ContentStore, text: str, fmt: str) -> AsyncGenerator[bytes, None]:
    """The content ``text`` in ``fmt`` (see :func:`check_format`) as chunks of at most
    :data:`CHUNK` bytes.

    What can be found wrong before any byte is sent (an unknown CID, content missing from the
    cluster, a tar whose members would leave its root) is raised here, by this coroutine;
    a failure while writing is raised by the iterator, after the chunks already given.
    Leaving the iteration early (``aclose``) stops the writer thread."""
    await content.ensure(text)
    if fmt == "tar":
        await asyncio.to_thread(content.check_tar, text)
    write: Callable[[str, BinaryIO], None] = (
        content.write_car if fmt == "car" else content.write_tar
    )
    return _chunks(write, text)


class _QueueWriter(io.RawIOBase):
    """A file object whose writes (from a worker thread) become chunks on an asyncio queue."""

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


async def _chunks(write: Callable[[str, BinaryIO], None], text: str) -> AsyncGenerator[bytes, None]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUED_CHUNKS)
    raw = _QueueWriter(loop, queue)

    def produce() -> None:
        try:
            with io.BufferedWriter(raw, CHUNK) as out:
                write(text, out)
        finally:
            if not raw.abandoned:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    producer = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
    except BaseException:  # the consumer left (GeneratorExit) or was cancelled
        raw.abandoned = True
        while not producer.done():  # unblock the writer so its thread ends
            while not queue.empty():
                queue.get_nowait()
            await asyncio.sleep(0.01)
        if not producer.cancelled():
            producer.exception()  # retrieved: the writer's BrokenPipeError is expected
        raise
    await producer  # a failure part-way is raised after the chunks sent
