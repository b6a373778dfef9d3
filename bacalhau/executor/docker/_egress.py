"""The network of ``HTTP``-mode containers: no route out but the node's proxy.

One Docker network per executor, created on the first ``HTTP`` job:

- ``internal``: Docker gives its containers no default route, so nothing outside its subnet
  is reachable at all;
- inter-container traffic off (``enable_icc=false``): jobs cannot talk to each other;
- the proxy (:class:`~bacalhau.executor.network.EgressProxy`) listens on the network's
  gateway address, on the host, and is the one thing a container can reach;
- a host firewall rule drops everything else that arrives from the network's bridge, so the
  node's other services (API, publisher, anything bound to 0.0.0.0) stay out of reach.

Each container gets a fixed address chosen here, admitted to the proxy with its job's
allow-list before the container starts and dismissed once it is removed: the proxy tells
jobs apart by their source address, which a container without capabilities cannot forge.
Docker only accepts fixed addresses on a network whose subnet was given explicitly, so the
network is created once to let Docker pick a free subnet, then again with that subnet.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import docker.errors
import docker.types

from bacalhau.errors import ExecutionFailed
from bacalhau.executor.docker._errors import ENGINE_ERRORS, explain, unreachable
from bacalhau.executor.network import DomainAllowList, EgressProxy

__all__ = ["EgressLease", "EgressNetwork"]

_log = logging.getLogger(__name__)

_NO_PROXY = "localhost,127.0.0.1,::1"


@dataclass(frozen=True, slots=True)
class EgressLease:
    """One container's place on the network."""

    address: str
    env: dict[str, str]


class EgressNetwork:
    """The internal network and proxy of one executor (``prefix``)."""

    def __init__(self, *, prefix: str, label: str, proxy: EgressProxy, firewall: bool) -> None:
        digest = hashlib.sha256(prefix.encode()).hexdigest()[:10]
        self.name = f"{prefix}-http"
        # Interface names have at most 15 characters.
        self.bridge = f"bh-{digest}"
        self._label = label
        self._prefix = prefix
        self._proxy = proxy
        self._firewall = firewall and shutil.which("iptables") is not None
        self._lock = asyncio.Lock()
        self._ready = False
        self._hosts: list[str] = []
        self._leased: set[str] = set()
        self._proxy_url = ""

    async def lease(self, api: Any, allowed: DomainAllowList) -> EgressLease:
        """An address for a new container, admitted to the proxy with ``allowed``."""
        await self._ensure(api)
        address = next((h for h in self._hosts if h not in self._leased), None)
        if address is None:
            raise ExecutionFailed("no free address left on the HTTP-mode network")
        self._leased.add(address)
        self._proxy.admit(address, allowed)
        env = {
            key: self._proxy_url
            for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
        }
        env["NO_PROXY"] = env["no_proxy"] = _NO_PROXY
        return EgressLease(address=address, env=env)

    def release(self, lease: EgressLease) -> None:
        """Give the address back; call once the container using it is removed."""
        self._proxy.dismiss(lease.address)
        self._leased.discard(lease.address)

    def networking_config(self, api: Any, lease: EgressLease) -> Any:
        return api.create_networking_config(
            {self.name: api.create_endpoint_config(ipv4_address=lease.address)}
        )

    async def close(self, api: Any | None) -> None:
        """Stop the proxy, drop the firewall rules and remove the network."""
        await self._proxy.close()
        if self._firewall:
            await asyncio.to_thread(self._drop_rules)
        if api is not None and self._ready:
            try:
                await asyncio.to_thread(api.remove_network, self.name)
            except docker.errors.NotFound:
                pass
            except ENGINE_ERRORS as e:
                _log.warning("cannot remove network %s: %s", self.name, explain(e))
        self._ready = False

    async def remove_leftover(self, api: Any) -> None:
        """Remove the network and firewall rules a previous process of this executor left
        (its containers gone)."""
        if self._firewall:
            await asyncio.to_thread(self._drop_rules)
        try:
            await asyncio.to_thread(api.remove_network, self.name)
        except docker.errors.NotFound:
            return
        except ENGINE_ERRORS as e:
            _log.warning("cannot remove leftover network %s: %s", self.name, explain(e))

    # -- setup ---------------------------------------------------------------------------------

    async def _ensure(self, api: Any) -> None:
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            try:
                subnet, gateway = await asyncio.to_thread(self._create_network, api)
            except ENGINE_ERRORS as e:
                if isinstance(e, docker.errors.APIError):
                    raise ExecutionFailed(
                        f"cannot create the HTTP-mode network: {explain(e)}"
                    ) from e
                raise unreachable(e) from e
            if self._proxy.address is None:
                try:
                    await self._proxy.start(gateway, 0)
                except OSError as e:
                    raise ExecutionFailed(
                        f"cannot start the HTTP proxy on {gateway}: {e}",
                        hint="HTTP-mode jobs need the node on the same host as its Docker engine",
                    ) from e
            address = self._proxy.address
            assert address is not None
            self._proxy_url = f"http://{gateway}:{address[1]}"
            if self._firewall:
                await asyncio.to_thread(self._add_rules, gateway, address[1])
            network = ipaddress.ip_network(subnet)
            hosts = (str(h) for h in network.hosts() if str(h) != gateway)
            # A few thousand addresses are plenty of concurrent HTTP-mode jobs.
            self._hosts = [h for _, h in zip(range(4096), hosts, strict=False)]
            self._ready = True

    def _create_network(self, api: Any) -> tuple[str, str]:
        existing = self._inspect(api)
        if existing is not None and existing[0]:
            return existing[1], existing[2]
        if existing is not None:
            api.remove_network(self.name)
        options = {
            "com.docker.network.bridge.enable_icc": "false",
            "com.docker.network.bridge.name": self.bridge,
        }
        labels = {self._label: self._prefix}
        # First let the engine choose a free subnet, then fix it so addresses can be chosen.
        api.create_network(self.name, driver="bridge", internal=True, labels=labels)
        probe = self._inspect(api)
        api.remove_network(self.name)
        assert probe is not None
        _, subnet, gateway = probe
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)]
        )
        api.create_network(
            self.name,
            driver="bridge",
            internal=True,
            options=options,
            labels=labels,
            ipam=ipam,
        )
        return subnet, gateway

    def _inspect(self, api: Any) -> tuple[bool, str, str] | None:
        """(usable as ours, subnet, gateway) of the network, or None if it does not exist."""
        try:
            info = api.inspect_network(self.name)
        except docker.errors.NotFound:
            return None
        configs = (info.get("IPAM") or {}).get("Config") or []
        v4 = [c for c in configs if ":" not in c.get("Subnet", ":")]
        if not v4:
            return False, "", ""
        subnet = v4[0]["Subnet"]
        gateway = v4[0].get("Gateway") or str(next(ipaddress.ip_network(subnet).hosts()))
        options = info.get("Options") or {}
        usable = (
            bool(info.get("Internal"))
            and options.get("com.docker.network.bridge.name") == self.bridge
            and options.get("com.docker.network.bridge.enable_icc") == "false"
        )
        return usable, subnet, gateway

    # -- firewall ------------------------------------------------------------------------------

    def _add_rules(self, gateway: str, port: int) -> None:
        self._drop_rules()
        accept = ["-i", self.bridge, "-p", "tcp", "-d", gateway, "--dport", str(port)]
        wanted = [
            ("iptables", ["-i", self.bridge, "-j", "DROP"]),
            ("iptables", [*accept, "-j", "ACCEPT"]),
            ("ip6tables", ["-i", self.bridge, "-j", "DROP"]),
        ]
        for tool, rule in wanted:
            if shutil.which(tool) is None:
                continue
            # Both at the top of INPUT: the ACCEPT, inserted last, comes before the DROP.
            if not _iptables(tool, "-I", "INPUT", *rule):
                _log.warning(
                    "cannot add the %s rule isolating %s; HTTP-mode jobs can reach this "
                    "node's own services",
                    tool,
                    self.bridge,
                )

    def _drop_rules(self) -> None:
        """Delete every INPUT rule for this bridge, ours and any a killed process left."""
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool) is None:
                continue
            try:
                listed = subprocess.run(
                    [tool, "-w", "5", "-S", "INPUT"],
                    capture_output=True,
                    text=True,
                    timeout=15,
                    check=False,
                ).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            for line in listed.splitlines():
                words = line.split()
                if words[:2] == ["-A", "INPUT"] and f"-i {self.bridge} " in line + " ":
                    _iptables(tool, "-D", "INPUT", *words[2:])


def _iptables(tool: str, *args: str) -> bool:
    try:
        done = subprocess.run(
            [tool, "-w", "5", *args], capture_output=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
