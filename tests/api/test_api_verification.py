"""The job-level ``Verification`` block over the REST API: accepted, read back exactly, and
refused with a 400 naming the field when it cannot be honoured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bacalhau.api import ApiServer
from tests.api.test_api_jobs import JOBS, error_of, spec
from tests.orchestrator.test_scheduler import WASM_HEADER

WASM_TASK: dict[str, Any] = {
    "Name": "main",
    "Engine": {
        "Type": "wasm",
        "Params": {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": WASM_HEADER}}}},
    },
    "Publisher": {"Type": "local"},
    # No compute node here: the job may wait for some rather than be refused at once.
    "Timeouts": {"QueueTimeout": 60},
}


@pytest.fixture
async def real_http(real_server: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=real_server.url) as session:
        yield session


async def test_a_verified_job_is_stored_with_its_replicas(
    real_http: aiohttp.ClientSession,
) -> None:
    job = spec(Count=1, Tasks=[WASM_TASK], Verification={"Mode": "Majority"})
    async with real_http.put(JOBS, json={"Job": job}) as r:
        assert r.status == 200, await r.text()
        job_id = (await r.json())["JobID"]
    async with real_http.get(f"{JOBS}/{job_id}") as r:
        got = (await r.json())["Job"]
    assert got["Verification"] == {"Mode": "majority"}
    assert got["Count"] == 2  # a verified job runs at least two replicas
    assert got["Tasks"][0]["Engine"]["Params"]["Deterministic"] is True
    assert got["Meta"]["bacalhau.org/verification"] == "majority"


async def test_an_unverified_job_has_no_verification_on_the_wire(
    real_http: aiohttp.ClientSession,
) -> None:
    async with real_http.put(JOBS, json={"Job": spec()}) as r:
        job_id = (await r.json())["JobID"]
    async with real_http.get(f"{JOBS}/{job_id}") as r:
        got = (await r.json())["Job"]
    assert "Verification" not in got
    assert "bacalhau.org/verification" not in got["Meta"]


async def test_verification_it_cannot_honour_is_a_400_naming_the_field(
    any_http: aiohttp.ClientSession,
) -> None:
    not_deterministic = {
        **WASM_TASK,
        "Engine": {
            **WASM_TASK["Engine"],
            "Params": {**WASM_TASK["Engine"]["Params"], "Deterministic": False},
        },
    }
    cases = [
        (spec(Verification={"Mode": "unanimous"}), "Verification.Mode"),
        (spec(Verification="majority"), "Verification"),
        (spec(Type="ops", Verification={"Mode": "majority"}), "Verification"),
        (spec(Type="service", Count=2, Verification={"Mode": "majority"}), "Verification"),
        (
            spec(Tasks=[not_deterministic], Verification={"Mode": "majority"}),
            "Tasks[0].Engine.Params.Deterministic",
        ),
    ]
    for job, field in cases:
        async with any_http.put(JOBS, json={"Job": job}) as r:
            assert r.status == 400, (job, await r.text())
            err = await error_of(r)
        assert err["Code"] == "InvalidJobSpec", err
        assert err["Details"]["Field"] == field, err
