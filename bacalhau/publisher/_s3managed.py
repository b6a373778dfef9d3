"""The ``s3managed`` publisher (Bacalhau v1.8): results go to the requester's own bucket.

The requester holds the bucket and its credentials (``Publishers.Types.S3Managed.*``); a
compute node holds none. To publish, the node archives the results (a gzip'd tar, as the
``s3`` publisher makes it), asks the execution's requester for a pre-signed PUT URL
(``PresignResultUpload``, answered by :class:`ManagedBucket.upload_url` once the requester
checked that the execution is the node's), and PUTs the archive there. The published result
names only the job and the execution: ``{"JobID", "ExecutionID"}`` (and our ``CID``). The
requester's ``/results`` answers it as ``s3PreSigned``, with a download URL signed by the
requester, so clients need no credentials either.

Objects are ``<Key>/<job ID>/<execution ID>.tar.gz`` in the bucket, as in Bacalhau.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from bacalhau.errors import PublishFailed
from bacalhau.models import MANAGED_PUBLISHER, Job, SpecConfig, param
from bacalhau.publisher._local import write_archive

__all__ = ["ManagedBucket", "S3ManagedPublisher", "UploadUrlSource"]

#: Seconds the archive's upload may take before the publish fails.
UPLOAD_TIMEOUT = 3600.0

#: Asks the execution's requester where to upload (job, execution ID) -> pre-signed URL.
UploadUrlSource = Callable[[Job, str], Awaitable[str]]


@dataclass(frozen=True)
class ManagedBucket:
    """The requester's managed bucket: signs upload and download URLs of results with the
    requester's credentials (boto3's standard chain; no network call is made to sign)."""

    bucket: str
    prefix: str = ""
    region: str = ""
    endpoint: str = ""
    expires: int = 3600

    def key(self, job_id: str, execution_id: str) -> str:
        """Where the results of ``execution_id`` go in the bucket."""
        key = f"{job_id}/{execution_id}.tar.gz"
        prefix = self.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    def _sign(self, method: str, job_id: str, execution_id: str) -> str:
        client = _client(self.endpoint, self.region)
        url = client.generate_presigned_url(
            method,
            Params={"Bucket": self.bucket, "Key": self.key(job_id, execution_id)},
            ExpiresIn=self.expires,
        )
        return str(url)

    def upload_url(self, job_id: str, execution_id: str) -> str:
        """A URL taking one PUT of the results archive, valid for ``expires`` seconds."""
        return self._sign("put_object", job_id, execution_id)

    def download_url(self, job_id: str, execution_id: str) -> str:
        """A URL any client can GET the results archive from, valid for ``expires``."""
        return self._sign("get_object", job_id, execution_id)

    def rewrite(self, result: SpecConfig) -> SpecConfig:
        """A published ``s3managed`` result as ``s3PreSigned`` (a download URL, ``Managed``
        true), as Bacalhau's ``/results`` answers it; anything else as is."""
        if result.type.lower() != MANAGED_PUBLISHER:
            return result
        job_id, execution_id = param(result.params, "JobID"), param(result.params, "ExecutionID")
        if not isinstance(job_id, str) or not isinstance(execution_id, str):
            return result
        url = self.download_url(job_id, execution_id)
        return SpecConfig(
            type="s3PreSigned", params={**result.params, "PreSignedURL": url, "Managed": True}
        )


_CLIENTS: dict[tuple[str, str], Any] = {}


def _client(endpoint: str, region: str) -> Any:
    """One client per endpoint and region: making one costs tens of milliseconds."""
    client = _CLIENTS.get((endpoint, region))
    if client is None:
        from bacalhau.storage import s3_client  # boto3: loaded when first used

        client = _CLIENTS[(endpoint, region)] = s3_client(
            endpoint=endpoint, region=region, sigv4=True
        )
    return client


class S3ManagedPublisher:
    """Uploads results through a URL the execution's requester signs (compute side)."""

    def __init__(self, *, upload_url: UploadUrlSource, compress_level: int = 6) -> None:
        self._upload_url = upload_url
        self._compress_level = compress_level

    @property
    def name(self) -> str:
        return MANAGED_PUBLISHER

    @property
    def copies_results(self) -> bool:
        return True

    async def is_installed(self) -> bool:
        # Whether the requester has a bucket is the requester's to say: it refuses, at
        # submit, a job naming s3managed that it cannot take.
        return True

    async def validate(self, spec: SpecConfig) -> None:
        return None  # no parameters: the bucket is the requester's

    async def publish(self, execution_id: str, job: Job, results_dir: Path) -> SpecConfig:
        with tempfile.TemporaryDirectory(prefix=".s3managed-", dir=results_dir.parent) as tmp:
            archive = Path(tmp) / "results.tar.gz"
            try:
                cid = await asyncio.to_thread(
                    write_archive, results_dir, archive, self._compress_level
                )
                size = (await asyncio.to_thread(archive.stat)).st_size
            except OSError as err:
                raise PublishFailed(f"archiving the results failed: {err}") from err
            url = await self._upload_url(job, execution_id)
            await _put(url, archive, size)
        return SpecConfig(
            type=MANAGED_PUBLISHER,
            params={"JobID": job.id, "ExecutionID": execution_id, "CID": str(cid)},
        )


async def _put(url: str, archive: Path, size: int) -> None:
    """One PUT of ``archive`` (``size`` bytes) to the pre-signed ``url`` (S3 needs the
    length up front)."""
    timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT, sock_connect=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with archive.open("rb") as body:
                # encoded=True: the signature covers the query exactly as signed.
                async with session.put(
                    yarl.URL(url, encoded=True),
                    data=body,
                    headers={"Content-Length": str(size)},
                ) as response:
                    if response.status >= 300:
                        text = (await response.text(errors="replace"))[:500]
                        raise PublishFailed(
                            f"the requester's managed bucket refused the results "
                            f"({response.status}): {text}",
                            hint="check the requester's Publishers.Types.S3Managed settings "
                            "and its credentials for the bucket",
                        )
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise PublishFailed(
            f"uploading the results to the requester's managed bucket failed: {err}",
            hint="the compute node must reach the bucket's endpoint",
        ) from err
