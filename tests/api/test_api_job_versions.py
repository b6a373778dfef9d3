"""Job versions as Bacalhau v1.8 numbers and reads them, on the REST and gRPC APIs against the
real orchestrator: a job's first version is 1, ``job_version`` picks one version of a job (its
spec, its history), 0 or nothing the latest, ``all_job_versions`` every one, and a rerun may
take an earlier version's spec. A version that does not exist, or a bad number, is a clear
error naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from bacalhau._proto.v1 import api_pb2
from bacalhau.api import ApiServer
from bacalhau.models import (
    Event,
    HistoryType,
    Job,
    JobHistory,
    JobStateType,
    NodeInfo,
    NodeType,
    now_ns,
)
from bacalhau.orchestrator import JobStore, Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.test_api_jobs import JOBS, error_of, spec
from tests.api.test_grpc_api import Client, metadata, real
from tests.orchestrator.node_view import StaticNodeView

__all__ = ["real"]  # the fixture, used by name


@pytest.fixture
async def http(real_server: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    # A client of Bacalhau v1.8+, as its CLI says so: a taken name updates its job.
    v18 = {"X-Bacalhau-Git-Version": "v1.8.0"}
    async with aiohttp.ClientSession(base_url=real_server.url, headers=v18) as session:
        yield session


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def _two_versions(http: aiohttp.ClientSession, name: str) -> str:
    """A job named ``name`` with two versions: labels v=1, then v=2."""
    async with http.put(JOBS, json={"Job": spec(Name=name, Labels={"v": "1"})}) as r:
        job_id = str((await _json(r))["JobID"])
    async with http.put(JOBS, json={"Job": spec(Name=name, Labels={"v": "2"})}) as r:
        assert (await _json(r))["JobID"] == job_id
    return job_id


async def test_versions_count_from_one(http: aiohttp.ClientSession) -> None:
    async with http.put(JOBS, json={"Job": spec(Name="first-version")}) as r:
        job_id = (await _json(r))["JobID"]
    async with http.get(f"{JOBS}/{job_id}", params={"include": "history"}) as r:
        body = await _json(r)
    assert body["Job"]["Version"] == 1
    assert {h["JobVersion"] for h in body["History"]["Items"]} == {1}
    async with http.put(f"{JOBS}/{job_id}/rerun", json={}) as r:
        assert (await _json(r))["JobVersion"] == 2
    async with http.get(f"{JOBS}/{job_id}/versions") as r:
        assert [v["Version"] for v in (await _json(r))["Items"]] == [1, 2]


async def test_job_version_picks_a_version_and_zero_the_latest(
    http: aiohttp.ClientSession,
) -> None:
    job_id = await _two_versions(http, "pick-a-version")
    for params, version, labels in (
        ({}, 2, {"v": "2"}),
        ({"job_version": "0"}, 2, {"v": "2"}),
        ({"job_version": "2"}, 2, {"v": "2"}),
        ({"job_version": "1"}, 1, {"v": "1"}),
    ):
        async with http.get(
            f"{JOBS}/pick-a-version", params={**params, "include": "history,executions"}
        ) as r:
            body = await _json(r)
        assert (body["Job"]["ID"], body["Job"]["Version"]) == (job_id, version), params
        assert body["Job"]["Labels"] == labels
        # The history shown is that version's own.
        seen = {h["JobVersion"] for h in body["History"]["Items"]}
        assert seen == {version}, params
    # The earlier version is in the state its history last gave it (no node here to run
    # it: Failed), while the latest is Pending again, or failed anew.
    async with http.get(f"{JOBS}/{job_id}", params={"job_version": "1"}) as r:
        old = (await _json(r))["Job"]
    params = {"job_version": "1", "event_type": "job"}
    async with http.get(f"{JOBS}/{job_id}/history", params=params) as r:
        states = [h["JobState"]["New"] for h in (await _json(r))["Items"]]
    assert states[0] == "Pending" and len(states) > 1
    assert old["State"]["StateType"] == states[-1]


async def test_history_of_the_latest_version_one_or_all(http: aiohttp.ClientSession) -> None:
    job_id = await _two_versions(http, "history-versions")

    async def versions_of(params: dict[str, str]) -> list[int]:
        async with http.get(f"{JOBS}/{job_id}/history", params=params) as r:
            return [h["JobVersion"] for h in (await _json(r))["Items"]]

    latest = await versions_of({})
    assert latest and set(latest) == {2}
    assert set(await versions_of({"job_version": "1"})) == {1}
    every = await versions_of({"all_job_versions": "true"})
    assert set(every) == {1, 2} and len(every) > len(latest)
    # A version asked for wins over all_job_versions, as in Bacalhau.
    assert set(await versions_of({"job_version": "1", "all_job_versions": "true"})) == {1}
    async with http.get(f"{JOBS}/{job_id}/executions", params={"all_job_versions": "1"}) as r:
        assert (await _json(r))["Items"] == []  # no compute node here: nothing ran


async def test_a_rerun_takes_an_earlier_versions_spec(http: aiohttp.ClientSession) -> None:
    job_id = await _two_versions(http, "rerun-earlier")
    async with http.put(f"{JOBS}/{job_id}/rerun", json={"JobVersion": 1, "Reason": "v1"}) as r:
        assert (await _json(r))["JobVersion"] == 3
    async with http.get(f"{JOBS}/{job_id}", params={"include": "history"}) as r:
        body = await _json(r)
    assert (body["Job"]["Version"], body["Job"]["Labels"]) == (3, {"v": "1"})
    messages = [h["Event"]["Message"] for h in body["History"]["Items"]]
    assert "Job rerun as version 3 (the spec of version 1): v1" in messages


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("", {"job_version": "3"}, "job_version"),
        ("", {"job_version": "x"}, "job_version"),
        ("", {"job_version": "-1"}, "job_version"),
        ("/history", {"job_version": "1.5"}, "job_version"),
        ("/history", {"all_job_versions": "maybe"}, "all_job_versions"),
        ("/executions", {"job_version": "two"}, "job_version"),
        ("/executions", {"all_job_versions": "2"}, "all_job_versions"),
        ("/logs", {"job_version": "7"}, "job_version"),
    ],
)
async def test_a_bad_or_missing_version_names_the_field(
    http: aiohttp.ClientSession, route: str, params: dict[str, str], field: str
) -> None:
    job_id = await _two_versions(http, f"bad-version{route.replace('/', '-')}")
    async with http.get(f"{JOBS}/{job_id}{route}", params=params) as r:
        err = await error_of(r)
    assert r.status in (400, 404), err
    assert err["Details"]["Field"] == field, err
    if r.status == 404:
        assert err["Code"] == "NotFound" and "no version" in err["Message"]
        assert "bacalhau job versions" in err["Hint"]


@pytest.mark.parametrize("bad", [-1, "1", 1.5, True, 9])
async def test_a_rerun_of_a_bad_version_is_refused_and_changes_nothing(
    http: aiohttp.ClientSession, bad: object
) -> None:
    job_id = await _two_versions(http, f"rerun-bad-{str(bad).replace('.', '-')}")
    async with http.put(f"{JOBS}/{job_id}/rerun", json={"JobVersion": bad}) as r:
        err = await error_of(r)
    assert r.status == (404 if bad == 9 else 400), err
    assert err["Details"]["Field"] == ("job_version" if bad == 9 else "JobVersion")
    async with http.get(f"{JOBS}/{job_id}/versions") as r:
        assert [v["Version"] for v in (await _json(r))["Items"]] == [1, 2]


async def test_grpc_reads_and_reruns_a_version(real: Client) -> None:
    job_id = await real.submit(Name="grpc-versions", Labels={"v": "1"})
    await real.jobs.SubmitJob(
        api_pb2.SubmitJobRequest(job_json=json.dumps(spec(Name="grpc-versions", Labels={"v": "2"})))
    )
    got = await real.jobs.GetJob(
        api_pb2.GetJobRequest(job_id=job_id, job_version=1, include_history=True)
    )
    assert json.loads(got.job.job_json)["Labels"] == {"v": "1"}
    assert {json.loads(h.item_json)["JobVersion"] for h in got.history} == {1}
    history = await real.jobs.JobHistory(api_pb2.JobHistoryRequest(job_id=job_id))
    assert {json.loads(h.item_json)["JobVersion"] for h in history.items} == {2}
    every = await real.jobs.JobHistory(
        api_pb2.JobHistoryRequest(job_id=job_id, all_job_versions=True)
    )
    assert {json.loads(h.item_json)["JobVersion"] for h in every.items} == {1, 2}
    rerun = await real.jobs.RerunJob(api_pb2.RerunJobRequest(job_id=job_id, job_version=1))
    assert rerun.job_version == 3
    latest = await real.jobs.GetJob(api_pb2.GetJobRequest(job_id=job_id))
    assert json.loads(latest.job.job_json)["Labels"] == {"v": "1"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await real.jobs.GetJob(api_pb2.GetJobRequest(job_id=job_id, job_version=8))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert metadata(missing.value)["bacalhau-error-code"] == "NotFound"


async def test_a_job_stored_before_versions_counted_from_one_still_reads(
    tmp_path: Path,
) -> None:
    """A store written when a job's first version was 0 and history items carried no
    version: the job reads as its latest (version 0), with all of its history; a rerun
    makes version 1, which then is the latest."""
    data_dir = tmp_path / "requester"
    data_dir.mkdir()
    store = JobStore(data_dir / "jobs.db")
    old = Job.from_dict(spec(Name="from-before"))
    old.id, old.namespace, old.version = "j-from-before", "default", 0
    old.state, old.revision = JobStateType.PENDING, 1
    old.create_time = old.modify_time = now_ns()
    with store.transaction():
        store.create_job(old)
        store.add_history(
            JobHistory(
                seq_num=0,
                type=HistoryType.JOB,
                job_id=old.id,
                event=Event(message="Job submitted", topic="Submission"),
                time=now_ns(),
                new_revision=1,
                job_state_new=JobStateType.PENDING,
            )
        )
    store.update_job_state(old.id, JobStateType.RUNNING)
    store.update_job_state(old.id, JobStateType.COMPLETED)
    # As the rows of that time were: no version in a history item.
    store._db.execute("UPDATE history SET data = json_remove(data, '$.ver')")
    store.close()
    info = NodeInfo(node_id="n-real-requester", node_type=NodeType.REQUESTER)
    async with (
        Orchestrator(
            node_info=info,
            data_dir=data_dir,
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
        ) as orch,
        ApiServer(orch, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession(base_url=server.url) as http,
    ):
        async with http.get(f"{JOBS}/from-before", params={"include": "history"}) as r:
            body = await _json(r)
        assert body["Job"]["Version"] == 0
        assert body["Job"]["State"]["StateType"] == "Completed"
        assert [h["JobState"]["New"] for h in body["History"]["Items"]] == [
            "Pending",
            "Running",
            "Completed",
        ]
        async with http.get(f"{JOBS}/{old.id}/history", params={"job_version": "0"}) as r:
            assert [h["JobVersion"] for h in (await _json(r))["Items"]] == [0, 0, 0]
        async with http.put(f"{JOBS}/{old.id}/rerun", json={}) as r:
            assert (await _json(r))["JobVersion"] == 1
        async with http.get(f"{JOBS}/{old.id}/history") as r:
            assert {h["JobVersion"] for h in (await _json(r))["Items"]} == {1}
        async with http.get(f"{JOBS}/{old.id}/history", params={"all_job_versions": "1"}) as r:
            assert {h["JobVersion"] for h in (await _json(r))["Items"]} == {0, 1}
