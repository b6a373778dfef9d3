"""RequesterTrust: who may command a compute node, and commands racing an identification
of a requester at a seed address."""

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


async def test_a_command_arriving_during_an_identification_waits_for_its_outcome() -> None:
    trust = RequesterTrust(expect_identify=True)
    with trust.identifying():
        early = asyncio.create_task(trust.check("joined", "AskForBid"))
        await asyncio.sleep(0.05)
        assert not early.done()  # judged only once the identification settles
        trust.trust("joined", why="it proved its identity")
    await early
    assert trust.refused_total == 0


async def test_an_identification_that_grants_nothing_refuses_the_waiting_command() -> None:
    trust = RequesterTrust(expect_identify=True)
    with trust.identifying():
        early = asyncio.create_task(trust.check("impostor", "AskForBid"))
        await asyncio.sleep(0.05)
    with pytest.raises(PermissionDenied):
        await early
    # No identification under way any more: refused at once.
    with pytest.raises(PermissionDenied):
        await asyncio.wait_for(trust.check("impostor", "AskForBid"), 1)
    assert trust.refused == {"impostor": 2}


async def test_waiting_for_an_identification_is_bounded() -> None:
    trust = RequesterTrust(expect_identify=True, settle_timeout=0.05)
    # Before the first identification even started, unknown senders wait, but not forever.
    with pytest.raises(PermissionDenied):
        await asyncio.wait_for(trust.check("stranger", "AskForBid"), 2)
