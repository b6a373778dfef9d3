"""A compute node's parts, wired from its configuration: executors, publishers, input
sources, capacity, the execution store, the bidder with the operator's probes, the
pipeline and the endpoint the requester talks to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TypeVar

from bacalhau import storage
from bacalhau.compute import (
    Bidder,
    BidStrategy,
    CapacityTracker,
    ComputeEndpoint,
    DeterministicImages,
    EnvForwardingAllowed,
    ExecProbe,
    ExecutionPipeline,
    ExecutionStore,
    HostCpusFit,
    HttpProbe,
    LocalInputs,
    PortAllocator,
    PortsAvailable,
    RequesterTrust,
    StorageInputs,
    default_strategies,
    host_resources,
)
from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidConfiguration
from bacalhau.executor import host_gpus
from bacalhau.models import Job
from bacalhau.node._addresses import given_out
from bacalhau.node._capacity import offered_capacity
from bacalhau.node._plugins import build_executors, build_publishers, build_storage_sources
from bacalhau.node._wiring import RequesterLinks
from bacalhau.publisher import KeptResults, LocalResultServer, decode_kept
from bacalhau.storage import BlockFetcher
from bacalhau.storage.cid import Blockstore

T = TypeVar("T")
log = logging.getLogger(__name__)


async def build_compute(
    config: NodeConfig,
    node_id: str,
    links: RequesterLinks,
    trust: RequesterTrust,
    result_server: LocalResultServer,
    stack: AsyncExitStack,
    blockstore: Blockstore,
    block_fetcher: BlockFetcher,
    wildcard_host: str = "127.0.0.1",
) -> ComputeEndpoint:
    """The compute role of node ``node_id``; what it opens closes with ``stack``.
    ``wildcard_host``: what a listener bound to every interface is given out by."""
    data_dir = config.data_dir / "compute"
    if config.docker_pids_limit < 1:
        raise InvalidConfiguration(
            f"docker_pids_limit must be at least 1, got {config.docker_pids_limit}"
        )
    ports = _port_allocator(config)
    executors = build_executors(
        [e for e in config.engines if e.lower() not in _lower(config.disabled_engines)],
        allow_image_pull=config.allow_image_pull,
        node_id=node_id,
        docker_image_cache_ttl=config.docker_image_cache_ttl,
        docker_image_cache_size=config.docker_image_cache_size,
        docker_pids_limit=config.docker_pids_limit,
        docker_read_only_rootfs=config.docker_read_only_rootfs,
        docker_tmp_size=config.docker_tmp_size,
        docker_writable_layer_limit=config.docker_writable_layer_limit,
        docker_cap_drop=config.docker_cap_drop,
        docker_result_disk_limit=config.docker_result_disk_limit,
        docker_scratch_dir=data_dir / "docker-scratch",
        wasm_memory_limit=config.wasm_memory_limit,
        wasm_scratch_dir=data_dir / "wasm-scratch",
        output_limit=config.executor_output_limit,
    )
    for ex in executors.values():
        if isinstance(ex, AbstractAsyncContextManager):
            # Docker: leftovers of a previous run removed now, strays by a reaper. Docker and
            # WASM: every run stopped and cleaned up at close, after the endpoint (entered
            # later) stops.
            await stack.enter_async_context(ex)
    local = result_server.publisher(
        address=given_out(config.publisher_host, config.advertise_host, wildcard_host)
    )
    store = ExecutionStore(data_dir / "executions.db")
    stack.callback(store.close)

    async def managed_upload_url(job: Job, execution_id: str) -> str:
        # Asked of the requester the execution came from (s3managed: its bucket).
        record = store.find(execution_id)
        requester = record.requester_id if record is not None else ""
        return await links.presign_result_upload(requester, job.id, execution_id)

    publishers = _without(
        build_publishers(
            local=local,
            blockstore=blockstore,
            node_id=node_id,
            managed_upload_url=managed_upload_url,
        ),
        config.disabled_publishers,
    )
    input_sources = build_storage_sources(
        blockstore=blockstore,
        allow_listed_local_paths=config.allow_listed_local_paths,
        max_bytes=config.input_max_bytes,
        read_timeout=config.input_read_timeout,
        max_retries=config.input_max_retries,
        ipfs_fetch_timeout=config.ipfs_fetch_timeout,
        block_fetcher=block_fetcher,
    )
    input_sources = _without(input_sources, config.disabled_input_sources)
    gpus, no_aws = await asyncio.gather(
        # (Read off the module at this call: boto3 is loaded on compute nodes only.)
        asyncio.to_thread(host_gpus),
        asyncio.to_thread(storage.missing_aws_credentials),
    )
    if no_aws and ("s3" in input_sources or "s3" in publishers):
        # An S3 call without credentials fails before it is sent: rather than bid for such
        # jobs and fail each attempt, the node does not offer S3 (Bacalhau's S3 client is
        # installed only with credentials), so the requester places them elsewhere.
        log.info(
            "%s: this node offers neither s3 inputs nor the s3 publisher (set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or give it an "
            "instance role)",
            no_aws,
        )
        input_sources = _without(input_sources, ["s3"])
        publishers = _without(publishers, ["s3"])
    host = host_resources(data_dir.parent, gpus)
    total = offered_capacity(host, config)
    for what, offered, has in (("CPU", total.cpu, host.cpu), ("memory", total.memory, host.memory)):
        if has and offered > has:
            # Allowed (more jobs share the machine), but worth a line: nothing enforces it.
            log.warning(
                "this node offers more %s than the machine has (%s of %s): jobs placed here "
                "share it; a Docker job asking for more CPUs than the machine has is declined",
                what,
                f"{offered:g}",
                f"{has:g}",
            )
    capacity = CapacityTracker(total, gpus)
    # Small results are kept by the store, in the commit of the execution's end, and
    # archived by the result server when downloaded (see publisher._kept).
    result_server.serve_kept(lambda execution_id: _kept_results(store, execution_id))
    stack.callback(result_server.serve_kept, None)  # (before the store closes)
    bidder = Bidder(
        node_id=node_id,
        strategies=[
            # env:NAME references the operator did not allow are refused before anything else.
            EnvForwardingAllowed(config.env_allow_list),
            # Verified Docker jobs only on images the operator vouches are deterministic.
            DeterministicImages(config.deterministic_images),
            # A static port taken here, or a range too full for the job, goes elsewhere.
            PortsAvailable(ports),
            # A Docker job asking for more CPUs than the machine has would fail at start.
            HostCpusFit(host.cpu),
            *default_strategies(
                executors=executors,
                publishers=publishers,
                max_job_requirements=total,
                input_sources=input_sources,
                accept_networked_jobs=config.accept_networked_jobs,
                reject_stateless_jobs=config.reject_stateless_jobs,
                locality=LocalInputs(blockstore) if config.locality.lower() == "local" else None,
                probes=await _probes(config, stack),
            ),
        ],
    )
    pipeline = ExecutionPipeline(
        node_id=node_id,
        store=store,
        executors=executors,
        publishers=publishers,
        results_root=data_dir / "executions",
        inputs=StorageInputs(input_sources),
        gpus_of=capacity.gpus_of,
        env_allow_list=config.env_allow_list,
        faulty_results=config.faulty_results,
        ports=ports,
    )
    return ComputeEndpoint(
        node_id=node_id,
        store=store,
        bidder=bidder,
        pipeline=pipeline,
        callbacks=links,
        capacity=capacity,
        trust=trust,
        storage_sources=list(input_sources),
        retention=config.job_retention,
        callback_linger=config.callback_linger,
        # The local publisher's archive (``<execID>.tar.gz``) goes with its execution.
        published_paths=lambda execution_id: [local.directory / f"{execution_id}.tar.gz"],
        forget_published=local.forget,
        module_source=links,
    )


def _port_allocator(config: NodeConfig) -> PortAllocator:
    """The node's host ports for jobs, from a range checked before the node starts."""
    try:
        return PortAllocator(config.port_range_start, config.port_range_end)
    except ValueError as err:
        raise InvalidConfiguration(
            f"invalid port range {config.port_range_start}-{config.port_range_end} "
            f"(Compute.Network.PortRangeStart/PortRangeEnd): {err}",
            hint="give a range within 1024-65535, e.g. 20000-32000 (the default)",
        ) from None


def _lower(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names}


def _without(plugins: dict[str, T], disabled: Iterable[str]) -> dict[str, T]:
    """The plugins the operator did not disable (``Publishers.Disabled``...): a disabled
    plugin is not installed, so the node neither offers it nor bids for jobs needing it."""
    off = _lower(disabled)
    return {name: plugin for name, plugin in plugins.items() if name.lower() not in off}


async def _probes(config: NodeConfig, stack: AsyncExitStack) -> list[BidStrategy]:
    """The operator's exec and HTTP probes (``JobAdmissionControl.ProbeExec``/``ProbeHTTP``)."""
    probes: list[BidStrategy] = []
    if config.probe_exec.strip():
        probes.append(ExecProbe(config.probe_exec, timeout=config.probe_timeout))
    if config.probe_http.strip():
        probes.append(
            await stack.enter_async_context(
                HttpProbe(config.probe_http, timeout=config.probe_timeout)
            )
        )
    return probes


def _kept_results(store: ExecutionStore, execution_id: str) -> KeptResults | None:
    data = store.kept_results(execution_id)
    return decode_kept(data) if data is not None else None
