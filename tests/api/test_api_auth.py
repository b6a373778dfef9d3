"""The REST API with users (API.Auth.Users): 401 and 403 as Bacalhau answers them, the
capability each route needs, the open routes, and the API as it was without users."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import bcrypt
import pytest

from bacalhau.api import ApiServer, Authorizer
from bacalhau.config import ApiUserConfig
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.api.test_api_jobs import spec

JOBS = "/api/v1/orchestrator/jobs"
NODES = "/api/v1/orchestrator/nodes"
READER_PASSWORD = "reader-password"
# Cost 4, the lowest: each check still runs bcrypt, in milliseconds.
READER_HASH = bcrypt.hashpw(READER_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
ADMIN_PASSWORD = "admin-password-plain"
CAPABILITIES = (
    "read:job",
    "write:job",
    "read:node",
    "write:node",
    "read:agent",
    "write:agent",
)


def key_of(capability: str) -> str:
    return f"key-{capability.replace(':', '-').replace('*', 'all')}-0123456789"


def _users() -> list[ApiUserConfig]:
    users = [
        ApiUserConfig(username="reader", password=READER_HASH, actions=("read:*",)),
        ApiUserConfig(username="admin", password=ADMIN_PASSWORD, alias="Admin", actions=("*",)),
        ApiUserConfig(api_key=key_of("write:*"), alias="writer", actions=("write:*",)),
    ]
    # One API-key user per capability, holding it alone.
    users += [
        ApiUserConfig(api_key=key_of(c), alias=f"only-{c}", actions=(c,)) for c in CAPABILITIES
    ]
    return users


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def only(capability: str) -> dict[str, str]:
    return bearer(key_of(capability))


@pytest.fixture
def authorizer() -> Authorizer:
    return Authorizer(_users())


@pytest.fixture
async def secured(
    orch: MemoryOrchestrator, authorizer: Authorizer
) -> AsyncIterator[aiohttp.ClientSession]:
    async with (
        ApiServer(orch, host="127.0.0.1", port=0, authorizer=authorizer) as srv,
        aiohttp.ClientSession(base_url=srv.url) as session,
    ):
        yield session


async def status(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> int:
    async with http.request(method, path, **kw) as resp:
        await resp.read()
        return resp.status


async def refusal(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    assert set(body) >= {"Status", "Message", "RequestID", "Code", "Component", "Hint", "Details"}
    assert body["Status"] == resp.status and body["Component"] == "Authorizer"
    return dict(body)


OPEN_ROUTES = [
    ("GET", "/api/v1/agent/alive"),
    ("GET", "/api/v1/agent/version"),
    ("GET", "/api/v1/agent/authconfig"),
    ("GET", "/api/v1/agent/whoami"),
    ("GET", "/api/v1/livez"),
    ("GET", "/livez"),
    ("GET", "/api/v1/healthz"),
    ("GET", "/healthz"),
    ("GET", "/"),
    ("POST", "/api/v1/version"),
    ("POST", "/version"),
    ("GET", "/api/v1/auth"),
]


@pytest.mark.parametrize(("method", "path"), OPEN_ROUTES)
async def test_liveness_version_and_auth_routes_stay_open(
    secured: aiohttp.ClientSession, method: str, path: str
) -> None:
    kw: dict[str, Any] = {"json": {}} if method == "POST" else {}
    assert await status(secured, method, path, **kw) == 200


async def test_a_request_without_credentials_gets_401_with_a_challenge(
    secured: aiohttp.ClientSession,
) -> None:
    async with secured.get(JOBS) as resp:
        assert resp.status == 401
        assert resp.headers.getall("WWW-Authenticate") == [
            'Basic realm="bacalhau", charset="UTF-8"',
            'Bearer realm="bacalhau"',
        ]
        body = await refusal(resp)
    assert body["Code"] == "Unauthorized"
    assert body["Message"] == "Request Unauthorized: Missing Authorization header"
    assert body["Details"] == {"reason": "Missing Authorization header"}
    assert "BACALHAU_API_KEY" in body["Hint"] and "BACALHAU_API_USERNAME" in body["Hint"]
    # HEAD answers the status and the challenge, without a body.
    async with secured.head(JOBS) as resp:
        assert resp.status == 401 and await resp.read() == b""
        assert resp.headers.getall("WWW-Authenticate")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Digest username=reader", "unsupported authentication method"),
        ("Basic not-base64!", "failed to decode basic auth credentials"),
        (
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "invalid basic auth credentials format",
        ),
        (basic("nobody", READER_PASSWORD)["Authorization"], "invalid basic auth credentials"),
        (basic("reader", "wrong password")["Authorization"], "invalid basic auth credentials"),
        (basic("admin", "wrong password")["Authorization"], "invalid basic auth credentials"),
        ("Bearer ", "empty API key provided"),
        ("Bearer not-a-configured-key-at-all", "invalid API key"),
        # A password is no API key, nor an API key a password.
        (bearer(READER_PASSWORD)["Authorization"], "invalid API key"),
        (basic("writer", key_of("write:*"))["Authorization"], "invalid basic auth credentials"),
    ],
)
async def test_wrong_credentials_get_401_with_bacalhau_reasons(
    secured: aiohttp.ClientSession, header: str, reason: str
) -> None:
    async with secured.get(JOBS, headers={"Authorization": header}) as resp:
        assert resp.status == 401
        body = await refusal(resp)
    assert body["Code"] == "Unauthorized" and body["Details"] == {"reason": reason}


async def test_usernames_match_in_any_case_and_schemes_too(
    secured: aiohttp.ClientSession,
) -> None:
    assert await status(secured, "GET", JOBS, headers=basic("READER", READER_PASSWORD)) == 200
    token = base64.b64encode(b"reader:" + READER_PASSWORD.encode()).decode()
    assert await status(secured, "GET", JOBS, headers={"Authorization": f"basic {token}"}) == 200
    # The password itself is matched exactly.
    assert await status(secured, "GET", JOBS, headers=basic("reader", "READER-PASSWORD")) == 401


async def test_a_user_without_the_capability_gets_403_naming_it(
    secured: aiohttp.ClientSession,
) -> None:
    async with secured.put(
        JOBS, json={"Job": spec()}, headers=basic("reader", READER_PASSWORD)
    ) as resp:
        assert resp.status == 403
        assert "WWW-Authenticate" not in resp.headers
        body = await refusal(resp)
    assert body["Code"] == "Forbidden"
    reason = "user 'reader' does not have the required capability 'write:job'"
    assert body["Message"] == f"Request Forbidden: {reason}"
    assert body["Details"] == {"reason": reason, "RequiredCapability": "write:job"}
    assert "write:job" in body["Hint"]
    # Named by alias when there is one.
    async with secured.get(JOBS, headers=only("read:agent")) as resp:
        assert (await refusal(resp))["Details"]["reason"].startswith("user 'only-read:agent'")


# (method, path, the capability it needs); paths with an ID use one that does not exist:
# a user allowed in gets 404 (or 400), never 401 or 403.
ROUTE_CAPABILITIES = [
    ("GET", JOBS, "read:job"),
    ("PUT", JOBS, "write:job"),
    ("POST", JOBS, "write:job"),
    ("GET", f"{JOBS}/j-missing", "read:job"),
    ("DELETE", f"{JOBS}/j-missing", "write:job"),
    ("GET", f"{JOBS}/j-missing/history", "read:job"),
    ("GET", f"{JOBS}/j-missing/executions", "read:job"),
    ("GET", f"{JOBS}/j-missing/results", "read:job"),
    ("GET", f"{JOBS}/j-missing/versions", "read:job"),
    ("PUT", f"{JOBS}/j-missing/rerun", "write:job"),
    ("GET", f"{JOBS}/j-missing/logs", "read:job"),
    ("GET", NODES, "read:node"),
    ("POST", NODES, "write:node"),
    ("GET", f"{NODES}/n-missing", "read:node"),
    ("PUT", f"{NODES}/n-missing", "write:node"),
    ("GET", "/api/v1/agent/node", "read:agent"),
    ("GET", "/api/v1/agent/debug", "read:agent"),
    ("GET", "/api/v1/agent/config", "read:agent"),
    ("GET", "/api/v1/node_info", "read:agent"),
    ("GET", "/node_info", "read:agent"),
    ("GET", "/api/v1/id", "read:agent"),
    ("GET", "/metrics", "read:agent"),
    ("GET", "/api/v1/compute/debug", "write:node"),
    ("POST", "/api/v1/compute/approve", "write:node"),
    ("POST", "/api/v1/requester/list", "write:node"),
]


@pytest.mark.parametrize(("method", "path", "capability"), ROUTE_CAPABILITIES)
async def test_each_route_needs_its_capability_and_no_other(
    secured: aiohttp.ClientSession, method: str, path: str, capability: str
) -> None:
    kw: dict[str, Any] = {}
    if method in ("PUT", "POST", "DELETE"):
        kw["json"] = {"Job": spec()} if path == JOBS else {}
    allowed = await status(secured, method, path, headers=only(capability), **kw)
    assert allowed not in (401, 403)
    for other in CAPABILITIES:
        if other != capability:
            assert await status(secured, method, path, headers=only(other), **kw) == 403, other
    assert await status(secured, method, path, **kw) == 401
    # The wildcards: * everything, read:* the reads, write:* the writes.
    reading = capability.startswith("read:")
    assert await status(
        secured, method, path, headers=basic("admin", ADMIN_PASSWORD), **kw
    ) not in (
        401,
        403,
    )
    assert (
        await status(secured, method, path, headers=basic("reader", READER_PASSWORD), **kw) == 403
    ) is not reading
    assert (await status(secured, method, path, headers=only("write:*"), **kw) == 403) is reading


async def test_data_routes_read_and_write_jobs(tmp_path: Any, authorizer: Authorizer) -> None:
    from bacalhau.storage import BlockstoreContent
    from bacalhau.storage.cid import Blockstore

    with Blockstore(tmp_path / "blocks") as store:
        async with (
            ApiServer(
                MemoryOrchestrator(),
                host="127.0.0.1",
                port=0,
                authorizer=authorizer,
                content=BlockstoreContent(store, None),
            ) as srv,
            aiohttp.ClientSession(base_url=srv.url) as http,
        ):
            path = "/api/v1/data/bafkqaaa/ls"
            assert await status(http, "GET", path) == 401
            assert await status(http, "GET", path, headers=only("read:node")) == 403
            assert await status(http, "GET", path, headers=only("read:job")) not in (401, 403)
            put = {"data": b"not a car", "headers": only("read:job")}
            assert await status(http, "PUT", "/api/v1/data", **put) == 403
            put["headers"] = only("write:job")
            assert await status(http, "PUT", "/api/v1/data", **put) == 422  # let in: not a CAR


async def test_an_unknown_path_needs_a_known_user_then_answers_404(
    secured: aiohttp.ClientSession,
) -> None:
    assert await status(secured, "GET", "/api/v1/nothing/here") == 401
    assert await status(secured, "GET", "/api/v1/nothing/here", headers=only("read:job")) == 404
    # Written another way, a path reaches the route it matches, checked as that route.
    assert await status(secured, "GET", "/api/v1/auth/../orchestrator/jobs") in (401, 404)
    assert await status(secured, "GET", "/api/v1/agent/alive/x") == 401


async def test_whoami_says_who_the_credentials_are(secured: aiohttp.ClientSession) -> None:
    async with secured.get("/api/v1/agent/whoami") as resp:
        assert await resp.json() == {
            "AuthRequired": True,
            "Methods": ["Basic", "Bearer"],
            "Authenticated": False,
        }
    headers = basic("Reader", READER_PASSWORD)
    async with secured.get("/api/v1/agent/whoami", headers=headers) as resp:
        body = await resp.json()
    assert body["Authenticated"] is True
    assert body["User"] == {
        "Name": "reader",
        "Username": "reader",
        "Alias": "",
        "Method": "Basic",
        "Capabilities": ["read:*"],
    }
    async with secured.get("/api/v1/agent/whoami", headers=only("write:node")) as resp:
        user = (await resp.json())["User"]
    assert user["Name"] == "only-write:node" and user["Method"] == "Bearer"
    # Wrong credentials are said to be wrong, not taken for none.
    headers = basic("reader", "nope")
    assert await status(secured, "GET", "/api/v1/agent/whoami", headers=headers) == 401


async def test_the_auth_endpoints_say_what_bacalhau_v17_says_with_users(
    secured: aiohttp.ClientSession,
) -> None:
    async with secured.get("/api/v1/auth") as resp:
        assert await resp.json() == {"Methods": {}, "NextToken": ""}
    for method in ("GET", "POST"):
        async with secured.request(method, "/api/v1/auth/ClientKey", json={}) as resp:
            assert resp.status == 404
            body = await resp.json()
        assert body["Code"] == "NotFound" and "API key" in body["Message"]
    async with secured.get("/api/v1/agent/authconfig") as resp:
        assert await resp.json() == {"Version": "1.0.0", "Config": {}}


async def test_a_password_is_checked_once_for_many_requests(
    orch: MemoryOrchestrator,
) -> None:
    authorizer = Authorizer(_users())
    async with (
        ApiServer(orch, host="127.0.0.1", port=0, authorizer=authorizer) as srv,
        aiohttp.ClientSession(base_url=srv.url) as http,
    ):
        headers = basic("reader", READER_PASSWORD)
        # Concurrent first requests share one check.
        codes = await asyncio.gather(
            *(status(http, "GET", JOBS, headers=headers) for _ in range(8))
        )
        assert codes == [200] * 8
        assert authorizer.password_checks == 1
        for _ in range(5):
            assert await status(http, "GET", JOBS, headers=headers) == 200
        assert authorizer.password_checks == 1
        # A wrong password is remembered too (a client retrying it costs nothing more).
        wrong = basic("reader", "wrong password")
        for _ in range(3):
            assert await status(http, "GET", JOBS, headers=wrong) == 401
        assert authorizer.password_checks == 2
        # Plain-text passwords and API keys need no bcrypt.
        assert await status(http, "GET", JOBS, headers=basic("admin", ADMIN_PASSWORD)) == 200
        assert await status(http, "GET", JOBS, headers=only("read:job")) == 200
        assert authorizer.password_checks == 2


async def test_a_remembered_check_expires() -> None:
    authorizer = Authorizer(_users(), verified_ttl=0.05)
    header = basic("reader", READER_PASSWORD)["Authorization"]
    assert (await authorizer.authenticate(header)).username == "reader"
    await authorizer.authenticate(header)
    assert authorizer.password_checks == 1
    await asyncio.sleep(0.1)
    await authorizer.authenticate(header)
    assert authorizer.password_checks == 2


async def test_an_unknown_username_costs_a_bcrypt_check_as_a_known_one() -> None:
    authorizer = Authorizer(_users())
    with pytest.raises(Exception, match="invalid basic auth credentials"):
        await authorizer.authenticate(basic("nobody", "whatever")["Authorization"])
    assert authorizer.password_checks == 1


async def test_the_logs_websocket_needs_read_job(
    secured: aiohttp.ClientSession, orch: MemoryOrchestrator
) -> None:
    async with secured.put(JOBS, json={"Job": spec()}, headers=only("write:job")) as resp:
        job_id = (await resp.json())["JobID"]
    path = f"{JOBS}/{job_id}/logs"
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await secured.ws_connect(path)
    assert caught.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await secured.ws_connect(path, headers=only("write:job"))
    assert caught.value.status == 403
    ws = await secured.ws_connect(path, headers=only("read:job"))
    await ws.close()


async def test_without_users_the_api_is_open_as_before(
    orch: MemoryOrchestrator,
) -> None:
    async with (
        ApiServer(orch, host="127.0.0.1", port=0) as srv,
        aiohttp.ClientSession(base_url=srv.url) as http,
    ):
        for method, path, _ in ROUTE_CAPABILITIES:
            kw: dict[str, Any] = {}
            if method in ("PUT", "POST", "DELETE"):
                kw["json"] = {"Job": spec()} if path == JOBS else {}
            assert await status(http, method, path, **kw) not in (401, 403)
        # Credentials sent anyway are not looked at.
        assert await status(http, "GET", JOBS, headers={"Authorization": "Bearer nonsense"}) == 200
        # Bacalhau's /api/v1/auth lists no method to authenticate with; whoami says why.
        async with http.get("/api/v1/auth") as resp:
            assert resp.status == 200 and await resp.json() == {"Methods": {}, "NextToken": ""}
        async with http.post("/api/v1/auth/ClientKey", json={}) as resp:
            assert resp.status == 404 and "asks for no credentials" in await resp.text()
        async with http.get("/api/v1/agent/whoami") as resp:
            assert await resp.json() == {
                "AuthRequired": False,
                "Methods": [],
                "Authenticated": False,
            }
    # No auth middleware: nothing added per request (the metrics and error ones only).
    assert [m.__name__ for m in srv._app.middlewares] == ["metrics_middleware", "error_middleware"]
