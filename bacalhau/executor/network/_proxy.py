"""The HTTP proxy through which ``HTTP``-mode jobs reach the domains they were allowed.

A job's container sits on a network with no route out; the proxy, run by the compute node on
that network's gateway, is the only thing it can talk to. Each client address is admitted
with its job's :class:`DomainAllowList`; a connection from any other address is refused.

Two request forms are served, one per connection:

- ``CONNECT host:port`` (HTTPS and any other tunnelled protocol): checked, then a blind tunnel;
- a plain HTTP request with an absolute URI (``GET http://host/path``): checked, then sent to
  the origin in origin form with ``Connection: close``, and the answer streamed back.

Anything refused gets ``403`` with a one-line body naming the reason; anything malformed
gets ``400``, an unreachable origin ``502``. Names are resolved here, by an injectable
resolver, and the addresses they resolve to are checked too: by default a job may not use an
allowed name that points at this node's loopback, link-local (cloud metadata) or unspecified
addresses to reach the node's own services.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bacalhau.executor.network._allowlist import DomainAllowList, normalise_host

__all__ = ["EgressProxy", "Resolver", "system_resolver"]

_log = logging.getLogger(__name__)

#: ``(host, port) -> addresses``, in the order they should be tried.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_MAX_HEAD = 32 * 1024
_HEAD_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 10.0
_CHUNK = 64 * 1024
#: Connections one client may hold open at once: the pids limit does not bound sockets, and
#: each connection costs the node a task and an upstream socket.
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 256
_HOP_BY_HOP = frozenset(
    {"connection", "proxy-connection", "proxy-authorization", "keep-alive", "te", "upgrade"}
)


async def system_resolver(host: str, port: int) -> list[str]:
    """The node's own name resolution (``getaddrinfo``), TCP addresses in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


class _Refused(Exception):
    """A request the proxy answers with an error status instead of serving."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    host: str
    port: int
    #: What to send to the origin first (empty for CONNECT).
    head: bytes


class EgressProxy:
    """An asyncio HTTP proxy enforcing a per-client domain allow-list.

    ``resolver`` maps a host and port to addresses (default: :func:`system_resolver`; tests
    inject their own so that no lookup leaves the machine). ``allow_local_targets`` lets
    allowed names resolve to loopback and link-local addresses (tests' local servers).
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        allow_local_targets: bool = False,
        connect_timeout: float = _CONNECT_TIMEOUT,
        max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    ) -> None:
        self._resolver = resolver or system_resolver
        self._max_per_client = max_connections_per_client
        self._open: dict[str, int] = {}
        self._allow_local = allow_local_targets
        self._connect_timeout = connect_timeout
        self._clients: dict[str, DomainAllowList] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, host: str, port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (0 picks a free port); return the bound address."""
        if self._server is not None:
            raise RuntimeError("the proxy is already listening")
        self._server = await asyncio.start_server(self._serve, host, port)
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    @property
    def address(self) -> tuple[str, int] | None:
        """Where the proxy listens, or None before :meth:`start`."""
        if self._server is None:
            return None
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        """Stop listening and cut every connection in progress."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # -- clients -------------------------------------------------------------------------------

    def admit(self, client_address: str, allowed: DomainAllowList) -> None:
        """Serve connections from ``client_address`` within ``allowed``."""
        self._clients[str(ipaddress.ip_address(client_address))] = allowed

    def dismiss(self, client_address: str) -> None:
        """Refuse ``client_address`` from now on (its container is gone)."""
        self._clients.pop(str(ipaddress.ip_address(client_address)), None)

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        if self._open.get(client, 0) >= self._max_per_client:
            # Read the request before answering: closing on unread data would reset the
            # connection and lose the answer.
            with contextlib.suppress(asyncio.LimitOverrunError):
                async with asyncio.timeout(_HEAD_TIMEOUT):
                    await reader.readuntil(b"\r\n\r\n")
            await _answer(writer, _Refused(429, "Too Many Requests", "too many connections"))
            return
        self._open[client] = self._open.get(client, 0) + 1
        try:
            await self._serve_counted(client, reader, writer)
        finally:
            self._open[client] -= 1
            if not self._open[client]:
                del self._open[client]

    async def _serve_counted(
        self, client: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(_HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await _answer(writer, _Refused(431, "Request Header Fields Too Large", "too large"))
            return
        allowed = self._clients.get(client)
        try:
            if allowed is None:
                raise _Refused(403, "Forbidden", f"{client} has no network policy on this node")
            request = _parse(head)
            if not allowed.allows(request.host):
                raise _Refused(
                    403,
                    "Forbidden",
                    f"{request.host} is not in the job's allowed domains (Network.Domains)",
                )
            upstream_reader, upstream_writer = await self._connect(request.host, request.port)
        except _Refused as refused:
            _log.info("proxy refused %s: %s", client, refused.message)
            await _answer(writer, refused)
            return
        try:
            if request.method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                upstream_writer.write(request.head)
            await _pipe_both(reader, writer, upstream_reader, upstream_writer)
        finally:
            upstream_writer.close()
            with contextlib.suppress(Exception):
                await upstream_writer.wait_closed()

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            addresses = await self._resolver(host, port)
        except OSError as e:
            raise _Refused(502, "Bad Gateway", f"cannot resolve {host}: {e}") from e
        usable = [a for a in addresses if self._allow_local or not _is_local(a)]
        if not usable:
            if addresses:
                raise _Refused(403, "Forbidden", f"{host} resolves to a local address")
            raise _Refused(502, "Bad Gateway", f"cannot resolve {host}")
        last: BaseException | None = None
        for address in usable:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    return await asyncio.open_connection(address, port)
            except (OSError, TimeoutError) as e:
                last = e
        raise _Refused(502, "Bad Gateway", f"cannot connect to {host}:{port}: {last}")


def _is_local(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast


def _split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _Refused(400, "Bad Request", f"bad authority {authority!r}")
        host, rest = authority[1:end], authority[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise _Refused(400, "Bad Request", f"bad port in {authority!r}") from None
    if not host or not 0 < port < 65536:
        raise _Refused(400, "Bad Request", f"bad authority {authority!r}")
    return normalise_host(host), port


def _parse(head: bytes) -> _Request:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise _Refused(400, "Bad Request", "undecodable request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _Refused(400, "Bad Request", "malformed request line")
    method, target, version = parts
    if method == "CONNECT":
        host, port = _split_host_port(target, 443)
        return _Request(method, host, port, b"")
    if not target.lower().startswith("http://"):
        raise _Refused(
            400,
            "Bad Request",
            "only CONNECT and absolute http:// URIs are served by this proxy",
        )
    rest = target[len("http://") :]
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in authority:
        raise _Refused(400, "Bad Request", "credentials in the URI are not forwarded")
    host, port = _split_host_port(authority, 80)
    headers = [
        line
        for line in lines[1:]
        if line and line.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP
    ]
    if not any(line.split(":", 1)[0].strip().lower() == "host" for line in headers):
        headers.insert(0, f"Host: {authority}")
    # One request per connection: a keep-alive connection could otherwise carry a second
    # request to whatever host the first one reached, past the check.
    headers.append("Connection: close")
    forwarded = "\r\n".join([f"{method} {path} {version}", *headers]) + "\r\n\r\n"
    return _Request(method, host, port, forwarded.encode("latin-1"))


async def _answer(writer: asyncio.StreamWriter, refused: _Refused) -> None:
    body = f"bacalhau proxy: {refused.message}\n".encode()
    writer.write(
        f"HTTP/1.1 {refused.status} {refused.reason}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _pipe_both(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    await asyncio.gather(
        _copy(client_reader, upstream_writer), _copy(upstream_reader, client_writer)
    )
