"""Node endpoints (both spellings, both update routes), agent endpoints and legacy paths."""

from __future__ import annotations

import base64
import json

import aiohttp

from bacalhau.api._agent import redact
from bacalhau.models import ComputeNodeInfo, Membership, NodeInfo, NodeState, NodeType, Resources
from tests.api.memory_orchestrator import MemoryOrchestrator

NODES = "/api/v1/orchestrator/nodes"


def add_compute(orch: MemoryOrchestrator, node_id: str, cpu: float, **labels: str) -> None:
    info = NodeInfo(
        node_id=node_id,
        node_type=NodeType.COMPUTE,
        labels=dict(labels),
        compute=ComputeNodeInfo(
            execution_engines=["docker", "wasm"],
            available_capacity=Resources(cpu=cpu, memory=10**9),
            max_capacity=Resources(cpu=cpu, memory=10**9),
        ),
    )
    orch.add_node(NodeState(info=info, membership=Membership.PENDING))


async def test_list_nodes_both_keys_sorting_and_filters(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    add_compute(orch, "n-c1", 4, zone="a")
    add_compute(orch, "n-c2", 2, zone="b")
    async with http.get(NODES) as r:
        body = await r.json()
    assert body["Nodes"] == body["nodes"] and body["NextToken"] == ""
    assert [n["Info"]["NodeID"] for n in body["Nodes"]] == ["n-c1", "n-c2", "n-memory-requester"]
    node = body["Nodes"][0]
    assert node["Membership"] == "PENDING" and node["Connection"] == "CONNECTED"
    assert node["ConnectionState"]["Status"] == "CONNECTED"  # Bacalhau v1.6+'s place
    assert node["Info"]["ComputeNodeInfo"]["ExecutionEngines"] == ["docker", "wasm"]
    # Capacity sorts the most free first, as Bacalhau's does; reverse, the fullest.
    async with http.get(NODES, params={"order_by": "available_cpu"}) as r:
        ids = [n["Info"]["NodeID"] for n in (await r.json())["Nodes"]]
    assert ids == ["n-c1", "n-c2", "n-memory-requester"]
    async with http.get(NODES, params={"order_by": "available_cpu", "reverse": "true"}) as r:
        ids = [n["Info"]["NodeID"] for n in (await r.json())["Nodes"]]
    assert ids == ["n-memory-requester", "n-c2", "n-c1"]
    async with http.get(NODES, params={"filter_approval": "approved"}) as r:
        assert [n["Info"]["NodeID"] for n in (await r.json())["nodes"]] == ["n-memory-requester"]
    async with http.get(NODES, params={"filter-approval": "PENDING", "labels": "zone=b"}) as r:
        assert [n["Info"]["NodeID"] for n in (await r.json())["Nodes"]] == ["n-c2"]
    async with http.get(NODES, params={"filter-status": "disconnected"}) as r:
        assert (await r.json())["Nodes"] == []
    async with http.get(NODES, params={"limit": "1"}) as r:
        assert len((await r.json())["Nodes"]) == 1
    for params in ({"order_by": "name"}, {"filter-approval": "MAYBE"}, {"labels": "!"}):
        async with http.get(NODES, params=params) as r:
            assert r.status == 400, params
            assert (await r.json())["Code"] == "BadRequest"


async def test_get_and_update_node(http: aiohttp.ClientSession, orch: MemoryOrchestrator) -> None:
    add_compute(orch, "n-c1", 4)
    async with http.get(f"{NODES}/n-c") as r:
        body = await r.json()
    assert body["Node"] == body["node"] and body["Node"]["Info"]["NodeID"] == "n-c1"
    async with http.get(f"{NODES}/n-zzz") as r:
        assert r.status == 404 and (await r.json())["Code"] == "NotFound"
    async with http.put(f"{NODES}/n-c1", json={"NodeID": "n-c1", "Action": "approve"}) as r:
        assert await r.json() == {"Success": True, "Error": "", "success": True, "error": ""}
    assert (await orch.get_node("n-c1")).membership == Membership.APPROVED
    # The Python SDK's route and spellings.
    async with http.post(NODES, json={"nodeID": "n-c1", "action": "reject", "message": "m"}) as r:
        assert (await r.json())["success"] is True
    assert (await orch.get_node("n-c1")).membership == Membership.REJECTED
    async with http.post(NODES, json={"nodeID": "n-c1", "action": "dance"}) as r:
        assert r.status == 200
        assert await r.json() == {
            "Success": False,
            "Error": "unsupported action",
            "success": False,
            "error": "unsupported action",
        }
    async with http.post(NODES, json={"nodeID": "n-none", "action": "approve"}) as r:
        body = await r.json()
    assert r.status == 200 and body["Success"] is False and "n-none" in body["Error"]
    async with http.post(NODES, data=b"[") as r:
        assert r.status == 400


async def test_agent_endpoints(any_http: aiohttp.ClientSession) -> None:
    http = any_http
    async with http.get("/api/v1/agent/alive") as r:
        assert await r.json() == {"Status": "OK"}
    async with http.get("/api/v1/agent/version") as r:
        version = await r.json()
    assert version["GitVersion"] == "v1.5.2" and version["Major"] == "1"
    assert {"GitCommit", "BuildDate", "GOOS", "GOARCH"} <= set(version)
    for legacy in ("/", "/version"):  # Bacalhau v1.9 redirects both to the agent's
        async with http.get(legacy) as r:
            assert await r.json() == version
    async with http.post("/api/v1/version", json={"client_id": "abc"}) as r:
        assert (await r.json()) == {"build_version_info": version}
    for path in ("/api/v1/agent/node", "/api/v1/node_info", "/node_info"):
        async with http.get(path) as r:
            node = await r.json()
        assert node["NodeType"] == "Requester"  # NodeInfo keys at the top (Python SDK)
        assert node["Info"]["NodeID"] == node["NodeID"]  # and a NodeState (Go)
        assert node["Membership"] == "APPROVED" and node["Connection"] == "CONNECTED"
    async with http.get("/api/v1/livez") as r:
        assert await r.text() == "OK" and r.content_type == "text/plain"
    async with http.get("/livez") as r:
        assert await r.text() == "OK"
    async with http.get("/api/v1/id") as r:
        assert (await r.text()) == node["NodeID"]
    async with http.get("/api/v1/healthz") as r:
        free = (await r.json())["FreeSpace"]
    assert free["root"]["All"] >= free["root"]["Free"] > 0 and "tmp" in free
    async with http.get("/api/v1/agent/debug") as r:
        assert isinstance(await r.json(), dict)
    for method in ("GET", "POST"):
        async with http.request(method, "/api/v1/compute/debug") as r:
            assert r.status == 200


async def test_agent_config_redacts_secrets(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/agent/config") as r:
        config = (await r.json())["config"]
    assert config["API"]["Port"] == 1234
    assert config["Orchestrator"]["Auth"]["Token"] == "<redacted>"


async def test_legacy_requester_api_is_gone(http: aiohttp.ClientSession) -> None:
    for method, path in (
        ("POST", "/api/v1/requester/list"),
        ("POST", "/api/v1/requester/submit"),
        ("GET", "/api/v1/requester/websocket/events"),
        ("POST", "/requester/states"),
    ):
        async with http.request(method, path) as r:
            assert r.status == 410, path
            message = await r.json()
        assert isinstance(message, str) and "migration" in message


async def test_head_errors_have_no_body(http: aiohttp.ClientSession) -> None:
    async with http.head("/api/v1/orchestrator/jobs/j-none") as r:
        assert r.status == 404
        assert await r.read() == b""


async def _node_pages(http: aiohttp.ClientSession, **params: str) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        query = {"next_token": token} if token else params
        async with http.get(NODES, params=query) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        pages.append([n["Info"]["NodeID"] for n in body["Nodes"]])
        token = body["NextToken"]
        if not token:
            return pages
        assert len(pages) < 10


async def test_node_list_pages_go_on_with_their_token(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    """A page cut by limit answers a NextToken that goes on in its order and size (Bacalhau's
    is always empty, and its CLI takes --next-token)."""
    for i, cpu in enumerate([3, 1, 2, 5]):
        add_compute(orch, f"n-c{i}", cpu)
    everyone = ["n-c0", "n-c1", "n-c2", "n-c3", "n-memory-requester"]
    assert await _node_pages(http) == [everyone]
    assert await _node_pages(http, limit="2") == [everyone[:2], everyone[2:4], everyone[4:]]
    # By a number, largest first (the requester has no capacity: 0 CPUs).
    assert await _node_pages(http, limit="3", order_by="available_cpu") == [
        ["n-c3", "n-c0", "n-c2"],
        ["n-c1", "n-memory-requester"],
    ]
    # A node that joins between pages is listed once, where its order puts it.
    async with http.get(NODES, params={"limit": "2"}) as r:
        token = (await r.json())["NextToken"]
    add_compute(orch, "n-a-early", 1)  # sorts before the first page's end: not listed again
    add_compute(orch, "n-d-late", 1)
    async with http.get(NODES, params={"next_token": token}) as r:
        rest = [n["Info"]["NodeID"] for n in (await r.json())["Nodes"]]
    assert rest == ["n-c2", "n-c3"]


async def test_a_node_list_token_it_did_not_make_is_a_400_naming_the_field(
    http: aiohttp.ClientSession,
) -> None:
    def token(*parts: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")

    for bad in (
        "junk",
        token("id", False, 2, "n-c1"),  # four parts
        token("name", False, 2, "x", "n-c1"),  # not an order
        token("available_cpu", False, 2, "three", "n-c1"),  # text for a number
        token("id", False, 2, 5, "n-c1"),  # a number for text
        token("id", "no", 2, "n", "n-c1"),
        token("id", False, 0, "n", "n-c1"),
    ):
        async with http.get(NODES, params={"next_token": bad}) as r:
            assert r.status == 400, bad
            body = await r.json()
        assert body["Details"]["Field"] == "next_token", body


def test_secrets_in_urls_are_redacted() -> None:
    """A probe's or a hook's URL may carry a credential: its user part's password and the
    query parameters that name one are redacted; the rest of the URL stays readable."""
    config = {
        "JobAdmissionControl": {"ProbeHTTP": "https://probe.example/ok?token=s3cret&zone=eu"},
        "Hooks": [
            "https://alice:pa55@hooks.example:8443/approve",
            "https://hooks.example/x?X-Amz-Signature=abc&X-Amz-Date=20261203",
            "https://maps.example/api?key=k3y&q=1",
        ],
        "Plain": "not a url, token=visible",
        "Broken": "http://[::1/x?token=1",
    }
    out = redact(config)
    assert out["JobAdmissionControl"]["ProbeHTTP"] == (
        "https://probe.example/ok?token=<redacted>&zone=eu"
    )
    assert out["Hooks"] == [
        "https://alice:<redacted>@hooks.example:8443/approve",
        "https://hooks.example/x?X-Amz-Signature=<redacted>&X-Amz-Date=20261203",
        "https://maps.example/api?key=<redacted>&q=1",
    ]
    assert out["Plain"] == config["Plain"]  # not a URL: left as it is
    assert out["Broken"] == "<redacted>"  # a URL that does not parse: not shown at all
    assert "s3cret" not in repr(out) and "pa55" not in repr(out)


async def test_a_node_update_message_that_is_not_unicode_is_refused_clearly(
    http: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    add_compute(orch, "n-c1", 4)
    for method, path, body in (
        ("PUT", f"{NODES}/n-c1", '{"Action": "reject", "Message": "\\ud800"}'),
        ("POST", NODES, '{"nodeID": "n-c1", "action": "approve", "message": "a\\udfffb"}'),
    ):
        async with http.request(
            method, path, data=body, headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400, await r.text()
            err = await r.json()
        assert err["Code"] == "BadRequest", err
        assert err["Details"]["Field"].lower() == "message"
        assert "lone UTF-16 surrogate" in err["Message"]


async def test_every_answer_carries_a_request_id(http: aiohttp.ClientSession) -> None:
    """As Bacalhau's request-ID middleware: the caller's own, else one made for it."""
    seen = set()
    for path in ("/api/v1/agent/alive", "/api/v1/orchestrator/jobs", "/api/v1/agent/nope"):
        async with http.get(path) as r:
            seen.add(r.headers["X-Request-ID"])
    assert len(seen) == 3 and all(seen)
    async with http.get("/api/v1/agent/alive", headers={"X-Request-ID": "mine-1"}) as r:
        assert r.headers["X-Request-ID"] == "mine-1"
