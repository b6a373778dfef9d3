"""The public gRPC API's ``DataService``: content by CID, as REST's ``/api/v1/data`` serves it
(:mod:`bacalhau.api._content` does the work for both edges)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api._content import ContentStore, check_format, import_upload, open_content
from bacalhau.api._grpc_errors import abort_with
from bacalhau.api._grpc_requests import check_request
from bacalhau.errors import BacalhauError, BadQuery, Unavailable
from bacalhau.transport._errors import written

log = logging.getLogger(__name__)

_CID_HINT = "give a CID, or a CID and a path inside it (CID/dir/file)"


def _cid(text: str) -> str:
    if not text:
        raise BadQuery("cid is required", field="cid", hint=_CID_HINT)
    return text


class DataServicer(api_pb2_grpc.DataServiceServicer):
    """DataService: upload a CAR, get content as a tar or a CAR, list a directory."""

    def __init__(self, content: ContentStore, max_upload: int) -> None:
        self._content = content
        self._max_upload = max_upload

    async def PutData(
        self, request_iterator: AsyncIterable[api_pb2.PutDataRequest], context: Any
    ) -> api_pb2.PutDataResponse:
        async def chunks() -> AsyncIterator[bytes]:
            async for request in request_iterator:
                check_request(request)
                yield request.chunk

        try:
            roots = await import_upload(self._content, chunks(), self._max_upload, field="chunk")
        except Exception as exc:
            await abort_with(context, exc, "PutData")
        return api_pb2.PutDataResponse(cid=roots[0], roots=roots)

    # Writes with context.write rather than yielding (the stubs type only the latter): a
    # write under a caller that left fails here, quietly, not in gRPC's core (see written).
    async def GetData(  # type: ignore[override]
        self, request: api_pb2.GetDataRequest, context: Any
    ) -> None:
        try:
            check_request(request)
            cid = _cid(request.cid)
            chunks = await open_content(self._content, cid, check_format(request.format))
        except Exception as exc:
            await abort_with(context, exc, "GetData")
        failure: Exception | None = None
        try:
            async for chunk in chunks:
                if not await written(context, api_pb2.GetDataResponse(chunk=chunk)):
                    return  # the caller left
        except Exception as exc:
            failure = exc
        finally:
            await chunks.aclose()  # stops the writer thread when the client left early
        if failure is not None:
            # Chunks are sent: the client must learn the content is not whole, and may
            # try again (a node holding the rest may be back).
            log.warning("sending %s failed part-way: %s", cid, failure)
            why = failure.message if isinstance(failure, BacalhauError) else str(failure)
            cut = Unavailable(
                f"the content of {cid} could not be sent whole: {why}",
                hint="what was received is incomplete; try again",
                component="DataService",
            )
            await abort_with(context, cut, "GetData")

    async def ListData(
        self, request: api_pb2.ListDataRequest, context: Any
    ) -> api_pb2.ListDataResponse:
        try:
            check_request(request)
            cid = _cid(request.cid)
            await self._content.ensure_listing(cid)
            entries = await asyncio.to_thread(self._content.ls, cid)
        except Exception as exc:
            await abort_with(context, exc, "ListData")
        return api_pb2.ListDataResponse(
            cid=cid,
            entries=[
                api_pb2.DataEntry(
                    name=str(e["Name"]), cid=str(e["CID"]), type=str(e["Type"]), size=e["Size"]
                )
                for e in entries
            ],
        )
