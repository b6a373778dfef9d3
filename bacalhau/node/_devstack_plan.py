"""The devstack's plan: the cluster CA, each node's identity, certificate, ports and the
``bacalhau serve`` command line that (re)starts it, as the manifest describes it."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bacalhau.config import NodeConfig, read_config_file
from bacalhau.errors import BacalhauError, InvalidRequest, Unavailable
from bacalhau.identity import TLS_CERT_FILE, ClusterCA, NodeIdentity
from bacalhau.node._plugins import check_engines

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
        "metrics_port",
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


def _distinct(pick: Callable[[], int], *, taken: set[int]) -> Callable[[], int]:
    """``pick``, never giving a port twice (nor one of ``taken``): a port found free and
    released can be found free again by the next look, before any node has bound it."""

    def distinct() -> int:
        for _ in range(100):
            port = pick()
            if port not in taken:
                taken.add(port)
                return port
        raise Unavailable("no free port found for the devstack's nodes")

    return distinct


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
    #: ``GET /metrics`` alone (compute nodes: they serve no API).
    metrics_address: str = ""
    status: NodeStatus = NodeStatus.STARTING
    exit_code: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: Where this start's lines begin in the log (earlier starts appended theirs before).
    log_start: int = field(default=0, repr=False)
    #: A requester that runs jobs too (Bacalhau's hybrid node).
    hybrid: bool = False

    @property
    def log_path(self) -> Path:
        return self.data_dir / "node.log"

    @property
    def roles(self) -> list[str]:
        return [self.role, "compute"] if self.hybrid else [self.role]

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
                    ("Metrics", _port(self.metrics_address)),
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
        if self.metrics_address:
            out["MetricsAddress"] = self.metrics_address
        return out


def check_devstack_config(config: Mapping[str, str], files: Sequence[Path] = ()) -> NodeConfig:
    """Check the settings meant for every node: config ``files`` (in order), then the
    ``-c Key=Value`` settings. An unknown key, a bad or refused value, or a key the devstack
    sets per node (in a file too) is an error naming the key, before anything starts.
    Returns them applied to the defaults (its ``ignored_settings`` are what every node
    will ignore)."""
    checked = NodeConfig()
    for path, values in [*((p, read_config_file(p)) for p in files), (None, config)]:
        where = f"{path}: " if path else ""
        try:
            checked = checked.with_overrides(values)
        except BacalhauError as err:
            raise type(err)(where + err.message, hint=err.hint, details=err.details) from None
        for key in values:
            if NodeConfig.field_name(key) in DEVSTACK_OWNED_KEYS:
                raise InvalidRequest(
                    f"{where}configuration key {key!r} is chosen by the devstack for each node",
                    hint="use the devstack's own flags (--engines, --api-port, --data-dir), "
                    "or start that node yourself with `bacalhau serve`",
                    details={"Field": key},
                )
    return checked


def devstack_config_args(config: Mapping[str, str], files: Sequence[Path] = ()) -> list[str]:
    """The settings meant for every node (checked by :func:`check_devstack_config`) as
    ``bacalhau serve`` flags: ``-c FILE`` (absolute, so that a node's ``Args`` work from any
    directory) and ``-c Key=Value``."""
    check_devstack_config(config, files)
    return [
        *(part for path in files for part in ("-c", str(path.absolute()))),
        *(part for key, value in config.items() for part in ("-c", f"{key}={value}")),
    ]


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
    config_files: Sequence[Path] = (),
    faulty_compute_nodes: int = 0,
    faulty_results: str = "corrupt",
    api_grpc_port: int | None = None,
    hybrid: bool = False,
    pick_port: Callable[[], int] = free_port,
) -> list[DevstackNode]:
    """Create the CA, identities and certificates; choose ports; build each node's command.

    ``config_files`` and ``config`` (``Key=Value`` settings) go to every node as ``-c``
    flags, checked first.
    The last ``faulty_compute_nodes`` compute nodes alter the results they publish
    (``faulty_results``, ``corrupt`` or ``misclaim``: a test bed for verification).
    ``api_grpc_port`` (the requester's public gRPC API; 0: a free port) defaults to 1235,
    or to a free port when ``api_port`` is 0 (a stack on free ports takes no fixed one).
    ``hybrid`` makes the orchestrator a compute node as well (Bacalhau's hybrid node), with
    the same engines as the others. ``pick_port`` chooses every port not given.
    """
    if compute_nodes < 0:
        raise InvalidRequest("--compute-nodes must be >= 0", details={"Field": "compute-nodes"})
    if not 0 <= faulty_compute_nodes <= compute_nodes:
        raise InvalidRequest(
            f"--faulty-compute-nodes must be between 0 and --compute-nodes ({compute_nodes})",
            details={"Field": "faulty-compute-nodes"},
        )
    engines = check_engines(engines)
    pick_port = _distinct(pick_port, taken={p for p in (api_port, api_grpc_port) if p})
    settings = devstack_config_args(config or {}, config_files)
    data_dir = data_dir.absolute()  # Args must work from any working directory
    data_dir.mkdir(parents=True, exist_ok=True)
    ca_dir = data_dir / "ca"
    ca = ClusterCA.load(ca_dir) if (ca_dir / "ca.key").exists() else ClusterCA.create(ca_dir)
    base = [sys.executable, "-m", "bacalhau", "serve"]
    req_dir = data_dir / "requester"
    requester = _prepare_node(ca, req_dir)
    if api_grpc_port is None:
        api_grpc_port = 1235 if api_port else 0
    api_port = api_port or pick_port()
    api_grpc_port = api_grpc_port or pick_port()
    req_grpc = pick_port()
    # A hybrid orchestrator runs jobs too: it needs what a compute node is given.
    req_pub = pick_port() if hybrid else 0
    hybrid_args = (
        [
            "--compute",
            *_flags(
                {
                    "--publisher-host": "127.0.0.1",
                    "--publisher-port": req_pub,
                    "--engines": ",".join(engines),
                }
            ),
        ]
        if hybrid
        else []
    )
    nodes = [
        DevstackNode(
            name="requester",
            role="requester",
            node_id=requester.node_id,
            data_dir=req_dir,
            grpc_address=f"127.0.0.1:{req_grpc}",
            api_address=f"127.0.0.1:{api_port}",
            grpc_api_address=f"127.0.0.1:{api_grpc_port}",
            publisher_address=f"127.0.0.1:{req_pub}" if hybrid else "",
            hybrid=hybrid,
            args=[
                *base,
                "--orchestrator",
                *hybrid_args,
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
        grpc_port = pick_port()
        pub_port = pick_port()
        metrics_port = pick_port()
        nodes.append(
            DevstackNode(
                name=f"compute-{i}",
                role="compute",
                node_id=identity.node_id,
                data_dir=node_dir,
                grpc_address=f"127.0.0.1:{grpc_port}",
                publisher_address=f"127.0.0.1:{pub_port}",
                metrics_address=f"127.0.0.1:{metrics_port}",
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
                            "--api-host": "127.0.0.1",
                            "--metrics-port": metrics_port,
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
