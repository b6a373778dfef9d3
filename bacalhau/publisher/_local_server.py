"""The local publisher's HTTP server: read-only downloads of ``<execID>.tar.gz``, from its
directory or, for small results, the node's store (archived as they are asked for, see
``_kept``) or its :class:`ArchiveStore`."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from types import TracebackType

from aiohttp import web

from bacalhau.publisher._archive_store import ArchiveStore
from bacalhau.publisher._kept import KeptArchives, KeptSource, kept_archive
from bacalhau.publisher._local import ARCHIVE_NAME, ARCHIVE_SUFFIX, LocalPublisher

_log = logging.getLogger(__name__)


class LocalResultServer:
    """Serves the archives a :class:`LocalPublisher` writes; an async context manager.

    Only ``GET``/``HEAD /<execID>.tar.gz`` of a regular file in ``directory``, or of an
    archive its store holds, is answered (with range support); anything else is 404 and
    nothing is ever listed. Bind port 0 to let the system pick one: :attr:`port` reports the
    bound port once started. The store opens with the server (:attr:`archives`).
    """

    def __init__(self, *, directory: Path, host: str = "127.0.0.1", port: int = 6001) -> None:
        self._directory = directory
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._archives: ArchiveStore | None = None
        self._kept = KeptArchives()
        self._compress_level = 6

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def archives(self) -> ArchiveStore:
        """Where publishers of this server keep archives of small results."""
        if self._archives is None:
            raise RuntimeError("the local result server is not started")
        return self._archives

    def serve_kept(self, source: KeptSource | None) -> None:
        """Serve the small results the node's store keeps: ``source(execution_id)`` gives
        them (None: it keeps none of that execution). From then on, this server's publishers
        leave small results to the store rather than archiving them; until ``None`` is
        given (the store closes)."""
        self._kept.source = source

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (only known once the server started)."""
        if self._port is None:
            raise RuntimeError("the local result server is not started")
        return self._port

    def publisher(self, *, address: str | None = None, compress_level: int = 6) -> LocalPublisher:
        """A publisher writing into this server's directory and advertising its real port.

        ``address`` is what clients use to reach this node (defaults to the bind host, which
        is only right when that is a specific, reachable address).
        """
        advertised = address or self._host
        if advertised in ("0.0.0.0", "::", ""):
            raise ValueError(f"the server binds {self._host!r}: give the address clients can reach")
        self._compress_level = compress_level
        return LocalPublisher(
            directory=self._directory,
            address=advertised,
            port=self.port,
            compress_level=compress_level,
            archives=self.archives,
            kept=self._kept,
        )

    async def start(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        self._archives = ArchiveStore(self._directory)
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._archives.close()
            self._archives = None
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        _log.info(
            "local result server on %s:%d serving %s", self._host, self._port, self._directory
        )

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._archives is not None:
            self._archives.close()
            self._archives = None

    async def __aenter__(self) -> LocalResultServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not ARCHIVE_NAME.fullmatch(name):
            raise web.HTTPNotFound()
        path = self._directory / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            data = self._kept_archive(name.removesuffix(ARCHIVE_SUFFIX))
            if data is None and self._archives is not None:
                data = self._archives.get(name)
            if data is None:
                raise web.HTTPNotFound() from None
            return _bytes_response(request, data)
        except OSError:
            raise web.HTTPNotFound() from None
        # lstat: a symlink planted in the directory must not expose anything else.
        if not stat.S_ISREG(st.st_mode):
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "application/gzip"})

    def _kept_archive(self, execution_id: str) -> bytes | None:
        """The archive of the results the node's store keeps of ``execution_id``, if any."""
        source = self._kept.source
        kept = source(execution_id) if source is not None else None
        return kept_archive(kept, self._compress_level) if kept is not None else None


def _bytes_response(request: web.Request, data: bytes) -> web.Response:
    """``data`` as a file download is answered: whole, or the one byte range asked for."""
    size = len(data)
    headers = {"Content-Type": "application/gzip", "Accept-Ranges": "bytes"}
    unsatisfiable = web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    try:
        wanted = request.http_range
    except ValueError:
        return unsatisfiable
    if wanted.start is None and wanted.stop is None:
        return web.Response(body=data, headers=headers)
    start, stop, _ = wanted.indices(size)
    if start >= stop:
        return unsatisfiable
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return web.Response(status=206, body=data[start:stop], headers=headers)
