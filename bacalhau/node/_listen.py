"""Starting a node's listening servers: a host or port that cannot be bound is a
configuration error naming the flag to change, and saying which of the two is at fault."""

from __future__ import annotations

import asyncio
import errno
import socket
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from bacalhau.errors import InvalidConfiguration, Unavailable

__all__ = ["listen"]

#: The flag that sets the host each port flag's server binds.
_HOST_FLAGS = {
    "--api-port": "--api-host",
    "--api-grpc-port": "--api-host",
    "--metrics-port": "--api-host",
    "--grpc-port": "--grpc-host",
    "--publisher-port": "--publisher-host",
}


async def listen(
    stack: AsyncExitStack,
    server: AbstractAsyncContextManager[object],
    host: str,
    port: int,
    flag: str,
) -> None:
    """Start a listening server on ``stack``; a host that is no address of this machine, or
    a port that cannot be bound, is a configuration error naming the flag that changes it."""
    await _check_host(host, _HOST_FLAGS.get(flag, flag))
    where = f"{host or '0.0.0.0'}:{port}"
    try:
        await stack.enter_async_context(server)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {port} is already in use"
        elif exc.errno == errno.EACCES:
            reason = f"no permission to listen on port {port}"
        else:
            reason = exc.strerror or str(exc)
        raise InvalidConfiguration(
            f"cannot listen on {where}: {reason}",
            hint=f"stop what uses the port, or pass another {flag} (0 picks a free port)",
            details={"Field": flag},
        ) from None
    except Unavailable as exc:  # gRPC reports a failed bind without the OS error
        raise InvalidConfiguration(
            f"cannot listen on {where} (is port {port} already in use?): {exc.message}",
            hint=f"stop what uses the port, or pass another {flag} (0 picks a free port)",
            details={"Field": flag},
        ) from None


async def _check_host(host: str, flag: str) -> None:
    """Refuse a bind host that names no address of this machine, before a server tries it:
    the servers would report it as a port they cannot bind (gRPC says no more)."""
    if not host or host in ("0.0.0.0", "::"):
        return
    hint = (
        f"pass {flag} an address of this machine (or a name resolving to one), "
        "or 0.0.0.0 for all of them"
    )
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidConfiguration(
            f"cannot listen on {host!r}: {exc.strerror or exc}",
            hint=hint,
            details={"Field": flag},
        ) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address[0], 0, *address[2:]))  # any free port: only the address counts
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:
                return  # not the address's fault: the server's own bind will say what is
            raise InvalidConfiguration(
                f"cannot listen on {host!r}: it is not an address of this machine",
                hint=hint,
                details={"Field": flag},
            ) from None
