"""The private test network of ``netns.py``: hosts in their own namespaces talk over TCP
through its bridge and nowhere else, a cut host stops answering within a bounded time and
answers again once healed, and nothing it created outlives it, not even after a test process
is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.devstack import eventually, process_alive
from tests.integration.netns import (
    HUB,
    PREFIX,
    NetnsUnavailable,
    PrivateNetwork,
    our_namespaces,
    root_skip_reason,
)

pytestmark = [pytest.mark.integration]

PORT = 7000

#: An asyncio TCP echo server on PORT; prints "ready" once it listens.
ECHO_SERVER = textwrap.dedent(
    f"""
    import asyncio

    async def echo(reader, writer):
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass

    async def main():
        server = await asyncio.start_server(echo, "0.0.0.0", {PORT})
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)

#: Connects to argv[1]:PORT (1 s timeout), echoes one message, prints "echoed" or the error.
ECHO_ONCE = textwrap.dedent(
    f"""
    import socket, sys
    try:
        with socket.create_connection((sys.argv[1], {PORT}), timeout=1) as s:
            s.sendall(b"ping")
            print("echoed" if s.recv(16) == b"ping" else "garbled")
    except OSError as err:
        print(type(err).__name__, err)
    """
)

#: Holds one connection to argv[1]:PORT, echoing every 50 ms; says "connected", then, when a
#: reply takes over 0.5 s, "stalled" and exits.
ECHO_UNTIL_STALLED = textwrap.dedent(
    f"""
    import socket, sys, time
    s = socket.create_connection((sys.argv[1], {PORT}), timeout=1)
    s.settimeout(0.5)
    print("connected", flush=True)
    while True:
        try:
            s.sendall(b"ping")
            s.recv(16)
        except OSError as err:
            print("stalled", type(err).__name__, flush=True)
            break
        time.sleep(0.05)
    """
)


@pytest.fixture
def network() -> Iterator[PrivateNetwork]:
    """Hosts a, b and c; skipped only when not root, failing when namespaces do not work."""
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    with PrivateNetwork(["a", "b", "c"]) as net:
        yield net


def start_echo_server(net: PrivateNetwork, host: str) -> subprocess.Popen[str]:
    server = net.popen(host, [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready", "the echo server did not start"
    return server


def echo_once(net: PrivateNetwork, source: str, target: str) -> str:
    done = net.run(source, [sys.executable, "-c", ECHO_ONCE, net.address(target)], timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def echo_soon(net: PrivateNetwork, source: str, target: str, *, within: float = 10.0) -> str:
    """:func:`echo_once` until it echoes or ``within`` seconds pass (the last answer). Right
    after a heal the first attempt can still time out on a loaded machine (its SYN or the
    ARP query before it lost, the next try a second later): what matters is that the host
    answers again, soon."""
    deadline = time.monotonic() + within
    while True:
        answer = echo_once(net, source, target)
        if answer == "echoed" or time.monotonic() > deadline:
            return answer


def root_links() -> set[str]:
    shown = subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True, timeout=20
    )
    return {link["ifname"] for link in json.loads(shown.stdout)}


def test_a_cut_host_stops_answering_and_answers_again_once_healed(
    network: PrivateNetwork,
) -> None:
    start_echo_server(network, "b")
    start_echo_server(network, "c")
    assert echo_once(network, "a", "b") == "echoed"
    assert echo_once(network, HUB, "b") == "echoed"
    held = network.popen(
        "a",
        [sys.executable, "-c", ECHO_UNTIL_STALLED, network.address("b")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert held.stdout is not None
    assert held.stdout.readline().strip() == "connected"

    network.cut("b")
    assert network.is_cut("b")
    # The held connection stalls (no error: a partition is silence); the client notices
    # by its own 0.5 s reply timeout, well within the bound.
    stalled, _ = held.communicate(timeout=10)
    assert stalled.startswith("stalled"), stalled
    assert echo_once(network, "a", "b").startswith("TimeoutError")
    assert echo_once(network, "b", "c").startswith("TimeoutError")
    assert echo_once(network, "a", "c") == "echoed", "the cut reached beyond b"

    network.heal("b")
    assert not network.is_cut("b")
    assert echo_soon(network, "a", "b") == "echoed"
    assert echo_soon(network, "b", "c") == "echoed"


def test_nothing_leaves_the_private_network(network: PrivateNetwork) -> None:
    # No default route: anything outside the /24 is unreachable at once, from every host.
    for host in (HUB, "a"):
        routes = network.run(host, ["ip", "-4", "route", "show"]).stdout
        assert "default" not in routes, routes
        assert routes.strip().splitlines() == [
            line for line in routes.strip().splitlines() if str(network.subnet) in line
        ], routes
    outside = str(network.subnet.network_address + 256)  # the next /24
    assert echo_once(network, "a", "a").startswith("ConnectionRefusedError")
    done = network.run("a", [sys.executable, "-c", ECHO_ONCE, outside])
    assert "Network is unreachable" in done.stdout, done.stdout
    # The machine's own namespace gained no interface.
    assert not [name for name in root_links() if name.startswith(("v-", "br0"))]


def test_closing_removes_every_namespace_link_and_process_even_after_a_failure() -> None:
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    links_before = root_links()
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        PrivateNetwork(["a", "b"]) as net,
    ):
        names = net.namespaces()
        assert set(names) <= set(our_namespaces())
        server = start_echo_server(net, "a")
        assert root_links() == links_before, "links appeared in the machine's namespace"
        raise RuntimeError("the test failed")
    assert not set(names) & set(our_namespaces())
    assert server.poll() is not None, "a process outlived its network"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not [n for n in names if n in listed.stdout]
    assert root_links() == links_before


def test_a_new_network_sweeps_what_a_killed_test_process_left() -> None:
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    # A test process that builds a network and is SIGKILLed: no finally, no atexit runs.
    doomed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tests.integration.netns import PrivateNetwork\n"
            "import time\n"
            "net = PrivateNetwork(['x'])\n"
            "sleeper = net.popen('x', ['sleep', '300'])\n"
            "print(sleeper.pid, *net.namespaces(), flush=True)\n"
            "time.sleep(300)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    assert doomed.stdout is not None
    sleeper, *left = doomed.stdout.readline().split()
    assert left and all(n.startswith(f"{PREFIX}{doomed.pid}-") for n in left), left
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    assert set(left) <= set(our_namespaces()), "the killed process's namespaces are gone already"

    with PrivateNetwork(["a"]) as net:
        assert not set(left) & set(our_namespaces()), "stale namespaces were not swept"
        assert net.namespace("a") in our_namespaces()
    # The sleeper inside got SIGTERM when its parent died, or SIGKILL from the sweep.
    eventually(
        lambda: not process_alive(int(sleeper)),
        timeout=10,
        what="the stale namespace's process gone",
    )


def test_without_the_ip_command_it_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NetnsUnavailable, match="iproute2"):
        PrivateNetwork(["a"])
