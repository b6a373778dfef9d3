"""A connection cut after a request went out (a requester killed mid-submit) is not said to be
an API nobody serves: the submit may have been carried out, and sending it again may run the
job twice. A GET cut the same way, and an API nobody serves, keep their own wording."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from bacalhau.client import AsyncClient
from bacalhau.errors import Unavailable
from tests.api.test_hardening import noop_job


@pytest.fixture
async def cutting_server() -> AsyncIterator[str]:
    """Reads each request's head, then closes the connection without an answer."""

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def test_a_submit_cut_off_may_have_been_carried_out(cutting_server: str) -> None:
    async with AsyncClient(cutting_server) as client:
        with pytest.raises(Unavailable) as cut:
            await client.submit(noop_job())
    assert "broke during PUT /api/v1/orchestrator/jobs" in str(cut.value)
    assert "may have been carried out" in (cut.value.hint or "")


async def test_a_read_cut_off_or_an_api_nobody_serves_keeps_its_wording(
    cutting_server: str,
) -> None:
    async with AsyncClient(cutting_server) as client:
        with pytest.raises(Unavailable, match="cannot reach the Bacalhau API"):
            await client.list_jobs()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    async with AsyncClient(f"http://127.0.0.1:{free}") as client:
        with pytest.raises(Unavailable, match="cannot reach the Bacalhau API") as refused:
            await client.submit(noop_job())
    assert "bacalhau serve" in (refused.value.hint or "")
