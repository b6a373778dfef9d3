"""``bacalhau serve``: build a node's components from its configuration and run them.

The composition root: the only place that knows every concrete class. Start order is
bottom-up (the gRPC server with gossip on it, the gossip member, then the roles, the public
API, and the compute node's contact with its requesters), stop order the reverse (the
member leaves the cluster gracefully), all through one ``AsyncExitStack`` so a failure
anywhere unwinds cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import platform
import signal
import socket
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace

import bacalhau
from bacalhau import _wall_steps as wall_steps
from bacalhau._logging import configure_logging
from bacalhau._wall_steps import WALL_STEPS_FILE
from bacalhau.api import ApiServer, GrpcApiServer, MetricsServer
from bacalhau.compute import (
    ComputeEndpoint,
    RequesterTrust,
)
from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidConfiguration
from bacalhau.executor import gpu_labels, host_gpus
from bacalhau.gossip import Membership, MembershipRunner, Message, NodeRecord
from bacalhau.identity import NodeFiles, NodeIdentity, check_node_files, is_peer_id
from bacalhau.models import NodeInfo, NodeType, rfc3339_ns
from bacalhau.node._addresses import given_out, node_wildcard_host
from bacalhau.node._api_settings import (
    agent_config,
    authorizer_of,
    managed_bucket,
    metrics_roles,
    presigner,
)
from bacalhau.node._blocks import ClusterProviders
from bacalhau.node._bootstrap import bootstrap_certificates
from bacalhau.node._cert_watch import watch_certificate
from bacalhau.node._cluster_view import GossipNodeView
from bacalhau.node._compute_node import build_compute
from bacalhau.node._data_lock import lock_data_dir
from bacalhau.node._job_defaults import DefaultingOrchestrator
from bacalhau.node._join import join_service, join_with_token, renew_while_running
from bacalhau.node._lifeline import watch_lifeline
from bacalhau.node._listen import listen
from bacalhau.node._membership import (
    RecordPublisher,
    RequesterContact,
    gossip_settings,
    seed_addresses,
)
from bacalhau.node._result_check import PublishedResultChecker
from bacalhau.node._run_info import run_info_lines, write_run_info
from bacalhau.node._wiring import RequesterLinks, RoutedComputeClient
from bacalhau.orchestrator import ApprovalChain, Orchestrator, SchedulerSettings, build_hook
from bacalhau.publisher import LocalResultServer
from bacalhau.storage import BlockExchange, BlockstoreContent, HeldRoots
from bacalhau.storage.cid import Blockstore
from bacalhau.transport import (
    MEMBER_RECORD_CODEC,
    BlockClient,
    ComputeClient,
    MembershipClient,
    NodeServer,
    TlsMaterial,
)

log = logging.getLogger(__name__)


#: Where a node keeps the name it was given at its first start (Bacalhau keeps it too).
NAME_FILE = "node-name"


def _node_name(config: NodeConfig) -> str:
    """The name the node was given at its first start; else ``--name``, else the machine's
    name when ``NameProvider`` is ``hostname``; empty: the node goes by its node ID
    (``puuid``/``uuid``: an ID that is unique already). As in Bacalhau, the first name
    stays: a later start without ``--name`` keeps it, a different one is ignored (logged)."""
    wanted = config.name
    if not wanted and config.name_provider == "hostname":
        wanted = socket.gethostname()
    kept = config.data_dir / NAME_FILE
    try:
        stored = kept.read_text().strip()
    except OSError:
        stored = ""
    if stored:
        if wanted and wanted != stored:
            log.warning(
                "this node has been named %r since its first start: the name %r is ignored",
                stored,
                wanted,
            )
        return stored
    if wanted:
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(wanted + "\n")
        except OSError as err:
            log.warning("could not keep the node's name in %s: %s", kept, err)
    return wanted


def _labels(config: NodeConfig) -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    labels = {"Operating-System": platform.system().lower(), "Architecture": arch}
    name = _node_name(config)
    if name:
        labels["name"] = name
    labels.update(gpu_labels(host_gpus()) if config.compute else {})
    labels.update(config.labels)
    return labels


@dataclass(slots=True)
class RunningNode:
    """Handles to a started node (used by tests and the devstack)."""

    node_id: str
    grpc_address: str
    api_port: int = 0
    #: The public gRPC API's port (requester only; 0 when not served).
    api_grpc_port: int = 0
    #: The port of ``GET /metrics`` alone (``--metrics-port``; 0 when not served).
    metrics_port: int = 0
    orchestrator: Orchestrator | None = None
    compute: ComputeEndpoint | None = None
    membership: MembershipRunner | None = None
    #: Unix ns when this node's gossip member started (and sent its join to the seeds).
    member_since_ns: int = 0
    contact: RequesterContact | None = None
    extras: dict[str, object] = field(default_factory=dict)


async def start_node(config: NodeConfig, stack: AsyncExitStack) -> RunningNode:
    """Start every component of the node on ``stack``; returns once the node serves."""
    if not (config.orchestrator or config.compute):
        raise InvalidConfiguration(
            "a node needs a role", hint="pass --orchestrator, --compute, or both"
        )
    if config.api_tls_use_tls:
        # Bacalhau's client reads UseTLS, and its documentation calls it "Enable TLS for API
        # server": an operator who sets it for a node expects HTTPS, which this node lacks.
        raise InvalidConfiguration(
            "configuration key API.TLS.UseTLS = true is refused: this node's REST and gRPC "
            "APIs serve plain HTTP/2 and HTTP, without TLS",
            hint="terminate TLS in a reverse proxy in front of the API (with the API bound "
            "to 127.0.0.1 behind it), and set API.TLS.UseTLS only for clients",
            details={"Field": "API.TLS.UseTLS"},
        )
    seeds = seed_addresses(config)
    if config.compute and not config.orchestrator and not seeds:
        raise InvalidConfiguration(
            "a compute node needs a seed: its requester's address",
            hint="pass --seed HOST:PORT (the requester's --grpc-port; "
            "--orchestrator-address is the same)",
        )
    for requester_id in config.trusted_requesters:
        if not is_peer_id(requester_id):
            raise InvalidConfiguration(
                f"trusted requester {requester_id!r} is not a node ID",
                hint="list requesters by node ID (12D3KooW..., see `bacalhau node list`)",
                details={"Field": "trusted_requesters"},
            )
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    stack.callback(os.close, lock_data_dir(data_dir))
    # Before any job's time is counted: a step of the wall clock while the node was down.
    wall_steps.remember_in(data_dir / WALL_STEPS_FILE)
    identity = NodeIdentity.load_or_create(data_dir, certified_needs_key=True)
    bootstrap_certificates(config, identity)  # a requester's first start
    await join_with_token(config, identity, seeds)  # a compute node's first start
    files = NodeFiles.in_dir(data_dir)
    check_node_files(files)
    wildcard = node_wildcard_host(files)
    # The server and every client share it: a certificate renewed while the node runs is
    # presented from the next handshake and used by new channels.
    tls = TlsMaterial(files)
    joined = bool(config.join_token) and not config.orchestrator
    renew = functools.partial(renew_while_running, config, identity, seeds, tls)
    watch = asyncio.create_task(
        watch_certificate(files, renew=renew if joined else None),
        name="certificate-watch",
    )
    stack.push_async_callback(_cancel, watch)

    server = NodeServer(identity, tls, config.grpc_host, config.grpc_port)
    joining = await join_service(config)
    if joining is not None:
        server.add_join_service(*joining)
    node_id = identity.node_id
    version = f"v{bacalhau.__version__}"  # Bacalhau clients read GitVersion as "vX.Y.Z"
    # Gossip on the same port; the member needs the bound address, so it starts later and
    # messages arriving before that are dropped (the protocol retries).
    runner: MembershipRunner | None = None

    def deliver(sender: str, message: Message) -> None:
        if runner is not None:
            runner.deliver(sender, message)

    server.add_membership(deliver)
    node_view = GossipNodeView()

    # The node's CID store: ipfs inputs are read from it, ipfs results published to it, data
    # users upload through the API kept in it; members fetch missing blocks from each other.
    role_dir = data_dir / ("compute" if config.compute else "orchestrator")
    blockstore = Blockstore(role_dir / "blocks")
    stack.callback(blockstore.close)
    server.add_block_service(blockstore)
    providers = ClusterProviders(node_id)
    block_client = await stack.enter_async_context(BlockClient(tls))
    exchange = BlockExchange(blockstore, block_client, providers)
    held_roots = HeldRoots(blockstore)

    # -- orchestrator ---------------------------------------------------------------------
    orchestrator: Orchestrator | None = None
    routed: RoutedComputeClient | None = None
    managed = managed_bucket(config) if config.orchestrator else None
    # How result locations are answered (pre-signed): by both APIs and the result checks.
    results_answered = presigner(config, managed)
    if config.orchestrator:
        compute_client = ComputeClient(identity, tls)
        stack.push_async_callback(_close, compute_client.close)
        routed = RoutedComputeClient(compute_client)
        approval_hooks = ApprovalChain(
            [
                build_hook(h.type, name=h.name, command=h.command, url=h.url, timeout=h.timeout)
                for h in config.approval_hooks
            ]
        )
        orchestrator = DefaultingOrchestrator(
            job_defaults=config.job_defaults,
            node_info=NodeInfo(
                node_id=node_id,
                node_type=NodeType.REQUESTER,
                labels=_labels(config),
                version=version,
            ),
            data_dir=data_dir / "orchestrator",
            compute=routed,
            node_view=node_view,
            settings=scheduler_settings(config),
            workers=config.scheduler_workers,
            housekeeping_interval=config.housekeeping_interval,
            default_publisher=config.default_publisher,
            manual_approval=config.manual_approval,
            approval_hooks=approval_hooks,
            job_retention=config.job_retention,
            managed_bucket=managed,
            log_streams_max=config.log_streams_max,
            log_streams_per_client_max=config.log_streams_per_client_max,
            # Verified replicas' claimed CIDs are checked against what they published.
            result_checker=PublishedResultChecker(
                max_bytes=config.result_check_max_bytes,
                presign=results_answered,
                peers=block_client,
                finder=providers,
                local=blockstore,
                node_id=node_id,
            ),
        )
        server.add_orchestrator_handler(orchestrator)

    # -- compute --------------------------------------------------------------------------
    endpoint: ComputeEndpoint | None = None
    links: RequesterLinks | None = None
    trust: RequesterTrust | None = None
    result_server: LocalResultServer | None = None
    publish_dir = data_dir / "compute" / "published"
    if config.compute:
        publish_dir.mkdir(parents=True, exist_ok=True)
        result_server = LocalResultServer(
            directory=publish_dir, host=config.publisher_host, port=config.publisher_port
        )
        await listen(
            stack, result_server, config.publisher_host, config.publisher_port, "--publisher-port"
        )
        # Obeys only: configured requesters, itself (hybrid), requesters proven at seeds.
        trust = RequesterTrust(
            (*config.trusted_requesters, *((node_id,) if orchestrator else ())),
            expect_identify=bool(seeds),
        )
        links = RequesterLinks(local=orchestrator, local_id=node_id)
        endpoint = await build_compute(
            config, node_id, links, trust, result_server, stack, blockstore, exchange, wildcard
        )
        server.add_compute_handler(endpoint)
        if routed is not None:
            routed.attach_local(node_id, endpoint)

    await listen(stack, server, config.grpc_host, config.grpc_port, "--grpc-port")
    grpc_address = f"{given_out(config.grpc_host, config.advertise_host, wildcard)}:{server.port}"
    running = RunningNode(node_id=node_id, grpc_address=grpc_address)
    labels = _labels(config)
    api_host = given_out(config.api_host, config.advertise_host, wildcard)
    #: Filled in once the API listens (its real port is known then); the record follows.
    api_address = [""]
    publisher_address = ""
    if result_server is not None:
        pub_host = given_out(config.publisher_host, config.advertise_host, wildcard)
        publisher_address = f"{pub_host}:{result_server.port}"

    # -- membership -----------------------------------------------------------------------
    roles = server.roles
    compute_endpoint = endpoint

    async def describe() -> NodeRecord:
        compute_info = await compute_endpoint.node_info() if compute_endpoint else None
        if compute_info is not None:
            # Advertised so that a requester can refuse a job no node would forward for.
            compute_info.env_allow_list = list(config.env_allow_list)
        info = NodeInfo(
            node_id=node_id,
            node_type=NodeType.COMPUTE if compute_info is not None else NodeType.REQUESTER,
            labels=labels,
            compute=compute_info,
            version=version,
            grpc_address=grpc_address,
        )
        record = NodeRecord.from_node_info(
            info,
            version=0,
            roles=roles,
            api_address=api_address[0],
            publisher_address=publisher_address,
        )
        if compute_info is None:
            return record
        # Asked four times a second: a thread only when the pins changed since the last look.
        held = held_roots.cached()
        if held is None:
            held = await asyncio.to_thread(held_roots.snapshot)
        return replace(record, held_roots=held)

    settings = gossip_settings(config)
    network = await stack.enter_async_context(MembershipClient(identity, tls))
    first = await describe()
    core = Membership(
        identity=identity,
        record=replace(first, version=time.time_ns()),
        codec=MEMBER_RECORD_CODEC,
        settings=settings,
        seeds=seeds,
        now=time.monotonic(),
    )
    running.member_since_ns = time.time_ns()
    runner = await stack.enter_async_context(MembershipRunner(core, network))
    running.membership = runner
    providers.runner = runner
    if endpoint is not None:
        endpoint.follow_record(lambda: runner.local_record.version)
    node_view.attach(runner)
    await stack.enter_async_context(node_view)

    if orchestrator is not None:
        await stack.enter_async_context(orchestrator)
        # Stopping, the node stops taking bprotocol calls (and lets those running end)
        # before the orchestrator closes its store: a call taken after that would fail,
        # and a compute node must see "unavailable, retry", not a broken requester.
        stack.push_async_callback(server.stop)
        # Closed before the orchestrator: bids still being decided are dropped first.
        await stack.enter_async_context(approval_hooks)
        # One authorizer for both APIs: a password checked on one is remembered for both.
        authorizer = authorizer_of(config)
        # What /api/v1/agent/config (and the gRPC API's Config) serve, redacted.
        shown_config = agent_config(config, approval_hooks)
        content = BlockstoreContent(blockstore, exchange, fetch_timeout=config.ipfs_fetch_timeout)
        api = ApiServer(
            orchestrator,
            host=config.api_host,
            port=config.api_port,
            max_job_size=config.max_job_size,
            gossip_metrics=lambda: _gossip_report(runner, server),
            result_rewriter=results_answered,
            content=content,
            max_upload=config.data_upload_max_bytes,
            agent_config=shown_config,
            authorizer=authorizer,
            metrics_roles=metrics_roles(config),
        )
        await listen(stack, api, config.api_host, config.api_port, "--api-port")
        running.orchestrator = orchestrator
        running.api_port = api.port
        api_address[0] = f"{api_host}:{api.port}"
        log.info("requester %s: API on %s:%d", node_id, config.api_host, api.port)
        # Same host and security posture (plaintext) as the REST API, on its own port.
        grpc_api = GrpcApiServer(
            orchestrator,
            host=config.api_host,
            port=config.grpc_api_port(),
            max_message=config.max_job_size,
            result_rewriter=results_answered,
            authorizer=authorizer,
            agent_config=shown_config,
            content=content,
            max_upload=config.data_upload_max_bytes,
        )
        await listen(stack, grpc_api, config.api_host, config.grpc_api_port(), "--api-grpc-port")
        running.api_grpc_port = grpc_api.port
        log.info("requester %s: gRPC API on %s:%d", node_id, config.api_host, grpc_api.port)

    if endpoint is not None and links is not None and trust is not None:
        await stack.enter_async_context(endpoint)
        stack.push_async_callback(server.stop)  # as for the orchestrator, above
        running.compute = endpoint
        running.contact = await stack.enter_async_context(
            RequesterContact(
                identity=identity,
                files=tls,
                seeds=seeds,
                trust=trust,
                links=links,
                endpoint=endpoint,
                runner=runner,
            )
        )
        log.info("compute %s: bprotocol on %s", node_id, grpc_address)
    if config.metrics_port >= 0:
        metrics = MetricsServer(
            host=config.api_host, port=config.metrics_port, roles=metrics_roles(config)
        )
        await listen(stack, metrics, config.api_host, config.metrics_port, "--metrics-port")
        running.metrics_port = metrics.port
        log.info("node %s: metrics on %s:%d", node_id, config.api_host, metrics.port)
    await stack.enter_async_context(RecordPublisher(runner, describe))
    return running


def _gossip_report(runner: MembershipRunner, server: NodeServer) -> dict[str, object]:
    """What ``/api/v1/agent/debug`` shows of this node's gossip: the core's counters (records
    applied and rejected), messages refused at the edge, failed sends, members by liveness."""
    states: dict[str, int] = {}
    for member in runner.members():
        states[member.state.value] = states.get(member.state.value, 0) + 1
    return {
        "Metrics": runner.metrics.as_dict(),
        "RefusedMessages": server.membership_refusals,
        "SendFailures": runner.send_failures,
        "Members": states,
    }


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close(closer: Callable[[], object]) -> None:
    result = closer()
    if asyncio.iscoroutine(result):
        await result


async def serve(config: NodeConfig, *, parent_fd: int | None = None) -> None:
    """Run a node until SIGINT or SIGTERM, then stop it gracefully.

    ``parent_fd`` is the read end of its starter's lifeline (see :mod:`._lifeline`): the node
    also stops when that process is gone. A stop asked for while starting ends the start.
    ``faulty_results`` (test only) is refused unless the node was started by ``bacalhau
    devstack`` (which gives it a lifeline).
    """
    configure_logging(config.log_level, config.log_mode)
    for notice in config.ignored_notices():
        log.warning("%s", notice)
    if config.faulty_results and parent_fd is None:
        raise InvalidConfiguration(
            f"faulty_results={config.faulty_results} makes this node alter the results it "
            "publishes: it is for testing verification in a devstack only",
            hint="remove faulty_results from the configuration, or start the node with "
            "`bacalhau devstack --faulty-compute-nodes N`",
            details={"Field": "faulty_results"},
        )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    unwatch = watch_lifeline(parent_fd, stop.set) if parent_fd is not None else None
    try:
        async with AsyncExitStack() as stack:
            starting = asyncio.ensure_future(start_node(config, stack))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return
            node = starting.result()
            # Frozen, what starting built is no longer scanned by each full collection.
            gc.collect()
            gc.freeze()
            run_info = None
            if node.api_port:
                # As Bacalhau's node does: scripts wait for the file and source it. Written
                # before the node says it runs, so that one waiting for that line finds it.
                run_info = write_run_info(config.data_dir, config.api_host, node.api_port)
                stack.callback(run_info.unlink, missing_ok=True)
            wanted = (("requester", config.orchestrator), ("compute", config.compute))
            roles = " + ".join(role for role, on in wanted if on)
            print(f"Node {node.node_id} ({roles}) is running.", flush=True)
            if node.api_port:
                print(f"  API: http://{config.api_host}:{node.api_port}", flush=True)
            if node.api_grpc_port:
                print(f"  gRPC API: {config.api_host}:{node.api_grpc_port}", flush=True)
            print(f"  bprotocol: {node.grpc_address}", flush=True)
            seeds = ", ".join(seed_addresses(config)) or "none"
            since = rfc3339_ns(node.member_since_ns)
            print(f"  gossip: member since {since} (seeds: {seeds})", flush=True)
            if run_info is not None:
                exports = run_info_lines(config.api_host, node.api_port).split("\n")
                print(f"  Use it:   . {run_info}", flush=True)
                print(f"            ({'; '.join(e for e in exports if e)})", flush=True)
            await stop.wait()
            log.info("stopping")
    finally:
        if unwatch is not None:
            unwatch()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def scheduler_settings(config: NodeConfig) -> SchedulerSettings:
    """The requester's scheduling settings from its configuration."""
    return SchedulerSettings(
        max_attempts=config.max_attempts,
        max_attempts_per_node=config.max_attempts_per_node,
        retry_delay=config.retry_delay,
        retry_max_delay=config.retry_max_delay,
        execution_timeout_grace=config.execution_timeout_grace,
        default_queue_timeout=config.default_queue_timeout,
        rejoin_grace=config.rejoin_grace,
        lost_node_wait=config.lost_node_wait,
        # Bacalhau treats a node's work as lost only once it has been silent for
        # the operator's DisconnectTimeout: gossip may call it dead sooner (its
        # timing is every member's), so the grace stretches to the timeout.
        lost_execution_grace=max(config.lost_execution_grace, config.disconnect_timeout),
        queue_move_after=config.queue_move_after,
        min_reputation=config.min_reputation,
        answer_linger=config.ask_answer_linger,
        queue_backoff=config.queue_backoff,
        queue_backoff_max=max(SchedulerSettings().queue_backoff_max, config.queue_backoff),
    )
