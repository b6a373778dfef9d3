"""Typed, frozen node configuration.

Precedence, lowest first: built-in defaults < ``<data_dir>/config.yaml`` < the files given
with ``--config FILE`` (in their order) < ``BACALHAU_NODE_*`` environment variables <
``-c Key=Value`` settings (in their order) < command-line flags. Keys are ours (the field
names below, in any case, ``.`` or ``-`` for ``_``) or Bacalhau's (v1.5-v1.9, see
:mod:`bacalhau.config._bacalhau_keys`), flat (``Compute.AllocatedCapacity.CPU``) or in
sections as Bacalhau writes them. Only ``node/`` and ``cli/`` load configuration;
components receive the narrow values they need as keyword arguments.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bacalhau.config._api_users import ApiUserConfig
from bacalhau.config._bacalhau_keys import (
    BACALHAU_KEYS,
)
from bacalhau.config._field_values import (
    check_field,
    parse_own,
)
from bacalhau.config._hooks import ApprovalHookConfig
from bacalhau.config._job_defaults import JobDefaults
from bacalhau.config._key_registry import (
    IgnoredValue,
    KeyEntry,
    KeyStatus,
    is_empty,
    normalise,
)
from bacalhau.errors import InvalidRequest


def default_data_dir() -> Path:
    env = os.environ.get("BACALHAU_DIR")
    return Path(env).expanduser() if env else Path.home() / ".bacalhau"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to start. Durations are seconds."""

    data_dir: Path = field(default_factory=default_data_dir)
    orchestrator: bool = False
    compute: bool = False
    name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    # Public REST API (requester only).
    api_host: str = "0.0.0.0"
    api_port: int = 1234
    #: Public gRPC API (``proto/bacalhau/v1/api.proto``), on ``api_host`` like the REST API;
    #: 0 picks a free port. Unset (-1): 1235, or a free port when ``api_port`` is 0, so a
    #: node asked for free ports takes no fixed one. See :meth:`grpc_api_port`.
    api_grpc_port: int = -1
    #: ``GET /metrics`` on a port of its own, on ``api_host`` (0 picks a free port; -1: off).
    #: A requester also serves it on its API port; a compute-only node has only this one.
    metrics_port: int = -1
    #: Who may use the REST and gRPC APIs, and for what (Bacalhau's ``API.Auth.Users``;
    #: see README, "Users and capabilities"). None: the APIs are open to every client.
    api_users: tuple[ApiUserConfig, ...] = ()
    #: How ``bacalhau`` (the client) reaches an API behind a TLS-terminating proxy, as
    #: Bacalhau's client reads ``API.TLS.UseTLS``, ``Insecure`` and ``CAFile``: over https,
    #: without checking the certificate, or checking it against this CA bundle. A node
    #: serves plain HTTP, and refuses to start with ``api_tls_use_tls``.
    api_tls_use_tls: bool = False
    api_tls_insecure: bool = False
    api_tls_ca_file: str = ""
    #: Largest request the APIs accept, in bytes (413 beyond); a job may take it less 64 KiB,
    #: room for what comes with it in the answers that carry it.
    max_job_size: int = 4 * 1024 * 1024

    # Node-to-node bprotocol (mutual-TLS gRPC).
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 4222
    #: The host other nodes use to reach this one; defaults to 127.0.0.1 when bound to 0.0.0.0.
    advertise_host: str = ""
    #: ``host:port`` of the requester's gRPC endpoint: a seed (see ``seeds``); Bacalhau's
    #: ``Compute.Orchestrators``.
    orchestrator_address: str = ""
    #: ``host:port`` of cluster members to join the gossip through (``--seed``, repeatable).
    #: A compute node asks each seed to prove its identity and obeys those that prove to be
    #: requesters (with ``trusted_requesters`` and, in a hybrid node, itself).
    seeds: tuple[str, ...] = ()
    #: The cluster's join token (Bacalhau's ``Orchestrator.Auth.Token`` and
    #: ``Compute.Auth.Token``): a compute node without a certificate gets one from its
    #: requester with it, and a requester with it certifies such nodes (see
    #: ``bacalhau.identity._join_token``). Empty: nodes are certified with `bacalhau ca issue`.
    join_token: str = ""

    # Gossip membership (SWIM with Lifeguard's refinements; see bacalhau.gossip.GossipSettings
    # for what each does). ``-c gossip.probe_interval=0.3`` sets ``gossip_probe_interval``.
    gossip_probe_interval: float = 0.5
    gossip_probe_timeout: float = 0.2
    gossip_indirect_checks: int = 3
    gossip_suspicion_mult: float = 1.0
    gossip_suspicion_max_mult: float = 6.0
    gossip_suspicion_min_seconds: float = 1.0
    gossip_interval: float = 0.1
    gossip_fanout: int = 3
    gossip_push_pull_interval: float = 10.0
    gossip_join_retry_interval: float = 1.0
    gossip_reconnect_interval: float = 5.0
    gossip_reap_after_seconds: float = 300.0

    # Local publisher's file server (compute only).
    publisher_host: str = "0.0.0.0"
    publisher_port: int = 6001

    # Compute.
    engines: tuple[str, ...] = ("docker", "wasm")
    #: Pull a Docker image the node lacks, once its registry confirmed it at bid time (as
    #: Bacalhau does); false for air-gapped nodes that run only the images loaded on them.
    allow_image_pull: bool = True
    accept_networked_jobs: bool = False
    #: Job admission (Bacalhau's ``JobAdmissionControl.*``): jobs without inputs refused;
    #: ``local`` takes only jobs whose input data is on the node (``anywhere``: any).
    reject_stateless_jobs: bool = False
    locality: str = "anywhere"
    #: The operator's probes: a command run through ``bash -c`` and a URL POSTed to, each
    #: given the job as JSON; either may refuse it. ``probe_timeout`` bounds each (seconds).
    probe_exec: str = ""
    probe_http: str = ""
    probe_timeout: float = 10.0
    #: Plugins the operator turns off (Bacalhau's ``Engines.Disabled``,
    #: ``Publishers.Disabled``, ``InputSources.Disabled``): the node neither offers nor
    #: bids for jobs that need them.
    disabled_engines: tuple[str, ...] = ()
    disabled_publishers: tuple[str, ...] = ()
    disabled_input_sources: tuple[str, ...] = ()
    #: Seconds a registry's answer that it has an image is kept (Bacalhau's
    #: ``Engines.Types.Docker.ManifestCache.TTL``; 0: asked at every bid), and how many
    #: images' answers are kept (``...ManifestCache.Size``). See ``allow_image_pull``.
    docker_image_cache_ttl: float = 300.0
    docker_image_cache_size: int = 1024
    #: The most processes (threads included) one Docker job may hold; jobs cannot raise it.
    docker_pids_limit: int = 256
    #: Docker jobs see the image's root filesystem read-only: they write only to their
    #: result folders and a tmpfs at /tmp. Turn off for images that install packages or keep
    #: state in their root (what they write there is capped: ``docker_writable_layer_limit``).
    docker_read_only_rootfs: bool = True
    #: Bytes of the tmpfs at /tmp in every Docker job under a read-only root (counted against
    #: its memory).
    docker_tmp_size: int = 64 * 1024 * 1024
    #: With a writable root: bytes a Docker job may write to its container's own filesystem,
    #: outside its result folders and inputs (its ``Resources.Disk`` when smaller); past it
    #: the job is stopped and fails. Measured every 2-10 s, so a fast writer may pass it by
    #: what it writes in that time. 0: no cap.
    docker_writable_layer_limit: int = 10 * 1024**3
    #: Capabilities taken from Docker's default set in every Docker job: ``ALL`` (the
    #: default) leaves none. ``NET_RAW,MKNOD`` keeps the rest of Docker's set, for images
    #: whose package managers or entrypoints chown or switch user.
    docker_cap_drop: tuple[str, ...] = ("ALL",)
    #: Bytes the result folders of one Docker or WASM job may hold together (the job's
    #: ``Resources.Disk`` when smaller); past it the job fails. 0: no cap. (The name is older
    #: than the WASM cap.)
    docker_result_disk_limit: int = 10 * 1024**3
    #: Bytes of linear memory one WASM job may grow to (its ``Resources.Memory`` when
    #: smaller); wasm32 cannot address more than 4 GiB, so a larger value means 4 GiB.
    wasm_memory_limit: int = 4 * 1024**3
    #: Bytes of stdout and of stderr each kept on disk for one job (Docker and WASM); past
    #: it the rest of that stream is dropped and the node logs how much.
    executor_output_limit: int = 1024**3
    #: Share of the host's CPU, memory and disk offered to jobs.
    capacity_fraction: float = 0.7
    #: What the node offers of each resource, over ``capacity_fraction`` (Bacalhau's
    #: ``Compute.AllocatedCapacity.*``): a percentage of the host (``80%``) or an amount
    #: (CPU ``4`` or ``3500m``, memory and disk ``16Gi``, GPU ``1``). Empty: the fraction
    #: (GPUs: every one).
    allocated_cpu: str = ""
    allocated_memory: str = ""
    allocated_disk: str = ""
    allocated_gpu: str = ""
    #: Seconds the accepted bid answer of an execution under way on this node may wait for
    #: its run result, so that both reach the requester in one call (0: send at once).
    callback_linger: float = 0.005
    #: Node IDs of requesters this compute node obeys besides the one it joins (and itself).
    trusted_requesters: tuple[str, ...] = ()
    #: Host paths jobs may mount as ``localDirectory`` inputs (each read-only unless it ends
    #: with ``:rw``); Bacalhau's ``Compute.AllowListedLocalPaths``.
    allow_listed_local_paths: tuple[str, ...] = ()
    #: Host ports given to jobs' ``Network.Ports`` that name no ``Static`` port, first and
    #: last (inclusive, within 1024-65535); Bacalhau's ``Compute.Network.PortRangeStart``
    #: and ``PortRangeEnd``, with its defaults.
    port_range_start: int = 20000
    port_range_end: int = 32000
    #: Host variables jobs may forward with ``Env: {X: "env:NAME"}`` (shell-style patterns,
    #: e.g. ``AWS_*``); Bacalhau's ``Compute.Env.AllowList``. Empty: none.
    env_allow_list: tuple[str, ...] = ()
    #: Bytes one downloaded input (urlDownload, s3, inline) may hold on the node.
    input_max_bytes: int = 10 * 1024**3
    #: Seconds one input download may take; how often a failing one is retried.
    input_read_timeout: float = 300.0
    input_max_retries: int = 3
    #: Seconds an ``ipfs`` input may wait for blocks from the cluster.
    ipfs_fetch_timeout: float = 60.0
    #: Bytes one ``bacalhau data add`` upload (a CAR) may hold on the requester.
    data_upload_max_bytes: int = 16 * 1024**3
    #: Log streams (``job logs``, followed or not, over REST or gRPC) the requester relays at
    #: once; one more is refused as busy, so that followers that read nothing cannot hold
    #: every descriptor of the requester and of the compute nodes (0: no cap).
    log_streams_max: int = 1024
    #: The most of those one client may hold: a user when the API has users, else an
    #: address (0: no cap). One more is refused as too many requests (HTTP 429).
    log_streams_per_client_max: int = 256
    #: ``/results`` answers S3 results as they are instead of as pre-signed URLs.
    s3_presigned_url_disabled: bool = False
    #: Seconds a pre-signed S3 result URL stays valid (7 days at most).
    s3_presigned_url_expiration: float = 3600.0
    #: The requester's own bucket for the ``s3managed`` publisher (Bacalhau's
    #: ``Publishers.Types.S3Managed.*``): results go to ``<key>/<job>/<execution>.tar.gz``,
    #: uploaded by compute nodes through URLs this requester signs with its credentials,
    #: valid ``s3managed_presigned_url_expiration`` seconds. Empty bucket: jobs naming
    #: s3managed are refused at submit.
    s3managed_bucket: str = ""
    s3managed_key: str = ""
    s3managed_region: str = ""
    s3managed_endpoint: str = ""
    s3managed_presigned_url_expiration: float = 3600.0
    #: Docker images (exact references, or shell-style patterns) the operator vouches run
    #: deterministically: this node bids for verified Docker jobs only on these. Empty: none.
    deterministic_images: tuple[str, ...] = ()
    #: Test only: ``corrupt`` makes this compute node alter every result it publishes (so
    #: its results' CID differs); ``misclaim`` also makes it claim the CID of the results
    #: it should have published (a node lying about its work), to exercise verification
    #: with real processes. Refused
    #: unless the node is started by ``bacalhau devstack``. Empty: off.
    faulty_results: str = ""

    #: Heartbeats are gone (gossip probes every member); these two keys of the old scheme
    #: still work and map onto gossip (0: not set). ``heartbeat_interval`` sets the probe
    #: interval. ``disconnect_timeout`` (Bacalhau's ``Orchestrator.NodeManager.
    #: DisconnectTimeout``) bounds the suspicion before a silent node is declared dead: at
    #: least a third of it, at most all of it, so a dead node is declared within about the
    #: timeout plus one probe interval. Every member's timing counts (any may declare a
    #: node dead), so set it on every node; on a requester it also keeps a dead node's
    #: executions until the node has been silent that long (``lost_execution_grace``, when
    #: shorter), as Bacalhau fails a node's work only past this timeout.
    heartbeat_interval: float = 0.0
    disconnect_timeout: float = 0.0

    # Requester.
    default_publisher: str = "local"
    #: Defaults for what new jobs leave unset, per job type (Bacalhau's ``JobDefaults``;
    #: set through ``JobDefaults.<Type>...`` keys).
    job_defaults: JobDefaults = field(default_factory=JobDefaults)
    #: Evaluation workers of the requester's scheduler (``Orchestrator.Scheduler.
    #: WorkerCount``).
    scheduler_workers: int = 4
    #: Seconds between the requester's housekeeping passes, the safety net behind every
    #: timer (``Orchestrator.Scheduler.HousekeepingInterval``).
    housekeeping_interval: float = 5.0
    #: Seconds before a job waiting for room is first looked at again, when nothing else
    #: (a node joining or freeing room) makes the scheduler look sooner; the wait grows to
    #: 30 s or this, whichever is longer (``Orchestrator.Scheduler.QueueBackoff``).
    queue_backoff: float = 1.0
    default_queue_timeout: int = 0
    #: Retry defaults for jobs without their own ``Reschedule`` block: failed executions a
    #: job may have (the first try included), failed executions per node, and the backoff
    #: before a retry (seconds; doubled per failure up to the maximum).
    max_attempts: int = 3
    max_attempts_per_node: int = 2
    retry_delay: float = 1.0
    retry_max_delay: float = 30.0
    #: How long past its ExecutionTimeout an unreported execution is cancelled and failed.
    execution_timeout_grace: float = 30.0
    #: After the requester starts, how long compute nodes have to (re)join before a job that
    #: no known node can take fails, or an execution on a node not heard from is failed.
    rejoin_grace: float = 30.0
    #: How long a batch job that lacks nodes waits for a compute node that died or left (a
    #: restart) to come back before it fails (0: fail at once).
    lost_node_wait: float = 30.0
    #: How long a compute node declared dead must have been silent before its running
    #: executions are failed and placed again: a stalled node (a long pause, an overloaded
    #: host) back within it keeps its work (0: at once).
    lost_execution_grace: float = 5.0
    #: How long an execution may wait in a compute node's run queue (the node accepted it
    #: beyond its free room and has not started it) before the requester moves it to
    #: another node with room for it now (0: never moved).
    queue_move_after: float = 5.0
    #: Terminal jobs (and their executions, history, evaluations) last changed longer ago
    #: than this many seconds are deleted, on the requester and on compute nodes (finished
    #: executions, with their results folders, logs and local published archives); 0 keeps
    #: them forever. A week by default.
    job_retention: float = 7 * 24 * 3600.0
    #: New compute nodes wait PENDING until an operator approves them (``bacalhau node
    #: approve``); Bacalhau's ``Orchestrator.NodeManager.ManualApproval``.
    manual_approval: bool = False
    #: The operator's bid approval hooks, asked in order before a bid is accepted
    #: (``Orchestrator.ApprovalHooks``; see README, "Accept hooks").
    approval_hooks: tuple[ApprovalHookConfig, ...] = ()
    #: Compute nodes whose reputation (their record of verified results, 0.5 without one)
    #: is below this get no jobs. 0: off.
    min_reputation: float = 0.0
    #: Seconds a compute node may hold its answer to a pre-approved ask for the execution's
    #: callbacks (its bid answer, and its result when it ends that soon), so that they come
    #: back in the answer: one round trip per short execution (0: callbacks by later calls).
    ask_answer_linger: float = 0.05
    #: The node's event loop: ``uvloop`` (libuv's, in C, the default where it is installed)
    #: or ``asyncio`` (the standard library's pure-Python one).
    event_loop: str = "uvloop"
    #: Bytes the requester reads of one verified replica's published results to check them
    #: against the CID its node claims; larger results are left unchecked (1 GiB).
    result_check_max_bytes: int = 1024**3

    # The node itself.
    #: How the node is named when ``name`` is not set: ``hostname`` (the machine's name),
    #: or ``puuid``/``uuid`` (its node ID, which is unique); Bacalhau's ``NameProvider``.
    name_provider: str = "puuid"
    #: Logging (Bacalhau's ``Logging.Level`` and ``Logging.Mode``): the least severe level
    #: logged (trace, debug, info, warn, error, fatal, panic) and the format: ``default``
    #: (time, level, logger, message), ``json`` (one object a line) or ``cmd`` (message).
    log_level: str = "warn"
    log_mode: str = "default"
    #: Keys given that have no effect here, each with the reason (canonical key, reason),
    #: logged once each when the node starts. Not a key: filled by :meth:`with_overrides`.
    ignored_settings: tuple[tuple[str, str], ...] = ()

    def grpc_api_port(self) -> int:
        """The port the public gRPC API binds (0: a free one)."""
        if self.api_grpc_port >= 0:
            return self.api_grpc_port
        return 1235 if self.api_port else 0

    def with_overrides(self, values: Mapping[str, Any]) -> NodeConfig:
        """A copy with ``values`` applied in their order (a ``None`` value sets nothing).

        Keys are ours or Bacalhau's (see the module docstring). An unknown key, a bad value,
        or a refused key (one asking for what this node does not do, such as
        ``API.TLS.CertFile``) is an error naming the key as given. An ignored key is noted
        in ``ignored_settings`` with its reason, once, unless its value asks for nothing
        (``false``, empty) or a later value of a mapped key replaces it.
        """
        clean: dict[str, Any] = {}
        ignored = dict(self.ignored_settings)
        for key, value in values.items():
            if value is None:
                continue
            entry = bacalhau_entry(key)
            if entry is None:
                name = self._own_field(key)
                clean[name] = check_field(
                    name, key, parse_own(name, key, value, getattr(self, name))
                )
                continue
            info = entry.info
            parsed = entry.parse(key, value)
            if info.status is KeyStatus.REFUSED:
                assert entry.asks is not None
                if entry.asks(parsed):
                    raise entry.refusal(key, value)
                if not is_empty(parsed):
                    ignored[info.key] = f"{info.reason}; the value given asks for no more"
                continue
            if info.status is KeyStatus.IGNORED or info.field is None:
                if not is_empty(parsed):
                    ignored[info.key] = info.reason
                continue
            current = clean.get(info.field, getattr(self, info.field))
            try:
                new = entry.convert(key, parsed, current) if entry.convert else parsed
            except IgnoredValue as why:
                ignored[info.key] = why.reason
                continue
            clean[info.field] = check_field(info.field, key, new)
            ignored.pop(info.key, None)
        return replace(self, **clean, ignored_settings=tuple(ignored.items()))

    def ignored_notices(self) -> list[str]:
        """One line per key given that has no effect here, naming it and saying why."""
        return [f"configuration key {key} is ignored: {why}" for key, why in self.ignored_settings]

    @classmethod
    def field_name(cls, key: str) -> str:
        """The field a configuration key sets: ours (``api-port``, ``API_PORT``, any case) or
        Bacalhau's where it maps to ours (``API.Port``); ``""`` for a Bacalhau key that sets
        none (ignored or refused). An unknown key is an error naming it, with the keys
        spelled most like it as the hint."""
        entry = bacalhau_entry(key)
        if entry is not None:
            return entry.info.field or ""
        return cls._own_field(key)

    @classmethod
    def _own_field(cls, key: str) -> str:
        name = normalise(key)
        if name in _SETTABLE_FIELDS:
            return name
        if name in _INTERNAL_FIELDS:
            raise InvalidRequest(
                f"configuration key {key!r} cannot be set directly",
                hint=_INTERNAL_FIELDS[name],
                details={"Field": key},
            )
        raise unknown_key(key)


def bacalhau_entry(key: str) -> KeyEntry | None:
    """Bacalhau's key ``key`` names (any case, ``.``, ``-`` or ``_`` between words), or None
    for one of ours. Where both spell a key alike (``labels``, ``api_port``), a key written
    as our field is spelled is ours, otherwise Bacalhau's; both set the same field."""
    if key.strip().replace("-", "_") in _SETTABLE_FIELDS:
        return None
    return BACALHAU_KEYS.get(normalise(key))


#: Fields that are not keys of their own, and how they are set instead.
_INTERNAL_FIELDS = {
    "job_defaults": "set its parts: JobDefaults.<Batch|Ops|Daemon|Service>.Task.Resources.CPU, ...",
    "ignored_settings": "it lists the keys given that have no effect here",
}
_SETTABLE_FIELDS = frozenset(f.name for f in fields(NodeConfig)) - set(_INTERNAL_FIELDS)


def unknown_key(key: str) -> InvalidRequest:
    """The error for a key neither Bacalhau nor we know, with the keys spelled most like
    it (ours and Bacalhau's) as the hint."""
    # Where both spell a key alike (api_port, API.Port), answer in the style asked in.
    ours = {name: name for name in _SETTABLE_FIELDS}
    bacalhau = {norm: entry.info.key for norm, entry in BACALHAU_KEYS.items()}
    spellings = {**ours, **bacalhau} if "." in key else {**bacalhau, **ours}
    close = difflib.get_close_matches(normalise(key), list(spellings), n=3, cutoff=0.6)
    if close:
        hint = f"did you mean {spellings[close[0]]!r}?"
        if close[1:]:
            hint += " (also close: " + ", ".join(repr(spellings[c]) for c in close[1:]) + ")"
    else:
        hint = (
            "keys are ours (NodeConfig's fields, such as api_port or max_attempts) or "
            "Bacalhau's (such as Compute.AllocatedCapacity.CPU); see the README's "
            "Configuration section"
        )
    return InvalidRequest(f"unknown configuration key {key!r}", hint=hint, details={"Field": key})
