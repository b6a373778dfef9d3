"""``bacalhau devstack``: one requester and N compute nodes as separate OS processes on loopback.

The parent creates a cluster CA, gives every node an identity and a CA-signed certificate,
picks free ports, starts each node as ``python -m bacalhau serve ...``, waits until every
compute node has joined the requester, writes ``<data_dir>/devstack.json`` and then supervises.
A port picked free can be taken by another process before its node binds it: the devstack
then stops what it started and starts over on new ports (a port the user chose stays).

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
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import aiohttp

from bacalhau.api import has_capability
from bacalhau.config import ApiUserConfig
from bacalhau.errors import InternalError, Unavailable
from bacalhau.node._devstack_plan import (
    DevstackNode,
    NodeStatus,
    check_devstack_config,
    describe_exit,
    free_port,
    plan_devstack,
)
from bacalhau.node._plugins import check_engines

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
MANIFEST_FILE = "devstack.json"

#: How often the devstack looks for nodes that died.
_SUPERVISE_INTERVAL = 0.2

#: Starts on new ports when a port the devstack picked was taken before its node bound it.
_START_ATTEMPTS = 4
#: What ``serve`` prints when a port is taken (see ``node._listen.listen``).
_PORT_TAKEN = re.compile(r"cannot listen on \S+:(\d+)\b.*in use")


def _start(node: DevstackNode, lifeline: int) -> None:
    """Start ``node`` holding ``lifeline`` (the read end of the devstack's lifeline pipe)."""
    logfile = node.log_path.open("ab")
    node.log_start = logfile.tell()
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


def _tail(path: Path, lines: int = 20, start: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


#: What a node prints once every one of its listeners is bound (see ``node._serve``).
_RUNNING = b") is running."


def _running(node: DevstackNode) -> bool:
    """Whether ``node`` said it runs: its ports are all bound then. Joining the requester
    comes before its last listeners (metrics) bind, and a port taken by another process in
    between must still restart the stack on new ports, not leave one node dead."""
    try:
        with node.log_path.open("rb") as f:
            f.seek(node.log_start)
            return _RUNNING in f.read()
    except OSError:
        return False


class _PortTaken(Exception):
    """A port the devstack picked was taken by another process before its node bound it."""


def _taken_port(log_tail: str) -> int | None:
    found = _PORT_TAKEN.search(log_tail)
    return int(found.group(1)) if found else None


def readiness_headers(users: Sequence[ApiUserConfig]) -> dict[str, str]:
    """The headers of the devstack's own look at the requester's nodes: none for an open
    API; with users, the credentials of one that may read nodes and whose secret the
    configuration holds (an API key, a plain-text password), else the environment's
    (``BACALHAU_API_KEY``, ...)."""
    if not users:
        return {}
    from bacalhau.client import Credentials

    readers = [u for u in users if has_capability(u.actions, "read:node")]
    for user in readers:
        if user.api_key:
            return {"Authorization": f"Bearer {user.api_key}"}
    for user in readers:
        if user.plain_text_password:
            token = base64.b64encode(f"{user.username}:{user.password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
    header = Credentials.from_env().header
    return {"Authorization": header} if header else {}


async def _wait_ready(
    nodes: list[DevstackNode],
    timeout: float,
    picked_ports: Collection[int] = (),
    headers: Mapping[str, str] | None = None,
) -> None:
    """Wait until every compute node has joined; :class:`_PortTaken` if a node could not
    bind one of ``picked_ports`` (those the devstack picked, not those the user chose).
    An API that refuses ``headers`` (its users' secrets are hashes, and the environment
    gives none that may read nodes) is ready once it answers: joins cannot be seen."""
    requester = nodes[0]
    want = {n.node_id for n in nodes if n.role == "compute"}
    url = f"http://{requester.api_address}/api/v1/orchestrator/nodes"
    deadline = time.monotonic() + timeout
    running: set[str] = set()
    async with aiohttp.ClientSession() as session:
        while True:
            for n in nodes:
                if n.process is not None and n.process.poll() is not None:
                    port = _taken_port(_tail(n.log_path, start=n.log_start))
                    if port is not None and port in picked_ports:
                        raise _PortTaken(f"{n.name}: port {port}")
                    raise InternalError(
                        f"devstack node {n.name} exited while starting "
                        f"({describe_exit(n.process.returncode)}); its log ({n.log_path}) "
                        f"ends with:\n{_tail(n.log_path, start=n.log_start)}"
                    )
            try:
                async with session.get(
                    url, timeout=aiohttp.ClientTimeout(total=2), headers=headers
                ) as resp:
                    if resp.status in (401, 403):
                        print(
                            "devstack: the API does not list its nodes to the devstack (no "
                            "user that may read nodes has an API key or a plain password, "
                            "nor do BACALHAU_API_KEY or BACALHAU_API_USERNAME/PASSWORD "
                            "name one): not waiting for the compute nodes to join",
                            file=sys.stderr,
                            flush=True,
                        )
                        return
                    if resp.status == 200:
                        body = await resp.json()
                        joined = {
                            item["Info"]["NodeID"]
                            for item in body.get("Nodes", [])
                            if item["Info"].get("NodeType") == "Compute"
                            and item.get("Connection") == "CONNECTED"
                        }
                        running.update(
                            n.node_id for n in nodes if n.node_id not in running and _running(n)
                        )
                        if want <= joined and len(running) == len(nodes):
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
    config_files: Sequence[Path] = (),
    faulty_compute_nodes: int = 0,
    faulty_results: str = "corrupt",
    api_grpc_port: int | None = None,
    hybrid: bool = False,
) -> int:
    """Run a devstack until SIGINT/SIGTERM (exit 0) or until every node has died (exit 1).

    ``config_files`` and ``config`` (``Key=Value`` settings) are for every node, checked
    before anything starts; what every node will ignore is said here once.
    Without ``data_dir`` a temporary directory is used and removed on stop, unless
    ``keep_data``; a given ``data_dir`` is always kept.
    """
    checked = check_devstack_config(config or {}, config_files)
    for notice in checked.ignored_notices():
        print(f"devstack: {notice}", file=sys.stderr, flush=True)
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
            config_files=tuple(config_files),
            faulty_compute_nodes=faulty_compute_nodes,
            faulty_results=faulty_results,
            api_grpc_port=api_grpc_port,
            hybrid=hybrid,
            headers=readiness_headers(checked.api_users),
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


def _keep_manifest(data_dir: Path, nodes: list[DevstackNode]) -> None:
    """:func:`write_manifest` while supervising: a manifest that cannot be written (the
    disk full) is said, and the devstack goes on; its nodes and their jobs matter more."""
    try:
        write_manifest(data_dir, nodes)
    except OSError as err:
        print(
            f"cannot update {data_dir / MANIFEST_FILE}: {err.strerror or err}; it may be out "
            "of date",
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
            _keep_manifest(data_dir, nodes)
            for n in died:
                _report_exit(n, manifest)
            if all(n.status == NodeStatus.EXITED for n in nodes):
                print("every devstack node has exited: stopping.", file=sys.stderr, flush=True)
                return 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _SUPERVISE_INTERVAL)
    return 0


async def _start_ready(
    plan: Callable[[], list[DevstackNode]],
    *,
    lifeline: int,
    ready_timeout: float,
    picked_ports: Collection[int],
    stop: asyncio.Event,
    started: list[DevstackNode],
    headers: Mapping[str, str] | None = None,
) -> bool:
    """Start the planned nodes and wait until they are ready (True) or ``stop`` is set.

    The ports the devstack picks were free a moment before its nodes bind them; another
    process can take one in between. A node that exits for that reason makes the devstack
    stop the nodes it started and start over on new ports, a few times. ``started`` holds
    the nodes of the last start (the caller stops them).
    """
    for attempt in range(1, _START_ATTEMPTS + 1):
        started[:] = plan()
        for n in started:
            _start(n, lifeline)
        ready = asyncio.create_task(_wait_ready(started, ready_timeout, picked_ports, headers))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({ready, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            ready.cancel()
            return False
        stopper.cancel()
        try:
            ready.result()
            return True
        except _PortTaken as taken:
            if attempt == _START_ATTEMPTS:
                raise Unavailable(
                    f"devstack could not start: {taken} was taken by another process "
                    f"before its node could listen on it, {_START_ATTEMPTS} times",
                    hint="free some ports, or give the requester fixed ones with --api-port",
                ) from None
            log.warning("devstack %s was taken before its node listened: new ports", taken)
            await asyncio.to_thread(stop_nodes, started)
    raise AssertionError("unreachable")


async def _run_nodes(
    data_dir: Path,
    *,
    compute_nodes: int,
    api_port: int,
    engines: tuple[str, ...],
    ready_timeout: float,
    extra_serve_args: tuple[str, ...],
    config: Mapping[str, str],
    config_files: Sequence[Path] = (),
    faulty_compute_nodes: int = 0,
    faulty_results: str = "corrupt",
    api_grpc_port: int | None = None,
    hybrid: bool = False,
    pick_port: Callable[[], int] = free_port,
    headers: Mapping[str, str] | None = None,
) -> int:
    # Only a port picked here is picked anew: one the user chose that is taken fails the start.
    picked: set[int] = set()

    def pick() -> int:
        port = pick_port()
        picked.add(port)
        return port

    def plan() -> list[DevstackNode]:
        return plan_devstack(
            data_dir=data_dir,
            compute_nodes=compute_nodes,
            api_port=api_port,
            engines=engines,
            extra_serve_args=extra_serve_args,
            config=config,
            config_files=config_files,
            faulty_compute_nodes=faulty_compute_nodes,
            faulty_results=faulty_results,
            api_grpc_port=api_grpc_port,
            hybrid=hybrid,
            pick_port=pick,
        )

    nodes: list[DevstackNode] = []
    # Never written to: its end of file tells the nodes that this process is gone.
    lifeline, lifeline_keep = os.pipe()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready_once = False
    try:
        try:
            ready = await _start_ready(
                plan,
                lifeline=lifeline,
                ready_timeout=ready_timeout,
                picked_ports=picked,
                stop=stop,
                started=nodes,
                headers=headers,
            )
        finally:
            os.close(lifeline)
        if not ready:
            return 130
        for n in nodes:
            n.status = NodeStatus.RUNNING
        manifest = write_manifest(data_dir, nodes)
        ready_once = True
        requester = nodes[0]
        host, port = requester.api_address.rsplit(":", 1)
        print(
            f"Devstack ready: 1 requester{' (a compute node too)' if requester.hybrid else ''}"
            f" and {compute_nodes} compute node(s).\n"
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
            _keep_manifest(data_dir, nodes)
