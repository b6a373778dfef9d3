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
import logging

from aiohttp import web

from bacalhau.api._content import (
    CHUNK,
    DEFAULT_MAX_UPLOAD_BYTES,
    FORMATS,
    ContentStore,
    check_format,
    import_upload,
    open_content,
)
from bacalhau.api._errors import json_response
from bacalhau.api._query import Query

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "ContentStore", "add_routes"]

log = logging.getLogger(__name__)

CONTENT = web.AppKey("bacalhau_data_content", ContentStore)
MAX_UPLOAD = web.AppKey("bacalhau_data_max_upload", int)


async def put_data(request: web.Request) -> web.Response:
    roots = await import_upload(
        request.app[CONTENT], request.content.iter_chunked(CHUNK), request.app[MAX_UPLOAD]
    )
    return json_response({"CID": roots[0], "Roots": roots}, status=201)


async def get_data(request: web.Request) -> web.StreamResponse:
    text = request.match_info["cid"]
    fmt = check_format(Query(request).text("format", "tar"))
    # Refused with an error answer, before the status line is sent.
    chunks = await open_content(request.app[CONTENT], text, fmt)
    response = web.StreamResponse(headers={"Content-Type": FORMATS[fmt]})
    await response.prepare(request)
    try:
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception:
                # The status and part of the body are sent: no error answer can follow.
                # Cut the connection, so the client sees the download cut short rather
                # than waiting for the rest of a chunked body.
                log.exception("sending %s failed part-way; the connection is cut", text)
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write(chunk)  # raises when the client left
    finally:
        await chunks.aclose()  # stops the writer thread when the client left early
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
