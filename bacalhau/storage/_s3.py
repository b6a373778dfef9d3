"""The ``s3`` source: an object, a "directory" (``dir/``), or every key under a prefix
(``prefix*``) of a bucket, optionally filtered by a regular expression.

Objects land under the input's directory relative to the key's parent (``logs/2023-04*``
gives ``2023-04-01.log``, ...), as Bacalhau lays them out. Each object is checked while it
streams: against ``ChecksumSHA256`` when the job gives one (a single object), against the
checksum S3 stored with it when it has one, and against its ETag when that is a plain MD5 (a
single-part upload). Nothing is left behind by a failed input: the caller removes its
directory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from bacalhau.errors import BacalhauError, InvalidJobSpec, UnsafePath
from bacalhau.models import SpecConfig
from bacalhau.models._go_regex import GoRegexError, compile_go
from bacalhau.models._s3_partition import Partition, PartitionSpec, partition_keys
from bacalhau.storage._base import COMPONENT, PreparedPath, input_failed, str_param
from bacalhau.storage._s3client import S3Client, s3_client, s3_error

_KIND = "s3"
#: An input every execution takes whole.
NO_PARTITIONS = PartitionSpec()
DEFAULT_S3_LIMIT = 10 * 1024**3
_CHUNK = 1 << 20
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
#: Longest sizing an input may take while bidding (a listing of the bucket's keys).
_SIZE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class S3InputSpec:
    """The params of an ``s3`` input, decoded case-insensitively."""

    bucket: str
    key: str
    filter: str = ""
    region: str = ""
    endpoint: str = ""
    version_id: str = ""
    checksum_sha256: str = ""
    partition: PartitionSpec = NO_PARTITIONS

    @classmethod
    def from_spec(cls, spec: SpecConfig) -> S3InputSpec:
        out = cls(
            bucket=str_param(spec, "Bucket", required=True),
            key=str_param(spec, "Key"),
            filter=str_param(spec, "Filter"),
            region=str_param(spec, "Region"),
            endpoint=str_param(spec, "Endpoint"),
            version_id=str_param(spec, "VersionID"),
            checksum_sha256=str_param(spec, "ChecksumSHA256"),
            partition=PartitionSpec.from_spec(spec),
        )
        if out.filter:
            try:
                compile_go(out.filter)
            except GoRegexError as err:
                raise InvalidJobSpec(
                    f"Filter is not a valid regular expression: {err}",
                    field="Source.Params.Filter",
                    hint="Go's syntax (RE2): no backreferences or lookarounds",
                ) from None
        return out

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def relative_name(key: str, parent: str) -> str:
    """Where object ``key`` goes below the input's directory; refuses names that climb out."""
    rel = key[len(parent) :] if key.startswith(parent) else key
    norm = posixpath.normpath(rel) if rel else ""
    if not norm or norm in (".", "..") or norm.startswith(("../", "/")) or "\0" in norm:
        raise UnsafePath(f"S3 key {key!r} would be written outside the input's directory")
    return norm


class S3Source:
    """Downloads objects with the node's AWS credentials (boto3's standard chain)."""

    def __init__(self, *, max_bytes: int = DEFAULT_S3_LIMIT) -> None:
        self._max_bytes = max_bytes

    @property
    def name(self) -> str:
        return _KIND

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        S3InputSpec.from_spec(spec)

    async def prepare(self, spec: SpecConfig, dest: Path) -> PreparedPath:
        return await self.prepare_partition(spec, dest, Partition())

    async def prepare_partition(
        self, spec: SpecConfig, dest: Path, partition: Partition
    ) -> PreparedPath:
        """:meth:`prepare` for one execution of a partitioned job: only the objects of its
        share of the input (see ``_s3_partition``; possibly none)."""
        s3 = S3InputSpec.from_spec(spec)
        await asyncio.to_thread(self._download, s3, dest, partition)
        return PreparedPath(dest)

    async def size(self, spec: SpecConfig) -> int | None:
        """The bytes of every object the spec names (None for a partitioned input, whose
        share is its execution's, or when the bucket cannot be listed now: preparing the
        input then says why)."""
        s3 = S3InputSpec.from_spec(spec)
        if s3.partition != NO_PARTITIONS:
            return None
        try:
            async with asyncio.timeout(_SIZE_TIMEOUT):
                total = await asyncio.to_thread(self._total, s3)
        except (TimeoutError, BacalhauError):
            return None
        if total > self._max_bytes:
            raise self._over_limit(s3, total)
        return total

    def _over_limit(self, s3: S3InputSpec, total: int) -> BacalhauError:
        return input_failed(
            f"{s3.uri} holds {total} bytes, more than the limit of {self._max_bytes}",
            hint="narrow the key or the filter; the node's operator sets the limit "
            "(input_max_bytes)",
            kind=_KIND,
        )

    # -- in a worker thread ------------------------------------------------------------

    def _total(self, s3: S3InputSpec) -> int:
        client = s3_client(endpoint=s3.endpoint, region=s3.region)
        try:
            return sum(size for _, size in self._objects(client, s3))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            raise s3_error(err, s3.uri, component=COMPONENT, kind=_KIND) from None

    def _download(self, s3: S3InputSpec, dest: Path, partition: Partition) -> None:
        client = s3_client(endpoint=s3.endpoint, region=s3.region)
        try:
            listed = self._objects(client, s3)
            # Folder markers (keys ending in "/", as consoles create them) become empty
            # folders in every partition: they hold no data to share out.
            folders = [key for key, _ in listed if key.endswith("/")]
            objects = [(key, size) for key, size in listed if not key.endswith("/")]
            single = len(objects) == 1  # (a checksum given is that of the key's one object)
            share = set(partition_keys([k for k, _ in objects], s3.key, s3.partition, partition))
            objects = [(key, size) for key, size in objects if key in share]
            total = sum(size for _, size in objects)
            if total > self._max_bytes:
                raise self._over_limit(s3, total)
            parent = s3.key.rstrip("*")
            parent = parent[: parent.rfind("/") + 1] if "/" in parent else ""
            names = [(key, relative_name(key, parent)) for key, _ in objects]
            empty = [(key, name) for key in folders if (name := _folder_name(key, parent))]
            _refuse_file_folder_clashes(s3, names, empty)
            for _, name in empty:
                (dest / name).mkdir(parents=True, exist_ok=True)
            for key, name in names:
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                self._get(client, s3, key, target, single=single)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            raise s3_error(err, s3.uri, component=COMPONENT, kind=_KIND) from None

    def _objects(self, client: S3Client, s3: S3InputSpec) -> list[tuple[str, int]]:
        """(key, size) of every object the spec names, folder markers (keys ending in
        ``/``) included. ``Filter`` matches a listed key without the listing's prefix, as
        Bacalhau's does ("applied to object keys after the prefix")."""
        # RE2: a job's pattern matches in time linear in each key (see models._go_regex).
        pattern = compile_go(s3.filter) if s3.filter else None
        if s3.key and not s3.key.endswith(("*", "/")):
            try:
                head = self._head(client, s3, s3.key)
                return [(s3.key, int(head["ContentLength"]))]
            except botocore.exceptions.ClientError as err:
                code = str(err.response.get("Error", {}).get("Code", ""))
                if code not in ("404", "NoSuchKey", "NotFound") or s3.version_id:
                    raise
            prefix = s3.key + "/"  # "dir" without its slash: a folder, as Bacalhau reads it
        else:
            prefix = s3.key.rstrip("*")
        found: list[tuple[str, int]] = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=s3.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if pattern and not pattern.search(key.removeprefix(prefix)):
                    continue
                found.append((key, int(obj["Size"])))
        if not any(not key.endswith("/") for key, _ in found):
            what = "no key" if s3.key and not s3.key.endswith(("*", "/")) else "no object"
            raise input_failed(
                f"{s3.uri}: {what} matches" + (f" (filter {s3.filter!r})" if s3.filter else ""),
                hint="check Bucket, Key and Filter",
                kind=_KIND,
            )
        return found

    def _head(self, client: S3Client, s3: S3InputSpec, key: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": s3.bucket, "Key": key}
        if s3.version_id:
            kwargs["VersionId"] = s3.version_id
        return dict(client.head_object(**kwargs))

    def _get(
        self, client: S3Client, s3: S3InputSpec, key: str, target: Path, *, single: bool
    ) -> None:
        kwargs: dict[str, Any] = {"Bucket": s3.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if s3.version_id and single:
            kwargs["VersionId"] = s3.version_id
        resp = client.get_object(**kwargs)
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        body = resp["Body"]
        written = 0
        with target.open("xb") as out:
            for chunk in body.iter_chunks(_CHUNK):
                written += len(chunk)
                if written > self._max_bytes:
                    raise input_failed(
                        f"s3://{s3.bucket}/{key} is larger than the limit of "
                        f"{self._max_bytes} bytes",
                        kind=_KIND,
                    )
                sha.update(chunk)
                md5.update(chunk)
                out.write(chunk)
        got_sha = base64.b64encode(sha.digest()).decode()
        wanted = [s3.checksum_sha256] if single and s3.checksum_sha256 else []
        stored = str(resp.get("ChecksumSHA256") or "")
        if stored and "-" not in stored:  # a composite (multipart) checksum is not the file's
            wanted.append(stored)
        for want in wanted:
            if _normal_sha(want) != got_sha:
                raise input_failed(
                    f"s3://{s3.bucket}/{key} does not match its SHA-256 checksum "
                    f"(expected {want}, got {got_sha})",
                    hint="the object changed or was damaged; check ChecksumSHA256",
                    kind=_KIND,
                )
        etag = str(resp.get("ETag") or "").strip('"')
        if _MD5_ETAG.fullmatch(etag) and etag != md5.hexdigest():
            raise input_failed(
                f"s3://{s3.bucket}/{key} does not match its ETag (MD5 {etag}, got "
                f"{md5.hexdigest()})",
                kind=_KIND,
            )


def _folder_name(key: str, parent: str) -> str:
    """Where folder marker ``key`` goes below the input's directory ("" for the input's own
    folder, or a marker outside it)."""
    rel = key[len(parent) :] if key.startswith(parent) else ""
    if not rel.strip("/"):
        return ""
    return relative_name(key.rstrip("/"), parent)


def _refuse_file_folder_clashes(
    s3: S3InputSpec, names: list[tuple[str, str]], folders: Sequence[tuple[str, str]] = ()
) -> None:
    """S3 may hold an object ``a/b`` and objects below ``a/b/``; a folder cannot hold both,
    so say which keys clash before downloading anything."""
    files = {name: key for key, name in names}
    for key, name in [*names, *((key, f"{name}/") for key, name in folders)]:
        parent = posixpath.dirname(name)
        while parent:
            if parent in files:
                raise input_failed(
                    f"{s3.uri}: object {files[parent]!r} and object {key!r} cannot both be "
                    f"downloaded: {parent!r} would have to be a file and a folder",
                    hint="narrow Key or Filter to one of them",
                    kind=_KIND,
                )
            parent = posixpath.dirname(parent)


def _normal_sha(value: str) -> str:
    """A SHA-256 given as base64 (S3's form) or hex, as base64."""
    text = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return base64.b64encode(bytes.fromhex(text)).decode()
    return text
