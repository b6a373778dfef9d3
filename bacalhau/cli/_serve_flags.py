"""``bacalhau serve`` flags of Bacalhau v1.4-v1.6, kept as deprecated aliases of config keys.

Bacalhau v1.5 moved a node's settings into configuration keys and kept the older flags as
hidden, deprecated aliases (``cmd/util/flags/configflags``) until v1.7; operators' command
lines and service files still carry them. Each one here sets the key it set there, above
the ``-c`` settings as a flag does, and says on standard error which key it is. Flags whose
key Bacalhau had already retired (``--ipfs-connect``, ``--limit-job-cpu``, ...) are accepted
and ignored, with that notice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

__all__ = ["legacy_serve_flags", "legacy_settings"]

F = TypeVar("F", bound=Callable[..., Any])

_PREFIX = "legacy_flag__"


@dataclass(frozen=True, slots=True)
class _Flag:
    flag: str
    #: The key it sets ("" for a flag Bacalhau had retired).
    key: str
    boolean: bool = False
    #: Repeatable (and comma-separated): the values are joined with ",".
    listed: bool = False


_FLAGS = (
    _Flag("allow-listed-local-paths", "Compute.AllowListedLocalPaths", listed=True),
    _Flag("orchestrators", "Compute.Orchestrators", listed=True),
    _Flag("requester", "Orchestrator.Enabled", boolean=True),
    _Flag("network-host", "Orchestrator.Host"),
    _Flag("network-port", "Orchestrator.Port"),
    _Flag("advertised-address", "Orchestrator.Advertise"),
    _Flag("cluster-name", "Orchestrator.Cluster.Name"),
    _Flag("cluster-host", "Orchestrator.Cluster.Host"),
    _Flag("cluster-port", "Orchestrator.Cluster.Port"),
    _Flag("cluster-advertised-address", "Orchestrator.Cluster.Advertise"),
    _Flag("cluster-peers", "Orchestrator.Cluster.Peers", listed=True),
    _Flag("host", "API.Host"),
    _Flag("port", "API.Port"),
    _Flag("tls", "API.TLS.UseTLS", boolean=True),
    _Flag("self-signed", "API.TLS.SelfSigned", boolean=True),
    _Flag("insecure", "API.TLS.Insecure", boolean=True),
    _Flag("autocert", "API.TLS.AutoCert"),
    _Flag("cacert", "API.TLS.CAFile"),
    _Flag("tlscert", "API.TLS.CertFile"),
    _Flag("tlskey", "API.TLS.KeyFile"),
    _Flag("limit-total-cpu", "Compute.AllocatedCapacity.CPU"),
    _Flag("limit-total-memory", "Compute.AllocatedCapacity.Memory"),
    _Flag("limit-total-gpu", "Compute.AllocatedCapacity.GPU"),
    _Flag("disable-engine", "Engines.Disabled", listed=True),
    _Flag("disabled-publisher", "Publishers.Disabled", listed=True),
    _Flag("disable-storage", "InputSources.Disabled", listed=True),
    _Flag("docker-manifest-cache-size", "Engines.Types.Docker.ManifestCache.Size"),
    _Flag("docker-manifest-cache-duration", "Engines.Types.Docker.ManifestCache.TTL"),
    _Flag("docker-manifest-cache-frequency", "Engines.Types.Docker.ManifestCache.Refresh"),
    _Flag("ipfs-connect-storage", "InputSources.Types.IPFS.Endpoint"),
    _Flag("ipfs-connect-publisher", "Publishers.Types.IPFS.Endpoint"),
    _Flag("ipfs-connect-downloader", "ResultDownloaders.Types.IPFS.Endpoint"),
    _Flag("job-selection-reject-stateless", "JobAdmissionControl.RejectStatelessJobs", True),
    _Flag("job-selection-accept-networked", "JobAdmissionControl.AcceptNetworkedJobs", True),
    _Flag("job-selection-probe-http", "JobAdmissionControl.ProbeHTTP"),
    _Flag("job-selection-probe-exec", "JobAdmissionControl.ProbeExec"),
    _Flag("local-publisher-address", "Publishers.Types.Local.Address"),
    _Flag("local-publisher-port", "Publishers.Types.Local.Port"),
    _Flag("name-provider", "NameProvider"),
    _Flag("web-ui", "WebUI.Enabled", boolean=True),
    _Flag("web-ui-listen", "WebUI.Listen"),
    # Retired by Bacalhau itself before these flags went (their keys end in ".deprecated").
    _Flag("ipfs-connect", ""),
    _Flag("ignore-physical-resource-limits", "", boolean=True),
    _Flag("limit-job-cpu", ""),
    _Flag("limit-job-memory", ""),
    _Flag("limit-job-disk", ""),
    _Flag("limit-job-gpu", ""),
    _Flag("compute-execution-store-type", ""),
    _Flag("compute-execution-store-path", ""),
    _Flag("requester-job-store-type", ""),
    _Flag("requester-job-store-path", ""),
    _Flag("requester-job-translation-enabled", "", boolean=True),
    _Flag("job-selection-data-locality", ""),
    _Flag("network-store-dir", ""),
    _Flag("node-info-store-ttl", ""),
    _Flag("default-publisher", ""),
    _Flag("job-execution-timeout-bypass-client-id", ""),
    _Flag("job-negotiation-timeout", ""),
    _Flag("min-job-execution-timeout", ""),
    _Flag("max-job-execution-timeout", ""),
    _Flag("default-job-execution-timeout", ""),
)
#: ``--node-type requester,compute``: the roles (Bacalhau v1.4's spelling of them).
_NODE_TYPE = _Flag("node-type", "", listed=True)


def _dest(flag: _Flag) -> str:
    return _PREFIX + flag.flag.replace("-", "_")


def legacy_serve_flags(f: F) -> F:
    """Add the hidden deprecated flags to a ``serve`` command."""
    for flag in (*_FLAGS, _NODE_TYPE):
        if flag.boolean:
            option = click.option(
                f"--{flag.flag}", _dest(flag), is_flag=True, default=None, hidden=True
            )
        else:
            option = click.option(
                f"--{flag.flag}", _dest(flag), multiple=flag.listed, default=None, hidden=True
            )
        f = option(f)
    return f


def legacy_settings(flags: dict[str, Any]) -> dict[str, str]:
    """Take the deprecated flags out of ``flags`` (the command's keyword arguments) and
    return the settings they make (``Key -> value``), saying on standard error what each
    one is now."""
    settings: dict[str, str] = {}
    for flag in _FLAGS:
        value = flags.pop(_dest(flag), None)
        if value is None or value == ():
            continue
        text = _text(flag, value)
        if not flag.key:
            _notice(f"Flag --{flag.flag} is deprecated and has no effect: Bacalhau retired it")
            continue
        _notice(f"Flag --{flag.flag} is deprecated: it sets {flag.key} (-c {flag.key}={text})")
        settings[flag.key] = text
    roles = flags.pop(_dest(_NODE_TYPE), None)
    if roles:
        kinds = {r.strip().lower() for r in ",".join(roles).split(",") if r.strip()}
        unknown = kinds - {"requester", "orchestrator", "compute"}
        if unknown:
            raise click.BadParameter(
                f"unknown node type {', '.join(sorted(unknown))}: use requester and/or compute",
                param_hint="'--node-type'",
            )
        _notice("Flag --node-type is deprecated: use --orchestrator and/or --compute")
        settings["Orchestrator.Enabled"] = str(bool(kinds & {"requester", "orchestrator"}))
        settings["Compute.Enabled"] = str("compute" in kinds)
    return settings


def _text(flag: _Flag, value: Any) -> str:
    if flag.boolean:
        return "true" if value else "false"
    if flag.listed:
        return ",".join(v.strip() for v in value if v.strip())
    return str(value)


def _notice(message: str) -> None:
    click.echo(message, err=True)
