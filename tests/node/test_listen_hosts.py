"""A bind host that is no address of this machine is said to be the host's fault, naming the
host flag; before, every server reported it as a port it could not bind (``--api-port``,
"stop what uses the port")."""

from __future__ import annotations

import socket
from contextlib import AsyncExitStack

import pytest

from bacalhau.api import MetricsServer
from bacalhau.errors import InvalidConfiguration
from bacalhau.node._listen import listen


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("no such host.invalid", "cannot listen on 'no such host.invalid'"),
        ("999.1.1.1", "cannot listen on '999.1.1.1'"),
        # TEST-NET-1 (RFC 5737): never an address of this machine.
        ("192.0.2.1", "it is not an address of this machine"),
    ],
)
@pytest.mark.parametrize(("flag", "host_flag"), [("--metrics-port", "--api-host")])
async def test_a_host_not_of_this_machine_is_the_hosts_fault(
    host: str, why: str, flag: str, host_flag: str
) -> None:
    async with AsyncExitStack() as stack:
        with pytest.raises(InvalidConfiguration) as err:
            await listen(stack, MetricsServer(host=host, port=0), host, 0, flag)
    assert why in err.value.message
    assert err.value.details["Field"] == host_flag
    assert f"pass {host_flag} an address of this machine" in (err.value.hint or "")


async def test_a_port_in_use_is_still_the_ports_fault() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        async with AsyncExitStack() as stack:
            with pytest.raises(InvalidConfiguration) as err:
                await listen(
                    stack,
                    MetricsServer(host="127.0.0.1", port=port),
                    "127.0.0.1",
                    port,
                    "--metrics-port",
                )
    assert f"port {port} is already in use" in err.value.message
    assert err.value.details["Field"] == "--metrics-port"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", ""])
async def test_addresses_of_this_machine_are_bound(host: str) -> None:
    async with AsyncExitStack() as stack:
        server = MetricsServer(host=host, port=0)
        await listen(stack, server, host, 0, "--metrics-port")
        assert server.port > 0
