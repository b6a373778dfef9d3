"""HTTP requests to a node's v1 API, and the mapping of failures to :mod:`bacalhau.errors`.

Error bodies (``{"Code", "Message", "Hint", "Details", ...}``) are rebuilt into the error
classes by their stable code, so callers catch :class:`~bacalhau.errors.InvalidJobSpec` (with
``.field``), :class:`~bacalhau.errors.NotFound`, and so on.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from bacalhau._json import ORJSON_STRICT
from bacalhau.client._auth import Credentials, explain_refusal
from bacalhau.errors import BacalhauError, InternalError, Unavailable, error_from_code

#: The Bacalhau release whose API the client speaks (v1.8+: a job submitted under a taken
#: name updates that job); servers then number execution states 0-11.
CLIENT_WIRE_VERSION = "v1.9.0"

CONNECT_HINT = (
    "start a node with `bacalhau serve` or `bacalhau devstack`, or point the client at a "
    "running one with --api-host/--api-port (or BACALHAU_API_HOST/BACALHAU_API_PORT)"
)
#: Methods that change nothing: one cut off can be sent again as it is.
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

QueryValue = str | int | float | bool | None


def _query(params: Mapping[str, QueryValue] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


_JSON_HEADERS = {"Content-Type": "application/json"}


def encode_body(body: Any) -> bytes:
    """A request body as JSON. orjson first: a job's inline module (a ~40 KB string) costs
    ~6x less; what it refuses (integers beyond 64 bits, non-string keys, lone surrogates,
    objects that are not JSON) is encoded by the standard library as before, escapes
    included, so the server still names the field at fault."""
    try:
        return orjson.dumps(body, option=ORJSON_STRICT)
    except TypeError:
        return json.dumps(body).encode("ascii")


def error_from_response(status: int, body: bytes, what: str) -> BacalhauError:
    """Rebuild the server's error; fall back to a status-based one for non-Bacalhau bodies."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("Code"), str):
        details = data.get("Details")
        err = error_from_code(
            data["Code"],
            str(data.get("Message") or f"{what} failed with HTTP {status}"),
            hint=data.get("Hint") if isinstance(data.get("Hint"), str) else None,
            details=(
                {str(k): str(v) for k, v in details.items()} if isinstance(details, dict) else None
            ),
        )
        if isinstance(data.get("Component"), str):
            err.component = data["Component"]
        return err
    message = data if isinstance(data, str) else body.decode("utf-8", "replace").strip()
    if status == 410:
        return error_from_code(
            "NotFound",
            message or f"{what}: this endpoint is gone",
            hint="this server no longer serves the legacy API; upgrade the client",
        )
    err = InternalError(f"{what} failed with HTTP {status}: {message[:500]}")
    if status == 503:
        return Unavailable(err.message, hint=CONNECT_HINT)
    return err


def _connector(verify_tls: bool | str) -> aiohttp.TCPConnector | None:
    """The connector for ``verify_tls`` (None: aiohttp's own, checking certificates against
    the system's authorities)."""
    if verify_tls is True:
        return None
    if verify_tls is False:
        return aiohttp.TCPConnector(ssl=False)
    return aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=verify_tls))


class Transport:
    """One aiohttp session to one API base URL.

    ``credentials`` go with every request to the API (:attr:`api_headers`), never with
    downloads from elsewhere (a compute node's published results, S3): the session itself
    carries none. ``verify_tls`` false accepts any certificate of an ``https`` API; a path
    checks it against that CA bundle (PEM) instead of the system's.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 10.0,
        credentials: Credentials | None = None,
        verify_tls: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._verify_tls = verify_tls
        self.credentials = credentials or Credentials.none()
        header = self.credentials.header
        #: Headers of every request to the API: the credentials' ``Authorization``.
        self.api_headers: dict[str, str] = {"Authorization": header} if header else {}
        # Built once: an open API's requests carry exactly the headers they did before.
        self._bare_headers = self.api_headers or None
        self._body_headers = {**_JSON_HEADERS, **self.api_headers}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={
                    "Accept": "application/json",
                    "X-Bacalhau-Git-Version": CLIENT_WIRE_VERSION,
                },
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                connector=_connector(self._verify_tls),
            )
        return self._session

    def failure(self, status: int, body: bytes, what: str) -> BacalhauError:
        """The error an API answer with ``status`` >= 400 stands for (see
        :func:`error_from_response`), a refusal explained by the credentials sent."""
        return explain_refusal(error_from_response(status, body, what), self.credentials)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def unreachable(self, exc: BaseException) -> Unavailable:
        reason = str(exc) or type(exc).__name__
        return Unavailable(
            f"cannot reach the Bacalhau API at {self.base_url}: {reason}", hint=CONNECT_HINT
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        body: Any = None,
        timeout: float | None = 60.0,
    ) -> Any:
        """Send a request and return the decoded JSON body (text bodies as ``str``)."""
        what = f"{method} {path}"
        try:
            async with self.session().request(
                method,
                self.base_url + path,
                params=_query(params),
                data=None if body is None else encode_body(body),
                headers=self._bare_headers if body is None else self._body_headers,
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self._connect_timeout),
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self.failure(resp.status, raw, what)
                if resp.content_type == "application/json":
                    return json.loads(raw) if raw else None
                return raw.decode("utf-8", "replace")
        except TimeoutError:  # before OSError: TimeoutError is one
            raise Unavailable(
                f"the Bacalhau API at {self.base_url} did not answer {what} in time",
                hint="the node may be overloaded; try again",
            ) from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if method not in _SAFE and not isinstance(exc, aiohttp.ClientConnectorError):
                # Connected, then cut off (a requester killed or restarted): the request
                # may have been carried out. Sending it again may do it twice.
                raise Unavailable(
                    f"the connection to the Bacalhau API at {self.base_url} broke during "
                    f"{what}: {str(exc) or type(exc).__name__}",
                    hint="the request may have been carried out: check (`bacalhau job list`) "
                    "before sending it again",
                ) from None
            raise self.unreachable(exc) from None
        except ValueError as exc:
            raise InternalError(f"{what}: the server sent invalid JSON: {exc}") from None

    async def download(self, url: str, dest: Any, *, timeout: float) -> dict[str, str]:
        """Stream ``url`` into the binary file object ``dest``; returns the answer's headers
        (names in lower case)."""
        return await download(
            self.session(), url, dest, timeout=timeout, connect_timeout=self._connect_timeout
        )


async def download(
    session: aiohttp.ClientSession,
    url: str,
    dest: Any,
    *,
    timeout: float,
    connect_timeout: float | None = None,
) -> dict[str, str]:
    """Stream ``url`` (a published result: not the API) into the binary file object
    ``dest``; returns the answer's headers (names in lower case)."""
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        ) as resp:
            if resp.status >= 400:
                raise Unavailable(
                    f"downloading {url} failed with HTTP {resp.status}",
                    hint="the node that published the results may be down or have removed them",
                )
            async for chunk in resp.content.iter_chunked(1 << 20):
                dest.write(chunk)
            return {name.lower(): value for name, value in resp.headers.items()}
    except TimeoutError:  # before OSError: TimeoutError is one
        raise Unavailable(
            f"downloading {url} timed out", hint="raise --download-timeout-secs"
        ) from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise Unavailable(
            f"cannot download results from {url}: {exc}",
            hint="the node that published the results must be reachable from here",
        ) from None
