"""A session with one node's v1 REST API: where it is, and the credentials that go with it
(the base of the REST and data clients)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from bacalhau.client._auth import Credentials
from bacalhau.client._transport import Transport
from bacalhau.errors import InvalidRequest

__all__ = ["DEFAULT_API_HOST", "DEFAULT_API_PORT", "RestSession", "api_url", "url_from_env"]

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 1234


def api_url(host: str, port: int, *, https: bool = False, source: str = "API host") -> str:
    """``http://host:port`` (IPv6 literals bracketed). ``host`` may also be a URL, as
    Bacalhau's clients take it (``BACALHAU_API_HOST=https://node.example:4443``): its scheme
    then decides TLS and its port, when it has one, wins over ``port``; or ``host:port``,
    whose port wins too. ``source`` names
    where the host came from, for the error a malformed one gets."""
    host = host.strip()
    if "://" not in host:
        if not host or any(c.isspace() or c in "/@?#" for c in host):
            raise _not_a_node(host, source)
        name, colon, port_text = host.rpartition(":")
        bracketed = name.startswith("[") and name.endswith("]")
        if colon and name and (bracketed or (":" not in name and not name.startswith("["))):
            # host:port or [v6]:port (a bare IPv6 literal has more colons), its port
            # winning as a URL's.
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise _not_a_node(host, source)
            return api_url(f"{'https' if https else 'http'}://{host}", port, source=source)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{'https' if https else 'http'}://{host}:{port}"
    try:
        parts = urlsplit(host)
        given = parts.port
        hostname = parts.hostname
    except ValueError:
        hostname, given = None, None
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise _not_a_node(host, source)
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{parts.scheme.lower()}://{hostname}:{given if given is not None else port}"


def _not_a_node(host: str, source: str) -> InvalidRequest:
    return InvalidRequest(
        f"{source} {host!r} is neither a host name nor an http(s) URL of a node",
        hint="give a host (node.example, 10.0.0.1) or a URL with no path "
        "(https://node.example:1234)",
        details={"Field": source},
    )


def url_from_env() -> str:
    """The API address from ``BACALHAU_API_HOST``/``BACALHAU_API_PORT``/``BACALHAU_HTTPS``."""
    host = os.environ.get("BACALHAU_API_HOST") or DEFAULT_API_HOST
    port = int(os.environ.get("BACALHAU_API_PORT") or DEFAULT_API_PORT)
    return api_url(
        host, port, https=bool(os.environ.get("BACALHAU_HTTPS")), source="BACALHAU_API_HOST"
    )


class RestSession:
    """A connection to one node's v1 REST API (base URL from the environment when not
    given), closed by ``close()`` or at the end of ``async with``.

    ``credentials`` go with every request (by default those of the environment:
    ``BACALHAU_API_KEY``, or ``BACALHAU_API_USERNAME`` and ``BACALHAU_API_PASSWORD``; pass
    :meth:`Credentials.none() <bacalhau.client.Credentials.none>` to send none).
    ``verify_tls`` false accepts any certificate of an ``https`` API; a path checks it
    against that CA bundle.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        connect_timeout: float = 10.0,
        credentials: Credentials | None = None,
        verify_tls: bool | str = True,
    ) -> None:
        self._http = Transport(
            base_url or url_from_env(),
            connect_timeout=connect_timeout,
            credentials=credentials if credentials is not None else Credentials.from_env(),
            verify_tls=verify_tls,
        )

    @property
    def base_url(self) -> str:
        return self._http.base_url

    async def close(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
