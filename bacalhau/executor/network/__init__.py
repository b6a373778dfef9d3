"""Network policy for executors: the domain allow-list of ``HTTP``-mode jobs and the proxy
that enforces it. Pure asyncio and models; no Docker here, so any executor can use it."""

from bacalhau.executor.network._allowlist import DomainAllowList, normalise_host
from bacalhau.executor.network._proxy import EgressProxy, Resolver, system_resolver

__all__ = ["DomainAllowList", "EgressProxy", "Resolver", "normalise_host", "system_resolver"]
