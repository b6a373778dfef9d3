"""Real clusters for integration tests: a ``bacalhau devstack`` process tree, extra
``bacalhau serve`` node processes, and the ``bacalhau`` command run against them.

Everything here starts real OS processes on loopback and proves, when it stops them, that
none outlived the stop: a leftover process or container fails the test that owned it.

Failure tests use a devstack as their test bed::

    stack = Devstack.start(tmp_path / "devstack", compute_nodes=2,
                           config=["gossip.suspicion_min_seconds=0.5"])
    victim = stack.kill_node("compute-0")            # SIGKILL; the devstack carries on
    stack.wait_for_node_exit("compute-0")            # the devstack noticed (manifest)
    stack.wait_for_node("compute-0", connection=Connection.DISCONNECTED)
    stack.restart_node("compute-0")                  # its manifest Args, owned by the test
    stack.wait_for_node("compute-0")                 # the requester sees it again
    stack.stop()                                     # restarted nodes too, then the devstack
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bacalhau.client import Client, Credentials
from bacalhau.errors import BacalhauError
from bacalhau.identity import ClusterCA, NodeIdentity
from bacalhau.models import Connection, NodeState

T = TypeVar("T")

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0

#: "Job successfully submitted. Job ID: j-..." when waiting; the ID alone with --wait=false.
_SUBMITTED = re.compile(r"^(?:Job successfully submitted\. Job ID: )?(j-[0-9a-f-]+)$", re.M)

#: Gossip settings for failure tests: a killed or frozen node is declared dead within about
#: two seconds, and a live node that a loaded 2-core machine delays by a second is not (a
#: small cluster has few members to confirm a suspicion, so it lasts the minimum).
FAST_GOSSIP = [
    "gossip.probe_interval=0.25",
    "gossip.probe_timeout=0.15",
    "gossip.suspicion_min_seconds=1.2",
    "gossip.suspicion_max_mult=3",
]


def submitted_job_id(stdout: str) -> str:
    """The job ID in what ``bacalhau docker run`` / ``wasm run`` printed."""
    match = _SUBMITTED.search(stdout)
    assert match, f"no job ID in:\n{stdout}"
    return match.group(1)


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll ``probe`` until it returns something other than None or False; fail after
    ``timeout`` seconds saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.05)


def dying_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` started so that it gets SIGTERM when the test worker dies outright.

    ``setpriv --pdeathsig`` sets PR_SET_PDEATHSIG and then execs ``argv``. A ``preexec_fn``
    doing the same would run Python between fork and exec in a worker whose in-process gRPC
    threads are live; that child can abort before it ever execs (seen as a devstack that
    "exited with code -6" printing a gRPC epoll error).
    """
    if shutil.which("setpriv") is None:
        return list(argv)
    return ["setpriv", "--pdeathsig", "TERM", "--", *argv]


def node_env() -> dict[str, str]:
    """The environment of node processes: no ``BACALHAU_*`` settings of the caller leak in,
    and gRPC's log level is pinned because tests read refused TLS handshakes from the node
    logs, which gRPC writes at INFO."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACALHAU_")}
    return {**env, "PYTHONUNBUFFERED": "1", "GRPC_VERBOSITY": "INFO"}


def process_alive(pid: int) -> bool:
    """Whether ``pid`` names a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def bacalhau_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bacalhau", *args]


def run_bacalhau(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the real ``bacalhau`` command; returns its exit code and captured output."""
    return subprocess.run(
        bacalhau_command(*args),
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def containers(label: str) -> list[str]:
    """IDs of every container (running or not) carrying ``label`` (``key`` or ``key=value``)."""
    out = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.split()


def containers_of_jobs(job_ids: Iterable[str]) -> list[str]:
    """Containers of any of ``job_ids``, as ``name (job ID)``."""
    wanted = set(job_ids)
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=bacalhau-jobID",
            "--format",
            '{{.Names}} {{.Label "bacalhau-jobID"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return [f"{row[0]} ({row[1]})" for row in rows if len(row) == 2 and row[1] in wanted]


@dataclass(frozen=True, slots=True)
class ManifestNode:
    """One node of a running devstack, as ``devstack.json`` describes it."""

    name: str
    node_id: str
    role: str
    pid: int
    data_dir: Path
    grpc_address: str
    log: Path
    #: ``running``, ``exited`` (died while the devstack ran) or ``stopped`` (by the devstack).
    status: str = "running"
    #: ``Popen.returncode`` of the process the devstack started: -9 after a SIGKILL.
    exit_code: int | None = None
    #: The command line that restarts this node (same identity, data dir, ports, config).
    args: tuple[str, ...] = ()
    api_address: str = ""
    publisher_address: str = ""
    #: ``GET /metrics`` alone (compute nodes).
    metrics_address: str = ""


def read_manifest(data_dir: Path) -> dict[str, Any]:
    """The devstack's ``devstack.json`` in ``data_dir`` (rewritten atomically by the devstack
    whenever a node's status changes, so a read never sees half a file)."""
    manifest = json.loads((data_dir / "devstack.json").read_text())
    assert isinstance(manifest, dict)
    return manifest


def manifest_nodes(manifest: dict[str, Any]) -> list[ManifestNode]:
    """The nodes a manifest describes."""
    return [
        ManifestNode(
            name=n["Name"],
            node_id=n["ID"],
            role=n["Role"],
            pid=int(n["PID"]),
            data_dir=Path(n["DataDir"]),
            grpc_address=n["GRPCAddress"],
            log=Path(n["Log"]),
            status=n.get("Status", "running"),
            exit_code=n.get("ExitCode"),
            args=tuple(n.get("Args", ())),
            api_address=n.get("APIAddress", ""),
            publisher_address=n.get("PublisherAddress", ""),
            metrics_address=n.get("MetricsAddress", ""),
        )
        for n in manifest["Nodes"]
    ]


class RestartedNode:
    """A devstack node started again by a test from its manifest ``Args``.

    The process belongs to the test, not to the devstack (which never signals it), and has no
    lifeline to the devstack; :meth:`Devstack.stop` stops it before the devstack. Its output
    goes to the end of the node's own log.
    """

    def __init__(self, node: ManifestNode, working_directory: Path) -> None:
        assert node.args, f"the manifest gives no Args for {node.name}"
        self.node = node
        with node.log.open("ab") as out:
            self.process = subprocess.Popen(
                dying_with_parent(node.args),
                cwd=working_directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=node_env(),
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.node.log.read_text(errors="replace")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send ``sig`` (SIGKILL by default) and wait for the process; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM the node and wait for it; returns its exit code (0 after a clean stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"restarted node {self.node.name} ignored SIGTERM") from None


class Devstack:
    """A running ``bacalhau devstack``: one requester and N compute node processes."""

    def __init__(self, data_dir: Path, process: subprocess.Popen[bytes]) -> None:
        self.data_dir = data_dir
        self.process = process
        self.manifest: dict[str, Any] = {}
        self.nodes: list[ManifestNode] = []
        #: Nodes the test started again from their Args, newest last.
        self.restarted: list[RestartedNode] = []
        self._client: Client | None = None
        #: What :attr:`client` authenticates with (None: the environment's, as any client).
        self.credentials: Credentials | None = None

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        compute_nodes: int,
        config: Sequence[str] = (),
        engines: str = "",
        faulty_compute_nodes: int = 0,
        faulty_results: str = "corrupt",
        args: Sequence[str] = (),
    ) -> Devstack:
        """Start ``bacalhau devstack`` (API on a free port) and wait for its manifest, which
        it writes only once every compute node has joined. ``config`` holds ``Key=Value``
        settings for every node (``bacalhau devstack -c``); ``engines`` the engines every
        compute node offers (default: the devstack's); the last ``faulty_compute_nodes``
        compute nodes alter their results as ``faulty_results`` says
        (``--faulty-compute-nodes``, ``--faulty-results``); ``args`` are more flags, last."""
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = [part for item in config for part in ("-c", item)]
        with (data_dir / "devstack.out").open("wb") as out:
            process = subprocess.Popen(
                dying_with_parent(
                    bacalhau_command(
                        "devstack",
                        "--compute-nodes",
                        str(compute_nodes),
                        "--api-port",
                        "0",
                        "--data-dir",
                        str(data_dir),
                        *settings,
                        *(("--engines", engines) if engines else ()),
                        *(
                            (
                                "--faulty-compute-nodes",
                                str(faulty_compute_nodes),
                                "--faulty-results",
                                faulty_results,
                            )
                            if faulty_compute_nodes
                            else ()
                        ),
                        *args,
                    )
                ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=node_env(),
            )
        devstack = cls(data_dir, process)
        try:
            devstack._wait_for_manifest()
        except BaseException:
            devstack.stop(check=False)
            raise
        return devstack

    def _wait_for_manifest(self) -> None:
        path = self.data_dir / "devstack.json"
        deadline = time.monotonic() + READY_TIMEOUT
        while not path.exists():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"devstack exited with code {self.process.returncode} before it was "
                    f"ready:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"devstack not ready within {READY_TIMEOUT:.0f}s:\n{self.output()}"
                )
            time.sleep(0.05)
        self.read_manifest()

    def read_manifest(self) -> list[ManifestNode]:
        """Read ``devstack.json`` again (statuses change when nodes die); returns the nodes."""
        self.manifest = read_manifest(self.data_dir)
        self.nodes = manifest_nodes(self.manifest)
        return self.nodes

    def story(self, job_id: str) -> str:
        """The job's state, executions and history as text, for a failing test's message."""
        try:
            details = self.client.get_job(job_id, executions=True, history=True)
        except Exception as err:  # the requester may be down: say so rather than hide the rest
            return f"job {job_id}: not readable ({err})"
        lines = [f"job {job_id}: {details.job.state.name} {details.job.state_message!r}"]
        lines += [
            f"  execution {e.id} p{e.partition_index} on {e.node_id}: "
            f"{e.compute_state.name}/{e.desired_state.name} {e.compute_message!r}"
            for e in details.executions
        ]
        start = details.history[0].time if details.history else 0
        lines += [
            f"  +{(h.time - start) / 1e9:.2f}s {h.execution_id or 'job'}: {h.event.message!r}"
            for h in details.history
        ]
        return "\n".join(lines)

    def output(self) -> str:
        """What the devstack process printed so far."""
        try:
            return (self.data_dir / "devstack.out").read_text(errors="replace")
        except OSError:
            return ""

    # -- addresses ------------------------------------------------------------------------

    @property
    def api_address(self) -> str:
        value = self.manifest["APIAddress"]
        assert isinstance(value, str)
        return value

    @property
    def api_url(self) -> str:
        return f"http://{self.api_address}"

    @property
    def api_port(self) -> int:
        return int(self.api_address.rsplit(":", 1)[1])

    @property
    def ca_dir(self) -> Path:
        return Path(str(self.manifest["CADir"]))

    def certify(self, node_dir: Path) -> str:
        """Give a node to be started by hand (``NodeProcess.compute``) an identity in
        ``node_dir`` and a certificate of this devstack's CA for loopback; its node ID."""
        issued = run_bacalhau(
            ["ca", "issue", "--ca-dir", str(self.ca_dir), "--data-dir", str(node_dir),
             "--host", "127.0.0.1"]
        )  # fmt: skip
        assert issued.returncode == 0, issued.stderr
        return issued.stdout.split("Node ID: ", 1)[1].split()[0]

    @property
    def requester(self) -> ManifestNode:
        return next(n for n in self.nodes if n.role == "requester")

    @property
    def compute(self) -> list[ManifestNode]:
        return [n for n in self.nodes if n.role == "compute"]

    def node(self, node_id: str) -> ManifestNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def node_named(self, name: str) -> ManifestNode:
        """The node called ``name`` (``requester``, ``compute-0``, ...) in the manifest."""
        found = [n for n in self.nodes if n.name == name]
        assert found, f"no node {name!r} in the manifest: {[n.name for n in self.nodes]}"
        return found[0]

    # -- failures -------------------------------------------------------------------------

    def kill_node(self, name: str, sig: signal.Signals = signal.SIGKILL) -> ManifestNode:
        """Send ``sig`` (SIGKILL by default) to the running process of node ``name`` (the one
        the devstack started or, once that died, the one the test restarted) and wait until
        it is gone. Returns the node as the manifest gives it."""
        node = self.node_named(name)
        live = [r for r in self.restarted if r.node.name == name and r.process.poll() is None]
        if live:
            live[-1].kill(sig)
            return node
        assert process_alive(node.pid), f"{name} (PID {node.pid}) is not running"
        os.kill(node.pid, sig)
        eventually(lambda: not process_alive(node.pid), timeout=STOP_TIMEOUT, what=f"{name} gone")
        return node

    def wait_for_node_exit(self, name: str, *, timeout: float = 10.0) -> ManifestNode:
        """Wait until the devstack has noticed that node ``name`` died (``exited`` in the
        manifest, with its exit code); returns the node as the manifest now gives it."""

        def exited() -> ManifestNode | None:
            node = next(n for n in self.read_manifest() if n.name == name)
            return node if node.status == "exited" else None

        return eventually(exited, timeout=timeout, what=f"the devstack reporting {name} dead")

    def restart_node(self, name: str) -> RestartedNode:
        """Start node ``name`` again from its manifest ``Args`` (same identity, data dir,
        ports and configuration), as a process owned by the test; :meth:`stop` stops it.
        The devstack's own process for that node must be dead (see :meth:`kill_node`)."""
        node = self.node_named(name)
        assert not process_alive(node.pid), f"{name} still runs as PID {node.pid}"
        assert not any(r.node.name == name and r.process.poll() is None for r in self.restarted), (
            f"{name} was already restarted and still runs"
        )
        working_directory = Path(str(self.manifest.get("WorkingDirectory") or os.getcwd()))
        restarted = RestartedNode(node, working_directory)
        self.restarted.append(restarted)
        return restarted

    def wait_for_node(
        self,
        name: str,
        *,
        connection: Connection = Connection.CONNECTED,
        timeout: float = 30.0,
    ) -> NodeState:
        """Wait until the cluster sees node ``name`` in ``connection`` state: a compute node
        as the requester lists it (``bacalhau node list``), the requester by answering on its
        API with its own node ID. Returns the node's state as the requester gives it."""
        node = self.node_named(name)

        def seen() -> NodeState | None:
            try:
                if node.role == "requester":
                    state = self.client.agent_node()
                    found = state if state.info.node_id == node.node_id else None
                else:
                    nodes = self.client.list_nodes()
                    found = next((n for n in nodes if n.info.node_id == node.node_id), None)
            except BacalhauError:
                return None  # the requester itself is down or restarting
            return found if found is not None and found.connection == connection else None

        return eventually(seen, timeout=timeout, what=f"{name} {connection.value.lower()}")

    # -- talking to it --------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment of a client of this devstack (the ``bacalhau`` command, the SDK)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACALHAU_")}
        env["BACALHAU_API_HOST"], env["BACALHAU_API_PORT"] = self.api_address.rsplit(":", 1)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(
        self, *args: str, timeout: float = CLI_TIMEOUT, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``bacalhau ARGS...`` against this devstack (address from the environment)."""
        return subprocess.run(
            bacalhau_command(*args),
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = CLI_TIMEOUT, cwd: Path | None = None) -> str:
        """Run ``bacalhau ARGS...``, insist that it succeeds, return its standard output."""
        done = self.cli(*args, timeout=timeout, cwd=cwd)
        assert done.returncode == 0, (
            f"bacalhau {' '.join(args)} exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    @property
    def client(self) -> Client:
        """Our own SDK, connected to the devstack's API."""
        if self._client is None:
            self._client = Client(self.api_url, credentials=self.credentials)
        return self._client

    def job_ids(self) -> list[str]:
        """Every job the requester knows."""
        ids: list[str] = []
        token = ""
        while True:
            page = self.client.list_jobs(limit=100, next_token=token)
            ids.extend(j.id for j in page.items)
            token = page.next_token
            if not token:
                return ids

    # -- stopping -------------------------------------------------------------------------

    def stop(self, *, check: bool = True, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal the devstack (SIGTERM by default); with ``check``, assert it exited cleanly
        and took every node process and every container of its jobs with it."""
        jobs: list[str] = []
        unlisted: Exception | None = None
        if check:
            try:
                jobs = self.job_ids()
            except Exception as err:  # still stop every process, then report
                unlisted = err
        if self._client is not None:
            self._client.close()
            self._client = None
        # Nodes the test restarted are not the devstack's: stop them first, as it would.
        restarted: dict[str, int] = {}
        for r in reversed(self.restarted):
            if r.process.poll() is not None:
                continue  # the test killed it itself
            try:
                restarted[r.node.name] = r.stop()
            except AssertionError:
                restarted[r.node.name] = r.process.returncode
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        survivors = [n for n in self.nodes if process_alive(n.pid)]
        for n in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(n.pid, signal.SIGKILL)
        if not check:
            return
        if unlisted is not None:
            raise AssertionError(f"the devstack's API failed before the stop: {unlisted}")
        assert code == 0, f"devstack exited with {code} on {sig.name}:\n{self.output()}"
        unclean = {name: rc for name, rc in restarted.items() if rc != 0}
        assert not unclean, f"restarted nodes did not stop cleanly: {unclean}"
        assert not survivors, f"node processes outlived the devstack: {survivors}"
        leftovers = containers_of_jobs(jobs)
        assert not leftovers, f"containers outlived the devstack: {leftovers}"


def certified_node_dir(tmp_path: Path, name: str = "node") -> Path:
    """A node's data dir holding its identity and a certificate of a new cluster CA (under
    ``tmp_path / "ca"``)."""
    data_dir = tmp_path / name
    ClusterCA.create(tmp_path / "ca").issue_node_certificate(
        NodeIdentity.load_or_create(data_dir), data_dir=data_dir
    )
    return data_dir


class NodeProcess:
    """One extra ``bacalhau serve`` process (e.g. a node joining a devstack by hand)."""

    def __init__(
        self,
        data_dir: Path,
        args: Sequence[str],
        *,
        data_dir_flag: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``data_dir_flag`` false leaves ``--data-dir`` out (a config file in ``args`` names
        it); the log is still written into ``data_dir``. ``env`` adds to the node's
        environment."""
        self.data_dir = data_dir
        self.log = data_dir / "serve.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        flags = ["--data-dir", str(data_dir)] if data_dir_flag else []
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                dying_with_parent(bacalhau_command("serve", *flags, *args)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**node_env(), **(env or {})},
            )

    @classmethod
    def compute(
        cls, data_dir: Path, orchestrator: str, *extra: str, env: Mapping[str, str] | None = None
    ) -> NodeProcess:
        """A compute node on free loopback ports seeding its gossip through the requester at
        ``orchestrator``."""
        return cls(
            data_dir,
            [
                "--compute",
                "--seed",
                orchestrator,
                "--grpc-host",
                "127.0.0.1",
                "--grpc-port",
                "0",
                "--publisher-host",
                "127.0.0.1",
                "--publisher-port",
                "0",
                *extra,
            ],
            env=env,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_running(self, timeout: float = 60.0) -> None:
        """Wait until the node says it is running; fail with its log if it exits first."""
        eventually(
            lambda: "is running" in self.output() or self.process.poll() is not None,
            timeout=timeout,
            what="the node starting",
        )
        assert self.process.poll() is None, self.output()

    def stop(self) -> int:
        """SIGTERM the node and wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"node in {self.data_dir} ignored SIGTERM") from None
