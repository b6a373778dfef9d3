"""The ``s3`` publisher: results uploaded to a bucket, as one gzip'd tar or as plain objects.

``Key`` may hold templates: ``{jobID}``, ``{executionID}``, ``{nodeID}``, ``{date}``
(YYYYMMDD) and ``{time}`` (HHMMSS), in UTC. With ``Encoding: gzip`` (the default, as
Bacalhau; our ``Compress: true`` says the same) the results go to ``<Key>.tar.gz``; with
``Encoding: plain`` each file of the results directory becomes the object ``<Key>/<path>``.
Credentials are the compute node's own (boto3's standard chain).

The requester's ``/results`` answers an archived result as ``s3PreSigned`` with a URL any
client can download for a while (:func:`presign_result`), signed with the requester's
credentials; plain results are fetched by the client with its own credentials.
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
from pathlib import Path
from typing import Any

import boto3.exceptions
import botocore.exceptions

from bacalhau.errors import InvalidJobSpec, PublishFailed
from bacalhau.models import RESULT_CID_METADATA, S3_ENCODINGS, Job, SpecConfig, param
from bacalhau.publisher._local import write_archive
from bacalhau.storage import s3_client, s3_error
from bacalhau.storage.cid import CID, Importer, TreeEntry

ARCHIVE_SUFFIX = ".tar.gz"
#: How long a pre-signed download URL stays valid (SigV4 allows at most 7 days).
DEFAULT_PRESIGN_SECONDS = 3600
_TEMPLATES = ("{jobID}", "{executionID}", "{nodeID}", "{date}", "{time}")


def _str(spec: SpecConfig, key: str) -> str:
    value = param(spec.params, key)
    return value if isinstance(value, str) else ""


def _compress(spec: SpecConfig) -> bool:
    """Whether results go as one archive: Bacalhau's ``Encoding`` (gzip, plain), else our
    ``Compress`` (true by default)."""
    encoding = _str(spec, "Encoding").strip().lower()
    if encoding in S3_ENCODINGS:
        return encoding == "gzip"
    value = param(spec.params, "Compress")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip().lower() not in ("false", "0", "no")
    return True


def render_key(
    template: str, *, job_id: str, execution_id: str, node_id: str, now: datetime.datetime
) -> str:
    """``template`` with its ``{jobID}``-style placeholders filled in."""
    values = {
        "{jobID}": job_id,
        "{executionID}": execution_id,
        "{nodeID}": node_id,
        "{date}": now.strftime("%Y%m%d"),
        "{time}": now.strftime("%H%M%S"),
    }
    out = template
    for name in _TEMPLATES:
        out = out.replace(name, values[name])
    return out


class S3Publisher:
    """Uploads results to ``s3://Bucket/Key`` (a ``.tar.gz``, or plain objects)."""

    def __init__(self, *, node_id: str, compress_level: int = 6) -> None:
        self._node_id = node_id
        self._compress_level = compress_level

    @property
    def name(self) -> str:
        return "s3"

    @property
    def copies_results(self) -> bool:
        return True

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        for key in ("Bucket", "Key"):
            if not _str(spec, key):
                raise InvalidJobSpec(
                    f"the s3 publisher needs {key}", field=f"Publisher.Params.{key}"
                )
        encoding = param(spec.params, "Encoding")
        if encoding not in (None, "") and str(encoding).strip().lower() not in S3_ENCODINGS:
            raise InvalidJobSpec(
                f"Encoding must be gzip or plain, not {encoding!r}",
                field="Publisher.Params.Encoding",
            )

    async def publish(self, execution_id: str, job: Job, results_dir: Path) -> SpecConfig:
        spec = job.task.publisher
        await self.validate(spec)
        bucket, endpoint, region = (
            _str(spec, "Bucket"),
            _str(spec, "Endpoint"),
            _str(spec, "Region"),
        )
        key = render_key(
            _str(spec, "Key"),
            job_id=job.id,
            execution_id=execution_id,
            node_id=self._node_id,
            now=datetime.datetime.now(datetime.UTC),
        )
        compress = _compress(spec)
        if compress and not key.endswith((ARCHIVE_SUFFIX, ".tgz")):
            key += ARCHIVE_SUFFIX
        if not compress:
            key = key.rstrip("/") + "/"
        where = f"s3://{bucket}/{key}"

        def upload() -> CID:
            client = s3_client(endpoint=endpoint, region=region)
            if compress:
                with tempfile.TemporaryDirectory(prefix=".s3-", dir=results_dir.parent) as tmp:
                    archive = Path(tmp) / "results.tar.gz"
                    cid = write_archive(results_dir, archive, self._compress_level)
                    # Stamped with its CID: a client that downloads it later can tell that
                    # another execution overwrote the key (a key without {executionID}).
                    client.upload_file(
                        str(archive),
                        bucket,
                        key,
                        ExtraArgs={"Metadata": {RESULT_CID_METADATA: str(cid)}},
                    )
                return cid

            def put_object(entry: TreeEntry) -> None:
                if entry.content is None or not entry.rel:
                    return  # only regular files are objects; links are not followed
                if entry.stat.st_size == 0:
                    # Each empty object on a connection of its own: SeaweedFS leaves a
                    # kept-alive connection stalled after an empty PUT, so the next
                    # upload on it would wait for the read timeout (a minute).
                    empty = s3_client(endpoint=endpoint, region=region)
                    empty.put_object(Bucket=bucket, Key=key + entry.rel, Body=b"")
                    empty.close()
                    return
                # The upload reads the file through the importer, which hashes what it reads.
                client.upload_fileobj(entry.content, bucket, key + entry.rel)

            return Importer(None).add_path(results_dir, visitor=put_object).cid

        try:
            cid = await asyncio.to_thread(upload)
        except (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
            boto3.exceptions.S3UploadFailedError,
        ) as err:
            failure = s3_error(err, f"publishing to {where}", component="Publisher", kind="")
            raise PublishFailed(failure.message, hint=failure.hint) from None
        except OSError as err:
            raise PublishFailed(f"publishing to {where} failed: {err}") from err
        params: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Compress": compress,
            "Encoding": "gzip" if compress else "plain",
            "CID": str(cid),
        }
        if endpoint:
            params["Endpoint"] = endpoint
        if region:
            params["Region"] = region
        return SpecConfig(type="s3", params=params)


def presign_result(spec: SpecConfig, *, expires: int = DEFAULT_PRESIGN_SECONDS) -> SpecConfig:
    """An archived ``s3`` result as ``s3PreSigned`` with a download URL; anything else as is."""
    if spec.type.lower() != "s3" or not _compress(spec):
        return spec
    bucket, key = _str(spec, "Bucket"), _str(spec, "Key")
    if not bucket or not key:
        return spec
    client = s3_client(endpoint=_str(spec, "Endpoint"), region=_str(spec, "Region"))
    try:
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )
    except botocore.exceptions.BotoCoreError:
        return spec  # no credentials here: the client may still have its own
    return SpecConfig(type="s3PreSigned", params={**spec.params, "PreSignedURL": url})
