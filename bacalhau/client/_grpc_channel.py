"""The connection of :class:`~bacalhau.client.AsyncGrpcClient` to a requester's public gRPC
API: target, TLS, credentials, message limits and the services' stubs, and one unary call
with its failure translated (see :mod:`bacalhau.client._grpc_errors`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import grpc

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.client._auth import Credentials, explain_refusal
from bacalhau.client._grpc_errors import error_from_status
from bacalhau.client._session import DEFAULT_API_HOST
from bacalhau.errors import BacalhauError

__all__ = ["DEFAULT_GRPC_API_PORT", "DEFAULT_MAX_MESSAGE", "GrpcChannel", "grpc_target_from_env"]

#: The requester's public gRPC API port unless configured (``api_grpc_port``).
DEFAULT_GRPC_API_PORT = 1235
#: Largest answer accepted: a page of jobs whose specs carry inline WASM modules.
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024


def grpc_target_from_env() -> str:
    """``host:port`` from ``BACALHAU_API_HOST`` and ``BACALHAU_API_GRPC_PORT`` (the same
    variables configure the node), by default ``127.0.0.1:1235``."""
    host = os.environ.get("BACALHAU_API_HOST") or DEFAULT_API_HOST
    port = int(os.environ.get("BACALHAU_API_GRPC_PORT") or DEFAULT_GRPC_API_PORT)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class GrpcChannel:
    """One channel to the API, opened on first use inside the event loop the calls run on;
    see :class:`~bacalhau.client.AsyncGrpcClient` for the arguments."""

    def __init__(
        self,
        target: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout: float = 60.0,
        max_message: int = DEFAULT_MAX_MESSAGE,
        namespace: str = "",
        credentials: Credentials | None = None,
    ) -> None:
        self.target = target or grpc_target_from_env()
        self.namespace = namespace
        self._auth = credentials if credentials is not None else Credentials.from_env()
        header = self._auth.header
        self._metadata = (("authorization", header),) if header else ()
        self._credentials = (
            grpc.ssl_channel_credentials(root_certificates)
            if tls or root_certificates is not None
            else None
        )
        self._timeout = timeout
        self._options = [
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message),
        ]
        self._channel: grpc.aio.Channel | None = None
        self._jobs: api_pb2_grpc.JobServiceStub | None = None
        self._nodes: api_pb2_grpc.NodeAPIServiceStub | None = None
        self._agent: api_pb2_grpc.AgentServiceStub | None = None
        self._data: api_pb2_grpc.DataServiceStub | None = None

    def _open(self) -> grpc.aio.Channel:
        # Made on first use, inside the event loop the calls run on.
        if self._channel is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=self._options
                )
            self._jobs = api_pb2_grpc.JobServiceStub(self._channel)
            self._nodes = api_pb2_grpc.NodeAPIServiceStub(self._channel)
            self._agent = api_pb2_grpc.AgentServiceStub(self._channel)
            self._data = api_pb2_grpc.DataServiceStub(self._channel)
        return self._channel

    @property
    def _job_service(self) -> api_pb2_grpc.JobServiceStub:
        self._open()
        assert self._jobs is not None
        return self._jobs

    @property
    def _node_service(self) -> api_pb2_grpc.NodeAPIServiceStub:
        self._open()
        assert self._nodes is not None
        return self._nodes

    @property
    def _agent_service(self) -> api_pb2_grpc.AgentServiceStub:
        self._open()
        assert self._agent is not None
        return self._agent

    @property
    def _data_service(self) -> api_pb2_grpc.DataServiceStub:
        self._open()
        assert self._data is not None
        return self._data

    async def _get_data(self, cid: str, fmt: str, dest: Any, timeout: float) -> None:
        """Write content ``cid`` in ``fmt`` (tar or car) into the binary file ``dest`` as
        its chunks arrive (``DataService.GetData``)."""
        call = self._data_service.GetData(
            api_pb2.GetDataRequest(cid=cid, format=fmt), timeout=timeout, metadata=self._metadata
        )
        try:
            async for message in call:
                await asyncio.to_thread(dest.write, message.chunk)
        except grpc.aio.AioRpcError as exc:
            raise self._failure(exc) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled)."""
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(self, call: Callable[..., Any], request: Any, timeout: float = 0.0) -> Any:
        """One unary call, its failure translated."""
        try:
            return await call(request, timeout=timeout or self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: grpc.aio.AioRpcError) -> BacalhauError:
        return explain_refusal(error_from_status(exc, target=self.target), self._auth)
