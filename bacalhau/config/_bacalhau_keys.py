"""Every Bacalhau (v1.5-v1.9) configuration key, and what it does on this node.

The list is Bacalhau's ``pkg/config/types/generated_constants.go`` over those releases
(130 keys at v1.9, plus ``JobAdmissionControl.AcceptNetworkedJobs``,
``FeatureFlags.ExecTranslation`` and ``Orchestrator.License.LocalPath`` of earlier ones),
and two keys of ours spelled Bacalhau's way. Each key maps to one of our settings, is
ignored with a reason, or is refused with a reason and a hint (see
:mod:`bacalhau.config._key_registry`). The test ``tests/config/test_bacalhau_keys.py``
checks the list against a copy of Bacalhau's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bacalhau.config._api_users import ApiUserConfig
from bacalhau.config._hooks import ApprovalHookConfig
from bacalhau.config._job_defaults import COMPLETING_JOB_TYPES, JOB_TYPES, JobDefaults
from bacalhau.config._key_registry import (
    IgnoredValue,
    KeyEntry,
    KeyInfo,
    KeyOrigin,
    KeyStatus,
    Parse,
    ignored,
    is_empty,
    mapped,
    normalise,
    refused,
)
from bacalhau.config._values import (
    capacity_parser,
    invalid,
    parse_bool,
    parse_choice,
    parse_cpu_text,
    parse_duration,
    parse_gpu_text,
    parse_int,
    parse_list,
    parse_map,
    parse_port,
    parse_size_text,
    parse_structure,
    parse_text,
)

#: Logging levels and modes, as Bacalhau names them.
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal", "panic")
LOG_MODES = ("default", "json", "cmd")
#: ``NameProvider`` values this node honours (``hostname``; the others name it by its ID).
NAME_PROVIDERS = ("puuid", "uuid", "hostname")
_BACALHAU_NAME_PROVIDERS = ("hostname", "aws", "gcp", "uuid", "puuid")
#: The longest a pre-signed S3 URL can live (SigV4 allows 7 days).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


def positive_duration(key: str, value: Any) -> float:
    seconds = parse_duration(key, value)
    if seconds <= 0:
        raise invalid(key, value, "must be longer than 0", "write a duration such as 30s or 1m")
    return seconds


def seconds_or_duration(key: str, value: Any) -> float:
    """Our own keys count seconds (``10``, ``0.5``); a Go duration (``10s``) is read too."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return parse_duration(key, value)


def _host_of(key: str, value: Any) -> str:
    """The host of ``nats://host:port``, ``host:port`` or ``host`` (``[v6]`` kept whole)."""
    text = parse_text(key, value).strip().split("://", 1)[-1].split("/", 1)[0]
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def _name_provider(key: str, provider: str, current: Any) -> str:
    if provider in ("aws", "gcp"):
        raise IgnoredValue(
            f"{provider} would ask the cloud's metadata service for a name; this node is "
            "named by its node ID instead (or by --name)"
        )
    return provider


def _reject_networked(key: str, value: bool, current: Any) -> bool:
    if value:
        return False  # accept_networked_jobs
    raise IgnoredValue(
        "RejectNetworkedJobs=false is not enough to open this node to networked jobs (its "
        "default is closed): set JobAdmissionControl.AcceptNetworkedJobs=true to accept them"
    )


def _data_dir(key: str, value: Any) -> Path:
    return Path(parse_text(key, value)).expanduser()


def _anything(key: str, value: Any) -> Any:
    return parse_structure(key, value)


def _hooks(key: str, value: Any) -> Any:
    return ApprovalHookConfig.parse_list(key, value)


def _users(key: str, value: Any) -> Any:
    return ApiUserConfig.parse_list(key, value)


def _presign_expiration(key: str, value: Any) -> float:
    seconds = positive_duration(key, value)
    if seconds > MAX_PRESIGN_SECONDS:
        raise invalid(key, value, "S3 pre-signed URLs live 7 days (168h) at most")
    return seconds


# -- why keys are ignored or refused ---------------------------------------------------------

_NOT_NATS = "this cluster speaks mutual-TLS gRPC between nodes, not NATS"
_NO_REQUESTER_CLUSTER = f"{_NOT_NATS}: requesters form no cluster"
_NODE_TLS = (
    "node-to-node traffic here is always mutual TLS with certificates from the cluster CA "
    "in each data dir (`bacalhau ca issue`); this setting is not read"
)
_CLIENT_SIDE = "it is a client setting (how `bacalhau` reaches an API); a node does not use it"
_IPFS = (
    "ipfs inputs and results live in the cluster's own CID store (blocks fetched from its "
    "nodes over mutual TLS), not in an external IPFS daemon"
)
_RECORD = (
    "a node's record (its information and capacity) is re-published by gossip as soon as it "
    "changes; there is no separate update interval"
)
_NO_POLICIES = (
    "this node does not run Open Policy Agent (Rego) access policies: who may do what is "
    "each user's Capabilities in API.Auth.Users"
)
_POLICY_HINT = (
    "give each user of API.Auth.Users the Capabilities it needs (read:job, write:job, "
    "read:node, ..., read:*, *), and remove API.Auth.AccessPolicyPath"
)
_NO_METHODS = (
    "this node offers none of Bacalhau's older authentication methods (challenge, ask) but "
    "its default client key, which lets every client in"
)
_NO_SSO = "this node does not offer single sign-on (OAuth2 device flow)"
_USERS_HINT = (
    "authenticate users with API.Auth.Users (username and bcrypt password, or API key, each "
    "with Capabilities), or put an authenticating reverse proxy in front of the API"
)
_NO_TLS = "this node's REST and gRPC APIs serve plain HTTP/2 and HTTP, without TLS"
_TLS_HINT = (
    "terminate TLS in a reverse proxy in front of the API (with the API bound to 127.0.0.1 "
    "behind it), and remove API.TLS from the configuration"
)
_DEFAULT_AUTH_METHODS = {"clientkey": {"type": "challenge"}}


def _auth_methods_ask(value: Any) -> bool:
    """Bacalhau's default method (a client-key challenge, no policy) lets every client in,
    as this API does: only other methods ask for authentication we lack."""
    if is_empty(value):
        return False
    if not isinstance(value, dict):
        return True
    lowered = {
        str(k).lower(): {str(a).lower(): str(b).lower() for a, b in v.items()}
        if isinstance(v, dict)
        else v
        for k, v in value.items()
    }
    return lowered != _DEFAULT_AUTH_METHODS


def _table() -> list[KeyEntry]:
    entries = [
        refused("API.Auth.AccessPolicyPath", parse_text, _NO_POLICIES, _POLICY_HINT),
        KeyEntry(
            KeyInfo(
                "API.Auth.Methods",
                None,
                KeyStatus.REFUSED,
                KeyOrigin.BACALHAU,
                _NO_METHODS,
                _USERS_HINT + " (Bacalhau's default, ClientKey: {Type: challenge}, is accepted)",
            ),
            _anything,
            asks=_auth_methods_ask,
        ),
        mapped("API.Auth.Users", "api_users", _users),
        *(
            refused(f"API.Auth.Oauth2.{name}", parse_text, _NO_SSO, _USERS_HINT)
            for name in (
                "Audience",
                "DeviceAuthorizationEndpoint",
                "DeviceClientID",
                "Issuer",
                "JWKSUri",
                "ProviderID",
                "ProviderName",
                "TokenEndpoint",
            )
        ),
        refused("API.Auth.Oauth2.Scopes", parse_list, _NO_SSO, _USERS_HINT),
        refused(
            "API.Auth.Oauth2.PollingInterval",
            lambda k, v: parse_int(k, v, minimum=0),
            _NO_SSO,
            _USERS_HINT,
        ),
        mapped("API.Host", "api_host", parse_text),
        mapped("API.Port", "api_port", parse_port),
        refused("API.TLS.AutoCert", parse_text, _NO_TLS, _TLS_HINT),
        ignored(
            "API.TLS.AutoCertCachePath",
            parse_text,
            "it only matters with API.TLS.AutoCert, which this node refuses",
        ),
        # The client's: how `bacalhau` reaches an API behind a TLS proxy (as Bacalhau's
        # client reads them). A node refuses UseTLS when it starts (see node._serve).
        mapped("API.TLS.CAFile", "api_tls_ca_file", parse_text),
        refused("API.TLS.CertFile", parse_text, _NO_TLS, _TLS_HINT),
        mapped("API.TLS.Insecure", "api_tls_insecure", parse_bool),
        refused("API.TLS.KeyFile", parse_text, _NO_TLS, _TLS_HINT),
        refused("API.TLS.SelfSigned", parse_bool, _NO_TLS, _TLS_HINT),
        mapped("API.TLS.UseTLS", "api_tls_use_tls", parse_bool),
        *(
            mapped(f"Compute.AllocatedCapacity.{r}", f"allocated_{r.lower()}", capacity_parser(r))
            for r in ("CPU", "Memory", "Disk", "GPU")
        ),
        mapped("Compute.AllowListedLocalPaths", "allow_listed_local_paths", parse_list),
        mapped("Compute.Auth.Token", "join_token", parse_text),
        mapped("Compute.Enabled", "compute", parse_bool),
        mapped("Compute.Env.AllowList", "env_allow_list", parse_list),
        ignored("Compute.Heartbeat.InfoUpdateInterval", parse_duration, _RECORD),
        mapped("Compute.Heartbeat.Interval", "heartbeat_interval", parse_duration),
        ignored("Compute.Heartbeat.ResourceUpdateInterval", parse_duration, _RECORD),
        mapped("Compute.Network.AdvertisedAddress", "advertise_host", _host_of),
        # The host ports a node gives jobs' Network.Ports from (checked when the node starts).
        mapped("Compute.Network.PortRangeStart", "port_range_start", parse_port),
        mapped("Compute.Network.PortRangeEnd", "port_range_end", parse_port),
        mapped("Compute.Orchestrators", "seeds", parse_list),
        ignored("Compute.TLS.CACert", parse_text, _NODE_TLS),
        ignored("Compute.TLS.RequireTLS", parse_bool, _NODE_TLS),
        mapped("DataDir", "data_dir", _data_dir),
        ignored("DisableAnalytics", parse_bool, "this node never sends analytics"),
        mapped("Engines.Disabled", "disabled_engines", parse_list),
        mapped(
            "Engines.Types.Docker.ManifestCache.Size",
            "docker_image_cache_size",
            lambda k, v: parse_int(k, v, minimum=0),
        ),
        mapped("Engines.Types.Docker.ManifestCache.TTL", "docker_image_cache_ttl", parse_duration),
        ignored(
            "Engines.Types.Docker.ManifestCache.Refresh",
            parse_duration,
            "a registry's kept answer is asked again once its TTL is over; nothing is "
            "refreshed in the background",
        ),
        ignored(
            "FeatureFlags.ExecTranslation",
            parse_bool,
            "this node runs jobs as they are written (no translation of custom job types)",
        ),
        mapped("InputSources.Disabled", "disabled_input_sources", parse_list),
        mapped(
            "InputSources.MaxRetryCount",
            "input_max_retries",
            lambda k, v: parse_int(k, v, minimum=0),
        ),
        mapped("InputSources.ReadTimeout", "input_read_timeout", positive_duration),
        ignored("InputSources.Types.IPFS.Endpoint", parse_text, _IPFS),
        mapped("JobAdmissionControl.AcceptNetworkedJobs", "accept_networked_jobs", parse_bool),
        mapped("JobAdmissionControl.Locality", "locality", parse_text),
        mapped("JobAdmissionControl.ProbeExec", "probe_exec", parse_text),
        mapped("JobAdmissionControl.ProbeHTTP", "probe_http", parse_text),
        mapped(
            "JobAdmissionControl.RejectNetworkedJobs",
            "accept_networked_jobs",
            parse_bool,
            _reject_networked,
        ),
        mapped("JobAdmissionControl.RejectStatelessJobs", "reject_stateless_jobs", parse_bool),
        *_job_default_entries(),
        mapped("Labels", "labels", parse_map),
        mapped("Logging.Level", "log_level", lambda k, v: parse_choice(k, v, LOG_LEVELS)),
        ignored(
            "Logging.LogDebugInfoInterval",
            parse_duration,
            "this node logs no periodic debug dumps; /api/v1/agent/debug answers on demand",
        ),
        mapped("Logging.Mode", "log_mode", lambda k, v: parse_choice(k, v, LOG_MODES)),
        mapped(
            "NameProvider",
            "name_provider",
            lambda k, v: parse_choice(k, v, _BACALHAU_NAME_PROVIDERS),
            _name_provider,
        ),
        mapped("Orchestrator.Advertise", "advertise_host", _host_of),
        mapped("Orchestrator.Auth.Token", "join_token", parse_text),
        *(
            ignored(
                f"Orchestrator.Cluster.{name}", parse, f"{_NOT_NATS}: requesters form no cluster"
            )
            for name, parse in (
                ("Advertise", parse_text),
                ("Host", parse_text),
                ("Name", parse_text),
                ("Port", parse_port),
            )
        ),
        # Ignoring peers would leave two requesters that each believe they share one job
        # store with the other: jobs and nodes split between them without anyone noticing.
        refused(
            "Orchestrator.Cluster.Peers",
            parse_list,
            "a cluster here has one requester, which alone keeps the jobs; requesters do not "
            "replicate them with peers",
            "remove Orchestrator.Cluster.Peers and run one requester; compute nodes join it "
            "with --seed HOST:PORT (Compute.Orchestrators)",
        ),
        mapped("Orchestrator.Enabled", "orchestrator", parse_bool),
        ignored(
            "Orchestrator.EvaluationBroker.MaxRetryCount",
            lambda k, v: parse_int(k, v, minimum=0),
            "evaluations here run in the requester's own process and are kept in its store; "
            "none is handed to a worker that could fail it",
        ),
        ignored(
            "Orchestrator.EvaluationBroker.VisibilityTimeout",
            parse_duration,
            "evaluations here run in the requester's own process; none is leased to a worker",
        ),
        mapped("Orchestrator.Host", "grpc_host", parse_text),
        ignored("Orchestrator.License.LocalPath", parse_text, "this node needs no license"),
        mapped("Orchestrator.NodeManager.DisconnectTimeout", "disconnect_timeout", parse_duration),
        mapped("Orchestrator.NodeManager.ManualApproval", "manual_approval", parse_bool),
        mapped("Orchestrator.Port", "grpc_port", parse_port),
        mapped(
            "Orchestrator.Scheduler.HousekeepingInterval",
            "housekeeping_interval",
            positive_duration,
        ),
        ignored(
            "Orchestrator.Scheduler.HousekeepingTimeout",
            parse_duration,
            "a housekeeping pass here scans the requester's in-memory job view; it needs no "
            "timeout",
        ),
        mapped("Orchestrator.Scheduler.QueueBackoff", "queue_backoff", positive_duration),
        mapped(
            "Orchestrator.Scheduler.WorkerCount",
            "scheduler_workers",
            lambda k, v: parse_int(k, v, minimum=1),
        ),
        ignored(
            "Orchestrator.SupportReverseProxy",
            parse_bool,
            f"it lets NATS run behind a reverse proxy; {_NOT_NATS}",
        ),
        ignored("Orchestrator.TLS.CACert", parse_text, _NODE_TLS),
        ignored("Orchestrator.TLS.ServerCert", parse_text, _NODE_TLS),
        ignored("Orchestrator.TLS.ServerKey", parse_text, _NODE_TLS),
        ignored(
            "Orchestrator.TLS.ServerTimeout", lambda k, v: parse_int(k, v, minimum=0), _NODE_TLS
        ),
        mapped("Publishers.Disabled", "disabled_publishers", parse_list),
        ignored("Publishers.Types.IPFS.Endpoint", parse_text, _IPFS),
        mapped("Publishers.Types.Local.Address", "publisher_host", parse_text),
        mapped("Publishers.Types.Local.Port", "publisher_port", parse_port),
        mapped("Publishers.Types.S3.PreSignedURLDisabled", "s3_presigned_url_disabled", parse_bool),
        mapped(
            "Publishers.Types.S3.PreSignedURLExpiration",
            "s3_presigned_url_expiration",
            _presign_expiration,
        ),
        mapped("Publishers.Types.S3Managed.Bucket", "s3managed_bucket", parse_text),
        mapped("Publishers.Types.S3Managed.Endpoint", "s3managed_endpoint", parse_text),
        mapped("Publishers.Types.S3Managed.Key", "s3managed_key", parse_text),
        mapped(
            "Publishers.Types.S3Managed.PreSignedURLExpiration",
            "s3managed_presigned_url_expiration",
            _presign_expiration,
        ),
        mapped("Publishers.Types.S3Managed.Region", "s3managed_region", parse_text),
        ignored("ResultDownloaders.Disabled", parse_list, _CLIENT_SIDE),
        ignored("ResultDownloaders.Timeout", parse_duration, _CLIENT_SIDE),
        ignored("ResultDownloaders.Types.IPFS.Endpoint", parse_text, _CLIENT_SIDE),
        ignored(
            "StrictVersionMatch",
            parse_bool,
            "nodes and clients of other versions are not refused here",
        ),
        ignored("UpdateConfig.Interval", parse_duration, "this node never checks for updates"),
        ignored("WebUI.Backend", parse_text, "this node has no web UI"),
        ignored("WebUI.Enabled", parse_bool, "this node has no web UI"),
        ignored("WebUI.Listen", parse_text, "this node has no web UI"),
        # Ours, spelled as Bacalhau would: a probe's time limit, the requester's hooks.
        _ours("JobAdmissionControl.ProbeTimeout", "probe_timeout", seconds_or_duration),
        _ours("Orchestrator.ApprovalHooks", "approval_hooks", _hooks),
    ]
    return entries


def _ours(key: str, field: str, parse: Parse) -> KeyEntry:
    return KeyEntry(KeyInfo(key, field, KeyStatus.MAPPED, KeyOrigin.OURS), parse)


def _job_default_entries() -> list[KeyEntry]:
    """``JobDefaults.<Type>.Priority`` and ``.Task.*``: parts of the ``job_defaults`` field."""

    def part(job_type: str, name: str) -> Callable[[str, Any, Any], Any]:
        def convert(key: str, value: Any, current: Any) -> Any:
            assert isinstance(current, JobDefaults)
            return current.with_value(job_type, name, value)

        return convert

    out: list[KeyEntry] = []
    for job_type in JOB_TYPES:
        base = f"JobDefaults.{job_type}"
        keys: list[tuple[str, str, Parse]] = [
            ("Priority", "priority", lambda k, v: parse_int(k, v, minimum=0)),
            ("Task.Resources.CPU", "cpu", parse_cpu_text),
            ("Task.Resources.Disk", "disk", parse_size_text),
            ("Task.Resources.GPU", "gpu", parse_gpu_text),
            ("Task.Resources.Memory", "memory", parse_size_text),
        ]
        if job_type in COMPLETING_JOB_TYPES:
            keys += [
                ("Task.Publisher.Params", "publisher_params", parse_map),
                ("Task.Publisher.Type", "publisher_type", parse_text),
                ("Task.Timeouts.ExecutionTimeout", "execution_timeout", _job_timeout),
                ("Task.Timeouts.TotalTimeout", "total_timeout", _job_timeout),
            ]
        for suffix, name, parse in keys:
            out.append(mapped(f"{base}.{suffix}", "job_defaults", parse, part(job_type, name)))
    return out


def _job_timeout(key: str, value: Any) -> float:
    """Jobs count timeouts in whole seconds; a shorter non-zero default would be none."""
    seconds = parse_duration(key, value)
    if 0 < seconds < 1:
        raise invalid(key, value, "job timeouts are whole seconds: 1s at least (0: none)")
    return float(int(seconds))


BACALHAU_KEYS: dict[str, KeyEntry] = {normalise(e.info.key): e for e in _table()}
