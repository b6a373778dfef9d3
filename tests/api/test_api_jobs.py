"""Job endpoints: shapes, errors, paging, stop rules, executions, results."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bacalhau.api import ApiServer
from bacalhau.models import SpecConfig
from tests.api.memory_orchestrator import MemoryOrchestrator

JOBS = "/api/v1/orchestrator/jobs"


def spec(**over: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.37.0"}},
                "Publisher": {"Type": "local"},
            }
        ],
    }
    job.update(over)
    return job


async def submit(http: aiohttp.ClientSession, **over: Any) -> str:
    async with http.put(JOBS, json={"Job": spec(**over)}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["JobID"])


async def error_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    assert set(body) >= {"Status", "Message", "RequestID", "Code", "Component"}
    assert body["Status"] == resp.status
    return dict(body)


async def test_submit_get_list_on_both_orchestrators(any_http: aiohttp.ClientSession) -> None:
    http = any_http
    async with http.put(JOBS, json={"Job": spec(Name="first", Labels={"team": "a"})}) as r:
        assert r.status == 200
        body = await r.json()
    assert set(body) == {"JobID", "EvaluationID", "Warnings"}
    job_id = body["JobID"]
    assert job_id.startswith("j-") and body["EvaluationID"]
    async with http.post(JOBS, json={"Job": spec(Name="second")}) as r:
        assert r.status == 200
    async with http.get(f"{JOBS}/{job_id[:8]}", params={"include": "history,executions"}) as r:
        assert r.status == 200
        got = await r.json()
    assert got["Job"]["ID"] == job_id
    assert got["Job"]["Name"] == "first"
    assert isinstance(got["Job"]["State"]["StateType"], str)
    assert isinstance(got["Job"]["CreateTime"], int)
    assert got["History"]["Items"][0]["JobState"]["New"] == "Pending"
    assert got["History"]["Items"][0]["SeqNum"] >= 1
    assert isinstance(got["Executions"]["Items"], list)
    async with http.get(f"{JOBS}/{job_id}") as r:
        plain = await r.json()
    assert "History" not in plain and "Executions" not in plain
    async with http.get(JOBS, params={"labels": "team=a"}) as r:
        listed = await r.json()
    assert [j["ID"] for j in listed["Items"]] == [job_id]
    assert listed["NextToken"] == ""


_BUCKET = "Tasks[0].Publisher.Params.Bucket"


def _with_task(**fields: Any) -> dict[str, Any]:
    """A valid job whose task has ``fields`` as well."""
    job = spec()
    job["Tasks"] = [{**job["Tasks"][0], **fields}]
    return job


async def test_invalid_specs_answer_400_naming_the_field(any_http: aiohttp.ClientSession) -> None:
    http = any_http
    cases = [
        ({"Job": spec(Type="")}, "Type"),
        ({"Job": spec(Type="nightly")}, "Type"),
        ({"Job": spec(Count=-1)}, "Count"),
        ({"Job": spec(Tasks=[])}, "Tasks"),
        ({"Job": spec(Tasks=[{"Name": "main", "Engine": {"Type": "docker"}}])}, "Tasks[0]"),
        ({"Job": spec(Tasks="oops")}, "Tasks"),
        ({"Job": spec(Labels=["x"])}, "Labels"),
        ({}, "Job"),
        # What a node would only refuse when it bids (and the job then fails for want of
        # nodes): an s3 publisher or input without its bucket.
        ({"Job": _with_task(Publisher={"Type": "s3", "Params": {"Key": "k"}})}, _BUCKET),
        (
            {"Job": _with_task(Publisher={"Type": "S3", "Params": {"Bucket": " ", "Key": "k"}})},
            _BUCKET,
        ),
        (
            {"Job": _with_task(Publisher={"Type": "s3", "Params": {"Bucket": "b"}})},
            "Tasks[0].Publisher.Params.Key",
        ),
        (
            {
                "Job": _with_task(
                    InputSources=[
                        {"Target": "/in", "Source": {"Type": "s3", "Params": {"Key": "k"}}}
                    ]
                )
            },
            "Tasks[0].InputSources[0].Source.Params.Bucket",
        ),
        *(
            (
                {
                    "Job": _with_task(
                        InputSources=[
                            {"Target": "/in", "Source": {"Type": "urlDownload", "Params": url}}
                        ]
                    )
                },
                "Tasks[0].InputSources[0].Source.Params.URL",
            )
            for url in ({}, {"URL": "https://"}, {"URL": "ftp://h/x"}, {"URL": "http://a b/x"})
        ),
        *(
            (
                {"Job": _with_task(Network={"Type": "HTTP", "Domains": ["example.com", bad]})},
                "Tasks[0].Network.Domains[1]",
            )
            for bad in ("", "*", "bad domain!", "a..b", "http://example.com")
        ),
        # An s3 input partitioned in a way that does not exist (Bacalhau v1.7's Partition).
        (
            {
                "Job": _with_task(
                    InputSources=[
                        {
                            "Target": "/in",
                            "Source": {
                                "Type": "s3",
                                "Params": {"Bucket": "b", "Partition": {"Type": "bucket"}},
                            },
                        }
                    ]
                )
            },
            "Tasks[0].InputSources[0].Source.Params.Partition.Type",
        ),
        (
            {
                "Job": _with_task(
                    Publisher={
                        "Type": "s3",
                        "Params": {"Bucket": "b", "Key": "k", "Encoding": "zip"},
                    }
                )
            },
            "Tasks[0].Publisher.Params.Encoding",
        ),
        # An image the engine would refuse as a name at every node's bid.
        *(
            (
                {"Job": _with_task(Engine={"Type": "docker", "Params": {"Image": image}})},
                "Tasks[0].Engine.Params.Image",
            )
            for image in ("Ubuntu", "ubuntu:", "a b", "img@sha256:abc", "127.0.0.1:1/UP/x")
        ),
    ]
    for body, field in cases:
        async with http.put(JOBS, json=body) as r:
            assert r.status == 400, (body, await r.text())
            err = await error_of(r)
        assert err["Code"] == "InvalidJobSpec", err
        assert err["Details"]["Field"].startswith(field), err
        assert err["Hint"]


async def test_malformed_bodies_are_400_with_a_hint(http: aiohttp.ClientSession) -> None:
    for raw in (b"{not json", b"[1, 2]", b"", b"\xff\xfe"):
        async with http.put(JOBS, data=raw, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400, raw
            err = await error_of(r)
        assert err["Code"] == "BadRequest"
        assert err["Hint"]


async def test_not_found_error_body_and_request_id(any_http: aiohttp.ClientSession) -> None:
    async with any_http.get(f"{JOBS}/j-nope", headers={"X-Request-ID": "req-42"}) as r:
        assert r.status == 404
        err = await error_of(r)
        assert r.headers["X-Request-ID"] == "req-42"
    assert err["Code"] == "NotFound"
    assert err["RequestID"] == "req-42"
    assert "j-nope" in err["Message"]
    async with any_http.get("/api/v1/no/such/route") as r:
        assert r.status == 404
        assert (await error_of(r))["Component"] == "APIServer"
    async with any_http.patch(JOBS) as r:
        assert r.status == 405
        assert (await error_of(r))["Code"] == "MethodNotAllowed"


async def test_ambiguous_prefix_is_an_error(http: aiohttp.ClientSession) -> None:
    await submit(http)
    await submit(http)
    async with http.get(f"{JOBS}/j-") as r:
        err = await error_of(r)
    assert r.status == 400 and err["Code"] == "MultipleJobsFound"
    assert err["Hint"] == "Use full job ID"


async def test_list_paging_sorting_and_filters(any_http: aiohttp.ClientSession) -> None:
    http = any_http
    ids = [await submit(http, Name=f"job{i}", Labels={"n": str(i)}) for i in range(5)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"limit": "2", "next_token": token} if token else {"limit": "2"}
        async with http.get(JOBS, params=params) as r:
            assert r.status == 200
            page = await r.json()
        pages += 1
        seen += [j["ID"] for j in page["Items"]]
        token = page["NextToken"]
        if not token:
            break
    assert seen == ids and pages == 3
    # The Python SDK's spelling of booleans and its empty parameters.
    params = {"limit": "5", "next_token": "", "reverse": "True", "order_by": "created_at"}
    async with http.get(JOBS, params=params) as r:
        assert [j["ID"] for j in (await r.json())["Items"]] == ids[::-1]
    async with http.get(JOBS, params={"order_by": "id"}) as r:
        assert r.status == 200
        assert [j["ID"] for j in (await r.json())["Items"]] == sorted(ids)
    async with http.get(JOBS, params=[("labels", "n in (1,3)"), ("labels", "n!=3")]) as r:
        assert [j["ID"] for j in (await r.json())["Items"]] == [ids[1]]
    # k8s semantics: != matches jobs without the label (the Go CLI's default filter).
    async with http.get(JOBS, params={"labels": "bacalhau_canary != true"}) as r:
        assert len((await r.json())["Items"]) == 5
    async with http.get(JOBS, params={"namespace": "elsewhere"}) as r:
        assert (await r.json())["Items"] == []
    async with http.get(JOBS, params={"namespace": "*", "limit": "0"}) as r:
        assert len((await r.json())["Items"]) == 5
    for params, field in (
        ({"order_by": "name"}, "order_by"),
        ({"reverse": "maybe"}, "reverse"),
        ({"limit": "-1"}, "limit"),
        ({"next_token": "!!!"}, "next_token"),
        ({"labels": "a in (b"}, "labels"),
    ):
        async with http.get(JOBS, params=params) as r:
            assert r.status == 400, params
            err = await error_of(r)
        assert err["Details"]["Field"] == field


async def test_submit_namespace_idempotency_and_client_meta(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    body = {"Job": spec(), "namespace": "team-a", "idempotencyToken": "tok-1"}
    headers = {"X-Bacalhau-InstallationID": "inst-1", "X-Bacalhau-InstanceID": "run-2"}
    async with http.put(JOBS, json=body, headers=headers) as r:
        first = await r.json()
    async with http.put(JOBS, json=body) as r:
        again = await r.json()
    assert first == again
    job = await orch.get_job(first["JobID"])
    assert job.namespace == "team-a"
    assert job.meta["bacalhau.org/client.installation.id"] == "inst-1"
    assert job.meta["bacalhau.org/client.instance.id"] == "run-2"


async def test_submit_accepts_any_key_casing_and_reports_warnings(
    http: aiohttp.ClientSession,
) -> None:
    job = {k.lower(): v for k, v in spec(ID="j-mine", Meta={"bacalhau.org/x": "1"}).items()}
    async with http.put(JOBS, json={"job": job}) as r:
        assert r.status == 200, await r.text()
        warnings = (await r.json())["Warnings"]
    assert any("job ID is ignored" in w for w in warnings)
    assert any("reserved" in w for w in warnings)


async def test_stop_reads_body_then_query_and_follows_state_rules(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    a = await submit(http)
    async with http.delete(f"{JOBS}/{a}", json={"reason": "from body"}) as r:
        assert r.status == 200
        assert (await r.json())["EvaluationID"]
    assert (await orch.get_job(a)).state_message == "from body"
    async with http.delete(f"{JOBS}/{a}") as r:
        assert (await r.json()) == {"EvaluationID": ""}  # already stopped
    b = await submit(http)
    async with http.delete(f"{JOBS}/{b}", params={"reason": "from query"}, json={}) as r:
        assert r.status == 200
    assert (await orch.get_job(b)).state_message == "from query"
    c = await submit(http)
    async with http.delete(f"{JOBS}/{c}", params={"reason": "None"}, data=b"{}") as r:
        assert r.status == 200
    assert (await orch.get_job(c)).state_message == "stopped by user"
    d = await submit(http)
    ex = await orch.start_execution(d)
    await orch.complete_execution(ex, stdout="hi\n")
    async with http.delete(f"{JOBS}/{d}") as r:
        assert r.status == 409
        err = await error_of(r)
    assert err["Code"] == "ConflictJobState"
    async with http.delete(f"{JOBS}/{d}", data=b"{oops") as r:
        assert r.status == 400


async def test_executions_results_and_state_numbering(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    job_id = await submit(http)
    first = await orch.start_execution(job_id, node_id="n-one")
    await orch.fail_execution(first, "boom")
    job2 = await submit(http)
    ex = await orch.start_execution(job2, node_id="n-two")
    url = "http://127.0.0.1:6001/x.tar.gz?a=1&b=2"
    await orch.complete_execution(
        ex, stdout="hello\n", published=SpecConfig("urlDownload", {"URL": url})
    )
    async with http.get(f"{JOBS}/{job2}/executions", params={"order_by": "", "limit": "5"}) as r:
        items = (await r.json())["Items"]
    assert len(items) == 1 and "Job" not in items[0]
    assert items[0]["ComputeState"]["StateType"] == 7  # Completed, 0-9 numbering (Python SDK)
    assert items[0]["DesiredState"]["StateType"] == 2
    assert items[0]["RunOutput"]["Stdout"] == "hello\n"
    assert items[0]["RunOutput"]["stderr"] == ""
    headers = {"X-Bacalhau-Git-Version": "v1.5.2"}
    async with http.get(f"{JOBS}/{job2}/executions", headers=headers) as r:
        assert (await r.json())["Items"][0]["ComputeState"]["StateType"] == 9
    async with http.get(f"{JOBS}/{job_id}/executions") as r:
        assert (await r.json())["Items"][0]["ComputeState"]["StateType"] == 8  # Failed
    for order in ("created_at", "create_time", "modified_at", "modify_time", "id", "state"):
        async with http.get(f"{JOBS}/{job2}/executions", params={"order_by": order}) as r:
            assert r.status == 200, order
    async with http.get(f"{JOBS}/{job2}/executions", params={"order_by": "node"}) as r:
        assert r.status == 400
    async with http.get(f"{JOBS}/{job2}/results") as r:
        text = await r.text()
    assert json.loads(text) == {
        "Items": [{"Type": "urlDownload", "Params": {"URL": url}}],
        "NextToken": "",
    }
    assert "&" in text  # not HTML-escaped
    async with http.get(f"{JOBS}/{job_id}/results") as r:
        assert (await r.json())["Items"] == []


async def test_client_meta_headers_that_are_not_utf8_are_kept_as_replacement_characters(
    server: ApiServer, orch: MemoryOrchestrator
) -> None:
    """Header bytes that are not UTF-8 must not make a job that no compute node can be sent;
    they are kept as U+FFFD, as Bacalhau's JSON writes them."""
    url = urlsplit(server.url)
    body = json.dumps({"Job": spec()}).encode()
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"PUT /api/v1/orchestrator/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nX-Bacalhau-InstanceID: run-\xff\xfe\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    job = await orch.get_job(json.loads(payload)["JobID"])
    assert job.meta["bacalhau.org/client.instance.id"] == "run-\ufffd\ufffd"
    json.dumps(job.meta, ensure_ascii=False).encode("utf-8")  # storable as it is
