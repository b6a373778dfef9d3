"""``bacalhau devstack``: one requester and N compute nodes as separate OS processes on loopback.

The parent creates a cluster CA, gives every node an identity and a CA-signed certificate,
picks free ports, starts each node as ``python -m bacalhau serve ...``, waits until every
compute node has joined the requester, writes ``<data_dir>/devstack.json`` and then supervises.

A test bed for failures: once the cluster is ready, a node that dies (a test's SIGKILL, a
crash) is reported with its exit status and the tail of its log, marked ``exited`` in the
manifest, and the others keep running. The manifest gives every node's full command line
(``Args``), so a test or an operator can start it again with the same identity, data dir,
ports and configuration; such a restarted process belongs to whoever started it, never to
the devstack. Only when every node it started has died does the devstack give up (exit 1).
SIGINT/SIGTERM stops every node it started that is still running, compute nodes first.

Every node the devstack starts holds the read end of a lifeline pipe whose write end only the
devstack holds: a devstack killed outright (SIGKILL) closes it, and each node stops
gracefully on its own. The lifeline flag is added at start and is not part of ``Args``.
Without ``--data-dir`` the devstack works in a new temporary directory, which holds the
cluster CA's private key: it is removed on stop unless asked to keep it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import aiohttp

from bacalhau.config import NodeConfig
from bacalhau.errors import InternalError, InvalidRequest, Unavailable
from bacalhau.identity import TLS_CERT_FILE, ClusterCA, NodeIdentity
from bacalhau.node._plugins import check_engines

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
MANIFEST_FILE = "devstack.json"

#: How often the devstack looks for nodes that died.
_SUPERVISE_INTERVAL = 0.2

#: Settings the devstack chooses for each node itself (roles, addresses, where it keeps its
#: data): a ``-c`` for one of them would be overridden on every node, so it is refused.
DEVSTACK_OWNED_KEYS = frozenset(
    {
        "data_dir",
        "orchestrator",
        "compute",
        "name",
        "api_host",
        "api_port",
        "api_grpc_port",
        "grpc_host",
        "grpc_port",
        "orchestrator_address",
        "seeds",
        "publisher_host",
        "publisher_port",
        "engines",
    }
)


class NodeStatus(StrEnum):
    """A devstack node's process as the devstack sees it (``Status`` in the manifest)."""

    STARTING = "starting"
    RUNNING = "running"
    #: Died while the devstack ran (killed by a test, crashed): the devstack carries on.
    EXITED = "exited"
    #: Stopped by the devstack on SIGINT/SIGTERM.
    STOPPED = "stopped"


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port(address: str) -> int | None:
    return int(address.rsplit(":", 1)[1]) if address else None


def describe_exit(code: int) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` for a ``Popen.returncode``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(slots=True)
class DevstackNode:
    """One node of a devstack: its identity, addresses and the command that (re)starts it."""

    name: str
    role: str  # requester | compute
    node_id: str
    data_dir: Path
    grpc_address: str
    #: The full ``bacalhau serve`` command line, without the devstack's lifeline: run again
    #: from the same working directory and environment, it restarts this very node.
    args: list[str]
    api_address: str = ""
    #: The public gRPC API (requester only).
    grpc_api_address: str = ""
    publisher_address: str = ""
    status: NodeStatus = NodeStatus.STARTING
    exit_code: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "node.log"

    @property
    def roles(self) -> list[str]:
        return [self.role]

    def describe(self) -> dict[str, object]:
        """This node's entry in ``devstack.json``."""
        out: dict[str, object] = {
            "Name": self.name,
            "ID": self.node_id,
            "Role": self.role,
            "Roles": self.roles,
            "Status": self.status.value,
            "ExitCode": self.exit_code,
            "PID": self.process.pid if self.process else None,
            "DataDir": str(self.data_dir),
            "GRPCAddress": self.grpc_address,
            "Ports": {
                name: port
                for name, port in (
                    ("API", _port(self.api_address)),
                    ("GRPCAPI", _port(self.grpc_api_address)),
                    ("GRPC", _port(self.grpc_address)),
                    ("Publisher", _port(self.publisher_address)),
                )
                if port is not None
            },
            "Log": str(self.log_path),
            "Args": list(self.args),
        }
        if self.api_address:
            out["APIAddress"] = self.api_address
        if self.grpc_api_address:
            out["GRPCAPIAddress"] = self.grpc_api_address
        if self.publisher_address:
            out["PublisherAddress"] = self.publisher_address
        return out


def devstack_config_args(config: Mapping[str, str]) -> list[str]:
    """Check the ``-c Key=Value`` settings meant for every node and return them as
    ``bacalhau serve`` flags. An unknown key, a bad value or a key the devstack sets per node
    is an :class:`InvalidRequest` naming the key, before anything starts."""
    NodeConfig().with_overrides(config)
    for key in config:
        if NodeConfig.field_name(key) in DEVSTACK_OWNED_KEYS:
            raise InvalidRequest(
                f"configuration key {key!r} is chosen by the devstack for each node",
                hint="use the devstack's own flags (--engines, --api-port, --data-dir), "
                "or start that node yourself with `bacalhau serve`",
                details={"Field": key},
            )
    return [part for key, value in config.items() for part in ("-c", f"{key}={value}")]


def _prepare_node(ca: ClusterCA, node_dir: Path) -> NodeIdentity:
    node_dir.mkdir(parents=True, exist_ok=True)
    identity = NodeIdentity.load_or_create(node_dir)
    if not (node_dir / TLS_CERT_FILE).exists():
        ca.issue_node_certificate(identity, data_dir=node_dir)
    return identity


def _flags(values: dict[str, object]) -> list[str]:
    return [part for flag, value in values.items() for part in (flag, str(value))]


def plan_devstack(
    *,
    data_dir: Path,
    compute_nodes: int,
    api_port: int,
    engines: tuple[str, ...] = ("docker", "wasm"),
    extra_serve_args: tuple[str, ...] = (),
    config: Mapping[str, str] | None = None,
    faulty_compute_nodes: int = 0,
    faulty_results: str = "corrupt",
    api_grpc_port: int | None = None,
) -> list[DevstackNode]:
    """Create the CA, identities and certificates; choose ports; build each node's command.

    ``config`` (``Key=Value`` settings) goes to every node as ``-c`` flags, checked first.
    The last ``faulty_compute_nodes`` compute nodes alter the results they publish
    (``faulty_results``, ``corrupt`` or ``misclaim``: a test bed for verification).
    ``api_grpc_port`` (the requester's public gRPC API; 0: a free port) defaults to 1235,
    or to a free port when ``api_port`` is 0 (a stack on free ports takes no fixed one).
    """
    if compute_nodes < 0:
        raise InvalidRequest("--compute-nodes must be >= 0", details={"Field": "compute-nodes"})
    if not 0 <= faulty_compute_nodes <= compute_nodes:
        raise InvalidRequest(
            f"--faulty-compute-nodes must be between 0 and --compute-nodes ({compute_nodes})",
            details={"Field": "faulty-compute-nodes"},
        )
    engines = check_engines(engines)
    settings = devstack_config_args(config or {})
    data_dir = data_dir.absolute()  # Args must work from any working directory
    data_dir.mkdir(parents=True, exist_ok=True)
    ca_dir = data_dir / "ca"
    ca = ClusterCA.load(ca_dir) if (ca_dir / "ca.key").exists() else ClusterCA.create(ca_dir)
    base = [sys.executable, "-m", "bacalhau", "serve"]
    req_dir = data_dir / "requester"
    requester = _prepare_node(ca, req_dir)
    if api_grpc_port is None:
        api_grpc_port = 1235 if api_port else 0
    api_port = api_port or free_port()
    api_grpc_port = api_grpc_port or free_port()
    req_grpc = free_port()
    nodes = [
        DevstackNode(
            name="requester",
            role="requester",
            node_id=requester.node_id,
            data_dir=req_dir,
            grpc_address=f"127.0.0.1:{req_grpc}",
            api_address=f"127.0.0.1:{api_port}",
            grpc_api_address=f"127.0.0.1:{api_grpc_port}",
            args=[
                *base,
                "--orchestrator",
                *_flags(
                    {
                        "--data-dir": req_dir,
                        "--api-host": "127.0.0.1",
                        "--api-port": api_port,
                        "--api-grpc-port": api_grpc_port,
                        "--grpc-host": "127.0.0.1",
                        "--grpc-port": req_grpc,
                    }
                ),
                *settings,
                *extra_serve_args,
            ],
        )
    ]
    for i in range(compute_nodes):
        node_dir = data_dir / f"compute-{i}"
        identity = _prepare_node(ca, node_dir)
        grpc_port = free_port()
        pub_port = free_port()
        nodes.append(
            DevstackNode(
                name=f"compute-{i}",
                role="compute",
                node_id=identity.node_id,
                data_dir=node_dir,
                grpc_address=f"127.0.0.1:{grpc_port}",
                publisher_address=f"127.0.0.1:{pub_port}",
                args=[
                    *base,
                    "--compute",
                    *_flags(
                        {
                            "--data-dir": node_dir,
                            "--grpc-host": "127.0.0.1",
                            "--grpc-port": grpc_port,
                            "--seed": f"127.0.0.1:{req_grpc}",
                            "--publisher-host": "127.0.0.1",
                            "--publisher-port": pub_port,
                            "--engines": ",".join(engines),
                            "--name": f"compute-{i}",
                        }
                    ),
                    *settings,
                    *(
                        ("-c", f"faulty_results={faulty_results}")
                        if i >= compute_nodes - faulty_compute_nodes
                        else ()
                    ),
                    *extra_serve_args,
                ],
            )
        )
    return nodes


def _start(node: DevstackNode, lifeline: int) -> None:
    """Start ``node`` holding ``lifeline`` (the read end of the devstack's lifeline pipe)."""
    logfile = node.log_path.open("ab")
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    node.process = subprocess.Popen(
        [*node.args, "--parent-fd", str(lifeline)],
        stdin=subprocess.DEVNULL,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # our own signal handling decides the stop order
        pass_fds=(lifeline,),  # only the read end: close_fds keeps the write end ours alone
    )
    logfile.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _wait_ready(nodes: list[DevstackNode], timeout: float) -> None:
    requester = nodes[0]
    want = {n.node_id for n in nodes if n.role == "compute"}
    url = f"http://{requester.api_address}/api/v1/orchestrator/nodes"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            for n in nodes:
                if n.process is not None and n.process.poll() is not None:
                    raise InternalError(
                        f"devstack node {n.name} exited while starting "
                        f"({describe_exit(n.process.returncode)}); its log ({n.log_path}) "
                        f"ends with:\n{_tail(n.log_path)}"
                    )
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        body = await resp.json()
                        joined = {
                            item["Info"]["NodeID"]
                            for item in body.get("Nodes", [])
                            if item["Info"].get("NodeType") == "Compute"
                            and item.get("Connection") == "CONNECTED"
                        }
                        if want <= joined:
                            return
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"devstack did not become ready within {timeout:.0f}s",
                    hint=f"look at the node logs under {requester.data_dir.parent}",
                )
            await asyncio.sleep(0.1)


def stop_nodes(nodes: list[DevstackNode], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM compute nodes, then the requester; SIGKILL whatever outlives ``grace``.

    Only the processes the devstack started are signalled: a node restarted by someone else
    from its ``Args`` is theirs to stop.
    """
    order = [n for n in nodes if n.role == "compute"] + [n for n in nodes if n.role != "compute"]
    for n in order:
        if n.process is not None and n.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                n.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for n in order:
        if n.process is None:
            continue
        try:
            n.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("node %s did not stop in %.0fs: killing it", n.name, grace)
            with contextlib.suppress(ProcessLookupError):
                n.process.kill()
            n.process.wait()
        if n.status in (NodeStatus.STARTING, NodeStatus.RUNNING):
            n.status, n.exit_code = NodeStatus.STOPPED, n.process.returncode


def write_manifest(data_dir: Path, nodes: list[DevstackNode]) -> Path:
    """Write ``<data_dir>/devstack.json`` atomically (readers never see half a file).

    ``WorkingDirectory`` is where the nodes were started: each node's ``Args``, run from
    there with the devstack's environment, restarts it.
    """
    path = data_dir / MANIFEST_FILE
    requester = nodes[0]
    manifest = {
        "DataDir": str(data_dir),
        "APIAddress": requester.api_address,
        "GRPCAPIAddress": requester.grpc_api_address,
        "CADir": str(data_dir / "ca"),
        "WorkingDirectory": os.getcwd(),
        "Nodes": [n.describe() for n in nodes],
    }
    tmp = path.with_name(f".{MANIFEST_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)
    return path


async def run_devstack(
    *,
    compute_nodes: int = 3,
    api_port: int = 1234,
    data_dir: Path | None = None,
    engines: tuple[str, ...] = ("docker", "wasm"),
    ready_timeout: float = 60.0,
    extra_serve_args: tuple[str, ...] = (),
    keep_data: bool = False,
    config: Mapping[str, str] | None = None,
    faulty_compute_nodes: int = 0,
    faulty_results: str = "corrupt",
    api_grpc_port: int | None = None,
) -> int:
    """Run a devstack until SIGINT/SIGTERM (exit 0) or until every node has died (exit 1).

    ``config`` holds ``Key=Value`` settings for every node, checked before anything starts.
    Without ``data_dir`` a temporary directory is used and removed on stop, unless
    ``keep_data``; a given ``data_dir`` is always kept.
    """
    devstack_config_args(config or {})
    check_engines(engines)
    temporary = data_dir is None
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="bacalhau-devstack-"))
    try:
        return await _run_nodes(
            data_dir.absolute(),
            compute_nodes=compute_nodes,
            api_port=api_port,
            engines=engines,
            ready_timeout=ready_timeout,
            extra_serve_args=extra_serve_args,
            config=config or {},
            faulty_compute_nodes=faulty_compute_nodes,
            faulty_results=faulty_results,
            api_grpc_port=api_grpc_port,
        )
    finally:
        if temporary and not keep_data:
            # The folder holds the cluster CA's private key: never leave it in /tmp.
            await asyncio.to_thread(shutil.rmtree, data_dir, True)
        elif temporary:
            print(f"Devstack data kept in {data_dir}", file=sys.stderr, flush=True)


def _report_exit(node: DevstackNode, manifest: Path) -> None:
    code = node.exit_code if node.exit_code is not None else 0
    print(
        f"devstack node {node.name} ({node.node_id}, PID {node.process and node.process.pid}) "
        f"exited: {describe_exit(code)}. The other nodes keep running; its Args in "
        f"{manifest} restart it. Its log ({node.log_path}) ends with:\n{_tail(node.log_path)}",
        file=sys.stderr,
        flush=True,
    )


async def _supervise(data_dir: Path, nodes: list[DevstackNode], stop: asyncio.Event) -> int:
    """Report nodes that die and keep the manifest current until ``stop``; 1 if all died."""
    manifest = data_dir / MANIFEST_FILE
    while not stop.is_set():
        died = [
            n
            for n in nodes
            if n.status == NodeStatus.RUNNING
            and n.process is not None
            and n.process.poll() is not None
        ]
        for n in died:
            n.status, n.exit_code = NodeStatus.EXITED, n.process.returncode if n.process else None
        if died:
            write_manifest(data_dir, nodes)
            for n in died:
                _report_exit(n, manifest)
            if all(n.status == NodeStatus.EXITED for n in nodes):
                print("every devstack node has exited: stopping.", file=sys.stderr, flush=True)
                return 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _SUPERVISE_INTERVAL)
    return 0


async def _run_nodes(
    data_dir: Path,
    *,
    compute_nodes: int,
    api_port: int,
    engines: tuple[str, ...],
    ready_timeout: float,
    extra_serve_args: tuple[str, ...],
    config: Mapping[str, str],
    faulty_compute_nodes: int = 0,
    faulty_results: str = "corrupt",
    api_grpc_port: int | None = None,
) -> int:
    nodes = plan_devstack(
        data_dir=data_dir,
        compute_nodes=compute_nodes,
        api_port=api_port,
        engines=engines,
        extra_serve_args=extra_serve_args,
        config=config,
        faulty_compute_nodes=faulty_compute_nodes,
        faulty_results=faulty_results,
        api_grpc_port=api_grpc_port,
    )
    # Never written to: its end of file tells the nodes that this process is gone.
    lifeline, lifeline_keep = os.pipe()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready_once = False
    try:
        try:
            for n in nodes:
                _start(n, lifeline)
        finally:
            os.close(lifeline)
        ready = asyncio.create_task(_wait_ready(nodes, ready_timeout))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({ready, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            ready.cancel()
            return 130
        stopper.cancel()
        ready.result()
        for n in nodes:
            n.status = NodeStatus.RUNNING
        manifest = write_manifest(data_dir, nodes)
        ready_once = True
        requester = nodes[0]
        host, port = requester.api_address.rsplit(":", 1)
        print(
            f"Devstack ready: 1 requester and {compute_nodes} compute node(s).\n"
            f"  API:      http://{requester.api_address}\n"
            f"  gRPC API: {requester.grpc_api_address}\n"
            f"  Manifest: {manifest}\n"
            f"  Use it:   export BACALHAU_API_HOST={host} BACALHAU_API_PORT={port}\n"
            "Press Ctrl+C to stop.",
            flush=True,
        )
        return await _supervise(data_dir, nodes, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(stop_nodes, nodes)
        os.close(lifeline_keep)
        if ready_once:
            write_manifest(data_dir, nodes)
