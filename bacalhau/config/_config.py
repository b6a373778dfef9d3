"""Typed, frozen node configuration.

Precedence, lowest first: built-in defaults < ``<data_dir>/config.yaml`` < ``BACALHAU_*``
environment variables < command-line flags. Only ``node/`` and ``cli/`` load configuration;
components receive the narrow values they need as keyword arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from bacalhau.errors import InvalidRequest


def default_data_dir() -> Path:
    env = os.environ.get("BACALHAU_DIR")
    return Path(env).expanduser() if env else Path.home() / ".bacalhau"


_HOOK_TYPES = ("exec", "http")
#: Values of ``faulty_results`` ("": off).
FAULTY_RESULT_MODES = ("", "corrupt", "misclaim")
#: The event loops a node can run on (``event_loop``).
EVENT_LOOPS = ("uvloop", "asyncio")


@dataclass(frozen=True, slots=True)
class ApprovalHookConfig:
    """One requester-side bid approval hook: ``{"Name", "Type": exec|http, "Command" or
    "URL", "Timeout"}`` (keys in any case; ``Timeout`` in seconds)."""

    name: str
    type: str
    command: str = ""
    url: str = ""
    timeout: float = 10.0

    @classmethod
    def parse_list(cls, key: str, value: Any) -> tuple[ApprovalHookConfig, ...]:
        """A list of hooks from the config file (YAML) or ``-c Key=[...]`` (JSON/YAML
        text); errors name the key and the hook."""
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else []
            except yaml.YAMLError as exc:
                raise InvalidRequest(
                    f"{key} is not a JSON or YAML list: {exc}", details={"Field": key}
                ) from None
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise InvalidRequest(f"{key} must be a list of hooks", details={"Field": key})
        hooks = tuple(cls._parse_one(f"{key}[{i}]", item) for i, item in enumerate(value))
        names = [h.name for h in hooks]
        for name in names:
            if names.count(name) > 1:
                raise InvalidRequest(f"{key} names the hook {name!r} twice", details={"Field": key})
        return hooks

    @classmethod
    def _parse_one(cls, where: str, item: Any) -> ApprovalHookConfig:
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"{where} must be a mapping", details={"Field": where})
        raw = {str(k).lower(): v for k, v in item.items()}
        unknown = sorted(set(raw) - {"name", "type", "command", "url", "timeout"})
        if unknown:
            raise InvalidRequest(
                f"{where} has unknown keys: {', '.join(unknown)}",
                hint="a hook has Name, Type (exec or http), Command or URL, and Timeout",
                details={"Field": where},
            )
        name = str(raw.get("name") or "").strip()
        kind = str(raw.get("type") or "").strip().lower()
        if not name:
            raise InvalidRequest(f"{where} needs a Name", details={"Field": f"{where}.Name"})
        if kind not in _HOOK_TYPES:
            raise InvalidRequest(
                f"{where}.Type must be exec or http, not {raw.get('type')!r}",
                details={"Field": f"{where}.Type"},
            )
        command, url = str(raw.get("command") or ""), str(raw.get("url") or "")
        if kind == "exec" and not command.strip():
            raise InvalidRequest(
                f"the exec hook {name!r} needs a Command", details={"Field": f"{where}.Command"}
            )
        if kind == "http" and not url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"the http hook {name!r} needs an http(s) URL", details={"Field": f"{where}.URL"}
            )
        try:
            timeout = float(raw.get("timeout", 10.0))
        except (TypeError, ValueError):
            timeout = -1.0
        if not timeout > 0:
            raise InvalidRequest(
                f"{where}.Timeout must be a positive number of seconds",
                details={"Field": f"{where}.Timeout"},
            )
        return cls(name=name, type=kind, command=command, url=url, timeout=timeout)


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
    #: Largest job (request body) the API accepts, in bytes; larger ones get 413.
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
    allow_image_pull: bool = False
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
    #: The most processes (threads included) one Docker job may hold; jobs cannot raise it.
    docker_pids_limit: int = 256
    #: Docker jobs see the image's root filesystem read-only (they write to their result
    #: folders and /tmp); turn off for images that cannot run that way.
    docker_read_only_rootfs: bool = True
    #: Bytes of the tmpfs at /tmp in every Docker job (counted against its memory).
    docker_tmp_size: int = 64 * 1024 * 1024
    #: Bytes the result folders of one Docker job may hold together (the job's
    #: ``Resources.Disk`` when smaller); past it the job fails. 0: no cap.
    docker_result_disk_limit: int = 10 * 1024**3
    #: Bytes of linear memory one WASM job may grow to (its ``Resources.Memory`` when
    #: smaller); wasm32 cannot address more than 4 GiB, so a larger value means 4 GiB.
    wasm_memory_limit: int = 4 * 1024**3
    #: Bytes of stdout and of stderr each kept on disk for one job (Docker and WASM); past
    #: it the rest of that stream is dropped and the node logs how much.
    executor_output_limit: int = 1024**3
    #: Share of the host's CPU, memory and disk offered to jobs.
    capacity_fraction: float = 0.7
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
    #: ``/results`` answers S3 results as they are instead of as pre-signed URLs.
    s3_presigned_url_disabled: bool = False
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
    #: timeout plus one probe interval.
    heartbeat_interval: float = 0.0
    disconnect_timeout: float = 0.0

    # Requester.
    default_publisher: str = "local"
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
    #: How long a batch job that lacks nodes waits for a compute node that died (not one
    #: that left) to come back before it fails (0: fail at once).
    lost_node_wait: float = 30.0
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

    def grpc_api_port(self) -> int:
        """The port the public gRPC API binds (0: a free one)."""
        if self.api_grpc_port >= 0:
            return self.api_grpc_port
        return 1235 if self.api_port else 0

    def advertised(self, port: int) -> str:
        host = self.advertise_host or (
            "127.0.0.1" if self.grpc_host in ("0.0.0.0", "", "::") else self.grpc_host
        )
        return f"{host}:{port}"

    def with_overrides(self, values: Mapping[str, Any]) -> NodeConfig:
        """A copy with the given fields replaced (unknown keys are an error, not ignored)."""
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            name = self.field_name(key)
            if name == "approval_hooks":
                clean[name] = ApprovalHookConfig.parse_list(key, value)
                continue
            clean[name] = _coerce(key, value, getattr(self, name))
            if name == "locality" and clean[name].lower() not in ("anywhere", "local"):
                raise InvalidRequest(
                    f"{key} must be anywhere or local, not {value!r}", details={"Field": key}
                )
            if name == "faulty_results" and clean[name].lower() not in FAULTY_RESULT_MODES:
                raise InvalidRequest(
                    f"{key} must be one of: {', '.join(m for m in FAULTY_RESULT_MODES if m)}"
                    f" (or empty), not {value!r}",
                    details={"Field": key},
                )
            if name == "ask_answer_linger" and not 0.0 <= clean[name] <= 0.1:
                raise InvalidRequest(
                    f"{key} must be between 0 and 0.1 seconds, not {value!r}",
                    details={"Field": key},
                    hint="a compute node holds an ask's answer for at most 0.1 s",
                )
            if name == "event_loop":
                clean[name] = clean[name].lower()
                if clean[name] not in EVENT_LOOPS:
                    raise InvalidRequest(
                        f"{key} must be one of: {', '.join(EVENT_LOOPS)}, not {value!r}",
                        details={"Field": key},
                    )
            if name == "min_reputation" and not 0.0 <= clean[name] <= 1.0:
                raise InvalidRequest(
                    f"{key} must be between 0 and 1, not {value!r}", details={"Field": key}
                )
        return replace(self, **clean)

    @classmethod
    def field_name(cls, key: str) -> str:
        """The field a configuration key sets: ours (``api-port``, ``API.Port``, any case) or
        Bacalhau's where it maps to ours; an unknown key is an error naming it."""
        known = {f.name for f in fields(cls)}
        name = key.lower().replace("-", "_").replace(".", "_")
        name = _BACALHAU_KEYS.get(name, name)
        if name not in known:
            raise InvalidRequest(
                f"unknown configuration key {key!r}",
                hint="known keys: " + ", ".join(sorted(known)),
                details={"Field": key},
            )
        return name


#: Bacalhau's spelling of a setting (normalised as above) -> ours, where the meaning is ours.
_BACALHAU_KEYS = {
    "datadir": "data_dir",
    "orchestrator_nodemanager_manualapproval": "manual_approval",
    "orchestrator_nodemanager_disconnecttimeout": "disconnect_timeout",
    "compute_orchestrators": "seeds",
    "compute_heartbeat_interval": "heartbeat_interval",
    "jobadmissioncontrol_acceptnetworkedjobs": "accept_networked_jobs",
    "jobadmissioncontrol_rejectstatelessjobs": "reject_stateless_jobs",
    "jobadmissioncontrol_locality": "locality",
    "jobadmissioncontrol_probeexec": "probe_exec",
    "jobadmissioncontrol_probehttp": "probe_http",
    "jobadmissioncontrol_probetimeout": "probe_timeout",
    "engines_disabled": "disabled_engines",
    "publishers_disabled": "disabled_publishers",
    "inputsources_disabled": "disabled_input_sources",
    "orchestrator_approvalhooks": "approval_hooks",
    "orchestrator_enabled": "orchestrator",
    "compute_enabled": "compute",
    "publishers_types_local_address": "publisher_host",
    "publishers_types_local_port": "publisher_port",
    "compute_allowlistedlocalpaths": "allow_listed_local_paths",
    "compute_env_allowlist": "env_allow_list",
    "compute_network_portrangestart": "port_range_start",
    "compute_network_portrangeend": "port_range_end",
    "inputsources_maxretrycount": "input_max_retries",
    "publishers_types_s3_presignedurldisabled": "s3_presigned_url_disabled",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _coerce(key: str, value: Any, current: Any) -> Any:
    """``value`` in the type of ``current`` (the default); errors name ``key`` as given."""
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                word = value.strip().lower()
                if word not in _TRUE | _FALSE:
                    raise ValueError("expected true or false")
                return word in _TRUE
            return bool(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, Path):
            return Path(str(value)).expanduser()
        if isinstance(current, tuple):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(value)
        if isinstance(current, Mapping):
            if isinstance(value, str):
                pairs = [kv.partition("=") for kv in value.split(",") if kv.strip()]
                if any(not sep or not k.strip() for k, sep, _ in pairs):
                    raise ValueError("expected key=value[,key=value...]")
                return {k.strip(): v for k, _, v in pairs}
            return dict(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"invalid value {value!r} for configuration key {key!r}: {exc}",
            details={"Field": key},
        ) from None
    return str(value)


def load_config(
    flags: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> NodeConfig:
    """Build the configuration from defaults, the config file, the environment and flags."""
    env = os.environ if environ is None else environ
    cfg = NodeConfig()
    data_dir = flags.get("data_dir") or env.get("BACALHAU_DIR")
    if data_dir:
        cfg = cfg.with_overrides({"data_dir": data_dir})
    config_file = cfg.data_dir / "config.yaml"
    if config_file.exists():
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InvalidRequest(f"{config_file} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidRequest(f"{config_file} must hold a mapping of keys to values")
        cfg = cfg.with_overrides(_flatten(loaded))
    prefix = "BACALHAU_NODE_"
    from_env = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    cfg = cfg.with_overrides(from_env)
    return cfg.with_overrides(flags)


#: Sections of Bacalhau's nested config file whose keys are ours under ``Section.Key``.
_SECTIONS = frozenset(
    {"jobadmissioncontrol", "orchestrator", "compute", "engines", "publishers", "inputsources"}
)


def _flatten(loaded: Mapping[str, Any]) -> dict[str, Any]:
    """Bacalhau writes sections (``JobAdmissionControl: {ProbeExec: ...}``): each key of a
    known section becomes ``Section.Key``. Flat keys (``JobAdmissionControl.ProbeExec``) and
    our own keys pass through unchanged."""
    flat: dict[str, Any] = {}
    for key, value in loaded.items():
        if str(key).lower() in _SECTIONS and isinstance(value, Mapping):
            flat.update(_section(str(key), value))
        else:
            flat[key] = value
    return flat


def _section(prefix: str, value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sub, sub_value in value.items():
        if isinstance(sub_value, Mapping):
            out.update(_section(f"{prefix}.{sub}", sub_value))
        else:
            out[f"{prefix}.{sub}"] = sub_value
    return out
