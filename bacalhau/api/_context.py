"""What every handler reaches through ``request.app``: the orchestrator and server facts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bacalhau.orchestrator._api import OrchestratorAPI


@dataclass(slots=True)
class ApiContext:
    orchestrator: OrchestratorAPI
    started_ns: int
    #: Configuration shown by ``/api/v1/agent/config`` (secrets are redacted on the way out).
    agent_config: Mapping[str, Any] = field(default_factory=dict)
    #: Largest request body accepted, in bytes (the ``max_job_size`` setting).
    max_job_size: int = 4 * 1024 * 1024
    #: How long a job submission's body may take to arrive, in seconds.
    body_timeout: float = 120.0
    #: This node's gossip counters and member states, shown by ``/api/v1/agent/debug``.
    gossip_metrics: Callable[[], Mapping[str, Any]] | None = None
    #: Set when the server stops, so long-polls end at once instead of delaying shutdown.
    closing: asyncio.Event = field(default_factory=asyncio.Event)


CONTEXT = web.AppKey("bacalhau_api_context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]
