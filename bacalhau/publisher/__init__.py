"""Publisher plugins (local, s3, s3managed, ipfs, noop) behind one small Protocol.

The S3 publisher loads boto3 when first named (a node that publishes nothing to S3 never
does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bacalhau._lazy import lazy_attributes
from bacalhau.publisher._base import Publisher, ResultsKeeper
from bacalhau.publisher._cid import results_cid
from bacalhau.publisher._ipfs import IPFSPublisher
from bacalhau.publisher._kept import KeptResults, decode_kept, encode_kept
from bacalhau.publisher._local import LocalPublisher, write_archive
from bacalhau.publisher._local_server import LocalResultServer
from bacalhau.publisher._noop import NoopPublisher
from bacalhau.publisher._proof import ArchiveDigest, archive_cid
from bacalhau.publisher._s3managed import (
    ManagedBucket,
    S3ManagedPublisher,
    UploadUrlSource,
)

if TYPE_CHECKING:
    from bacalhau.publisher._s3 import S3Publisher, presign_result, render_key

__all__ = [
    "ArchiveDigest",
    "IPFSPublisher",
    "KeptResults",
    "LocalPublisher",
    "LocalResultServer",
    "ManagedBucket",
    "NoopPublisher",
    "Publisher",
    "ResultsKeeper",
    "S3ManagedPublisher",
    "S3Publisher",
    "UploadUrlSource",
    "archive_cid",
    "decode_kept",
    "encode_kept",
    "presign_result",
    "render_key",
    "results_cid",
    "write_archive",
]


__getattr__ = lazy_attributes(
    __name__,
    dict.fromkeys(("S3Publisher", "presign_result", "render_key"), "bacalhau.publisher._s3"),
)
