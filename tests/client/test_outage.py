"""Following a job through a short loss of the API: pauses grow, and the follower gives up
after its grace (or at its deadline) with an error naming the job, which keeps running."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bacalhau.client import AsyncClient, AsyncGrpcClient
from bacalhau.client._outage import Outage
from bacalhau.errors import Unavailable

LOST = Unavailable("cannot reach the Bacalhau API at http://n:1234: refused")


def test_pauses_grow_to_a_ceiling_and_reset_once_back() -> None:
    outage = Outage("j-1", grace=60)
    pauses = [outage.lost(LOST, now=float(t), deadline=1000) for t in range(7)]
    assert pauses == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    outage.back(now=7)
    assert outage.lost(LOST, now=8, deadline=1000) == 0.25


def test_gives_up_after_the_grace_naming_the_job() -> None:
    outage = Outage("j-1", grace=10)
    outage.lost(LOST, now=100, deadline=1000)
    with pytest.raises(Unavailable) as err:
        outage.lost(LOST, now=110, deadline=1000)
    assert "while following job j-1, which keeps running" in err.value.message
    assert (
        err.value.hint
        == "once the node answers again, follow the job with: bacalhau job describe j-1"
    )


def test_gives_up_at_the_followers_own_deadline() -> None:
    outage = Outage("j-2", grace=60)
    with pytest.raises(Unavailable):
        outage.lost(LOST, now=100, deadline=100.1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("kind", ["rest", "grpc"])
async def test_both_clients_try_again_then_name_the_job(kind: str) -> None:
    """Nothing listens: each client tries again for its grace, then says the job goes on."""
    port = _closed_port()
    client: AsyncClient | AsyncGrpcClient = (
        AsyncClient(f"http://127.0.0.1:{port}")
        if kind == "rest"
        else AsyncGrpcClient(f"127.0.0.1:{port}")
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with client:
        with pytest.raises(Unavailable) as err:
            await client.wait_for_job("j-gone", timeout=30, reconnect_grace=1.5)
    assert 0.5 <= loop.time() - start < 10  # tried again, within the grace
    assert "while following job j-gone, which keeps running" in err.value.message
