"""The executor's connection to the Docker engine: made on first use, and whether it answers.

Nothing is asked of the engine before the first call that needs it, so constructing an
executor never fails when the engine is down; the answer to "is the engine there" is cached
for a few seconds, longer when it is yes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import docker

from bacalhau.errors import BacalhauError
from bacalhau.executor.docker._errors import ENGINE_ERRORS, unreachable

__all__ = ["EngineConnection"]

#: Connections to the engine: every running container holds one (attach) beyond the pool,
#: so the pool only needs to cover concurrent short calls.
_POOL_SIZE = 32
_INSTALLED_TTL = 5.0
_NOT_INSTALLED_TTL = 1.0


class EngineConnection:
    """The SDK client of one executor: ``client``, or one built from the environment."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._client_lock = asyncio.Lock()
        self._installed: tuple[bool, float] | None = None

    @property
    def connected(self) -> bool:
        """True once a client exists (given, or built by a first call)."""
        return self._client is not None

    def api_if_connected(self) -> Any:
        """The low-level API client if one exists, else None (never builds one)."""
        return self._client.api if self._client is not None else None

    async def is_installed(self) -> bool:
        """True when the engine answers a ping (the answer is cached for a few seconds)."""
        now = time.monotonic()
        if self._installed is not None and self._installed[1] > now:
            return self._installed[0]
        try:
            api = await self.api()
            ok = bool(await asyncio.to_thread(api.ping))
        except (BacalhauError, *ENGINE_ERRORS):
            ok = False
        self._installed = (ok, now + (_INSTALLED_TTL if ok else _NOT_INSTALLED_TTL))
        return ok

    async def api(self) -> Any:
        """The low-level API client, created on first use."""
        client: Any = self._client
        if client is None:
            async with self._client_lock:
                client = self._client
                if client is None:
                    try:
                        client = await asyncio.to_thread(
                            docker.DockerClient.from_env, max_pool_size=_POOL_SIZE
                        )
                    except ENGINE_ERRORS as e:
                        raise unreachable(e) from e
                    self._client = client
        return client.api
