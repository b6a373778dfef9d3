"""A private test network on this machine, for tests that cut a node off: each test host
gets its own Linux network namespace, wired to one bridge, and a link the test can take down.

Layout of one :class:`PrivateNetwork` (everything lives in namespaces the network creates; the
machine's own namespace gets no interface, address, route or firewall rule)::

    namespace bnt-...-hub              namespace bnt-...-a
    ┌──────────────────────────┐       ┌─────────────────────────┐
    │ br0 10.X.Y.1/24          │       │ lo                      │
    │  ├── v-a ════ veth ══════╪═══════╪═ eth0 10.X.Y.2/24       │
    │  └── v-b ════ veth ══╗   │       └─────────────────────────┘
    └──────────────────────╫───┘       namespace bnt-...-b
                           ║           ┌─────────────────────────┐
                           ║           │ lo                      │
                           ╚═══════════╪═ eth0 10.X.Y.3/24       │
                                       └─────────────────────────┘

- The bridge sits in a dedicated *hub* namespace, so its name and its veth ends never clash
  with another test's, and the host's firewall never sees our packets (with ``br_netfilter``
  loaded, as Docker loads it, bridged traffic in the host's namespace would go through its
  ``FORWARD`` chain, whose policy Docker sets to ``DROP``).
  The hub has an address of its own (``.1``): the test's observer (the ``bacalhau`` CLI,
  say) runs there with :meth:`PrivateNetwork.run` ``("hub", ...)`` and reaches every host.
- No namespace has a default route, NAT or forwarding to a real interface: a packet to any
  address outside the /24 fails with "network unreachable", so nothing leaves the network.
- The /24 is ``10.X.Y.0/24``, ``X`` (200-249) from the pytest-xdist worker and ``Y`` from
  the PID (:func:`choose_subnet`). Two networks never share a link, so even equal subnets
  could not clash; distinct ones just keep logs and ``ip`` output unambiguous across workers.
- Names: namespaces are ``bnt-<pid>-<token>-<host>`` (``bnt``: bacalhau network test), so
  a later run can tell whose they are and sweep those whose process is gone
  (:func:`sweep_stale`); link names (15 characters at most) exist only inside them.

Cutting a host off (:meth:`PrivateNetwork.cut`) takes its veth end in the hub down: the
cable pulled at the switch. Its peers' packets to it vanish and its own packets go nowhere,
with no error on either side, which is what a real partition looks like. The alternatives
were measured (kernel 6.18, two cores; a TCP echo every 50 ms with a 0.2 s reply timeout on an
established connection, plus fresh connects both ways, during a 3-5 s cut):

=================  =====================  =========================  =====================
cut by             established TCP        new connect to / from it   surviving TCP resumes
=================  =====================  =========================  =====================
hub end down       stalls at once, no     both time out (silence);   ~1.5 s after heal
                   error (TCP retries)    from it, EHOSTUNREACH
                                          once ARP gives up (~3 s)
node end down      same                   from it: ENETUNREACH at    ~0.2 s after heal
                                          once (route gone); to it:
                                          time out
iptables DROP      same                   both time out              ~1.5 s after heal
(INPUT+OUTPUT)
netem loss 100%    not available: this kernel has no ``sch_netem``
=================  =====================  =========================  =====================

No method *ends* an established connection: TCP retransmits silently for ~15 minutes
(``tcp_retries2``), so gRPC notices a cut only through its own call deadlines and keepalive
pings, which no choice of cut can shorten: what makes it notice sooner is shorter deadlines
and liveness settings on the nodes, not anything the network does (``test_partition.py``,
hub end down: the requester declares the node lost 2.3-2.4 s into the cut with
``disconnect_timeout=2``, i.e. as soon as its own setting allows). Only a
``REJECT --reject-with tcp-reset`` would end connections at once, and a real partition
sends no resets. The node end going down is the least faithful (the node's own connects fail
at once, which a node behind a real partition never sees), so :meth:`PrivateNetwork.cut`
takes the hub end down. After :meth:`PrivateNetwork.heal`, new connections succeed at once
and a connection that lived through the cut resumes at its next TCP retransmission, whose
back-off grows with the length of the cut (up to 2 minutes for long cuts).

Use it as a context manager; it also cleans up at interpreter exit, and every new network
first sweeps namespaces left by test processes that died (SIGKILL, OOM) before cleaning up.
Processes started with :meth:`PrivateNetwork.popen` die with the test process and are
killed when the network closes, so that no namespace outlives it (a namespace whose name is
deleted lives on while a process is still inside)::

    with PrivateNetwork(["a", "b"]) as net:
        server = net.popen("b", ["python3", "-m", "http.server", "8000"])
        url = f"http://{net.address('b')}:8000/"
        net.run("a", ["python3", "-c", f"import urllib.request; urllib.request.urlopen({url!r})"])
        net.cut("b")
        ...
        net.heal("b")

It needs root (``CAP_NET_ADMIN`` and ``CAP_SYS_ADMIN`` for ``ip netns``) and the ``ip``
command (Debian's ``iproute2``). When it cannot work it raises :class:`NetnsUnavailable`
saying why; tests skip only when not root (:func:`root_skip_reason`) and otherwise let that
error fail them.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from bacalhau._processes import pid_alive
from tests.integration.devstack import dying_with_parent

__all__ = [
    "HUB",
    "PREFIX",
    "NetnsUnavailable",
    "PrivateNetwork",
    "choose_subnet",
    "our_namespaces",
    "root_skip_reason",
    "sweep_stale",
]

#: Every namespace a :class:`PrivateNetwork` creates starts with this.
PREFIX = "bnt-"
#: The name of the namespace holding the bridge (and the test's observer).
HUB = "hub"
_BRIDGE = "br0"
_NODE_LINK = "eth0"
_HOST_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")  # "v-" + name fits 15 characters
_OURS = re.compile(rf"^{re.escape(PREFIX)}(\d+)-([0-9a-f]+)-([a-z0-9]+)$")
_IP_TIMEOUT = 20.0
_STOP_TIMEOUT = 10.0

_live: set[PrivateNetwork] = set()
_live_lock = threading.Lock()
_subnets_taken = 0


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be used here; the message says why and what to do."""


def root_skip_reason() -> str | None:
    """Why a namespace test must be skipped, or None when it must run (and fail if the
    network cannot be built). Only a non-root user is a reason: CI runs as root, where a
    missing ``ip`` or a refused ``ip netns add`` is a failure, never a skip."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); CI runs as root"
    return None


def choose_subnet() -> ipaddress.IPv4Network:
    """A private /24 for one network: ``10.X.Y.0/24``, ``X`` in 200-249 from the
    pytest-xdist worker (``gw3`` -> 203), ``Y`` from the PID and a per-process counter."""
    global _subnets_taken
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = "".join(ch for ch in worker if ch.isdigit())
    second = 200 + (int(digits) if digits else 0) % 50
    third = (os.getpid() + _subnets_taken) % 256
    _subnets_taken += 1
    return ipaddress.IPv4Network(f"10.{second}.{third}.0/24")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS...``; with ``check``, a failure raises :class:`NetnsUnavailable`
    carrying the command and what ``ip`` said."""
    try:
        done = subprocess.run(
            ["ip", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=_IP_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise NetnsUnavailable(
            "the `ip` command is not installed (Debian package iproute2; scripts/setup.sh "
            "installs it)"
        ) from None
    if check and done.returncode != 0:
        raise NetnsUnavailable(
            f"`ip {' '.join(args)}` failed with exit code {done.returncode}: "
            f"{done.stderr.strip() or done.stdout.strip()} (network namespaces need root with "
            "CAP_NET_ADMIN and CAP_SYS_ADMIN, and a kernel that allows them here)"
        )
    return done


def our_namespaces() -> list[str]:
    """Every namespace on the machine that a :class:`PrivateNetwork` created (any process)."""
    listed = _ip("netns", "list", check=False).stdout
    names = (line.split()[0] for line in listed.splitlines() if line.strip())
    return [name for name in names if _OURS.match(name)]


def _kill_inside(namespace: str) -> None:
    """SIGKILL every process still inside ``namespace`` so that deleting it frees it."""
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _delete_namespaces(names: Iterable[str]) -> list[str]:
    """Kill what runs inside each namespace and delete it (its veth ends and bridge go with
    it); returns the ones that could not be deleted, with why."""
    failures: list[str] = []
    for name in names:
        _kill_inside(name)
        done = _ip("netns", "delete", name, check=False)
        if done.returncode != 0 and name in our_namespaces():
            failures.append(f"{name}: {done.stderr.strip()}")
    return failures


def sweep_stale() -> list[str]:
    """Delete the namespaces of test processes that are gone (killed before they could clean
    up); returns their names. Namespaces of live processes, other workers', are left alone."""
    stale = []
    for name in our_namespaces():
        match = _OURS.match(name)
        if match and not pid_alive(int(match.group(1))):
            stale.append(name)
    _delete_namespaces(stale)
    return stale


class PrivateNetwork:
    """Namespaces ``hosts`` (plus :data:`HUB`) on one private /24, built on construction.

    ``hosts`` are short names (a lowercase letter, then up to 11 letters or digits); host
    ``i`` gets address ``.i+2``, the hub ``.1``. A failure while building removes what was
    built and raises :class:`NetnsUnavailable`.
    """

    def __init__(
        self, hosts: Sequence[str], *, subnet: ipaddress.IPv4Network | None = None
    ) -> None:
        bad = [h for h in hosts if not _HOST_NAME.match(h) or h == HUB]
        if bad or len(set(hosts)) != len(hosts) or not hosts:
            raise ValueError(f"host names must be distinct, short [a-z][a-z0-9]*: {list(hosts)}")
        if shutil.which("ip") is None:
            raise NetnsUnavailable(
                "the `ip` command is not installed (Debian package iproute2; scripts/setup.sh "
                "installs it)"
            )
        self.subnet = subnet or choose_subnet()
        if self.subnet.prefixlen != 24 or not self.subnet.is_private:
            raise ValueError(f"a private /24 is needed, not {self.subnet}")
        self.hosts = tuple(hosts)
        self.token = secrets.token_hex(3)
        self._hosts = {h: i + 2 for i, h in enumerate(self.hosts)}
        self._processes: list[subprocess.Popen[Any]] = []
        self._closed = False
        sweep_stale()
        with _live_lock:
            _live.add(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- names and addresses --------------------------------------------------------------

    def namespace(self, host: str) -> str:
        """The namespace name of ``host`` (or of :data:`HUB`)."""
        if host != HUB and host not in self._hosts:
            raise KeyError(f"no host {host!r} in this network: {list(self.hosts)}")
        return f"{PREFIX}{os.getpid()}-{self.token}-{host}"

    def address(self, host: str) -> str:
        """The IPv4 address of ``host`` (or of :data:`HUB`) on the private /24."""
        index = 1 if host == HUB else self._hosts[host]
        return str(self.subnet.network_address + index)

    def namespaces(self) -> list[str]:
        """Every namespace of this network, the hub first."""
        return [self.namespace(h) for h in (HUB, *self.hosts)]

    def _hub_link(self, host: str) -> str:
        return f"v-{host}"

    # -- building and tearing down --------------------------------------------------------

    def _build(self) -> None:
        hub = self.namespace(HUB)
        for ns in self.namespaces():
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", hub, "link", "add", _BRIDGE, "type", "bridge")
        _ip("-n", hub, "addr", "add", f"{self.address(HUB)}/24", "dev", _BRIDGE)
        _ip("-n", hub, "link", "set", _BRIDGE, "up")
        for host in self.hosts:
            ns, link = self.namespace(host), self._hub_link(host)
            # The node's end is created directly in its namespace: it never appears in the
            # machine's own namespace, not even for a moment.
            _ip("-n", hub, "link", "add", link, "type", "veth", "peer", "name", _NODE_LINK,
                "netns", ns)  # fmt: skip
            _ip("-n", hub, "link", "set", link, "master", _BRIDGE, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", _NODE_LINK)
            _ip("-n", ns, "link", "set", _NODE_LINK, "up")
        # A bridge port forwards only once it has left the "listening" state; with STP off
        # (the default) that is immediate, but the veth carrier may take a moment.
        self._wait_for_carrier(self.hosts)

    def _wait_for_carrier(self, hosts: Iterable[str]) -> None:
        deadline = time.monotonic() + _IP_TIMEOUT
        for host in hosts:
            while True:
                state = _ip("-n", self.namespace(host), "-o", "link", "show", _NODE_LINK).stdout
                if "LOWER_UP" in state:
                    break
                if time.monotonic() > deadline:
                    raise NetnsUnavailable(f"the link of {host} has no carrier: {state.strip()}")
                time.sleep(0.02)

    def close(self) -> None:
        """Stop the processes started here and delete every namespace of this network (with
        its links). Safe to call twice; raises if something could not be removed."""
        if self._closed:
            return
        self._closed = True
        with _live_lock:
            _live.discard(self)
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_STOP_TIMEOUT)
        failures = _delete_namespaces(n for n in self.namespaces() if n in our_namespaces())
        if failures:
            raise NetnsUnavailable(f"could not delete test namespaces: {failures}")

    def __enter__(self) -> PrivateNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running things inside ------------------------------------------------------------

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside ``host``'s namespace (``ip netns exec``, which
        execs it: the process's PID is the command's own)."""
        return ["ip", "netns", "exec", self.namespace(host), *argv]

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``host``'s namespace with the caller's environment (unless
        ``env=`` says otherwise); ``kwargs`` go to :class:`subprocess.Popen`. The process
        gets SIGTERM if the test process dies and SIGKILL when the network closes."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process: subprocess.Popen[Any] = subprocess.Popen(
            dying_with_parent(self.command(host, argv)), **kwargs
        )
        self._processes.append(process)
        return process

    def run(
        self, host: str, argv: Sequence[str], *, timeout: float = 60.0, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host``'s namespace to completion, output captured as text;
        ``kwargs`` go to :func:`subprocess.run` (``env=``, ``cwd=``, ``input=``...)."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(
            self.command(host, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    # -- partitions -----------------------------------------------------------------------

    def cut(self, host: str) -> None:
        """Cut ``host`` off: its port on the bridge goes down, so nothing reaches it and
        nothing it sends arrives, silently (see the module docstring for why this end)."""
        _ip("-n", self.namespace(HUB), "link", "set", self._hub_link(host), "down")

    def heal(self, host: str) -> None:
        """Plug ``host`` back in; returns once its link has carrier again."""
        _ip("-n", self.namespace(HUB), "link", "set", self._hub_link(host), "up")
        self._wait_for_carrier([host])

    def is_cut(self, host: str) -> bool:
        """Whether ``host``'s port on the bridge is down."""
        shown = _ip("-n", self.namespace(HUB), "-o", "link", "show", self._hub_link(host))
        flags = shown.stdout.partition("<")[2].partition(">")[0].split(",")
        return "UP" not in flags


@atexit.register
def _close_all() -> None:
    # A test that forgot its network, or died in a way that skipped its finally, still
    # leaves nothing behind when the interpreter exits.
    with _live_lock:
        networks = list(_live)
    for network in networks:
        with contextlib.suppress(Exception):
            network.close()
