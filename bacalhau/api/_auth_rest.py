"""Authentication on the REST edge: the middleware, which route needs which capability, and
the endpoints that tell clients how to authenticate.

Installed only when the node has users (``API.Auth.Users``); without them the application
has no auth middleware at all, so an open API pays nothing per request.

Which capability a route needs follows Bacalhau (``pkg/authz/capabilities.go``): the route
names a resource (``/api/v1/orchestrator/jobs`` jobs, ``/nodes`` nodes, ``/api/v1/agent``
the agent), ``GET`` (and ``HEAD``) reads it, any other method writes it; liveness, version and
``/api/v1/auth`` are open. Routes Bacalhau does not have are placed by what they show: the
legacy ``/node_info`` and ``/id`` and our ``/metrics`` read the agent, our ``/api/v1/data``
(job inputs and results by CID) reads or writes jobs. Any other route needs ``write:node``,
as in Bacalhau; a path that matches no route needs a known user (then answers 404).
"""

from __future__ import annotations

import functools
import logging

from aiohttp import web
from aiohttp.typedefs import Middleware

from bacalhau.api._authz import Authorizer, Principal, Resource
from bacalhau.api._errors import Handler, error_response, json_response
from bacalhau.errors import BacalhauError, NotFound, Unauthorized

__all__ = ["PRINCIPAL", "add_routes", "auth_middleware", "resource_of"]

log = logging.getLogger(__name__)

#: The caller a request was authenticated as (absent when no one needed to be known).
PRINCIPAL = web.RequestKey("bacalhau_principal", Principal)
_AUTHORIZER = web.AppKey("bacalhau_authorizer", Authorizer)
_READS = frozenset({"GET", "HEAD"})

#: Path prefixes (whole segments; the longest wins) and what they reach.
_PREFIXES: dict[str, Resource] = {
    "/api/v1/auth": Resource.OPEN,
    "/api/v1/version": Resource.OPEN,
    "/version": Resource.OPEN,
    "/api/v1/agent": Resource.AGENT,
    "/api/v1/agent/alive": Resource.OPEN,
    "/api/v1/agent/version": Resource.OPEN,
    "/api/v1/agent/authconfig": Resource.OPEN,
    "/api/v1/agent/whoami": Resource.IDENTIFY,
    "/api/v1/orchestrator/jobs": Resource.JOB,
    "/api/v1/orchestrator/nodes": Resource.NODE,
    "/api/v1/data": Resource.JOB,
    "/api/v1/livez": Resource.OPEN,
    "/livez": Resource.OPEN,
    "/api/v1/healthz": Resource.OPEN,
    "/healthz": Resource.OPEN,
    "/api/v1/node_info": Resource.AGENT,
    "/node_info": Resource.AGENT,
    "/api/v1/id": Resource.AGENT,
    "/id": Resource.AGENT,
    "/metrics": Resource.AGENT,
}


@functools.lru_cache(maxsize=256)  # one entry per route pattern, not per request path
def resource_of(canonical: str) -> Resource:
    """What the route with pattern ``canonical`` (``/api/v1/orchestrator/jobs/{job_id}``)
    reaches; ``OTHER`` (``write:node``) for a route no rule names."""
    if canonical == "/":
        return Resource.OPEN  # the version, as /api/v1/agent/version
    best, found = "", Resource.OTHER
    for prefix, resource in _PREFIXES.items():
        if (canonical == prefix or canonical.startswith(prefix + "/")) and len(prefix) > len(best):
            best, found = prefix, resource
    return found


def auth_middleware(authorizer: Authorizer) -> Middleware:
    """The middleware that lets a request through only as :func:`resource_of` its route
    allows; refusals are Bacalhau's error body (401 with ``WWW-Authenticate``, or 403)."""
    challenges = authorizer.challenges()

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The route aiohttp matched, not the path as written: what runs is what is checked.
        route = request.match_info.route.resource
        resource = Resource.ANY_USER if route is None else resource_of(route.canonical)
        try:
            principal = await authorizer.check(
                request.headers.get("Authorization"), resource, request.method in _READS
            )
        except BacalhauError as err:
            return _refusal(request, err, challenges)
        if principal is not None:
            request[PRINCIPAL] = principal
        return await handler(request)

    return authorize


def _refusal(request: web.Request, err: BacalhauError, challenges: list[str]) -> web.Response:
    log.info(
        "API request refused (%s): %s %s from %s: %s",
        err.code,
        request.method,
        request.path,
        request.remote,
        err.details.get("reason", err.message),
    )
    response = error_response(
        request,
        status=err.http_status,
        code=err.code,
        message=err.message,
        component=err.component,
        hint=err.hint,
        details=err.details,
    )
    if isinstance(err, Unauthorized):
        for challenge in challenges:
            response.headers.add("WWW-Authenticate", challenge)
    return response


async def _methods(request: web.Request) -> web.Response:
    # Bacalhau v1.7+ with users answers no methods: its CLI then tells the user to log in
    # with a username and password or an API key (environment variables), not a challenge.
    # Without users there is nothing to authenticate for: no methods either.
    return json_response({"Methods": {}, "NextToken": ""})


async def _method(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if request.app.get(_AUTHORIZER) is None:
        raise NotFound(
            f"authentication method {name[:100]!r} not found: this node asks for no "
            "credentials (it has no users), so there is no method to authenticate with",
            hint="send requests without credentials",
            component="Authorizer",
        )
    raise NotFound(
        f"authentication method {name[:100]!r} not found: this node authenticates users by "
        "username and password (HTTP Basic) or API key (Bearer)",
        hint="set BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD, or BACALHAU_API_KEY",
        component="Authorizer",
    )


def caller(request: web.Request) -> str:
    """Who makes the request, for caps per client: the user, when the API has users and
    the request's credentials name one, else the peer's address."""
    principal = request.get(PRINCIPAL)
    if principal is not None:
        return f"user {principal.name!r}"
    return f"client {request.remote or 'unknown'}"


async def _authconfig(request: web.Request) -> web.Response:
    # Bacalhau's SSO (OAuth2) settings, public by design; this node offers no SSO.
    return json_response({"Version": "1.0.0", "Config": {}})


async def _whoami(request: web.Request) -> web.Response:
    authorizer = request.app.get(_AUTHORIZER)
    if authorizer is None:
        return json_response({"AuthRequired": False, "Methods": [], "Authenticated": False})
    principal = request.get(PRINCIPAL)
    body: dict[str, object] = {
        "AuthRequired": True,
        "Methods": list(authorizer.schemes),
        "Authenticated": principal is not None,
    }
    if principal is not None:
        body["User"] = principal.to_dict()
    return json_response(body)


def add_routes(app: web.Application, authorizer: Authorizer | None) -> None:
    """``/api/v1/agent/authconfig`` and ``/api/v1/agent/whoami`` (ours: who the credentials
    sent are, and which schemes the API takes); with users, also Bacalhau's ``/api/v1/auth``
    endpoints."""
    app.router.add_get("/api/v1/agent/authconfig", _authconfig)
    app.router.add_get("/api/v1/agent/whoami", _whoami)
    app.router.add_get("/api/v1/auth", _methods)
    app.router.add_get("/api/v1/auth/{name}", _method)
    app.router.add_post("/api/v1/auth/{name}", _method)
    if authorizer is not None:
        app[_AUTHORIZER] = authorizer
