"""The container a job runs in: its mounts, limits, privileges and network, in one place.

Every container is confined the same way, whatever the job asks:

- limits: CPU quota (``Resources.CPU``), memory with no swap (``Resources.Memory``), a pids
  limit (the operator's);
- privileges: every capability dropped and ``no-new-privileges`` (a setuid binary in the
  image cannot give them back); an operator whose images need some (package managers,
  entrypoints that chown or switch user) drops fewer, e.g. only ``NET_RAW`` and ``MKNOD``;
- filesystem: the image's root read-only, the job writing only to its result folders and a
  size-bounded tmpfs at ``/tmp``; or, where the operator lets images write to their root,
  writable as ``docker run`` gives it, what is written there capped by the executor's
  watcher (``_layer_watch``). Inputs are mounted read-only unless the input itself is
  writable;
- network: ``None`` has none at all, ``Full`` and ``Host`` the host's (the task listens on
  its host ports itself), ``Bridge`` Docker's bridge with the task's ports published on the
  host, ``HTTP`` only the node's proxy (see ``_egress``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.types import LogConfig, Mount

from bacalhau.errors import ExecutionFailed
from bacalhau.executor._base import RunRequest
from bacalhau.executor._gpus import docker_gpu_options
from bacalhau.executor.docker._defaults import DEFAULT_CAP_DROP
from bacalhau.executor.docker._params import DockerEngineSpec
from bacalhau.models import PortMapping

__all__ = ["Confinement", "NetworkPlan", "bridge_network", "container_kwargs"]

_TMP_OPTIONS = "rw,nosuid,nodev,mode=1777"


@dataclass(frozen=True, slots=True)
class Confinement:
    """The operator's settings every container runs under."""

    pids_limit: int
    read_only_rootfs: bool
    #: Bytes of the tmpfs at ``/tmp`` under a read-only root (it counts against the job's
    #: memory). A writable root has no tmpfs: ``/tmp`` is the image's, as in ``docker run``.
    tmp_size: int
    #: Capabilities taken from Docker's default set (``ALL``: every one).
    cap_drop: tuple[str, ...] = DEFAULT_CAP_DROP


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """How the container is networked: a Docker network mode and what comes with it."""

    mode: str
    env: Mapping[str, str]
    networking_config: Any = None
    #: Container TCP port -> the (host address, host port) pairs published to it.
    published: Mapping[int, Sequence[tuple[str, int]]] = field(default_factory=dict)

    @property
    def disabled(self) -> bool:
        return self.mode == "none"


NO_NETWORK = NetworkPlan(mode="none", env={})
HOST_NETWORK = NetworkPlan(mode="host", env={})
#: Docker's default bridge: an address of the container's own, with a route out.
BRIDGE_NETWORK = NetworkPlan(mode="bridge", env={})


def bridge_network(ports: Sequence[PortMapping]) -> NetworkPlan:
    """Docker's bridge with each allocated mapping's host port published to its target
    (TCP, as Bacalhau publishes), on its ``HostNetwork`` or every IPv4 interface."""
    published: dict[int, list[tuple[str, int]]] = {}
    for port in ports:
        if not port.static:
            # The compute node allocates host ports before the run; none means a caller
            # skipped that, and Docker would pick one nobody is told about.
            raise ExecutionFailed(
                f"port {port.name} has no host port: the compute node allocates it",
                component="Executor",
            )
        target = port.target or port.static
        published.setdefault(target, []).append((port.host_network or "0.0.0.0", port.static))
    return NetworkPlan(mode="bridge", env={}, published=published)


def container_kwargs(
    api: Any,
    *,
    request: RunRequest,
    spec: DockerEngineSpec,
    name: str,
    labels: Mapping[str, str],
    result_sources: Mapping[str, Path],
    confinement: Confinement,
    network: NetworkPlan,
) -> dict[str, Any]:
    """The arguments of ``create_container`` for ``request``."""
    mounts = [
        Mount(target=rp.path, source=os.path.abspath(result_sources[rp.name]), type="bind")
        for rp in request.result_paths
    ]
    mounts += [
        Mount(
            target=inp.target,
            source=os.path.abspath(inp.source),
            type="bind",
            read_only=inp.read_only,
        )
        for inp in request.inputs
    ]
    resources = request.resources
    memory = resources.memory if resources.memory > 0 else None
    host_config = api.create_host_config(
        mounts=mounts or None,
        network_mode=network.mode,
        extra_hosts={"host.docker.internal": "host-gateway"} if network.mode == "host" else None,
        nano_cpus=int(resources.cpu * 1e9) if resources.cpu > 0 else None,
        mem_limit=memory,
        # Equal to the memory limit: no swap, so the limit really bounds the job.
        memswap_limit=memory,
        pids_limit=confinement.pids_limit,
        cap_drop=list(confinement.cap_drop) or None,
        security_opt=["no-new-privileges"],
        read_only=confinement.read_only_rootfs,
        tmpfs=(
            {"/tmp": f"{_TMP_OPTIONS},size={confinement.tmp_size}"}
            if confinement.read_only_rootfs
            else None
        ),
        # The output reaches us over the attach stream; a second copy in the engine's
        # log files would only cost disk and time.
        log_config=LogConfig(type="none"),
        port_bindings=dict(network.published) or None,
        # Exactly the GPUs reserved for this execution (device requests or device nodes).
        **docker_gpu_options(request.gpus),
    )
    # The proxy settings come last: the job's own values would only point at nothing.
    env = [e for e in spec.merged_env(request.env) if e.partition("=")[0] not in network.env]
    env += [f"{k}={v}" for k, v in network.env.items()]
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": spec.parameters or None,
        "entrypoint": spec.entrypoint or None,
        "environment": env,
        "working_dir": spec.working_directory or None,
        "name": name,
        "labels": dict(labels),
        "host_config": host_config,
        "network_disabled": network.disabled,
        # Exposed as well as bound, as ``docker run -p`` does.
        "ports": list(network.published) or None,
        "tty": False,
        "stdin_open": False,
        # The operator's client-side proxy settings are not the job's business.
        "use_config_proxy": False,
    }
    if network.networking_config is not None:
        kwargs["networking_config"] = network.networking_config
    return kwargs
