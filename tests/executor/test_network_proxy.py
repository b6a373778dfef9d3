"""The HTTP-mode allow-list and the proxy enforcing it, on loopback with real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bacalhau.executor.network import DomainAllowList, EgressProxy


@pytest.mark.parametrize(
    ("entries", "host", "allowed"),
    [
        (["example.com"], "example.com", True),
        (["example.com"], "EXAMPLE.com.", True),
        (["example.com"], "www.example.com", False),
        ([".example.com"], "example.com", True),
        ([".example.com"], "a.b.example.com", True),
        ([".example.com"], "badexample.com", False),
        (["*.example.com"], "www.example.com", True),
        (["*.example.com"], "example.com.evil.org", False),
        (["10.1.2.3"], "10.1.2.3", True),
        ([".example.com"], "10.1.2.3", False),
        (["::1"], "[::1]", True),
        (["example.com"], "", False),
        (["."], "example.com", False),
    ],
)
def test_allow_list_matches_as_squid_dstdomain(
    entries: list[str], host: str, allowed: bool
) -> None:
    assert DomainAllowList.of(entries).allows(host) is allowed


async def _origin() -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def _resolve(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.fixture
async def origin() -> AsyncIterator[tuple[int, list[bytes]]]:
    server, port, seen = await _origin()
    yield port, seen
    server.close()


async def _ask(proxy: EgressProxy, request: bytes) -> bytes:
    address = proxy.address
    assert address is not None
    reader, writer = await asyncio.open_connection(*address)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def _proxy(**kwargs: object) -> EgressProxy:
    proxy = EgressProxy(resolver=_resolve, **kwargs)  # type: ignore[arg-type]
    await proxy.start("127.0.0.1")
    return proxy


async def test_forwards_an_allowed_request_in_origin_form_with_connection_close(
    origin: tuple[int, list[bytes]],
) -> None:
    port, seen = origin
    proxy = await _proxy(allow_local_targets=True)
    try:
        proxy.admit("127.0.0.1", DomainAllowList.of(["data.test"]))
        answer = await _ask(
            proxy,
            f"GET http://data.test:{port}/a?b=1 HTTP/1.1\r\nHost: data.test:{port}\r\n"
            "Proxy-Authorization: secret\r\nConnection: keep-alive\r\n\r\n".encode(),
        )
    finally:
        await proxy.close()
    assert answer.endswith(b"\r\n\r\nok")
    head = seen[0].decode()
    assert head.startswith("GET /a?b=1 HTTP/1.1\r\n")
    assert "Proxy-Authorization" not in head
    assert "keep-alive" not in head
    assert "Connection: close" in head


async def test_refuses_a_client_it_was_not_told_about(origin: tuple[int, list[bytes]]) -> None:
    port, seen = origin
    proxy = await _proxy(allow_local_targets=True)
    try:
        proxy.admit("127.0.0.1", DomainAllowList.of(["data.test"]))
        proxy.dismiss("127.0.0.1")
        answer = await _ask(proxy, f"CONNECT data.test:{port} HTTP/1.1\r\n\r\n".encode())
    finally:
        await proxy.close()
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert b"has no network policy" in answer
    assert seen == []


async def test_allowed_name_resolving_to_a_local_address_is_refused_by_default(
    origin: tuple[int, list[bytes]],
) -> None:
    port, seen = origin
    proxy = await _proxy()
    try:
        proxy.admit("127.0.0.1", DomainAllowList.of(["data.test"]))
        answer = await _ask(proxy, f"CONNECT data.test:{port} HTTP/1.1\r\n\r\n".encode())
    finally:
        await proxy.close()
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert b"resolves to a local address" in answer
    assert seen == []


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /relative HTTP/1.1",
        b"GET https://data.test/ HTTP/1.1",
        b"garbage",
        b"GET http://user:pw@data.test/ HTTP/1.1",
    ],
)
async def test_anything_but_connect_and_absolute_http_is_a_bad_request(
    request_line: bytes,
) -> None:
    proxy = await _proxy(allow_local_targets=True)
    try:
        proxy.admit("127.0.0.1", DomainAllowList.of(["data.test"]))
        answer = await _ask(proxy, request_line + b"\r\n\r\n")
    finally:
        await proxy.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")


async def test_a_client_holding_too_many_connections_is_refused_more() -> None:
    proxy = await _proxy(allow_local_targets=True, max_connections_per_client=1)
    try:
        proxy.admit("127.0.0.1", DomainAllowList.of(["data.test"]))
        address = proxy.address
        assert address is not None
        # The first connection stays open, its request not yet sent.
        _, holder = await asyncio.open_connection(*address)
        await asyncio.sleep(0.1)
        answer = await _ask(proxy, b"CONNECT data.test:1 HTTP/1.1\r\n\r\n")
        holder.close()
    finally:
        await proxy.close()
    assert answer.startswith(b"HTTP/1.1 429 Too Many Requests")
