"""Where a node gets and keeps data: the CID-addressed store (:mod:`bacalhau.storage.cid`)
and the input source plugins behind :class:`StorageSource`: ``ipfs``, ``urlDownload``,
``s3``, ``localDirectory`` and ``inline``.

This package imports nothing of ours but :mod:`bacalhau.models` and :mod:`bacalhau.errors`.
"""

from __future__ import annotations

from bacalhau.storage._archive import extract_tar_gz
from bacalhau.storage._base import PreparedInput, PreparedPath, StorageSource
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
from bacalhau.storage._localdir import AllowedPath, LocalDirectorySource
from bacalhau.storage._locality import HeldRoots, Member, dag_size, order_providers
from bacalhau.storage._prepare import inputs_of, prepare_inputs, validate_inputs
from bacalhau.storage._s3 import S3Source
from bacalhau.storage._s3client import s3_client, s3_error
from bacalhau.storage._urldownload import UrlDownloadSource

__all__ = [
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
    "PreparedInput",
    "PreparedPath",
    "ProviderFinder",
    "S3Source",
    "StorageSource",
    "UrlDownloadSource",
    "dag_size",
    "extract_tar_gz",
    "inputs_of",
    "order_providers",
    "parse_cid_path",
    "prepare_inputs",
    "s3_client",
    "s3_error",
    "validate_inputs",
]
