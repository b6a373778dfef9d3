"""Hostile and absurd input at the REST edge: refused with 4xx and Bacalhau's error body, never
a 500, never a job that breaks listing or sits pending forever. Against the real orchestrator
(SQLite store) unless the case is about the edge alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bacalhau.api import ApiServer
from bacalhau.models import Job, JobStateType, NodeInfo, NodeType, now_ns
from bacalhau.orchestrator import JobStore, Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.orchestrator.node_view import StaticNodeView

JOBS = "/api/v1/orchestrator/jobs"
ERROR_KEYS = {"Status", "Message", "RequestID", "Code", "Component"}


def noop_job(**over: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}}],
    }
    job.update(over)
    return job


def with_task(**over: Any) -> dict[str, Any]:
    job = noop_job()
    job["Tasks"][0].update(over)
    return job


def raw_body(job: dict[str, Any]) -> bytes:
    # json.dumps escapes lone surrogates as \udXXX (what a client sends), and writes NaN and
    # Infinity as the bare literals Python's decoder accepts.
    return json.dumps({"Job": job}).encode()


async def put_raw(http: aiohttp.ClientSession, body: bytes) -> aiohttp.ClientResponse:
    return await http.put(JOBS, data=body, headers={"Content-Type": "application/json"})


async def error_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    assert resp.content_type == "application/json", await resp.text()
    body = await resp.json()
    assert set(body) >= ERROR_KEYS, body
    assert body["Status"] == resp.status
    return dict(body)


def _info() -> NodeInfo:
    return NodeInfo(node_id="n-hardening", node_type=NodeType.REQUESTER, version="v1.5.2")


@pytest.fixture
async def real(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    async with (
        Orchestrator(
            node_info=_info(),
            data_dir=tmp_path / "req",
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
        ) as o,
        ApiServer(o, host="127.0.0.1", port=0) as srv,
        aiohttp.ClientSession(base_url=srv.url) as session,
    ):
        yield session


# -- defect 1: invalid Unicode -------------------------------------------------------------

SURROGATE_CASES = [
    (noop_job(Name="\ud800"), "Name"),
    (noop_job(Namespace="ns-\udfff"), "Namespace"),
    (noop_job(Labels={"team": "\ud800"}), "Labels.team"),
    (noop_job(Labels={"\ud800": "x"}), "Labels."),
    (noop_job(Meta={"k": "\udc00"}), "Meta.k"),
    (with_task(Env={"A": "\ud800"}), "Tasks[0].Env.A"),
    (with_task(Engine={"Type": "noop", "Params": {"deep": [{"x": "\ud800"}]}}), "Tasks[0]"),
    (noop_job(Extra={"unknown": "\ud800"}), "Extra.unknown"),
]


@pytest.mark.parametrize(("job", "field"), SURROGATE_CASES)
async def test_invalid_unicode_is_refused_naming_the_field(
    real: aiohttp.ClientSession, job: dict[str, Any], field: str
) -> None:
    async with await put_raw(real, raw_body(job)) as r:
        assert r.status == 400, await r.text()
        err = await error_of(r)
    assert err["Code"] == "InvalidJobSpec"
    assert field in err["Details"]["Field"], err
    async with real.get(JOBS) as r:
        assert r.status == 200
        assert (await r.json())["Items"] == []


async def test_a_stored_lone_surrogate_still_lists_describes_and_stops(tmp_path: Path) -> None:
    # A row as an older version stored it, before the edge refused invalid Unicode.
    data_dir = tmp_path / "req"
    data_dir.mkdir()
    store = JobStore(data_dir / "jobs.db")
    bad = Job.from_dict(noop_job(Name="\ud800bad", Labels={"team": "\udc00"}))
    bad.id, bad.namespace, bad.state, bad.revision = (
        "j-0ld5ur0g",
        "default",
        JobStateType.PENDING,
        1,
    )
    bad.create_time = bad.modify_time = now_ns()
    with store.transaction():
        store.create_job(bad)
    store.update_job_state(bad.id, JobStateType.FAILED, message="failed long ago")
    store.close()
    for _ in range(2):  # and again after a restart
        async with (
            Orchestrator(
                node_info=_info(),
                data_dir=data_dir,
                compute=NoComputeNodes(),
                node_view=StaticNodeView(),
            ) as o,
            ApiServer(o, host="127.0.0.1", port=0) as srv,
            aiohttp.ClientSession(base_url=srv.url) as http,
        ):
            async with http.get(JOBS) as r:
                assert r.status == 200, await r.text()
                items = (await r.json())["Items"]
            assert [j["ID"] for j in items] == ["j-0ld5ur0g"]
            assert items[0]["Name"] == "\ufffdbad"
            async with http.get(f"{JOBS}/j-0ld5ur0g") as r:
                assert r.status == 200
            async with http.delete(f"{JOBS}/j-0ld5ur0g", json={"reason": "cleanup"}) as r:
                assert r.status == 200, await r.text()
            async with http.get(JOBS, params={"labels": "team"}) as r:
                assert r.status == 200
                assert [j["ID"] for j in (await r.json())["Items"]] == ["j-0ld5ur0g"]


async def test_a_stop_reason_with_invalid_unicode_cannot_break_the_job(
    real: aiohttp.ClientSession,
) -> None:
    async with real.put(JOBS, json={"Job": noop_job()}) as r:
        job_id = (await r.json())["JobID"]
    body = json.dumps({"reason": "\ud800"}).encode()
    async with real.delete(f"{JOBS}/{job_id}", data=body) as r:
        assert r.status < 500
    for path in (JOBS, f"{JOBS}/{job_id}", f"{JOBS}/{job_id}/history"):
        async with real.get(path) as r:
            assert r.status == 200, (path, await r.text())


# -- defect 3: numbers out of range --------------------------------------------------------

NUMBER_CASES = [
    (noop_job(Priority=1e29), "Priority"),
    (noop_job(Priority=2**63), "Priority"),
    (noop_job(Priority=-1), "Priority"),
    (noop_job(Count=1e30), "Count"),
    (noop_job(Count=1.5), "Count"),
    (noop_job(Count=float("nan")), "Count"),
    (noop_job(Count=float("inf")), "Count"),
    (noop_job(Count=-3), "Count"),
    (with_task(Timeouts={"ExecutionTimeout": 1e30}), "Tasks[0].Timeouts.ExecutionTimeout"),
    (with_task(Timeouts={"TotalTimeout": 2**62}), "Tasks[0].Timeouts.TotalTimeout"),
    (with_task(Timeouts={"QueueTimeout": -1}), "Tasks[0].Timeouts.QueueTimeout"),
    (with_task(Timeouts={"ExecutionTimeout": float("-inf")}), "Timeouts.ExecutionTimeout"),
    (with_task(Resources={"Memory": "9" * 400}), "Tasks[0].Resources.Memory"),
    (with_task(Resources={"Disk": "20eb"}), "Tasks[0].Resources.Disk"),
    (with_task(Resources={"Disk": "9" * 30 + "pb"}), "Tasks[0].Resources.Disk"),
    (with_task(Resources={"CPU": "9" * 400}), "Tasks[0].Resources.CPU"),
    (with_task(Resources={"GPU": "9" * 30}), "Tasks[0].Resources.GPU"),
    (with_task(Engine={"Type": "noop", "Params": {"n": 10**30}}), "Tasks[0].Engine.Params.n"),
    (with_task(Engine={"Type": "noop", "Params": {"n": float("nan")}}), "Engine.Params.n"),
]


@pytest.mark.parametrize(("job", "field"), NUMBER_CASES)
async def test_numbers_out_of_range_are_refused_naming_the_field(
    real: aiohttp.ClientSession, job: dict[str, Any], field: str
) -> None:
    async with await put_raw(real, raw_body(job)) as r:
        assert r.status == 400, await r.text()
        err = await error_of(r)
    assert err["Code"] == "InvalidJobSpec"
    assert field in err["Details"]["Field"], err


# -- defect 4: client errors are 4xx -------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
async def test_deep_nesting_is_a_400(real: aiohttp.ClientSession, depth: int) -> None:
    # Built as text: the encoder would hit the recursion limit first.
    inner = '{"a":' * depth + '"leaf"' + "}" * depth
    params = '{"Type":"noop","Params":{"x":' + inner + "}}"
    body = '{"Job":{"Type":"batch","Tasks":[{"Name":"main","Engine":' + params + "}]}}"
    async with await put_raw(real, body.encode()) as r:
        assert r.status == 400, await r.text()
        await error_of(r)


async def test_ambiguous_prefix_and_stopping_a_finished_job_on_the_real_store(
    real: aiohttp.ClientSession, tmp_path: Path
) -> None:
    for _ in range(2):
        async with real.put(JOBS, json={"Job": noop_job()}) as r:
            assert r.status == 200
    async with real.get(f"{JOBS}/j-") as r:
        assert r.status == 400
        err = await error_of(r)
    assert err["Code"] == "MultipleJobsFound" and err["Hint"]
    for suffix in ("/history", "/executions", "/results"):
        async with real.get(f"{JOBS}/j-{suffix}") as r:
            assert r.status == 400, suffix
    async with real.delete(f"{JOBS}/j-") as r:
        assert r.status == 400


async def test_stopping_a_completed_job_is_a_conflict() -> None:
    orch = MemoryOrchestrator()
    async with (
        ApiServer(orch, host="127.0.0.1", port=0) as srv,
        aiohttp.ClientSession(base_url=srv.url) as http,
    ):
        async with http.put(JOBS, json={"Job": noop_job()}) as r:
            job_id = (await r.json())["JobID"]
        ex = await orch.start_execution(job_id)
        await orch.complete_execution(ex, stdout="done\n")
        async with http.delete(f"{JOBS}/{job_id}") as r:
            assert r.status == 409
            err = await error_of(r)
    assert err["Code"] == "ConflictJobState"
    assert "Completed" in err["Message"]


async def _raw_http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET " + JOBS.encode() + b"?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET " + JOBS.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
        b"GET " + JOBS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ],
    ids=["long-url", "long-header", "bad-content-length", "tls-on-http"],
)
async def test_protocol_errors_answer_with_the_error_body(
    request_bytes: bytes, request: pytest.FixtureRequest
) -> None:
    async with ApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0) as srv:
        status, headers, body = await _raw_http(srv.port, request_bytes)
    assert 400 <= status < 500
    case = request.node.callspec.id
    if case in ("long-url", "long-header"):
        # HTTP's own statuses, and our words rather than the parser's buffer.
        assert status == (414 if case == "long-url" else 431)
        assert b"aaaa" not in body and b"bbbb" not in body
    assert headers["content-type"].startswith("application/json")
    err = json.loads(body)
    assert set(err) >= ERROR_KEYS and err["Status"] == status
    assert err["Component"] == "APIServer" and err["Hint"]


# -- defect 5: job size cap and paging -----------------------------------------------------


async def test_a_job_over_max_job_size_is_a_413_with_the_error_body(tmp_path: Path) -> None:
    async with (
        Orchestrator(
            node_info=_info(),
            data_dir=tmp_path,
            compute=NoComputeNodes(),
            node_view=StaticNodeView(),
        ) as o,
        ApiServer(o, host="127.0.0.1", port=0, max_job_size=64 * 1024) as srv,
        aiohttp.ClientSession(base_url=srv.url) as http,
    ):
        big = with_task(Env={"BLOB": "x" * 70_000})
        async with http.put(JOBS, json={"Job": big}) as r:
            assert r.status == 413
            err = await error_of(r)
        assert err["Code"] == "RequestEntityTooLarge"
        assert "65536" in err["Message"] and "max_job_size" in err["Hint"]
        small = with_task(Env={"BLOB": "x" * 30_000})
        async with http.put(JOBS, json={"Job": small}) as r:
            assert r.status == 200


async def test_the_default_cap_is_4_mib(real: aiohttp.ClientSession) -> None:
    big = with_task(Env={"BLOB": "x" * (4 * 1024 * 1024)})
    async with real.put(JOBS, json={"Job": big}) as r:
        assert r.status == 413
        await error_of(r)


async def _pages(
    http: aiohttp.ClientSession, params: dict[str, str]
) -> tuple[list[list[str]], list[str]]:
    pages: list[list[str]] = []
    tokens: list[str] = []
    query = dict(params)
    while True:
        async with http.get(JOBS, params=query) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        pages.append([j["Name"] for j in body["Items"]])
        if not body["NextToken"]:
            return pages, tokens
        tokens.append(body["NextToken"])
        # Like the Go CLI: the same filters again, with the token (which overrides the order).
        query = {**params, "next_token": body["NextToken"]}


async def test_keyset_paging_is_stable_while_jobs_arrive(real: aiohttp.ClientSession) -> None:
    for i in range(5):
        labels = {"parity": "even" if i % 2 == 0 else "odd"}
        async with real.put(JOBS, json={"Job": noop_job(Name=f"job{i}", Labels=labels)}) as r:
            assert r.status == 200
    pages, _ = await _pages(real, {"limit": "2"})
    assert pages == [["job0", "job1"], ["job2", "job3"], ["job4"]]
    pages, _ = await _pages(real, {"limit": "2", "reverse": "true"})
    assert pages == [["job4", "job3"], ["job2", "job1"], ["job0"]]
    pages, _ = await _pages(real, {"limit": "2", "labels": "parity=even"})
    assert pages == [["job0", "job2"], ["job4"]]
    pages, _ = await _pages(real, {"limit": "2", "order_by": "id"})
    assert sorted(name for page in pages for name in page) == [f"job{i}" for i in range(5)]
    # A job submitted between two pages does not shift the next page (an offset would).
    async with real.get(JOBS, params={"limit": "2", "reverse": "true"}) as r:
        token = (await r.json())["NextToken"]
    async with real.put(JOBS, json={"Job": noop_job(Name="late")}) as r:
        assert r.status == 200
    async with real.get(JOBS, params={"next_token": token}) as r:
        assert [j["Name"] for j in (await r.json())["Items"]] == ["job2", "job1"]


async def test_paging_tokens_of_older_versions_still_work(real: aiohttp.ClientSession) -> None:
    import base64

    for i in range(3):
        async with real.put(JOBS, json={"Job": noop_job(Name=f"job{i}")}) as r:
            assert r.status == 200
    legacy = base64.urlsafe_b64encode(b"created_at:N:2:1").rstrip(b"=").decode()
    async with real.get(JOBS, params={"next_token": legacy}) as r:
        assert [j["Name"] for j in (await r.json())["Items"]] == ["job1", "job2"]
    for bad in ("not-base64!", "Zm9v", legacy + "xx"):
        async with real.get(JOBS, params={"next_token": bad}) as r:
            assert r.status == 400
            assert (await error_of(r))["Details"]["Field"] == "next_token"
