"""Requests real clients send that the REST edge once answered with a 500, a silent success
or a job that could never run: each is now a 4xx naming the field at fault (or the state
asked for), and nothing is left behind. Against the real orchestrator (SQLite store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bacalhau.models import Job, JobStateType, now_ns
from bacalhau.orchestrator import JobStore
from tests.api.test_hardening import (
    JOBS,
    error_of,
    noop_job,
    put_raw,
    raw_body,
    real,
    with_task,
)
from tests.orchestrator.test_scheduler import WASM_HEADER

__all__ = ["real"]

BUSYBOX = {"Type": "docker", "Params": {"Image": "local/busybox:1.37"}}


async def submit(http: aiohttp.ClientSession, job: dict[str, Any], **body: Any) -> str:
    async with http.put(JOBS, json={"Job": job, **body}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["JobID"])


async def job_count(http: aiohttp.ClientSession) -> int:
    async with http.get(JOBS, params={"labels": ""}) as r:
        return len((await r.json())["Items"])


# -- a body its headers misdescribe ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_in_its_content_encoding_is_a_400(
    real: aiohttp.ClientSession, encoding: str
) -> None:
    job_id = await submit(real, noop_job())
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    for method, path in (
        ("PUT", JOBS),
        ("DELETE", f"{JOBS}/{job_id}"),
        ("PUT", "/api/v1/orchestrator/nodes/n-1"),
    ):
        async with real.request(method, path, data=b'{"Job": {}}', headers=headers) as r:
            assert r.status == 400, (method, path, await r.text())
            err = await error_of(r)
        assert err["Code"] == "BadRequest" and "could not be read" in err["Message"]
        assert "Content-Encoding" in err["Hint"]
    assert await job_count(real) == 1


# -- numbers past what any field holds ------------------------------------------------------


async def test_versions_past_int64_are_a_400_naming_the_field(
    real: aiohttp.ClientSession,
) -> None:
    job_id = await submit(real, noop_job())
    huge = str(2**63)
    for path in (f"{JOBS}/{job_id}", f"{JOBS}/{job_id}/logs", f"{JOBS}/{job_id}/history"):
        async with real.get(path, params={"job_version": huge}) as r:
            assert r.status == 400, (path, await r.text())
            err = await error_of(r)
        assert err["Details"]["Field"] == "job_version" and err["Hint"], err
    async with real.put(f"{JOBS}/{job_id}/rerun", json={"JobVersion": 2**70}) as r:
        assert r.status == 400
        err = await error_of(r)
    assert err["Details"]["Field"] == "JobVersion" and "an integer of 71 bits" in err["Message"]


async def test_thousands_of_digits_are_refused_in_our_words(
    real: aiohttp.ClientSession,
) -> None:
    body = b'{"Job": {"Type": "batch", "Count": ' + b"9" * 5000 + b"}}"
    async with await put_raw(real, body) as r:
        assert r.status == 400
        err = await error_of(r)
    assert "thousands of digits" in err["Message"] and "set_int_max_str_digits" not in str(err)


@pytest.mark.parametrize(
    ("param", "value"), [("limit", "abc"), ("reverse", "maybe"), ("wait", "-1")]
)
async def test_malformed_query_parameters_come_with_a_hint(
    real: aiohttp.ClientSession, param: str, value: str
) -> None:
    # ``wait`` belongs to a submit: checked before it, so no job is left behind.
    method = "PUT" if param == "wait" else "GET"
    kwargs: dict[str, Any] = {"params": {param: value}}
    if method == "PUT":
        kwargs["json"] = {"Job": noop_job()}
    async with real.request(method, JOBS, **kwargs) as r:
        assert r.status == 400
        err = await error_of(r)
    assert err["Details"]["Field"] == param and err["Hint"], err
    assert await job_count(real) == 0


# -- bodies that are not objects --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "{job}", "[1]"),
        ("PUT", "{job}/rerun", "[1]"),
        ("PUT", "{job}/rerun", '"again"'),
        ("POST", "/api/v1/version", "[]"),
        ("POST", "/api/v1/version", '{"client_id": 5}'),
    ],
)
async def test_a_body_of_the_wrong_shape_is_a_400(
    real: aiohttp.ClientSession, method: str, path: str, body: str
) -> None:
    job_id = await submit(real, noop_job())
    url = path.format(job=f"{JOBS}/{job_id}")
    headers = {"Content-Type": "application/json"}
    async with real.request(method, url, data=body.encode(), headers=headers) as r:
        assert r.status == 400, await r.text()
        err = await error_of(r)
    assert err["Hint"], err
    async with real.get(f"{JOBS}/{job_id}") as r:
        job = (await r.json())["Job"]
    assert job["Version"] == 1 and job["State"]["StateType"] != "Stopped"


# -- versions that were never made ------------------------------------------------------------


async def test_history_and_executions_of_a_version_never_made_are_404(
    real: aiohttp.ClientSession,
) -> None:
    job_id = await submit(real, noop_job())
    for suffix in ("/history", "/executions"):
        async with real.get(f"{JOBS}/{job_id}{suffix}", params={"job_version": "1"}) as r:
            assert r.status == 200, suffix
        async with real.get(f"{JOBS}/{job_id}{suffix}", params={"job_version": "99"}) as r:
            assert r.status == 404, suffix
            err = await error_of(r)
        assert err["Details"]["Field"] == "job_version" and "no version 99" in err["Message"]


# -- the log stream's parameters, once the socket is open -------------------------------------


async def test_a_bad_follow_is_an_error_frame_not_a_broken_handshake(
    real: aiohttp.ClientSession,
) -> None:
    job_id = await submit(real, noop_job())
    async with real.ws_connect(f"{JOBS}/{job_id}/logs", params={"follow": "maybe"}) as ws:
        frames = [json.loads(msg.data) async for msg in ws]
        assert ws.close_code == 1000
    (frame,) = frames
    assert "follow must be a boolean" in frame["error"], frame


# -- specs no node could ever run ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "field"),
    [
        (noop_job(Name="a\u0000b"), "Name"),
        (noop_job(Namespace="team\u0000"), "Namespace"),
        (
            with_task(Engine={**BUSYBOX, "Params": {**BUSYBOX["Params"], "Entrypoint": ["a\0"]}}),
            "Tasks[0].Engine.Params.Entrypoint[0]",
        ),
        (
            with_task(
                Engine={
                    **BUSYBOX,
                    "Params": {**BUSYBOX["Params"], "EnvironmentVariables": ["A=b\0c"]},
                }
            ),
            "Tasks[0].Engine.Params.EnvironmentVariables[0]",
        ),
        (
            with_task(
                Engine={**BUSYBOX, "Params": {**BUSYBOX["Params"], "EnvironmentVariables": ["X"]}}
            ),
            "Tasks[0].Engine.Params.EnvironmentVariables[0]",
        ),
        (with_task(Env={"A": "b\u0000"}), "Tasks[0].Env.A"),
        (
            with_task(
                Engine=BUSYBOX,
                InputSources=[
                    {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Target": "rel"}
                ],
            ),
            "Tasks[0].InputSources[0].Target",
        ),
        (
            with_task(
                Engine=BUSYBOX,
                InputSources=[
                    {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Target": "/"}
                ],
            ),
            "Tasks[0].InputSources[0].Target",
        ),
        (with_task(ResultPaths=[{"Name": "all", "Path": "/"}]), "Tasks[0].ResultPaths[0].Path"),
        (
            with_task(
                InputSources=[
                    {"Source": {"Type": "inline", "Params": {"URL": "notadataurl"}}, "Target": "/i"}
                ]
            ),
            "Tasks[0].InputSources[0].Source.Params.URL",
        ),
        (
            with_task(
                Engine={
                    "Type": "wasm",
                    "Params": {
                        "EntryModule": {
                            "Source": {
                                "Type": "inline",
                                "Params": {"URL": "data:application/wasm;base64,!!!notb64"},
                            }
                        }
                    },
                }
            ),
            "Tasks[0].Engine.Params.EntryModule.Source.Params.URL",
        ),
    ],
)
async def test_a_spec_no_node_could_run_is_refused_naming_the_field(
    real: aiohttp.ClientSession, job: dict[str, Any], field: str
) -> None:
    async with await put_raw(real, raw_body(job)) as r:
        assert r.status == 400, await r.text()
        err = await error_of(r)
    assert err["Code"] == "InvalidJobSpec" and err["Details"]["Field"] == field, err
    assert await job_count(real) == 0


async def test_the_smallest_valid_forms_still_pass(real: aiohttp.ClientSession) -> None:
    wasm = {
        "Type": "wasm",
        "Params": {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": WASM_HEADER}}}},
    }
    await submit(real, with_task(Engine=wasm))
    env = {**BUSYBOX, "Params": {**BUSYBOX["Params"], "EnvironmentVariables": ["EMPTY="]}}
    await submit(real, with_task(Engine=env, ResultPaths=[{"Name": "out", "Path": "/outputs"}]))
    await submit(real, {**noop_job(), "Type": "service", "Count": 1})
    # A service job without Count runs one replica and says so (it ran one and said 0).
    service = await submit(real, {**noop_job(), "Type": "service", "Count": 0})
    async with real.get(f"{JOBS}/{service}") as r:
        assert (await r.json())["Job"]["Count"] == 1
    assert await job_count(real) == 4


# -- an idempotency token sent again ------------------------------------------------------------


async def test_an_idempotency_token_answers_only_its_own_submit(
    real: aiohttp.ClientSession,
) -> None:
    first = await submit(real, noop_job(Name="etl"), idempotencyToken="T-1")
    again = await submit(real, noop_job(Name="etl"), idempotencyToken="T-1")
    assert again == first
    anonymous = await submit(real, noop_job(), idempotencyToken="T-2")
    assert await submit(real, noop_job(), idempotencyToken="T-2") == anonymous
    for body in (
        {"Job": noop_job(Name="etl", Priority=5), "idempotencyToken": "T-1"},
        {"Job": noop_job(Name="etl"), "idempotencyToken": "T-1", "namespace": "other"},
    ):
        async with real.put(JOBS, json=body) as r:
            assert r.status == 409, await r.text()
            err = await error_of(r)
        assert err["Code"] == "IdempotencyTokenReused" and first in err["Message"]
        assert err["Details"]["Field"] == "idempotencyToken" and err["Hint"]
    assert await job_count(real) == 2
    async with real.get(f"{JOBS}/{first}") as r:
        assert (await r.json())["Job"]["Version"] == 1


# -- history items say where a state came from ------------------------------------------------


def test_a_state_entered_again_still_names_the_one_before(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job = _stored_job()
    with store.transaction():
        store.create_job(job)
    store.update_job_state(job.id, JobStateType.QUEUED)
    store.update_job_state(job.id, JobStateType.QUEUED)
    items = store.history_of(job.id)
    assert [(h.job_state_previous, h.job_state_new) for h in items] == [
        (JobStateType.PENDING, JobStateType.QUEUED),
        (JobStateType.QUEUED, JobStateType.QUEUED),
    ]


def _stored_job() -> Job:
    job = Job.from_dict(noop_job())
    job.id, job.name, job.namespace = "j-7e57aaaa", "j-7e57aaaa", "default"
    job.state, job.revision = JobStateType.PENDING, 1
    job.create_time = job.modify_time = now_ns()
    return job


# -- browsers on another origin -----------------------------------------------------------------


async def test_a_browser_on_another_origin_may_call_the_api(real: aiohttp.ClientSession) -> None:
    preflight = {
        "Origin": "http://dashboard.example:8438",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type, authorization",
    }
    for path in (JOBS, f"{JOBS}/j-any/logs", "/api/v1/agent/version"):
        async with real.options(path, headers=preflight) as r:
            assert r.status == 204, (path, await r.text())
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "PUT" in r.headers["Access-Control-Allow-Methods"]
            assert r.headers["Access-Control-Allow-Headers"] == "content-type, authorization"
    async with real.get(JOBS, headers={"Origin": "http://dashboard.example:8438"}) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    async with real.get("/api/v1/orchestrator/nope", headers={"Origin": "http://x"}) as r:
        assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == "*"
    async with real.get(JOBS) as r:  # not a browser: nothing added
        assert "Access-Control-Allow-Origin" not in r.headers
