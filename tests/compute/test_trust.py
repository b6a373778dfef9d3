"""RequesterTrust: who may command a compute node, and commands racing a join."""

from __future__ import annotations

import asyncio

import pytest

from bacalhau.compute import RequesterTrust
from bacalhau.errors import PermissionDenied


async def test_configured_requesters_are_trusted_and_others_refused_and_counted() -> None:
    trust = RequesterTrust(["configured"])
    await trust.check("configured", "AskForBid")
    for _ in range(2):
        with pytest.raises(PermissionDenied):
            await trust.check("stranger", "CancelExecution")
    assert trust.refused == {"stranger": 2}
    trust.trust("stranger", why="test")
    await trust.check("stranger", "AskForBid")
    assert trust.trusted == {"configured", "stranger"}


async def test_a_command_arriving_during_a_join_waits_for_its_outcome() -> None:
    trust = RequesterTrust(expect_join=True)
    with trust.joining():
        early = asyncio.create_task(trust.check("joined", "AskForBid"))
        await asyncio.sleep(0.05)
        assert not early.done()  # judged only once the join settles
        trust.trust("joined", why="it admitted this node")
    await early
    assert trust.refused_total == 0


async def test_a_join_that_grants_nothing_refuses_the_waiting_command() -> None:
    trust = RequesterTrust(expect_join=True)
    with trust.joining():
        early = asyncio.create_task(trust.check("impostor", "AskForBid"))
        await asyncio.sleep(0.05)
    with pytest.raises(PermissionDenied):
        await early
    # No join under way any more: refused at once.
    with pytest.raises(PermissionDenied):
        await asyncio.wait_for(trust.check("impostor", "AskForBid"), 1)
    assert trust.refused == {"impostor": 2}


async def test_waiting_for_a_join_is_bounded() -> None:
    trust = RequesterTrust(expect_join=True, settle_timeout=0.05)
    # Before the first join attempt even started, unknown senders wait, but not forever.
    with pytest.raises(PermissionDenied):
        await asyncio.wait_for(trust.check("stranger", "AskForBid"), 2)
