"""One mutual-TLS gRPC server per node, serving whichever roles the node runs."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import grpc

from bacalhau._proto.v1 import compute_pb2_grpc, node_pb2_grpc, orchestrator_pb2_grpc
from bacalhau.errors import InvalidRequest, Unavailable
from bacalhau.identity import NodeFiles, NodeIdentity
from bacalhau.identity._join_token import JoinAuthority
from bacalhau.models import NodeType
from bacalhau.transport._blocks import BlockReader, BlockServicer, add_block_service
from bacalhau.transport._channel import format_address
from bacalhau.transport._handlers import ComputeHandler, OrchestratorHandler
from bacalhau.transport._join import Certify, JoinServicer
from bacalhau.transport._membership import (
    Deliver,
    MembershipServicer,
    add_membership_service,
)
from bacalhau.transport._services import ComputeServicer, NodeServicer, OrchestratorServicer
from bacalhau.transport._tls import TlsMaterial, server_credentials, server_options

log = logging.getLogger(__name__)


class NodeServer:
    """The node's gRPC server: ComputeService and/or OrchestratorService, NodeService (every
    node proves its identity there) and, once added, MembershipService (gossip).

    Register handlers, then enter the context (or call :meth:`start`)::

        server = NodeServer(identity, files, "0.0.0.0", 1234)
        server.add_compute_handler(compute)
        server.add_membership(runner_deliver)
        async with server:
            ...  # server.address is "host:port" (the real port when 0 was asked for)

    Every connection must present a certificate from the cluster CA; calls are attributed to
    the node ID in that certificate.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        files: NodeFiles | TlsMaterial,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        stop_grace_seconds: float = 2.0,
    ) -> None:
        self._identity = identity
        self._files = files
        self._host = host
        self._requested_port = port
        self._stop_grace = stop_grace_seconds
        self._compute: ComputeHandler | None = None
        self._orchestrator: OrchestratorHandler | None = None
        self._deliver: Deliver | None = None
        self._membership: MembershipServicer | None = None
        self._block_store: BlockReader | None = None
        self._blocks: BlockServicer | None = None
        self._orchestrator_servicer: OrchestratorServicer | None = None
        self._join: tuple[JoinAuthority, Certify] | None = None
        self._server: Any = None
        self._port = 0

    def add_compute_handler(self, handler: ComputeHandler) -> None:
        """Serve ComputeService with ``handler`` (before the server starts)."""
        self._check_not_started()
        self._compute = handler

    def add_orchestrator_handler(self, handler: OrchestratorHandler) -> None:
        """Serve OrchestratorService with ``handler`` (before start)."""
        self._check_not_started()
        self._orchestrator = handler

    def add_membership(self, deliver: Deliver) -> None:
        """Serve MembershipService, handing every message to ``deliver`` (before start)."""
        self._check_not_started()
        self._deliver = deliver

    def add_block_service(self, store: BlockReader) -> None:
        """Serve BlockService (the block exchange) from ``store`` (before start)."""
        self._check_not_started()
        self._block_store = store

    def add_join_service(self, authority: JoinAuthority, certify: Certify) -> None:
        """Serve JoinService: nodes holding the token of ``authority`` get a certificate from
        ``certify`` (before start)."""
        self._check_not_started()
        self._join = (authority, certify)

    @property
    def membership_refusals(self) -> dict[str, int]:
        """Membership messages refused before the gossip core saw them, by reason (peers
        without a cluster certificate do not get this far: TLS refuses them)."""
        return dict(self._membership.refused) if self._membership is not None else {}

    @property
    def module_requests(self) -> dict[str, int]:
        """GetModule calls served to compute nodes, by outcome (``served``, ``not_found``,
        ``refused``); empty on a node without the requester role."""
        servicer = self._orchestrator_servicer
        return dict(servicer.module_requests) if servicer is not None else {}

    @property
    def roles(self) -> frozenset[NodeType]:
        """The roles this server's handlers make the node run."""
        roles = set()
        if self._compute is not None:
            roles.add(NodeType.COMPUTE)
        if self._orchestrator is not None:
            roles.add(NodeType.REQUESTER)
        return frozenset(roles)

    def _check_not_started(self) -> None:
        if self._server is not None:
            raise InvalidRequest(
                "handlers must be added before the node server starts", component="Transport"
            )

    @property
    def node_id(self) -> str:
        return self._identity.node_id

    @property
    def port(self) -> int:
        """The bound port (0 until started)."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` the server listens on (valid once started)."""
        return format_address(self._host, self._port)

    async def start(self) -> None:
        if self._server is not None:
            return
        if self._compute is None and self._orchestrator is None and self._deliver is None:
            raise InvalidRequest(
                "a node server needs a compute or an orchestrator handler, or membership",
                component="Transport",
            )
        creds = server_credentials(self._files, self._join[0] if self._join else None)
        server = grpc.aio.server(options=server_options())
        if self._compute is not None:
            compute_pb2_grpc.add_ComputeServiceServicer_to_server(
                ComputeServicer(self._compute, identity=self._identity), server
            )
        if self._orchestrator is not None:
            self._orchestrator_servicer = OrchestratorServicer(self._orchestrator)
            orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(
                self._orchestrator_servicer, server
            )
        node_pb2_grpc.add_NodeServiceServicer_to_server(
            NodeServicer(identity=self._identity, roles=self.roles), server
        )
        if self._deliver is not None:
            self._membership = add_membership_service(server, self._deliver)
        if self._block_store is not None:
            self._blocks = add_block_service(server, self._block_store)
        if self._join is not None:
            node_pb2_grpc.add_JoinServiceServicer_to_server(JoinServicer(self._join[1]), server)
        bind = format_address(self._host, self._requested_port)
        try:
            port = server.add_secure_port(bind, creds)
        except RuntimeError as e:
            raise Unavailable(
                f"cannot listen on {bind}: {e}",
                hint="choose a free port, or 0 to let the system pick one",
                component="Transport",
            ) from None
        if not port:
            raise Unavailable(
                f"cannot listen on {bind}",
                hint="choose a free port, or 0 to let the system pick one",
                component="Transport",
            )
        await server.start()
        self._server = server
        self._port = port
        log.info("node %s serving bprotocol on %s", self._identity.node_id, self.address)

    async def stop(self) -> None:
        """Stop accepting calls; give running calls the grace period to finish."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(self._stop_grace)

    async def __aenter__(self) -> NodeServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
