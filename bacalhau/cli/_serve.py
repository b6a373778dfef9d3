"""``bacalhau serve`` and ``bacalhau devstack``: start nodes (the node package does the work).

Flags are collected into configuration overrides: defaults < ``<data-dir>/config.yaml`` <
``-c FILE`` config files (in order) < ``BACALHAU_NODE_*`` environment < ``-c Key=Value`` <
explicit flags. A flag left out leaves the lower layers in charge, so every option defaults
to "not given" here and shows the effective default in its help.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bacalhau.cli._completion import complete_config_value
from bacalhau.cli._jobspec import parse_key_values
from bacalhau.cli._serve_flags import legacy_serve_flags, legacy_settings

if TYPE_CHECKING:
    from bacalhau.config import ConfigOptions


def _node_package() -> Any:
    """The composition root, imported only when a node is started (it pulls in everything)."""
    return importlib.import_module("bacalhau.node")


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a node runs on: uvloop's (libuv, in C) unless configured otherwise or
    not installed on this platform, then the standard library's (``None``)."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        click.echo("uvloop is not installed here: the node runs on asyncio's event loop", err=True)
        return None
    return uvloop.new_event_loop


def _run(coro: Coroutine[Any, Any, Any], event_loop: str = "asyncio") -> Any:
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=_loop_factory(event_loop)) as runner,
    ):
        return runner.run(coro)
    return 130


def _config_options(config: tuple[str, ...]) -> ConfigOptions:
    """``-c`` options as config files and ``Key=Value`` settings (a
    :class:`bacalhau.config.ConfigOptions`); a malformed one or a missing file is a usage
    error naming it."""
    from bacalhau.config import split_config_options
    from bacalhau.errors import InvalidRequest

    try:
        return split_config_options(config)
    except InvalidRequest as err:
        raise click.BadParameter(err.message, param_hint="'-c' / '--config'") from None


_CONFIG_HELP = (
    "A setting, Key=Value, or a YAML or JSON config file (repeatable; later settings win, "
    "and settings win over files). Keys are ours (max_attempts, labels) or Bacalhau's "
    "(Compute.AllocatedCapacity.CPU=50%, WebUI.Enabled=true), flat or in sections."
)


@click.command("serve")
@click.option("--orchestrator", is_flag=True, default=None, help="Run the orchestrator role.")
@click.option("--compute", is_flag=True, default=None, help="Run the compute role (both: hybrid).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Identity, stores and results [default: $BACALHAU_DIR or ~/.bacalhau].",
)
@click.option("--api-host", "api_host", default=None, help="REST API bind host [default: 0.0.0.0].")
@click.option(
    "--api-port", "api_port", type=click.IntRange(0, 65535), default=None, help="[default: 1234]"
)
@click.option(
    "--api-grpc-port",
    "api_grpc_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Public gRPC API port, on the REST API's host (0: any free port) "
    "[default: 1235, or a free port with --api-port 0].",
)
@click.option(
    "--metrics-port",
    "metrics_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve GET /metrics (Prometheus) on this port too, on the API's host (0: any free "
    "port); a compute-only node has no other. [default: off; a requester's is on its API "
    "port]",
)
@click.option("--grpc-host", default=None, help="bprotocol bind host [default: 0.0.0.0].")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=None, help="[default: 4222]")
@click.option(
    "--seed",
    "seeds",
    multiple=True,
    metavar="HOST:PORT",
    help="A cluster member's gRPC address to join the gossip through (repeatable); a compute "
    "node obeys the seeds that prove to be requesters.",
)
@click.option(
    "--orchestrator-address",
    default=None,
    help="HOST:PORT of a requester's gRPC endpoint: a seed (see --seed).",
)
@click.option(
    "--advertise-host",
    default=None,
    help="The host other nodes and clients reach this node by, when it binds 0.0.0.0 "
    "[default: the bind host, or 127.0.0.1].",
)
@click.option("--publisher-host", default=None, help="Local publisher bind host.")
@click.option(
    "--publisher-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Local publisher's result server port [default: 6001].",
)
@click.option("--engines", default=None, help="Executors to offer, e.g. docker,wasm.")
@click.option("--name", default=None, help="Node name (default: its node ID).")
@click.option("--labels", multiple=True, help="Node labels, k=v (repeatable or k=v,k2=v2).")
@click.option(
    "--trusted-requester",
    "trusted_requesters",
    multiple=True,
    metavar="NODE_ID",
    help="A requester this compute node obeys besides those at its seeds (repeatable).",
)
@click.option(
    "--manual-approval",
    is_flag=True,
    default=None,
    help="New compute nodes wait PENDING until `bacalhau node approve` (orchestrator).",
)
@click.option(
    "-c",
    "--config",
    "config",
    multiple=True,
    metavar="KEY=VALUE|FILE",
    help=_CONFIG_HELP,
    shell_complete=complete_config_value,
)
@click.option(
    "--parent-fd",
    type=click.IntRange(min=0),
    default=None,
    hidden=True,
    help="Inherited pipe whose end of file means the starting process is gone (devstack).",
)
@legacy_serve_flags
def serve(
    config: tuple[str, ...],
    labels: tuple[str, ...],
    seeds: tuple[str, ...],
    trusted_requesters: tuple[str, ...],
    parent_fd: int | None,
    **flags: Any,
) -> None:
    """Start a node (orchestrator, compute, or both)."""
    from bacalhau.config import load_config

    if labels:
        flags["labels"] = parse_key_values(labels, "'--labels'")
    if trusted_requesters:
        flags["trusted_requesters"] = trusted_requesters
    if seeds:
        flags["seeds"] = seeds
    options = _config_options(config)
    # Bacalhau v1.4-v1.6's flags, each the key it became (above -c, as a flag).
    legacy = legacy_settings(flags)
    cfg = load_config(
        {k: v for k, v in flags.items() if v is not None},
        config_files=options.files,
        config_values={**options.values, **legacy},
    )
    if not cfg.orchestrator and not cfg.compute:
        # As Bacalhau does: a node told nothing is a requester.
        click.echo(
            "Neither --orchestrator nor --compute was given: starting a requester "
            "(orchestrator) node.",
            err=True,
        )
        cfg = dataclasses.replace(cfg, orchestrator=True)
    if cfg.compute and not cfg.orchestrator and not (cfg.seeds or cfg.orchestrator_address):
        raise click.UsageError(
            "a compute-only node needs --seed HOST:PORT (its requester; "
            "--orchestrator-address is the same)"
        )
    _run(_node_package().serve(cfg, parent_fd=parent_fd), cfg.event_loop)


@click.command("devstack")
@click.option(
    "--compute-nodes", "--computes", type=click.IntRange(min=0), default=3, show_default=True
)
@click.option(
    "--requester-nodes",
    "--orchestrators",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Orchestrators: one (a cluster here has a single requester).",
)
@click.option(
    "--hybrid-nodes",
    "--hybrids",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Nodes that are orchestrator and compute node at once: 1 makes the orchestrator one "
    "(with --requester-nodes 0).",
)
@click.option(
    "--random-ports",
    is_flag=True,
    help="Free ports for every node, the API's included (as --api-port 0).",
)
@click.option(
    "--api-port",
    "api_port",
    type=click.IntRange(0, 65535),
    default=1234,
    show_default=True,
    help="Port of the requester's REST API (0: any free port).",
)
@click.option(
    "--api-grpc-port",
    "api_grpc_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of the requester's public gRPC API (0: any free port) "
    "[default: 1235, or a free port with --api-port 0].",
)
@click.option(
    "--data-dir",
    "--stack-repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the nodes keep their state (default: a new temporary directory).",
)
@click.option(
    "--engines",
    default="docker,wasm",
    show_default=True,
    help="Execution engines every compute node offers (comma-separated: docker, wasm, noop).",
)
@click.option(
    "--faulty-compute-nodes",
    "--bad-compute-actors",
    "--bad-computes",
    type=click.IntRange(min=0),
    default=0,
    help="Test bed for verified results: the last N compute nodes alter every result "
    "they publish (faulty_results, refused outside a devstack).",
)
@click.option(
    "--faulty-results",
    type=click.Choice(["corrupt", "misclaim"]),
    default="corrupt",
    show_default=True,
    help="How the faulty nodes alter results: corrupt (publish altered results under their "
    "own CID) or misclaim (publish altered results, claim the CID of the real ones).",
)
@click.option(
    "--keep-data",
    is_flag=True,
    help="Keep the temporary data directory (with the cluster CA's key) after the stop; "
    "a --data-dir is always kept.",
)
@click.option(
    "-c",
    "--config",
    "config",
    multiple=True,
    metavar="KEY=VALUE|FILE",
    help=_CONFIG_HELP + " Given to every node, as `bacalhau serve -c` takes it.",
    shell_complete=complete_config_value,
)
def devstack(
    compute_nodes: int,
    requester_nodes: int,
    hybrid_nodes: int,
    random_ports: bool,
    api_port: int,
    api_grpc_port: int | None,
    data_dir: Path | None,
    engines: str,
    keep_data: bool,
    config: tuple[str, ...],
    faulty_compute_nodes: int,
    faulty_results: str,
) -> None:
    """Start a local test network: an orchestrator and N compute nodes on loopback.

    It keeps running when one of its nodes dies (and says which, and how); it exits 1 once
    every node has died. `<data-dir>/devstack.json` describes every node, with the command
    line (Args) that restarts it. One SIGINT/SIGTERM stops every node it started.
    """
    names = tuple(e.strip().lower() for e in engines.split(",") if e.strip())
    if not names:
        raise click.BadParameter("name at least one engine", param_hint="'--engines'")
    hybrid = _hybrid_orchestrator(requester_nodes, hybrid_nodes)
    if random_ports:
        api_port = 0
    options = _config_options(config)
    code = _run(
        _node_package().run_devstack(
            compute_nodes=compute_nodes,
            api_port=api_port,
            data_dir=data_dir,
            engines=names,
            keep_data=keep_data,
            config=options.values,
            config_files=options.files,
            faulty_compute_nodes=faulty_compute_nodes,
            faulty_results=faulty_results,
            api_grpc_port=api_grpc_port,
            hybrid=hybrid,
        )
    )
    if isinstance(code, int) and code:
        sys.exit(code)


def _hybrid_orchestrator(requester_nodes: int, hybrid_nodes: int) -> bool:
    """Whether the devstack's one orchestrator also runs jobs: Bacalhau's node counts, as far
    as a cluster with a single requester can honour them."""
    if requester_nodes + hybrid_nodes != 1:
        raise click.BadParameter(
            f"{requester_nodes} orchestrator(s) and {hybrid_nodes} hybrid node(s): a devstack "
            "here has exactly one orchestrator (a cluster has a single requester)",
            param_hint="'--requester-nodes' / '--hybrid-nodes'",
        )
    return hybrid_nodes == 1
