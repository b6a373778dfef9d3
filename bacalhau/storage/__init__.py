"""Where a node gets and keeps data: the CID-addressed store (:mod:`bacalhau.storage.cid`)
and the input source plugins behind :class:`StorageSource`: ``ipfs``, ``urlDownload``,
``s3``, ``localDirectory`` and ``inline``.

This package imports nothing of ours but :mod:`bacalhau.models` and :mod:`bacalhau.errors`.
The S3 source and client load boto3 (some 20 MB of a node's memory) when first named: a node
that reads nothing from S3, a requester, never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bacalhau._lazy import lazy_attributes
from bacalhau.models._s3_partition import Partition, PartitionSpec
from bacalhau.storage._archive import extract_tar_gz
from bacalhau.storage._base import (
    PartitionedSource,
    PreparedInput,
    PreparedPath,
    SizedSource,
    StorageSource,
)
from bacalhau.storage._content import BlockstoreContent
from bacalhau.storage._exchange import (
    BlockExchange,
    BlockPeer,
    BlockPeers,
    FetchReport,
    ProviderFinder,
)
from bacalhau.storage._inline import InlineSource
from bacalhau.storage._ipfs import BlockFetcher, IPFSSource, LocalOnlyFetcher, parse_cid_path
from bacalhau.storage._localdir import LOCAL_KIND, AllowedPath, LocalDirectorySource
from bacalhau.storage._locality import HeldRoots, Member, dag_size, order_providers
from bacalhau.storage._prepare import WHOLE, inputs_of, prepare_inputs, validate_inputs
from bacalhau.storage._urldownload import UrlDownloadSource

if TYPE_CHECKING:
    from bacalhau.storage._s3 import S3Source
    from bacalhau.storage._s3client import missing_aws_credentials, s3_client, s3_error

__all__ = [
    "LOCAL_KIND",
    "WHOLE",
    "AllowedPath",
    "BlockExchange",
    "BlockFetcher",
    "BlockPeer",
    "BlockPeers",
    "BlockstoreContent",
    "FetchReport",
    "HeldRoots",
    "IPFSSource",
    "InlineSource",
    "LocalDirectorySource",
    "LocalOnlyFetcher",
    "Member",
    "Partition",
    "PartitionSpec",
    "PartitionedSource",
    "PreparedInput",
    "PreparedPath",
    "ProviderFinder",
    "S3Source",
    "SizedSource",
    "StorageSource",
    "UrlDownloadSource",
    "dag_size",
    "extract_tar_gz",
    "inputs_of",
    "missing_aws_credentials",
    "order_providers",
    "parse_cid_path",
    "prepare_inputs",
    "s3_client",
    "s3_error",
    "validate_inputs",
]


__getattr__ = lazy_attributes(
    __name__,
    {
        "S3Source": "bacalhau.storage._s3",
        "missing_aws_credentials": "bacalhau.storage._s3client",
        "s3_client": "bacalhau.storage._s3client",
        "s3_error": "bacalhau.storage._s3client",
    },
)
