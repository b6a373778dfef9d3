"""Plugins registered by name: the one place that maps engine, input source and publisher
names to classes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from bacalhau.errors import InvalidConfiguration
from bacalhau.executor import Executor, NoopExecutor, WasmExecutor
from bacalhau.executor._results import MAX_STREAM_FILE_BYTES
from bacalhau.executor.docker import (
    DEFAULT_CAP_DROP,
    DEFAULT_IMAGE_CACHE_SIZE,
    DEFAULT_IMAGE_CACHE_TTL,
    DEFAULT_PIDS_LIMIT,
    DEFAULT_READ_ONLY_ROOTFS,
    DEFAULT_RESULT_DISK_LIMIT,
    DEFAULT_TMP_SIZE,
    DEFAULT_WRITABLE_LAYER_LIMIT,
)
from bacalhau.executor.wasm import WASM32_MAX_MEMORY
from bacalhau.models import MANAGED_PUBLISHER
from bacalhau.publisher import (
    IPFSPublisher,
    NoopPublisher,
    Publisher,
    S3ManagedPublisher,
    UploadUrlSource,
)
from bacalhau.storage import (
    LOCAL_KIND,
    BlockFetcher,
    InlineSource,
    IPFSSource,
    LocalDirectorySource,
    StorageSource,
    UrlDownloadSource,
)
from bacalhau.storage.cid import Blockstore

#: Engine names a compute node can offer.
KNOWN_ENGINES = ("docker", "noop", "wasm")


def check_engines(names: Iterable[str]) -> tuple[str, ...]:
    """Normalise engine names; unknown ones are a configuration error naming the choices."""
    out = tuple(n.strip().lower() for n in names if n.strip())
    for name in out:
        if name not in KNOWN_ENGINES:
            raise InvalidConfiguration(
                f"unknown execution engine {name!r}",
                hint="choose from: " + ", ".join(KNOWN_ENGINES),
            )
    if not out:
        raise InvalidConfiguration("a compute node needs at least one execution engine")
    return out


def build_executors(
    names: Iterable[str],
    *,
    allow_image_pull: bool,
    node_id: str,
    docker_image_cache_ttl: float = DEFAULT_IMAGE_CACHE_TTL,
    docker_image_cache_size: int = DEFAULT_IMAGE_CACHE_SIZE,
    docker_pids_limit: int = DEFAULT_PIDS_LIMIT,
    docker_read_only_rootfs: bool = DEFAULT_READ_ONLY_ROOTFS,
    docker_tmp_size: int = DEFAULT_TMP_SIZE,
    docker_writable_layer_limit: int = DEFAULT_WRITABLE_LAYER_LIMIT,
    docker_cap_drop: tuple[str, ...] = DEFAULT_CAP_DROP,
    docker_result_disk_limit: int = DEFAULT_RESULT_DISK_LIMIT,
    docker_scratch_dir: Path | None = None,
    wasm_memory_limit: int = WASM32_MAX_MEMORY,
    wasm_scratch_dir: Path | None = None,
    output_limit: int = MAX_STREAM_FILE_BYTES,
) -> dict[str, Executor]:
    """Instantiate the executors a compute node offers, by name.

    Container names carry a per-node prefix: several compute nodes may share one Docker
    engine, and a node cleaning up its leftovers must never touch a sibling's containers.
    ``output_limit`` caps the stdout and the stderr file of every Docker and WASM job;
    ``wasm_memory_limit`` is the most linear memory a WASM job may grow to.
    """
    prefix = f"bacalhau-{node_id[-8:].lower()}"

    def docker_executor() -> Executor:
        from bacalhau.executor.docker import DockerExecutor  # the Docker SDK: only here

        try:
            return DockerExecutor(
                allow_pull=allow_image_pull,
                image_cache_ttl=docker_image_cache_ttl,
                image_cache_size=docker_image_cache_size,
                name_prefix=prefix,
                pids_limit=docker_pids_limit,
                read_only_rootfs=docker_read_only_rootfs,
                tmp_size=docker_tmp_size,
                writable_layer_limit=docker_writable_layer_limit,
                cap_drop=docker_cap_drop,
                result_disk_limit=docker_result_disk_limit,
                scratch_dir=docker_scratch_dir,
                stream_limit=output_limit,
            )
        except ValueError as e:
            raise InvalidConfiguration(f"docker executor: {e}") from None

    def wasm_executor() -> Executor:
        try:
            return WasmExecutor(
                max_memory=wasm_memory_limit,
                max_stream_bytes=output_limit,
                # Result folders are capped as a container's are (the same operator cap).
                result_disk_limit=docker_result_disk_limit,
                scratch_dir=wasm_scratch_dir,
            )
        except ValueError as e:
            raise InvalidConfiguration(f"wasm executor: {e}") from None

    registry: dict[str, Callable[[], Executor]] = {
        "docker": docker_executor,
        "wasm": wasm_executor,
        "noop": NoopExecutor,
    }
    return {name: registry[name]() for name in check_engines(names)}


def build_storage_sources(
    *,
    blockstore: Blockstore,
    allow_listed_local_paths: Iterable[str] = (),
    max_bytes: int,
    read_timeout: float,
    max_retries: int,
    ipfs_fetch_timeout: float,
    block_fetcher: BlockFetcher | None = None,
) -> dict[str, StorageSource]:
    """Every input source a compute node offers, under its Bacalhau name (``urlDownload``).

    ``block_fetcher`` gets blocks of ``ipfs`` inputs this node lacks from the cluster; without
    one, only the node's own blockstore is searched.
    """
    from bacalhau.storage import S3Source  # boto3: only on compute nodes

    sources: list[StorageSource] = [
        IPFSSource(blockstore, fetcher=block_fetcher, timeout=ipfs_fetch_timeout),
        UrlDownloadSource(max_bytes=max_bytes, timeout=read_timeout, max_retries=max_retries),
        S3Source(max_bytes=max_bytes),
        LocalDirectorySource(allow_listed_local_paths),
        InlineSource(max_bytes=min(max_bytes, 64 * 1024 * 1024)),
    ]
    found: dict[str, StorageSource] = {source.name: source for source in sources}
    # Bacalhau v1.8 renamed localDirectory to local (the old name stays an alias).
    found[LOCAL_KIND] = found["localDirectory"]
    return found


def build_publishers(
    *,
    local: Publisher,
    blockstore: Blockstore,
    node_id: str,
    managed_upload_url: UploadUrlSource,
) -> dict[str, Publisher]:
    """Every publisher a compute node offers, by name (``local`` is built with its server;
    ``managed_upload_url`` asks an execution's requester where its s3managed results go)."""
    from bacalhau.publisher import S3Publisher  # boto3: only on compute nodes

    return {
        "local": local,
        "s3": S3Publisher(node_id=node_id),
        MANAGED_PUBLISHER: S3ManagedPublisher(upload_url=managed_upload_url),
        "ipfs": IPFSPublisher(blockstore),
        "noop": NoopPublisher(),
    }
