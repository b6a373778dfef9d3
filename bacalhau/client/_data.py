"""Content by CID from the user's side (``bacalhau data``): add, get, ls.

The CID is computed here, with the same importer the nodes use (Kubo's ``ipfs add``
settings), so ``--only-hash`` needs no node at all. An upload is a CAR v1 built in a temporary
directory next to nothing of the user's, streamed to the requester's ``PUT /api/v1/data``;
the requester verifies every block and pins the root, and compute nodes fetch the content
from it by block exchange when a job reads it. ``get`` streams a tar (extracted with the
standard library's ``data`` filter: nothing lands outside the target directory) or a CAR.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import aiohttp

from bacalhau._tarfile import tarfile
from bacalhau.client._auth import Credentials
from bacalhau.client._download import SkippedEntry, plan_extraction
from bacalhau.client._loop import LoopRunner
from bacalhau.client._session import RestSession
from bacalhau.errors import InvalidRequest, Unavailable
from bacalhau.storage.cid import Blockstore, CarReader, Importer, ImportOptions, write_car

#: Longest a download or upload may take (data can be large; the connection is local).
DATA_TIMEOUT_SECONDS = 3600.0
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class DataEntry:
    """One entry of ``data ls``."""

    name: str
    cid: str
    type: str
    size: int


def content_cid(path: Path, *, cid_version: int = 0) -> str:
    """The CID ``ipfs add -r --cid-version N`` gives ``path`` (nothing is stored)."""
    return str(Importer(None, ImportOptions(cid_version=cid_version)).add_path(path).cid)


def _write_car(path: Path, cid_version: int, workdir: Path) -> tuple[str, Path]:
    car = workdir / "upload.car"
    with Blockstore(workdir / "blocks") as store:
        with store.batch() as sink:
            root = Importer(sink, ImportOptions(cid_version=cid_version)).add_path(path)
        with car.open("wb") as out:
            write_car(out, [root.cid], store)
    return str(root.cid), car


async def add_content(
    path: Path,
    *,
    cid_version: int,
    only_hash: bool,
    send: Callable[[Path], Awaitable[str]],
) -> str:
    """What both clients' ``add`` do: the CID of ``path``, and unless ``only_hash`` its CAR
    (built in a temporary directory) given to ``send``, which answers the CID stored."""
    if not await asyncio.to_thread(path.exists):
        raise InvalidRequest(f"{path} does not exist", component="CLI")
    if only_hash:
        return await asyncio.to_thread(content_cid, path, cid_version=cid_version)
    with tempfile.TemporaryDirectory(prefix="bacalhau-data-") as tmp:
        cid, car = await asyncio.to_thread(_write_car, path, cid_version, Path(tmp))
        stored = await send(car)
    if stored != cid:
        raise Unavailable(f"the requester stored {stored}, not {cid}")
    return cid


async def receive_content(
    dest: Path,
    *,
    car: bool,
    skipped: list[SkippedEntry] | None,
    download: Callable[[BinaryIO], Awaitable[None]],
) -> Path:
    """What both clients' ``get`` do with the tar (or CAR) ``download`` writes."""
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    fmt = "car" if car else "tar"
    # Named apart from the CID: a CID/path is no file name.
    partial = dest / f".{uuid.uuid4().hex}.{fmt}.part"
    try:
        with partial.open("wb") as out:
            await download(out)
        if car:
            with partial.open("rb") as written:  # a path's CAR is rooted at its CID
                target = dest / f"{CarReader(written).roots[0]}.car"
            partial.replace(target)
            return target
        name, left_out = await asyncio.to_thread(_extract, partial, dest)
        if skipped is not None:
            skipped.extend(left_out)
    finally:
        partial.unlink(missing_ok=True)
    return dest / name


class AsyncDataClient(RestSession):
    """``bacalhau data`` against one requester's v1 REST API."""

    async def add(self, path: Path, *, cid_version: int = 0, only_hash: bool = False) -> str:
        """Add ``path`` (a file or a directory); returns its CID. Without ``only_hash`` the
        content is uploaded to the cluster (the requester pins it)."""

        async def send(car: Path) -> str:
            with car.open("rb") as body:
                reply = await self._send(
                    "PUT",
                    "/api/v1/data",
                    data=body,
                    headers={"Content-Type": "application/vnd.ipld.car"},
                )
            return str(reply.get("CID")) if isinstance(reply, dict) else repr(reply)

        return await add_content(path, cid_version=cid_version, only_hash=only_hash, send=send)

    async def get(
        self,
        cid: str,
        dest: Path,
        *,
        car: bool = False,
        skipped: list[SkippedEntry] | None = None,
    ) -> Path:
        """Download ``cid`` (a CID, or ``CID/path/inside``: as ``ipfs get``, named by the
        path's last name) into directory ``dest``: as ``dest/CID`` (the file or directory
        tree), or with ``car`` as ``dest/CID.car``. Returns what was written. Entries that
        are not created (a link pointing outside the tree, a special file: as ``job get``
        leaves them out) are added to ``skipped``."""
        fmt = "car" if car else "tar"

        async def download(out: BinaryIO) -> None:
            await self._download(f"/api/v1/data/{quote(cid, safe='')}?format={fmt}", out)

        return await receive_content(dest, car=car, skipped=skipped, download=download)

    async def ls(self, cid: str) -> list[DataEntry]:
        """The entries of directory ``cid`` (or the one file it is); ``CID/path`` lists a
        directory inside one."""
        reply = await self._http.request("GET", f"/api/v1/data/{quote(cid, safe='')}/ls")
        entries = reply.get("Entries", []) if isinstance(reply, dict) else []
        return [
            DataEntry(str(e["Name"]), str(e["CID"]), str(e["Type"]), int(e["Size"]))
            for e in entries
        ]

    async def _send(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        what = f"{method} {path}"
        try:
            async with self._http.session().request(
                method,
                self._http.base_url + path,
                timeout=aiohttp.ClientTimeout(total=DATA_TIMEOUT_SECONDS),
                headers={**(headers or {}), **self._http.api_headers},
                **kwargs,
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._http.failure(resp.status, raw, what)
                return await resp.json(content_type=None) if raw else None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise self._http.unreachable(exc) from None

    async def _download(self, path: str, out: Any) -> None:
        what = f"GET {path}"
        try:
            async with self._http.session().get(
                self._http.base_url + path,
                timeout=aiohttp.ClientTimeout(total=DATA_TIMEOUT_SECONDS),
                headers=self._http.api_headers,
            ) as resp:
                if resp.status >= 400:
                    raise self._http.failure(resp.status, await resp.read(), what)
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    await asyncio.to_thread(out.write, chunk)
        except aiohttp.ClientPayloadError as exc:
            raise Unavailable(
                f"{what}: the download was cut short ({exc})",
                hint="the content may be damaged or missing on the cluster; try again",
            ) from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise self._http.unreachable(exc) from None


def _extract(archive: Path, dest: Path) -> tuple[str, list[SkippedEntry]]:
    """Extract the tar the data API sent, whose one top entry is named by the CID (or by
    the last name of a path inside one); returns that name and what ``job get`` would not
    create, left out (extracting it would fail half-way, with the rest unwritten)."""
    with tarfile.open(archive, mode="r:") as tar:
        members = tar.getmembers()
        plan = plan_extraction(members)
        # The "data" filter stays as a second guard (modes, paths, link targets).
        tar.extractall(dest, members=plan.entries, filter="data")
        tar.extractall(dest, members=plan.links, filter="data")
    return (members[0].name.split("/", 1)[0] if members else ""), plan.skipped


class DataClient:
    """The blocking facade over :class:`AsyncDataClient` (what the CLI uses); the arguments
    are :class:`~bacalhau.client.AsyncClient`'s."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        connect_timeout: float = 10.0,
        credentials: Credentials | None = None,
        verify_tls: bool | str = True,
    ) -> None:
        self._runner = LoopRunner()
        self._client = AsyncDataClient(
            base_url,
            connect_timeout=connect_timeout,
            credentials=credentials,
            verify_tls=verify_tls,
        )

    def close(self) -> None:
        self._runner.close(self._client.close())

    def __enter__(self) -> DataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, path: Path, *, cid_version: int = 0, only_hash: bool = False) -> str:
        return self._runner.run(
            self._client.add(path, cid_version=cid_version, only_hash=only_hash)
        )

    def get(
        self,
        cid: str,
        dest: Path,
        *,
        car: bool = False,
        skipped: list[SkippedEntry] | None = None,
    ) -> Path:
        return self._runner.run(self._client.get(cid, dest, car=car, skipped=skipped))

    def ls(self, cid: str) -> list[DataEntry]:
        return self._runner.run(self._client.ls(cid))
