"""``/api/v1/orchestrator/jobs``: submit, diff, list, describe, stop, history, executions,
results, rerun, versions.

Every route with a ``{job_id}`` takes a job's full ID, its Name in the ``namespace`` of the
query (default ``default``) or a unique prefix of its ID, in that order of precedence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bacalhau.api._context import context
from bacalhau.api._errors import encode_json, json_response
from bacalhau.api._execution_pages import execution_page
from bacalhau.api._history import (
    HISTORY_PAGE,
    check_event_type,
    check_until,
    history_filter,
    poll_history,
    wait_for_end,
)
from bacalhau.api._job_size import check_job_size
from bacalhau.api._query import (
    JobListToken,
    PageToken,
    Query,
    as_utf8,
    body_bool,
    body_str,
    body_uint,
    key_ci,
    parse_json,
    read_object,
    updates_by_name,
    wants_v152_states,
)
from bacalhau.errors import BadQuery, InvalidJobSpec, InvalidRequest
from bacalhau.models import (
    Job,
    SpecConfig,
    check_document,
    parse_selector,
    printable_key,
)
from bacalhau.orchestrator._api import JobPage, JobVersions, OrchestratorAPI, job_sort_value

_JOB_ORDER = {
    "created_at": "created_at",
    "create_time": "created_at",
    "modified_at": "modified_at",
    "modify_time": "modified_at",
    "id": "id",
}

_CLIENT_META_HEADERS = {
    "X-Bacalhau-InstallationID": "bacalhau.org/client.installation.id",
    "X-Bacalhau-InstanceID": "bacalhau.org/client.instance.id",
}


#: Bodies up to this size are decoded on the event loop; larger ones in a worker thread.
_DECODE_INLINE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Submission:
    """What a ``PUT /jobs`` (or ``PUT /jobs/diff``) body carries."""

    job: Job
    namespace: str
    idempotency_token: str
    #: Bacalhau's ``PutJobRequest.Force``: submit again even when the spec is unchanged.
    force: bool


def _decode_submission(raw: bytes) -> _Submission:
    """The job, namespace, idempotency token and force flag of a submission body (pure; may
    run in a worker thread)."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", hint='send {"Job": {...}}')
    # Before anything else looks at it: invalid Unicode, NaN, absurd numbers or nesting
    # anywhere in the body would otherwise fail later, in places that cannot name the field
    # (named as the job's own fields are: relative to the job).
    check_document(dict.fromkeys(body))
    for key, value in body.items():
        check_document(value, path="" if str(key).lower() == "job" else printable_key(key))
    job_data = key_ci(body, "Job")
    if job_data is None:
        raise InvalidJobSpec("the request body has no Job", field="Job", hint='send {"Job": {...}}')
    return _Submission(
        job=Job.from_dict(job_data),
        namespace=body_str(body, "namespace"),
        idempotency_token=body_str(body, "idempotencyToken"),
        force=body_bool(body, "Force"),
    )


async def _read_submission(request: web.Request) -> _Submission:
    """The submission of ``request``'s body, its job in the body's (else the query's)
    namespace.

    A body declared larger than the node accepts is refused before any of it is read, and
    a job too large for the answers that carry it to fit once read; one that does not
    arrive in time (a client sending a byte at a time, holding the connection)
    is refused with 408 after the node's ``body_timeout``."""
    ctx = context(request)
    limit = ctx.max_job_size
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        async with asyncio.timeout(ctx.body_timeout):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"the request body did not arrive within {ctx.body_timeout:g}s"
        ) from None
    if not raw.strip():
        raise InvalidRequest(
            "the request body is empty", hint="send a JSON object as the request body"
        )
    check_job_size(len(raw), limit, field="Job")
    if len(raw) > _DECODE_INLINE_BYTES:
        submission = await asyncio.to_thread(_decode_submission, raw)
    else:
        submission = _decode_submission(raw)
    namespace = submission.namespace or request.query.get("namespace", "")
    if namespace and not submission.job.namespace:
        submission.job.namespace = namespace
    return submission


async def put_job(request: web.Request) -> web.Response:
    """Submit a job: a new one, or (its Name being a job's in its namespace) the next
    version of that job; ``Force`` submits it even when its spec is unchanged.

    Our extension ``wait=<seconds>`` holds the answer until a batch or ops job has ended (or
    the wait, at most 30 s, is over): the answer then also carries ``Details``, what
    ``GET /jobs/{id}`` gives (with ``include=executions``, its executions too), so that a
    client that submits and waits makes one request instead of two. A job still running
    when the wait ends, and a daemon or service job (they run until stopped), are answered
    without it."""
    # Checked before the submit: a malformed query must not leave a job behind.
    wait = Query(request).seconds("wait")
    submission = await _read_submission(request)
    job = submission.job
    token = submission.idempotency_token or request.query.get("idempotency_token", "")
    meta = {
        key: as_utf8(request.headers[header])
        for header, key in _CLIENT_META_HEADERS.items()
        if request.headers.get(header)
    }
    ctx = context(request)
    result = await ctx.orchestrator.submit_job(
        job,
        client_meta=meta,
        idempotency_token=token,
        handed_over=True,
        force=submission.force,
        update_named=updates_by_name(request, force=submission.force),
    )
    out: dict[str, Any] = {
        "JobID": result.job_id,
        "EvaluationID": result.evaluation_id,
        "Warnings": list(result.warnings),
    }
    ended = await wait_for_end(
        ctx.orchestrator, result.job_id, job.type, wait=wait, closing=ctx.closing
    )
    if ended is not None:
        out["Details"] = await _job_body(
            ctx.orchestrator, ended, _include(request), wants_v152_states(request)
        )
    return json_response(out)


async def diff_job(request: web.Request) -> web.Response:
    """``PUT /jobs/diff`` (Bacalhau v1.8): what submitting the body's job would change in
    the existing job of its Name: ``{"Diff": "<unified diff of the job's YAML>",
    "Warnings": [...]}``, ``Diff`` empty when nothing would change; 404 when no job has the
    name."""
    submission = await _read_submission(request)
    diff = await context(request).orchestrator.diff_job(submission.job)
    return json_response({"Diff": diff.diff, "Warnings": list(diff.warnings)})


async def job_page(
    orchestrator: OrchestratorAPI,
    *,
    namespace: str,
    labels: str,
    next_token: str,
    order_by: str,
    reverse: bool,
    limit: int,
) -> tuple[JobPage, str]:
    """One page of the job listing and the token of the next ("" at the end); shared by the
    REST and gRPC edges. A ``next_token`` carries the order, direction and size it was made
    with (``order_by``, ``reverse`` and ``limit`` then do not count)."""
    selector = parse_selector(labels, field="labels") if labels else None
    after: tuple[int | str, str] | None = None
    offset = 0
    if next_token:
        token = JobListToken.decode(next_token)
        order = _JOB_ORDER.get(token.sort_by, "created_at")
        reverse, limit, offset, after = token.reverse, token.limit, token.offset, token.after
        if after is not None:
            offset = 0  # the cursor says where to go on; the offset is informative only
    else:
        wanted = (order_by or "created_at").lower()
        if wanted not in _JOB_ORDER:
            raise BadQuery(
                f"invalid order_by {wanted[:100]!r}",
                field="order_by",
                hint="use created_at, modified_at or id",
            )
        order = _JOB_ORDER[wanted]
    page = await orchestrator.list_jobs(
        namespace=namespace,
        selector=selector,
        order_by=order,
        reverse=reverse,
        limit=limit,
        offset=offset,
        after=after,
    )
    following = ""
    if page.has_more and limit and page.items:
        last = page.items[-1]
        following = JobListToken(
            order,
            reverse,
            limit,
            offset + len(page.items),
            (job_sort_value(last, order), last.id),
        ).encode()
    return page, following


async def list_jobs(request: web.Request) -> web.StreamResponse:
    q = Query(request)
    token = q.text("next_token")
    page, next_token = await job_page(
        context(request).orchestrator,
        namespace=q.text("namespace"),
        labels=q.joined("labels"),
        next_token=token,
        order_by=q.text("order_by", "created_at"),
        reverse=False if token else q.flag("reverse"),
        limit=0 if token else q.count("limit"),
    )
    if not page.items:
        return json_response({"Items": [], "NextToken": next_token})
    # Encoding a page of large specs takes a while: keep the event loop serving meanwhile.
    chunks = await asyncio.to_thread(_list_chunks, page.items, next_token)
    if sum(len(c) for c in chunks) <= _DECODE_INLINE_BYTES:
        return web.Response(body=b"".join(chunks), content_type="application/json")
    # Large: written piece by piece, letting the loop serve others while the client reads.
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = sum(len(c) for c in chunks)
    await resp.prepare(request)
    for chunk in chunks:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


def _list_chunks(jobs: list[Job], next_token: str) -> list[bytes]:
    """The body of a job list, in pieces. One job at a time: each encoding call holds the
    GIL, so a page of large jobs encoded as one document would stall the event loop for all
    of them at once."""
    chunks = [b'{"Items":[']
    for i, job in enumerate(jobs):
        if i:
            chunks.append(b",")
        chunks.append(encode_json(job.to_dict()))
    chunks.append(b'],"NextToken":' + encode_json(next_token) + b"}")
    return chunks


def _namespace(request: web.Request) -> str:
    """The namespace a job's name is looked up in ("": ``default``)."""
    return Query(request).text("namespace")


async def get_job(request: web.Request) -> web.Response:
    orch = context(request).orchestrator
    job = await orch.get_job(
        request.match_info["job_id"],
        namespace=_namespace(request),
        version=Query(request).count("job_version"),
    )
    return json_response(await _job_body(orch, job, _include(request), wants_v152_states(request)))


def _versions(q: Query) -> JobVersions:
    """The job versions a read asks for (Bacalhau v1.8): ``job_version`` (0 or absent: the
    latest), ``all_job_versions``."""
    return JobVersions(version=q.count("job_version"), every=q.flag("all_job_versions"))


def _include(request: web.Request) -> set[str]:
    return {p.strip().lower() for p in request.query.get("include", "").split(",")}


async def _job_body(
    orch: OrchestratorAPI, job: Job, include: set[str], v152: bool
) -> dict[str, Any]:
    """The answer of ``GET /jobs/{id}``: the job, and its history and executions if asked
    (those of the job's version shown)."""
    out: dict[str, Any] = {"Job": job.to_dict()}
    shown = JobVersions(version=job.version)
    if "history" in include:
        history = await orch.job_history(job.id, versions=shown)
        page = history[:HISTORY_PAGE]
        token = ""
        if len(history) > HISTORY_PAGE:
            token = PageToken("seq_num", False, HISTORY_PAGE, page[-1].seq_num).encode()
        out["History"] = {"Items": [h.to_dict(v152=v152) for h in page], "NextToken": token}
    if "executions" in include:
        executions = await orch.list_executions(job.id, versions=shown)
        out["Executions"] = {
            "Items": [e.to_dict(v152=v152, include_job=False) for e in executions],
            "NextToken": "",
        }
    return out


async def stop_job(request: web.Request) -> web.Response:
    # The Go client sends {"reason": ...}; the Python SDK and the Web UI use the query
    # (the SDK sends the literal "None" when no reason was given) and a body of {}.
    body = await read_object(request, example='{"reason": "..."}')
    reason = body_str(body, "reason")
    if not reason:
        reason = request.query.get("reason", "")
    if reason == "None":
        reason = ""
    evaluation_id = await context(request).orchestrator.stop_job(
        request.match_info["job_id"], reason, namespace=_namespace(request)
    )
    return json_response({"EvaluationID": evaluation_id})


async def job_history(request: web.Request) -> web.Response:
    """History after the token's offset (a SeqNum). ``NextToken`` stays set while the job (or
    the chosen execution) can still change, so pollers know when to stop.

    Our extension ``wait=<seconds>`` turns an empty answer into a long-poll: the request is
    held until a new item exists (or the wait ends), so a waiting client learns of a change
    within milliseconds instead of a polling interval. With ``until=terminal`` as well, a
    batch or ops job's request is held until the job is terminal (or the wait ends, or a
    page is full), so a client waiting for the end makes one request instead of one per
    change; daemon and service jobs run until stopped, and are answered as without it. The
    answer also carries the job's state (``Job``: ID, Type, State, Revision, ModifyTime).
    With ``include=job`` (or ``include=executions``), the last answer of a terminal job also
    carries ``Details``: the body ``GET /jobs/{id}`` gives with the same ``include``.
    History is read from the store's in-memory per-job log.
    """
    ctx = context(request)
    orch = ctx.orchestrator
    q = Query(request)
    execution_id = q.text("execution_id")
    keep = history_filter(
        event_type=check_event_type(q.text("event_type", "all")),
        execution_id=execution_id,
        node_id=q.text("node_id"),
        since=q.count("since"),
    )
    token = q.text("next_token")
    if token:
        page_token = PageToken.decode(token)
        limit, cursor = page_token.limit or HISTORY_PAGE, page_token.offset
    else:
        limit, cursor = q.count("limit") or HISTORY_PAGE, 0
    poll = await poll_history(
        orch,
        request.match_info["job_id"],
        keep=keep,
        after=cursor,
        limit=limit,
        wait=q.seconds("wait"),
        until_terminal=check_until(q.text("until")),
        execution_id=execution_id,
        closing=ctx.closing,
        namespace=_namespace(request),
        versions=_versions(q),
    )
    page, done = poll.page, poll.done
    v152 = wants_v152_states(request)
    more_to_come = poll.more or not done
    next_token = (
        PageToken("seq_num", False, limit, poll.next_after).encode() if more_to_come else ""
    )
    # Our extension: the job's state as of (at least) these items, so a client following the
    # history needs no GET of the job to know where it stands.
    now = poll.job if done else await orch.get_job(poll.job.id)
    state: dict[str, Any] = {"StateType": now.state.wire}
    if now.state_message:
        state["Message"] = now.state_message
    out: dict[str, Any] = {
        "Items": [h.to_dict(v152=v152) for h in page],
        "NextToken": next_token,
        "Job": {
            "ID": now.id,
            "Type": now.type,
            "State": state,
            "Revision": now.revision,
            "ModifyTime": now.modify_time,
        },
    }
    include = _include(request)
    if include & {"job", "executions"} and not next_token and now.state.is_terminal():
        # Our extension: the last answer of a finished job carries what GET /jobs/{id}
        # would (with ``include=executions``, its executions), so a client waiting for the
        # end needs no further request.
        out["Details"] = await _job_body(orch, now, include, v152)
    return json_response(out)


async def job_executions(request: web.Request) -> web.Response:
    q = Query(request)
    executions = await context(request).orchestrator.list_executions(
        request.match_info["job_id"], namespace=_namespace(request), versions=_versions(q)
    )
    page, next_token = execution_page(
        executions,
        order_by=q.text("order_by"),
        reverse=q.flag("reverse"),
        limit=q.count("limit"),
        next_token=q.text("next_token"),
    )
    v152 = wants_v152_states(request)
    return json_response(
        {
            "Items": [e.to_dict(v152=v152, include_job=False) for e in page],
            "NextToken": next_token,
        }
    )


#: Turns a stored result into what a client downloads (an S3 result into a pre-signed URL,
#: Bacalhau's ``s3PreSigned``); set by ``node/`` when the node has one. Signing needs no
#: network, but boto3 may read credential files: it runs off the event loop.
ResultRewriter = Callable[[SpecConfig], SpecConfig]
RESULT_REWRITER: web.AppKey[ResultRewriter] = web.AppKey("bacalhau_result_rewriter")


async def job_results(request: web.Request) -> web.Response:
    results = await context(request).orchestrator.job_results(
        request.match_info["job_id"], namespace=_namespace(request)
    )
    rewrite = request.app.get(RESULT_REWRITER)
    if rewrite is not None:
        results = [await asyncio.to_thread(rewrite, r) for r in results]
    return json_response({"Items": [r.to_dict() for r in results], "NextToken": ""})


async def rerun_job(request: web.Request) -> web.Response:
    """``PUT /jobs/{id}/rerun`` (Bacalhau v1.8): the same spec again as a new version."""
    body = await read_object(request, example='{"JobVersion": 1, "reason": "..."}')
    reason = body_str(body, "reason")
    version = body_uint(body, "JobVersion", hint="leave it out, or 0, for the latest version")
    job, evaluation_id = await context(request).orchestrator.rerun_job(
        request.match_info["job_id"], reason, namespace=_namespace(request), version=version
    )
    return json_response(
        {
            "JobID": job.id,
            "JobVersion": job.version,
            "EvaluationID": evaluation_id,
            "Warnings": [],
        }
    )


async def job_versions(request: web.Request) -> web.Response:
    """``GET /jobs/{id}/versions`` (Bacalhau v1.8): every version of the job's spec."""
    versions = await context(request).orchestrator.job_versions(
        request.match_info["job_id"], namespace=_namespace(request)
    )
    return json_response({"Items": [v.to_dict() for v in versions], "NextToken": ""})


def add_routes(app: web.Application) -> None:
    prefix = "/api/v1/orchestrator/jobs"
    app.router.add_put(prefix, put_job)
    app.router.add_post(prefix, put_job)
    # Before the routes of one job: "diff" is not a job here.
    app.router.add_put(prefix + "/diff", diff_job)
    app.router.add_get(prefix, list_jobs)
    app.router.add_get(prefix + "/{job_id}", get_job)
    app.router.add_delete(prefix + "/{job_id}", stop_job)
    app.router.add_get(prefix + "/{job_id}/history", job_history)
    app.router.add_get(prefix + "/{job_id}/executions", job_executions)
    app.router.add_get(prefix + "/{job_id}/results", job_results)
    app.router.add_put(prefix + "/{job_id}/rerun", rerun_job)
    app.router.add_get(prefix + "/{job_id}/versions", job_versions)
