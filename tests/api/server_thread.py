"""An ApiServer running on its own event loop in a background thread, for tests of blocking
callers (the sync client, the CLI, the official SDK)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from bacalhau.api import ApiServer, Authorizer
from bacalhau.orchestrator import OrchestratorAPI

T = TypeVar("T")


class ServerThread:
    def __init__(
        self, orchestrator: OrchestratorAPI, *, authorizer: Authorizer | None = None
    ) -> None:
        self.orchestrator = orchestrator
        self._authorizer = authorizer
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: ApiServer | None = None

    def start(self) -> ServerThread:
        self._thread.start()
        server = ApiServer(self.orchestrator, host="127.0.0.1", port=0, authorizer=self._authorizer)
        self.run(server.start())
        self._server = server
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the server's loop (where the orchestrator lives) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self.run(self._server.stop())
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
