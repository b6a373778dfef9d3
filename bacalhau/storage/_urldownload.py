"""The ``urlDownload`` source: one file fetched over HTTP(S) into ``<Target>/<name>``.

The name comes from ``Content-Disposition``, else the last segment of the final URL (after
redirects), else a random one. Server errors (5xx) and broken connections are retried with
exponential backoff; any other non-200 answer fails at once saying what the server said. A
download is refused as soon as it announces, or reaches, more than the size limit.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
import uuid
from email.message import Message
from pathlib import Path
from urllib.parse import unquote, urlparse

import aiohttp

from bacalhau.errors import BacalhauError, InvalidJobSpec
from bacalhau.models import SpecConfig
from bacalhau.storage._base import PreparedPath, input_failed, str_param

_log = logging.getLogger(__name__)

DEFAULT_URL_LIMIT = 10 * 1024**3
_KIND = "urlDownload"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_CHUNK = 1 << 20
#: Answers to a HEAD that say the URL names nothing, on any node.
_GONE = frozenset({404, 410})
#: Longest a HEAD of the URL may take while bidding.
_SIZE_TIMEOUT = 5.0


class _Retryable(Exception):
    """A failure worth another try (a 5xx answer, a dropped connection)."""


def file_name(url: str, content_disposition: str | None) -> str:
    """A safe file name for the download: never empty, never ``..``, never a path."""
    name = ""
    if content_disposition:
        msg = Message()
        msg["content-disposition"] = content_disposition
        name = msg.get_filename() or ""
    if not name:
        name = posixpath.basename(unquote(urlparse(url).path))
    name = _SAFE_NAME.sub("_", posixpath.basename(name.replace("\\", "/")))
    if name.strip(".") == "":
        name = uuid.uuid4().hex
    return name


class UrlDownloadSource:
    """Downloads ``Params.URL``; retries ``max_retries`` times on 5xx and connection errors."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_URL_LIMIT,
        timeout: float = 300.0,
        max_retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff

    @property
    def name(self) -> str:
        return _KIND

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        url = str_param(spec, "URL", required=True)
        if urlparse(url).scheme.lower() not in ("http", "https"):
            raise InvalidJobSpec(
                f"urlDownload needs an http(s) URL, got {url!r}", field="Source.Params.URL"
            )

    async def size(self, spec: SpecConfig) -> int | None:
        """The ``Content-Length`` of a ``HEAD`` of the URL (redirects followed); None when
        the server does not give one or does not answer in a few seconds."""
        await self.validate(spec)
        url = str_param(spec, "URL", required=True)
        timeout = aiohttp.ClientTimeout(total=_SIZE_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
                session.head(url, allow_redirects=True) as resp,
            ):
                size = resp.content_length if resp.status == 200 else None
                status, reason = resp.status, resp.reason
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        if status in _GONE:
            # The download would fail the same way on every node: declined at the bid, the
            # job fails at once saying why rather than spending its attempts node by node.
            raise input_failed(
                f"{url}: the server answers {status} {reason or ''}".rstrip(),
                hint="check the URL (the server has nothing there)",
                kind=_KIND,
            )
        if size is not None and size > self._max_bytes:
            raise self._too_large(url)
        return size

    async def prepare(self, spec: SpecConfig, dest: Path) -> PreparedPath:
        await self.validate(spec)
        url = str_param(spec, "URL", required=True)
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        attempt = 0
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            while True:
                try:
                    await self._fetch(session, url, dest)
                    return PreparedPath(dest)
                except _Retryable as err:
                    attempt += 1
                    if attempt > self._max_retries:
                        raise input_failed(
                            f"downloading {url} failed after {attempt} attempts: {err}",
                            hint="check that the server is up and reachable from the node",
                            kind=_KIND,
                        ) from None
                    delay = self._backoff * 2 ** (attempt - 1)
                    _log.info("download of %s failed (%s); retry in %.1fs", url, err, delay)
                    await asyncio.sleep(delay)
                except TimeoutError:
                    raise input_failed(
                        f"downloading {url} timed out after {self._timeout:g}s", kind=_KIND
                    ) from None

    async def _fetch(self, session: aiohttp.ClientSession, url: str, dest: Path) -> None:
        # A partial file of an earlier attempt must not linger.
        await asyncio.to_thread(_empty, dest)
        try:
            async with session.get(url) as resp:
                if resp.status >= 500:
                    raise _Retryable(f"HTTP {resp.status} {resp.reason or ''}".strip())
                if resp.status == 404:
                    raise input_failed(
                        f"{url} was not found (HTTP 404)",
                        hint="check the URL of the input",
                        kind=_KIND,
                    )
                if resp.status != 200:
                    raise input_failed(
                        f"downloading {url} failed: HTTP {resp.status} {resp.reason or ''}".strip(),
                        kind=_KIND,
                    )
                size = resp.content_length
                if size is not None and size > self._max_bytes:
                    raise self._too_large(url)
                name = file_name(str(resp.url), resp.headers.get("Content-Disposition"))
                written = 0
                with (dest / name).open("xb") as out:
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        written += len(chunk)
                        if written > self._max_bytes:
                            raise self._too_large(url)
                        await asyncio.to_thread(out.write, chunk)
        except BacalhauError:
            await asyncio.to_thread(_empty, dest)
            raise
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from None
        except aiohttp.TooManyRedirects as err:
            raise input_failed(
                f"downloading {url} failed: redirected more than {len(err.history)} times",
                hint="the server redirects in a loop; check the URL of the input",
                kind=_KIND,
            ) from None
        except (aiohttp.InvalidUrlRedirectClientError, aiohttp.NonHttpUrlRedirectClientError):
            raise input_failed(
                f"downloading {url} failed: the server redirected to a URL that is not http(s)",
                hint="check the URL of the input",
                kind=_KIND,
            ) from None
        except aiohttp.InvalidURL:
            raise InvalidJobSpec(f"{url!r} is not a valid URL", field="Source.Params.URL") from None
        except aiohttp.ClientError as err:
            # Anything else the client refuses (a malformed answer, say): the server's fault,
            # named; not worth a retry.
            raise input_failed(
                f"downloading {url} failed: {type(err).__name__}: {err}", kind=_KIND
            ) from None

    def _too_large(self, url: str) -> BacalhauError:
        return input_failed(
            f"{url} is larger than the download limit of {self._max_bytes} bytes",
            hint="the compute node's operator sets the limit (input_max_bytes)",
            kind=_KIND,
        )


def _empty(folder: Path) -> None:
    for leftover in folder.iterdir():
        leftover.unlink()
