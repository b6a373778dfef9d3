"""Jobs by name on the REST API, against the real orchestrator: every route of one job takes
its name (in the query's namespace), ``PUT /jobs`` with an existing name makes a new version
(``Force`` for an unchanged spec) for a client of Bacalhau v1.8+ and a new job for an older
one, and ``PUT /jobs/diff`` (Bacalhau v1.8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bacalhau.api import ApiServer
from tests.api.test_api_jobs import JOBS, error_of, spec


@pytest.fixture
async def http(real_server: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    # A client of Bacalhau v1.8+, as its CLI says so: a taken name updates its job.
    v18 = {"X-Bacalhau-Git-Version": "v1.8.0"}
    async with aiohttp.ClientSession(base_url=real_server.url, headers=v18) as session:
        yield session


async def put(http: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, Any]:
    async with http.put(JOBS, json=body) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def test_every_route_of_a_job_takes_its_name(http: aiohttp.ClientSession) -> None:
    job_id = (await put(http, {"Job": spec(Name="by-name")}))["JobID"]
    dev_id = (await put(http, {"Job": spec(Name="by-name", Namespace="dev")}))["JobID"]
    assert dev_id != job_id
    async with http.get(f"{JOBS}/by-name") as r:
        assert (await r.json())["Job"]["ID"] == job_id
    async with http.get(f"{JOBS}/by-name", params={"namespace": "dev"}) as r:
        assert (await r.json())["Job"]["ID"] == dev_id
    async with http.get(f"{JOBS}/by-name", params={"namespace": "prod"}) as r:
        assert r.status == 404
        assert (await error_of(r))["Code"] == "NotFound"
    for route in ("history", "executions", "versions"):
        async with http.get(f"{JOBS}/by-name/{route}") as r:
            assert r.status == 200, (route, await r.text())
    async with http.get(f"{JOBS}/by-name/results") as r:
        assert r.status == 200 and (await r.json())["Items"] == []
    async with http.get(f"{JOBS}/by-name/logs") as r:
        # The name found the job; it has no execution to read (no compute node here).
        assert "no executions found for job " + job_id in (await error_of(r))["Message"]
    async with http.delete(f"{JOBS}/by-name", params={"namespace": "dev"}) as r:
        assert r.status == 200
    async with http.get(f"{JOBS}/{dev_id}") as r:
        assert (await r.json())["Job"]["State"]["StateType"] == "Stopped"
    async with http.put(f"{JOBS}/by-name/rerun", json={}) as r:
        rerun = await r.json()
    assert (rerun["JobID"], rerun["JobVersion"]) == (job_id, 2)


async def test_a_name_submitted_again_is_a_new_version_unless_unchanged(
    http: aiohttp.ClientSession,
) -> None:
    first = await put(http, {"Job": spec(Name="web")})
    changed = await put(http, {"Job": spec(Name="web", Labels={"v": "2"})})
    assert changed["JobID"] == first["JobID"] and changed["Warnings"] == []
    async with http.get(f"{JOBS}/web/versions") as r:
        versions = (await r.json())["Items"]
    assert [(v["Version"], v["Labels"]) for v in versions] == [(1, {}), (2, {"v": "2"})]
    async with http.get(f"{JOBS}/web/history", params={"event_type": "job"}) as r:
        messages = [h["Event"]["Message"] for h in (await r.json())["Items"]]
    assert "Job updated as version 2" in messages
    async with http.put(JOBS, json={"Job": spec(Name="web", Labels={"v": "2"})}) as r:
        assert r.status == 409
        err = await error_of(r)
    assert err["Code"] == "JobSpecUnchanged" and "--force" in err["Hint"]
    forced = await put(http, {"Job": spec(Name="web", Labels={"v": "2"}), "Force": True})
    assert forced["JobID"] == first["JobID"]
    async with http.get(f"{JOBS}/web") as r:
        assert (await r.json())["Job"]["Version"] == 3
    async with http.put(JOBS, json={"Job": spec(Name="web"), "Force": "yes"}) as r:
        assert r.status == 400 and (await error_of(r))["Details"]["Field"] == "Force"
    # Any key casing, as Go decodes it.
    lower = await put(http, {"job": spec(Name="web"), "force": True})
    assert lower["JobID"] == first["JobID"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Bacalhau-Git-Version": "v1.7.1"}, {"X-Bacalhau-Git-Version": "v1.5.2"}],
    ids=["no-version", "v1.7", "v1.5"],
)
async def test_an_older_client_gets_a_new_job_under_a_taken_name(
    real_server: ApiServer, headers: dict[str, str]
) -> None:
    """Before v1.8 names were not unique: the official Python SDK (no version header) and
    Go clients before v1.8 resubmit a named job, the same spec included, and get a new job
    each time. The name finds the newest; the earlier job goes on under its ID, unchanged."""
    async with aiohttp.ClientSession(base_url=real_server.url, headers=headers) as old:
        first = await put(old, {"Job": spec(Name="A Simple Docker Job")})
        again = await put(old, {"Job": spec(Name="A Simple Docker Job")})
        assert again["JobID"] != first["JobID"]
        assert f"job {first['JobID']} already had the name" in again["Warnings"][0]
        async with old.get(f"{JOBS}/A Simple Docker Job") as r:
            assert (await r.json())["Job"]["ID"] == again["JobID"]
        async with old.get(f"{JOBS}/{first['JobID']}") as r:
            earlier = (await r.json())["Job"]
        assert earlier["Name"] == "A Simple Docker Job" and earlier["Version"] == 1
        assert earlier["State"]["StateType"] != "Cancelled"
        # "Force" is a v1.8 field: whoever sends it updates the job of the name.
        forced = await put(old, {"Job": spec(Name="A Simple Docker Job"), "Force": True})
        assert forced["JobID"] == again["JobID"]
    # A v1.8 client afterwards updates the job the name now finds.
    v18 = {"X-Bacalhau-Git-Version": "v1.8.0"}
    async with aiohttp.ClientSession(base_url=real_server.url, headers=v18) as new:
        updated = await put(new, {"Job": spec(Name="A Simple Docker Job", Labels={"v": "2"})})
        assert updated["JobID"] == again["JobID"]


async def test_the_diff_endpoint(http: aiohttp.ClientSession) -> None:
    job_id = (await put(http, {"Job": spec(Name="report")}))["JobID"]
    async with http.put(f"{JOBS}/diff", json={"Job": spec(Name="report", Count=2)}) as r:
        assert r.status == 200
        body = await r.json()
    assert set(body) == {"Diff", "Warnings"} and body["Warnings"] == []
    assert f"--- report (version 1, {job_id})" in body["Diff"]
    assert "-Count: 1" in body["Diff"] and "+Count: 2" in body["Diff"]
    async with http.put(f"{JOBS}/diff", json={"Job": spec(Name="report")}) as r:
        assert (await r.json())["Diff"] == ""
    async with http.put(f"{JOBS}/diff", json={"Job": spec(Name="nobody")}) as r:
        assert r.status == 404
        err = await error_of(r)
    assert err["Code"] == "NotFound" and "nobody" in err["Message"]
    async with http.put(f"{JOBS}/diff", json={"Job": spec()}) as r:
        assert r.status == 400
        assert (await error_of(r))["Details"]["Field"] == "Name"
    # The namespace of the query applies to a job that names none.
    await put(http, {"Job": spec(Name="report", Namespace="dev", Priority=3)})
    async with http.put(
        f"{JOBS}/diff", params={"namespace": "dev"}, json={"Job": spec(Name="report", Priority=3)}
    ) as r:
        assert (await r.json())["Diff"] == ""
    # Nothing was submitted.
    async with http.get(f"{JOBS}/{job_id}") as r:
        assert (await r.json())["Job"]["Version"] == 1
