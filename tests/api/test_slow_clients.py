"""Clients that hold connections without finishing a request: the REST server closes them on
its own (an idle connection, a request head sent a byte at a time, a body that never ends),
and refuses a body declared too large before reading any of it. Raw sockets, as such clients
are."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from bacalhau.api import ApiServer
from tests.api.memory_orchestrator import MemoryOrchestrator

JOBS = b"/api/v1/orchestrator/jobs"


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``seconds``)."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def _put_begun(
    port: int, length: int, start: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A job submission declaring ``length`` bytes of body, of which only ``start`` is sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"PUT "
        + JOBS
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + start
    )
    await writer.drain()
    return reader, writer


async def _answer(reader: asyncio.StreamReader, seconds: float = 5) -> tuple[bytes, bytes]:
    """An answer's head and body (by its Content-Length), however long the connection stays."""
    async with asyncio.timeout(seconds):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return head, await reader.readexactly(length)


async def test_an_idle_connection_and_a_request_head_sent_slowly_are_closed() -> None:
    async with ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0, idle_timeout=1) as srv:
        idle = await asyncio.open_connection("127.0.0.1", srv.port)
        slow = await asyncio.open_connection("127.0.0.1", srv.port)
        began = time.monotonic()
        head = b"GET " + JOBS + b" HTTP/1.1\r\nHost: x\r\nX-Slow: "

        async def dribble() -> None:
            for byte in head:  # a byte every 50 ms: never a whole head within the second
                slow[1].write(bytes([byte]))
                await asyncio.sleep(0.05)

        dribbler = asyncio.create_task(dribble())
        try:
            assert await _closed_within(idle[0], 5) == b""
            assert await _closed_within(slow[0], 5) == b""
        finally:
            dribbler.cancel()
        assert time.monotonic() - began < 4
        for _, writer in (idle, slow):
            writer.close()


async def test_a_connection_kept_alive_after_an_answer_is_closed_once_idle() -> None:
    async with ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0, idle_timeout=1) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET " + JOBS + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        await _closed_within(reader, 5)  # the rest of the answer, then the close
        writer.close()


async def test_a_body_declared_too_large_is_refused_before_it_is_sent() -> None:
    async with ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0) as srv:
        reader, writer = await _put_begun(srv.port, 10 * 2**30, b"{")
        head, body = await _answer(reader)
        writer.close()
    assert head.split(b" ", 2)[1] == b"413", head
    assert b"Connection: close" in head
    err = json.loads(body)
    assert err["Code"] == "RequestEntityTooLarge" and "4194304 bytes" in err["Message"]


async def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    async with ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0, body_timeout=0.5) as srv:
        reader, writer = await _put_begun(srv.port, 1000, b'{"Job": ')
        head, body = await _answer(reader)
        writer.close()
    assert head.split(b" ", 2)[1] == b"408", head
    err = json.loads(body)
    assert err["Code"] == "RequestTimeout"
    assert "did not arrive within 0.5s" in err["Message"] and err["Hint"]


async def test_malformed_http_is_logged_in_one_line_not_as_an_error() -> None:
    # A handler of its own on the server's loggers: whatever another test in this worker did
    # to the root logger's configuration, these records are seen.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger("bacalhau.api"), logging.getLogger("aiohttp")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        async with ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0) as srv:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await _closed_within(reader, 5)
            writer.close()
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert answer.split(b" ", 2)[1] == b"414", answer[:100]
    assert not [r for r in records if r.levelno >= logging.WARNING], records
    (line,) = [r for r in records if "malformed HTTP" in r.getMessage()]
    assert line.levelno == logging.INFO and line.exc_info is None


async def test_a_client_leaving_mid_body_is_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0) as srv:
        with caplog.at_level(logging.DEBUG):
            _, writer = await _put_begun(srv.port, 1000, b"{")
            await asyncio.sleep(0.2)  # the handler is reading the body
            writer.transport.abort()
            await asyncio.sleep(0.3)
    served = [r for r in caplog.records if r.name.startswith(("aiohttp", "bacalhau.api"))]
    assert not [r for r in served if r.levelno >= logging.ERROR], caplog.text
