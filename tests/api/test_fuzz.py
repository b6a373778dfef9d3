"""Fuzzing the REST API: job bodies, query parameters and path inputs thrown at a real server
(real orchestrator, SQLite store, no compute nodes).

Whatever arrives, the server must answer in time, never with a 5xx, every 4xx must carry
Bacalhau's error body, and the node must still list jobs and accept a valid one afterwards.

A few hundred cases by default, deterministic (derandomized, no example database);
``BACALHAU_FUZZ_EXAMPLES=5000`` runs that many random cases per test instead.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.server_thread import ServerThread
from tests.orchestrator.node_view import StaticNodeView

JOBS = "/api/v1/orchestrator/jobs"
NODES = "/api/v1/orchestrator/nodes"
ERROR_KEYS = {"Status", "Message", "RequestID", "Code", "Component"}
#: Longest any one request may take (the slowest legitimate answer is a few milliseconds).
REQUEST_TIMEOUT = 10.0

_EXAMPLES = os.environ.get("BACALHAU_FUZZ_EXAMPLES", "")
FUZZ = settings(
    max_examples=int(_EXAMPLES or "250"),
    deadline=None,
    # CI runs the same cases every time; a longer run asked for explores new ones.
    derandomize=not _EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the server --------------------------------------------------------------------------


class Target:
    """A real requester's API on loopback, spoken to with plain HTTP/1.1."""

    def __init__(self, thread: ServerThread) -> None:
        self.thread = thread

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.thread.port, timeout=REQUEST_TIMEOUT)
        try:
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type") or "", resp.read()
        finally:
            conn.close()

    def check(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request and assert the answer is well-formed; returns (status, JSON)."""
        status, content_type, raw = self.request(method, path, body, headers)
        assert status < 500, (method, path[:200], body[:300] if body else None, raw[:500])
        if method == "HEAD":
            return status, None
        if status >= 400:
            assert content_type.startswith("application/json"), (status, raw[:300])
            err = json.loads(raw)
            if status == 410:  # the legacy requester API: a JSON string, as Bacalhau sends
                assert isinstance(err, str) and "orchestrator" in err
                return status, err
            assert isinstance(err, dict) and set(err) >= ERROR_KEYS, err
            assert err["Status"] == status and err["Message"] and err["Code"], err
            return status, err
        if content_type.startswith("application/json"):
            return status, json.loads(raw)
        return status, raw


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz-requester")
    info = NodeInfo(node_id="n-fuzz-requester", node_type=NodeType.REQUESTER, version="v1.5.2")
    orch = Orchestrator(
        node_info=info,
        data_dir=data_dir,
        compute=NoComputeNodes(),
        node_view=StaticNodeView(),
    )
    thread = ServerThread(orch).start()
    thread.run(orch.__aenter__())
    try:
        yield Target(thread)
    finally:
        thread.run(orch.__aexit__(None, None, None))
        thread.stop()


def assert_healthy(target: Target) -> None:
    status, listed = target.check("GET", JOBS + "?limit=5")
    assert status == 200 and isinstance(listed["Items"], list)
    status, listed = target.check("GET", JOBS)
    assert status == 200
    # Forced: the job of its name may hold this very spec already.
    body = {"Job": valid_job(), "Force": True}
    status, accepted = target.check("PUT", JOBS, json.dumps(body).encode())
    assert status == 200, accepted
    status, got = target.check("GET", f"{JOBS}/{accepted['JobID']}")
    assert status == 200 and got["Job"]["ID"] == accepted["JobID"]
    status, _ = target.check("GET", "/api/v1/agent/alive")
    assert status == 200


# -- strategies --------------------------------------------------------------------------


def valid_job() -> dict[str, Any]:
    return {
        "Type": "batch",
        "Count": 1,
        "Priority": 0,
        "Name": "fuzz",
        "Namespace": "default",
        "Labels": {"team": "a"},
        "Meta": {"m": "v"},
        "Constraints": [{"Key": "k", "Operator": "=", "Values": ["v"]}],
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "noop", "Params": {"Stdout": "hi", "ExitCode": 0}},
                "Publisher": {"Type": "noop"},
                "Env": {"E": "1"},
                "Meta": {"tm": "v"},
                "Resources": {"CPU": "100m", "Memory": "10Mb", "Disk": "1Mb", "GPU": "0"},
                "Timeouts": {"ExecutionTimeout": 10, "QueueTimeout": 0, "TotalTimeout": 100},
                "Network": {"Type": "None", "Domains": []},
                "InputSources": [
                    {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Target": "/in"}
                ],
                "ResultPaths": [{"Name": "out", "Path": "/out"}],
            }
        ],
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location in a JSON document (the root excluded)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from _paths(item, (*prefix, i))


JOB_PATHS = list(_paths(valid_job()))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


DICT_PATHS = [()] + [p for p in JOB_PATHS if isinstance(_at(valid_job(), p), dict)]

surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
odd_text = st.one_of(
    st.text(max_size=12),
    surrogates,
    st.integers(min_value=19, max_value=500).map(lambda n: "9" * n),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=4), surrogates, st.text(max_size=4)),
    st.sampled_from(
        [
            "", " ", "\x00", "\u202e", "\ufeff", "\U0001f600", "1e400", "-1", "1.5",
            "500m", "1Gb", "-5Gb", "99999999999999999999Pb", "nan", "Infinity", "null", "%00",
            "../..", "docker", "wasm", "noop", "HTTP", "Full", "batch", "ops", "service", "in",
        ]
    ),
)  # fmt: skip
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e29, 1e30, -0.0, 1.5, 1e308, float("nan"), float("inf"), float("-inf")]),
)


def _deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = {"d": value} if i % 2 else [value]
    return value


deep = st.builds(_deep, st.integers(min_value=1, max_value=400), st.none() | odd_text)
nasty = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    odd_text,
    st.lists(st.one_of(odd_text, numbers, st.none()), max_size=3),
    st.dictionaries(odd_text, st.one_of(odd_text, numbers, st.booleans()), max_size=3),
    deep,
)


STRING_PATHS = [p for p in JOB_PATHS if isinstance(_at(valid_job(), p), str)]
NUMBER_PATHS = [p for p in JOB_PATHS if isinstance(_at(valid_job(), p), int)]


def _set(job: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent = _at(job, path[:-1])
    if isinstance(parent, dict) or (isinstance(parent, list) and path[-1] < len(parent)):
        parent[path[-1]] = value


@st.composite
def mutated_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid job with one to three mutations, each of a kind chosen first so that every
    kind (odd text in a string field or a key, odd numbers in a number or quantity, a wrong
    type anywhere, an unknown key, a missing key, deep nesting) comes up often."""
    job = valid_job()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["text", "key", "number", "type", "unknown", "delete", "deep"]))
        try:
            if kind == "text":
                _set(job, draw(st.sampled_from(STRING_PATHS)), draw(odd_text))
            elif kind == "number":
                paths = NUMBER_PATHS + [p for p in STRING_PATHS if "Resources" in p]
                _set(job, draw(st.sampled_from(paths)), draw(numbers | odd_text))
            elif kind == "type":
                _set(job, draw(st.sampled_from(JOB_PATHS)), draw(nasty))
            elif kind == "deep":
                _set(job, draw(st.sampled_from(JOB_PATHS)), draw(deep))
            elif kind in ("key", "unknown"):
                parent = _at(job, draw(st.sampled_from(DICT_PATHS)))
                if isinstance(parent, dict):
                    key = draw(surrogates if kind == "key" else odd_text)
                    parent[key] = draw(odd_text if kind == "key" else nasty)
            else:
                path = draw(st.sampled_from(JOB_PATHS))
                parent = _at(job, path[:-1])
                if isinstance(parent, dict):
                    parent.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the way there
    return job


def _encode(doc: Any) -> bytes:
    # Lone surrogates leave as \\udXXX escapes and NaN/Infinity as bare literals: what a
    # careless or hostile client sends.
    return json.dumps(doc, allow_nan=True).encode()


#: Submissions: a mutated job, alone or with odd body-level keys.
job_bodies = st.one_of(
    mutated_jobs().map(lambda job: _encode({"Job": job})),
    st.builds(
        lambda job, extra: _encode({"Job": job, **extra}),
        mutated_jobs(),
        st.dictionaries(
            st.sampled_from(["namespace", "idempotencyToken", "Namespace", "other"]),
            nasty,
            min_size=1,
            max_size=2,
        ),
    ),
)
#: Bodies that are not a job at all: any JSON, bytes, a job cut short.
garbage_bodies = st.one_of(
    nasty.map(lambda doc: _encode({"Job": doc})),
    nasty.map(_encode),
    st.binary(max_size=200),
    mutated_jobs().flatmap(
        lambda job: st.integers(min_value=0, max_value=400).map(lambda n: _encode({"Job": job})[:n])
    ),
)


query_names = st.sampled_from(
    [
        "limit", "next_token", "order_by", "reverse", "labels", "namespace", "include",
        "since", "event_type", "execution_id", "node_id", "reason", "filter-approval",
        "filter_approval", "filter-status", "idempotency_token", "job_version",
        "all_job_versions", "unknown",
    ]
)  # fmt: skip
query_values = st.one_of(
    odd_text,
    numbers.map(str),
    st.sampled_from(
        [
            "true", "False", "yes", "2", "created_at", "modified_at", "id", "state", "colour",
            "history,executions", "all", "job", "execution", "team=a", "team in (a,b)",
            "team!=", "!!", "a,,b", "Y3JlYXRlZF9hdDpOOjI6MQ", "aWQ6WTo1OjA6ajpq", "====",
            "Y3JlYXRlZF9hdDpOOjI6MDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk6ai0x",
        ]
    ),
)  # fmt: skip


def _quote(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


queries = st.lists(st.tuples(query_names, query_values), max_size=5).map(
    lambda pairs: "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs)
)
job_ids = st.one_of(
    odd_text,
    st.sampled_from(["j-", "j", "", "..", "%", "_", "j-%", "n-fuzz", "x" * 3000]),
    st.binary(min_size=1, max_size=20).map(lambda b: b.decode("latin-1")),
).filter(lambda s: s not in ("", ".", ".."))
id_paths = job_ids.map(_quote)
job_routes = st.sampled_from(["", "/history", "/executions", "/results"])
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
) | st.sampled_from(["v1.5.2", "v1.4.0", "1.5.999999999999999999999", "v"])


# -- the fuzz tests ----------------------------------------------------------------------


def _submit(target: Target, body: bytes, method: str, query: str) -> None:
    status, answer = target.check(method, f"{JOBS}?{query}", body)
    # Every valid job is named alike: one submitted again unchanged is refused as such.
    unchanged = status == 409 and answer["Code"] == "JobSpecUnchanged"
    assert status in (200, 400, 413) or unchanged, (status, answer)
    if status == 200:
        # Whatever was accepted must read back, alone and in a listing.
        status, got = target.check("GET", f"{JOBS}/{answer['JobID']}")
        assert status == 200 and got["Job"]["ID"] == answer["JobID"]
        status, _ = target.check("GET", f"{JOBS}?limit=3&reverse=true")
        assert status == 200


def test_fuzz_job_submissions(target: Target) -> None:
    @FUZZ
    @given(body=job_bodies, method=st.sampled_from(["PUT", "POST"]), query=queries)
    def submit(body: bytes, method: str, query: str) -> None:
        _submit(target, body, method, query)

    submit()
    assert_healthy(target)


def test_fuzz_garbage_submissions(target: Target) -> None:
    @FUZZ
    @given(body=garbage_bodies, method=st.sampled_from(["PUT", "POST"]))
    def submit(body: bytes, method: str) -> None:
        _submit(target, body, method, "")

    submit()
    assert_healthy(target)


def test_fuzz_query_parameters(target: Target) -> None:
    body = {"Job": valid_job(), "Force": True}
    status, accepted = target.check("PUT", JOBS, json.dumps(body).encode())
    assert status == 200
    job_id = accepted["JobID"]

    @FUZZ
    @given(
        query=queries,
        where=st.sampled_from(
            [
                JOBS,
                f"{JOBS}/{job_id}",
                f"{JOBS}/{job_id}/history",
                f"{JOBS}/{job_id}/executions",
                f"{JOBS}/{job_id}/results",
                NODES,
                "/api/v1/agent/node",
            ]
        ),
        git_version=header_values,
        request_id=header_values,
    )
    def read(query: str, where: str, git_version: str, request_id: str) -> None:
        headers = {"X-Bacalhau-Git-Version": git_version, "X-Request-ID": request_id}
        status, answer = target.check("GET", f"{where}?{query}", headers=headers)
        assert status in (200, 400, 404), (status, answer)

    read()
    assert_healthy(target)


def test_fuzz_paths_and_methods(target: Target) -> None:
    @FUZZ
    @given(
        method=st.sampled_from(["GET", "DELETE", "PUT", "POST", "PATCH", "HEAD", "OPTIONS"]),
        base=st.sampled_from([JOBS, NODES, "/api/v1/requester", "/api/v1/agent", ""]),
        job_id=id_paths,
        route=job_routes,
        body=st.one_of(st.none(), nasty.map(_encode), st.binary(max_size=64)),
    )
    def poke(method: str, base: str, job_id: str, route: str, body: bytes | None) -> None:
        status, answer = target.check(method, f"{base}/{job_id}{route}", body)
        assert status < 500, (status, answer)

    poke()
    assert_healthy(target)


def test_fuzz_bodies_of_other_endpoints(target: Target) -> None:
    @FUZZ
    @given(
        where=st.sampled_from(
            [
                ("POST", NODES),
                ("PUT", f"{NODES}/n-fuzz-requester"),
                ("PUT", f"{NODES}/nope"),
                ("DELETE", f"{JOBS}/j-nope"),
                ("POST", "/api/v1/agent/version"),
            ]
        ),
        body=st.one_of(nasty.map(_encode), st.binary(max_size=64)),
    )
    def post(where: tuple[str, str], body: bytes) -> None:
        method, path = where
        status, answer = target.check(method, path, body)
        assert status < 500, (status, answer)

    post()
    assert_healthy(target)


def test_stopping_every_accepted_job_keeps_the_node_healthy(target: Target) -> None:
    status, listed = target.check("GET", JOBS)
    assert status == 200
    for job in listed["Items"]:
        status, _ = target.check("DELETE", f"{JOBS}/{_quote(job['ID'])}", b"{}")
        assert status in (200, 409)
    assert_healthy(target)
