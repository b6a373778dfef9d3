"""Fetching a job's published results for ``job get`` (see :mod:`bacalhau.client._download`
for what is done with them), through either API: a result published to ``ipfs`` comes by its
CID from the requester (REST ``GET /api/v1/data/{cid}?format=tar``, gRPC
``DataService.GetData``), one published to a URL (the local publisher, a pre-signed S3 URL)
straight from there, one in S3 with the user's S3 credentials."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote

import aiohttp

from bacalhau.client import _download
from bacalhau.client._transport import Transport
from bacalhau.errors import Unavailable
from bacalhau.models import RESULT_CID_METADATA, Job, SpecConfig, param, short_id

__all__ = ["RestFetcher", "ResultFetcher", "download_results", "fetch_results"]


class ResultFetcher(Protocol):
    """Where a client gets results from: content by CID from the requester, and URLs."""

    async def cid(self, cid: str, dest: BinaryIO, *, timeout: float) -> None:
        """Stream content ``cid`` as a tar into ``dest``."""
        ...

    async def url(self, url: str, dest: BinaryIO, *, timeout: float) -> dict[str, str]:
        """Stream ``url`` into ``dest``; returns the answer's headers (names in lower case)."""
        ...


class RestFetcher:
    """Results through the REST client's transport."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def cid(self, cid: str, dest: BinaryIO, *, timeout: float) -> None:
        transport = self._transport
        path = f"/api/v1/data/{quote(cid, safe='')}"
        try:
            async with transport.session().get(
                f"{transport.base_url}{path}?format=tar",
                timeout=aiohttp.ClientTimeout(total=timeout),
                headers=transport.api_headers,
            ) as resp:
                if resp.status >= 400:
                    raise transport.failure(resp.status, await resp.read(), f"GET {path}")
                async for chunk in resp.content.iter_chunked(1 << 20):
                    dest.write(chunk)
        except TimeoutError:  # before OSError: TimeoutError is one
            raise Unavailable(
                f"downloading result {cid} timed out", hint="raise --download-timeout-secs"
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise Unavailable(
                f"downloading result {cid} was cut short ({exc})",
                hint="the node holding the result may be unreachable from the requester; try again",
            ) from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise transport.unreachable(exc) from None

    async def url(self, url: str, dest: BinaryIO, *, timeout: float) -> dict[str, str]:
        return await self._transport.download(url, dest, timeout=timeout)


async def fetch_results(
    fetcher: ResultFetcher,
    results: list[SpecConfig],
    raw_dir: Path,
    taken: set[str],
    *,
    timeout: float,
) -> list[Path]:
    """Download every result into ``raw_dir``; returns one path each (archives as they
    came: :func:`~bacalhau.client._download.unpack` extracts them)."""
    for spec in results:
        _download.check_downloadable(spec)  # refuse unsupported ones up front
    paths: list[Path] = []
    for i, spec in enumerate(results):
        if spec.type.lower() == "ipfs":
            cid = str(param(spec.params, "CID"))
            # Two executions with byte-identical results share one CID: fetch it once each,
            # each into its own folder.
            name = _download.file_name("/" + cid, i, taken) + _download.CID_TAR_SUFFIX
            dest = raw_dir / name
            with dest.open("wb") as fh:
                progress = _download.Progress(fh, cid)
                try:
                    await fetcher.cid(cid, progress, timeout=timeout)  # type: ignore[arg-type]
                finally:
                    progress.close()
            paths.append(dest)
            continue
        if spec.type.lower() == "s3":
            key = str(param(spec.params, "Key"))
            dest = raw_dir / _download.file_name("/" + key.rstrip("/"), i, taken)
            await asyncio.wait_for(asyncio.to_thread(_download.s3_download, spec, dest), timeout)
            paths.append(dest)
            continue
        url = _download.download_url(spec)
        dest = raw_dir / _download.file_name(url, i, taken)
        with dest.open("wb") as fh:
            progress = _download.Progress(fh, dest.name)
            try:
                headers = await fetcher.url(url, progress, timeout=timeout)  # type: ignore[arg-type]
            finally:
                progress.close()
        _download.check_stamp(spec, headers.get(f"x-amz-meta-{RESULT_CID_METADATA}"))
        paths.append(dest)
    return paths


async def download_results(
    fetcher: ResultFetcher,
    job_ref: str,
    job: Job,
    results: list[SpecConfig],
    output_dir: str | Path | None,
    *,
    raw: bool,
    timeout: float,
) -> _download.DownloadedResults:
    """``job``'s ``results`` into ``output_dir`` (default ``./job-<short id>``), as the
    clients' ``download_results`` describe it; ``job_ref``: the job as the user named it."""
    if not results:
        why = f": {job.state_message}" if job.state_message else ""
        raise _download.NoResults(f"job {job_ref} has no results ({job.state.wire}{why})")
    if output_dir is None:
        output_dir = Path.cwd() / f"job-{short_id(job.id)}"
    # Where the task saw its result folders: a link it made to /outputs/x is kept.
    mounts = [(rp.folder, rp.path) for rp in job.task.result_paths] if job.tasks else []
    out = Path(output_dir)
    made = await asyncio.to_thread(_download.missing_folders, out)
    raw_dir, taken = await asyncio.to_thread(_download.prepare_output, out)
    # Fetched and unpacked aside first: a download that fails (a node gone, a timeout,
    # a merge conflict) leaves the output folder as it found it.
    staging = await asyncio.to_thread(_download.staging_folder, raw_dir)
    done = False
    try:
        paths = await fetch_results(fetcher, results, staging, taken, timeout=timeout)
        unpacked, skipped = await asyncio.to_thread(_download.unpack, paths, mounts)
        if raw:
            await asyncio.to_thread(_download.adopt, unpacked, raw_dir)
        else:
            await asyncio.to_thread(_download.merge_results, unpacked, out)
        done = True
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
        if not raw or not done:
            await asyncio.to_thread(_download.remove_if_empty, [raw_dir, *made])
    return _download.DownloadedResults(out, tuple(skipped))
