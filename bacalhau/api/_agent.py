"""Agent, version and health endpoints, and the legacy paths of Bacalhau's first API."""

from __future__ import annotations

import platform
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from bacalhau.api._context import ApiContext, context
from bacalhau.api._errors import dumps, json_response
from bacalhau.api._query import body_str, read_object
from bacalhau.models import NodeInfo, rfc3339_ns

#: The v1 API version this server speaks, reported when the node does not name its own.
WIRE_VERSION = "v1.5.2"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_SECRET_WORDS = ("token", "password", "secret", "privatekey", "private_key", "apikey", "api_key")

LEGACY_GONE = (
    "This endpoint is deprecated and no longer supported: use the /api/v1/orchestrator API. "
    "See the command migration guide in the Bacalhau documentation."
)


def build_version_info(ctx: ApiContext) -> dict[str, Any]:
    """Bacalhau's ``BuildVersionInfo`` for this server."""
    version = ctx.orchestrator.node_info().version or WIRE_VERSION
    out: dict[str, Any] = {
        "GitVersion": version,
        "GitCommit": "",
        "BuildDate": rfc3339_ns(ctx.started_ns),
        "GOOS": platform.system().lower(),
        "GOARCH": _ARCH.get(platform.machine().lower(), platform.machine().lower()),
    }
    parts = version.lstrip("v").split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        out["Major"], out["Minor"] = parts[0], parts[1]
    return out


def merged_node(info: NodeInfo) -> dict[str, Any]:
    """Go clients read a NodeState, the Python SDK a NodeInfo: serve both in one object."""
    data = info.to_dict()
    out = dict(data)
    out["Info"] = data
    out["Membership"] = "APPROVED"
    out["Connection"] = "CONNECTED"
    return out


def redact(value: Any) -> Any:
    """``value`` (the node's configuration) with its secrets replaced by ``<redacted>``: the
    values of keys that name one (a token, a password, a key), and in URLs (a probe's, a
    hook's) the password of their user part and query parameters that name one."""
    if isinstance(value, str) and "://" in value:
        return _redact_url(value)
    if isinstance(value, Mapping):
        return {
            k: "<redacted>"
            if any(w in str(k).lower() for w in _SECRET_WORDS) and v not in (None, "")
            else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _secret_name(name: str) -> bool:
    """Whether a URL's query parameter ``name`` holds a secret (an API key, a signature)."""
    low = name.lower().replace("-", "_")
    return low in ("key", "sig", "code") or any(
        w in low for w in (*_SECRET_WORDS, "signature", "credential", "auth")
    )


def _redact_url(text: str) -> str:
    try:
        url = urlsplit(text)
    except ValueError:
        # Not taken apart, so its parts cannot be told apart: none of it is shown.
        return "<redacted>"
    if not url.scheme or not url.netloc:
        return text
    netloc = url.netloc
    if url.password:
        host = netloc.rpartition("@")[2]
        netloc = f"{url.username}:<redacted>@{host}"
    query = url.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_name(k) for k, _ in pairs):
            query = urlencode(
                [(k, "<redacted>" if _secret_name(k) and v else v) for k, v in pairs],
                safe="<>",
            )
    if netloc == url.netloc and query == url.query:
        return text
    return urlunsplit((url.scheme, netloc, url.path, query, url.fragment))


async def alive(request: web.Request) -> web.Response:
    return json_response({"Status": "OK"})


async def version(request: web.Request) -> web.Response:
    return json_response(build_version_info(context(request)))


async def post_version(request: web.Request) -> web.Response:
    # {"client_id": ...}: read as Go reads it (a string, if any), and nothing else done.
    body_str(await read_object(request, example='{"client_id": "..."}'), "client_id")
    return json_response({"build_version_info": build_version_info(context(request))})


async def node(request: web.Request) -> web.Response:
    return json_response(merged_node(context(request).orchestrator.node_info()))


async def debug(request: web.Request) -> web.Response:
    ctx = context(request)
    info = ctx.orchestrator.node_info()
    body: dict[str, Any] = {
        "APIServer": {"NodeID": info.node_id, "StartTime": rfc3339_ns(ctx.started_ns)}
    }
    if ctx.gossip_metrics is not None:
        # Records applied and rejected (forged, stale, about another node, malformed),
        # probes, suspicions, deaths, and members by liveness, as this node sees them.
        body["Gossip"] = dict(ctx.gossip_metrics())
    return json_response(body)


async def config(request: web.Request) -> web.Response:
    return json_response({"config": redact(context(request).agent_config)})


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/plain")


async def node_id(request: web.Request) -> web.Response:
    return web.Response(text=context(request).orchestrator.node_info().node_id)


def _space(path: str) -> dict[str, int]:
    usage = shutil.disk_usage(path)
    return {"All": usage.total, "Used": usage.used, "Free": usage.free}


async def healthz(request: web.Request) -> web.Response:
    return json_response({"FreeSpace": {"tmp": _space(tempfile.gettempdir()), "root": _space("/")}})


async def compute_ack(request: web.Request) -> web.Response:
    return json_response({})


async def gone(request: web.Request) -> web.Response:
    return web.Response(status=410, text=dumps(LEGACY_GONE), content_type="application/json")


def add_routes(app: web.Application) -> None:
    r = app.router
    # Bacalhau v1.9 redirects these two to /api/v1/agent/version: served here at once.
    r.add_get("/", version)
    r.add_get("/version", version)
    r.add_get("/api/v1/agent/alive", alive)
    r.add_get("/api/v1/agent/version", version)
    r.add_get("/api/v1/agent/node", node)
    r.add_get("/api/v1/agent/debug", debug)
    r.add_get("/api/v1/agent/config", config)
    for path in ("/api/v1/compute/debug", "/api/v1/compute/approve"):
        r.add_get(path, compute_ack)
        r.add_post(path, compute_ack)
    r.add_route("*", "/api/v1/requester/{tail:.*}", gone)
    # Bacalhau rewrites the un-prefixed paths of its first API to /api/v1/...; routing them
    # to the same handlers has the same effect without a second dispatch.
    for prefix in ("/api/v1", ""):
        r.add_get(prefix + "/node_info", node)
        r.add_post(prefix + "/version", post_version)
        r.add_get(prefix + "/livez", livez)
        r.add_get(prefix + "/id", node_id)
        r.add_get(prefix + "/healthz", healthz)
    r.add_route("*", "/requester/{tail:.*}", gone)
