"""Fuzzing the public gRPC API (``proto/bacalhau/v1/api.proto``): every RPC of JobService,
NodeAPIService and AgentService gets requests drawn field by field from its request message's
descriptor (any text, control characters, long runs, references that exist and nearly exist,
numbers at and past their edges, any JSON or none where a job goes), raw bytes that are no
valid message, credentials of every kind, and calls on one job at once. The server is real
(real orchestrator, SQLite store, two in-process compute nodes running noop jobs), spoken to
with the generated stubs over a plain ``grpc.aio`` channel: nothing filters a request before
the server's edge.

Whatever arrives, each call must end in time (a deadline; a followed log stream may stay open
only while its job runs), with OK or a documented refusal (never UNKNOWN, INTERNAL or a
missed deadline), and a refusal must carry what the README promises in its trailing
metadata: the stable code in ``bacalhau-error-code``, the hint in ``bacalhau-error-hint-bin``
and, for INVALID_ARGUMENT, the field at fault in ``bacalhau-error-field``. A job that was
accepted is never lost and reads back through every call, a page's token goes on, and after
each test the node still answers and runs a job to its end.

A few hundred cases per test by default, deterministic (derandomized, no example database),
with the requests the fuzz once found failing tried first; ``BACALHAU_FUZZ_EXAMPLES=5000``
runs that many random cases per test instead.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import os
import struct
import threading
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bacalhau._proto.v1 import api_pb2, api_pb2_grpc
from bacalhau.api import Authorizer, GrpcApiServer
from bacalhau.errors import NodeNotFound
from bacalhau.models import CancelExecutionRequest, Membership, NodeInfo, NodeType
from bacalhau.node._wiring import RequesterLinks
from bacalhau.orchestrator import Orchestrator
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import CID, Blockstore, Importer, write_car
from tests.api.conftest import AGENT_CONFIG
from tests.api.test_api_auth import CAPABILITIES, READER_PASSWORD, _users, key_of
from tests.api.test_fuzz import mutated_jobs, nasty, odd_text
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_fast_path import InProcessTransport, _compute

# One server for the module: its tests run on one worker, in order.
pytestmark = pytest.mark.xdist_group("grpc-fuzz")

T = TypeVar("T")
S = grpc.StatusCode

#: The services under test (DataService's PutData, a client stream, has a test of its own).
SERVICES = ("JobService", "NodeAPIService", "AgentService", "DataService")
#: Longest any one call may take: the slowest legitimate answer here takes well under a
#: second (the fuzz draws waits of at most 0.2 s; a submit-and-wait of a noop job, run in
#: this process, ends in milliseconds).
CALL_TIMEOUT = 5.0
#: How long a followed log stream may stay silent before the test stops reading it.
FOLLOW_SILENCE = 1.0
#: Most messages read from a log stream.
STREAM_MESSAGES = 3
#: Statuses a refusal may have with the API open (no users configured): api.proto's list
#: for a bad request, a missing thing, a wrong state, a conflict or a size limit.
REFUSALS = {
    S.INVALID_ARGUMENT,
    S.NOT_FOUND,
    S.FAILED_PRECONDITION,
    S.ALREADY_EXISTS,
    S.RESOURCE_EXHAUSTED,
    S.ABORTED,
}
CODE_KEY = "bacalhau-error-code"
FIELD_KEY = "bacalhau-error-field"
HINT_KEY = "bacalhau-error-hint-bin"
STATUS_KEY = "grpc-status-details-bin"
DETAILS_KEY = "bacalhau-error-details-bin"
MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1
REQUESTER = "requester"
#: Largest upload the served DataService takes.
UPLOAD_LIMIT = 1 << 20
COMPUTE_NODES = ("node-a", "node-b")

_EXAMPLES = os.environ.get("BACALHAU_FUZZ_EXAMPLES", "")


def fuzz(examples: int) -> settings:
    """``examples`` deterministic cases (or BACALHAU_FUZZ_EXAMPLES random ones)."""
    return settings(
        max_examples=int(_EXAMPLES or examples),
        deadline=None,
        derandomize=not _EXAMPLES,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# -- the server ------------------------------------------------------------------------------


def noop_job(name: str, stdout: str = "hi\n", **over: Any) -> dict[str, Any]:
    """A batch job the compute node runs at once."""
    job: dict[str, Any] = {
        "Name": name,
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "noop", "Params": {"Stdout": stdout}},
                "Publisher": {"Type": "noop"},
            }
        ],
    }
    job.update(over)
    return job


@dataclass
class Refs:
    """Things the server knows, for requests that reach past the lookups."""

    job_refs: list[str] = field(default_factory=list)
    execution_refs: list[str] = field(default_factory=list)
    node_refs: list[str] = field(default_factory=list)
    cid_refs: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


@dataclass
class Answer:
    """How a call ended: its status, the answer (OK) or the error (otherwise)."""

    code: grpc.StatusCode
    response: Any = None
    error: grpc.aio.AioRpcError | None = None
    messages: int = 0
    #: A followed log stream that was let go while silent (its code is DEADLINE_EXCEEDED).
    let_go: bool = False

    def metadata(self) -> dict[str, str | bytes]:
        assert self.error is not None
        return {key: value for key, value in self.error.trailing_metadata() or ()}


Metadata = tuple[tuple[str, str], ...]


class Transport(InProcessTransport):
    """The in-process transport, with the withdrawal of a queued execution too."""

    async def withdraw_queued(self, node_id: str, request: CancelExecutionRequest) -> str | None:
        return await self.endpoints[node_id].withdraw_queued(REQUESTER, request)


class Target:
    """A requester (real orchestrator, two in-process noop compute nodes) serving the public
    gRPC API on loopback twice, open and with users, with a grpc.aio channel to each, all on
    one event loop in a thread of its own; the test's thread runs coroutines there."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = self.data_dir = data_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = AsyncExitStack()
        self.view = StaticNodeView()
        self.refs = Refs()
        #: The IDs of every job a SubmitJob accepted, and of those accepted since the last
        #: health check.
        self.accepted: set[str] = set()
        self.unchecked: set[str] = set()
        self.channels: dict[bool, grpc.aio.Channel] = {}

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> Target:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        stack = self._stack
        transport = Transport()
        self.orch = Orchestrator(
            node_info=NodeInfo(node_id=REQUESTER, node_type=NodeType.REQUESTER, version="v1.5.2"),
            data_dir=self._data_dir / "orchestrator",
            compute=transport,
            node_view=self.view,
        )
        await stack.enter_async_context(self.orch)
        links = RequesterLinks(local=self.orch, local_id=REQUESTER)
        for node_id in COMPUTE_NODES:
            transport.endpoints[node_id] = await _compute(stack, self._data_dir, node_id, links)
            await self.view.join(compute_node_info(node_id))
        self.store = stack.enter_context(Blockstore(self._data_dir / "blocks"))
        content = BlockstoreContent(self.store)
        for secured in (False, True):
            server = GrpcApiServer(
                self.orch,
                host="127.0.0.1",
                port=0,
                agent_config=AGENT_CONFIG,
                authorizer=Authorizer(_users()) if secured else None,
                content=content,
                max_upload=UPLOAD_LIMIT,
            )
            await stack.enter_async_context(server)
            channel = grpc.aio.insecure_channel(server.address)
            self.channels[secured] = await stack.enter_async_context(channel)

    def stop(self) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    # -- calls -------------------------------------------------------------------------------

    def call(
        self,
        method: MethodDescriptor,
        request: Message | bytes,
        *,
        metadata: Metadata | None = None,
        secured: bool = False,
    ) -> Answer:
        """``request`` (a message, or bytes sent as they are) to ``method``, bounded."""
        coro = self.call_async(method, request, metadata=metadata, secured=secured)
        return self.run(coro, timeout=CALL_TIMEOUT + 10)

    async def call_async(
        self,
        method: MethodDescriptor,
        request: Message | bytes,
        *,
        metadata: Metadata | None = None,
        secured: bool = False,
    ) -> Answer:
        channel = self.channels[secured]
        if isinstance(request, bytes):
            path = f"/{method.containing_service.full_name}/{method.name}"
            parse = getattr(api_pb2, method.output_type.name).FromString
            if method.server_streaming:
                multi: Any = channel.unary_stream(path, response_deserializer=parse)
            else:
                multi = channel.unary_unary(path, response_deserializer=parse)
        else:
            # The generated stub of the method's service.
            stub = getattr(api_pb2_grpc, f"{method.containing_service.name}Stub")(channel)
            multi = getattr(stub, method.name)
        if method.server_streaming:
            return await self._stream(multi, request, metadata)
        try:
            response = await asyncio.wait_for(
                multi(request, timeout=CALL_TIMEOUT, metadata=metadata), CALL_TIMEOUT + 2
            )
        except grpc.aio.AioRpcError as err:
            return Answer(err.code(), error=err)
        return Answer(S.OK, response)

    async def _stream(
        self, multi: Any, request: Message | bytes, metadata: Metadata | None
    ) -> Answer:
        """At most :data:`STREAM_MESSAGES` messages; a followed stream is let go after
        :data:`FOLLOW_SILENCE` without one, any other must end within the call's deadline."""
        follow = _follows(request)
        call = multi(request, timeout=None if follow else CALL_TIMEOUT, metadata=metadata)
        messages = 0
        try:
            while messages < STREAM_MESSAGES:
                try:
                    message = await asyncio.wait_for(
                        call.read(), FOLLOW_SILENCE if follow else CALL_TIMEOUT + 2
                    )
                except TimeoutError:
                    return Answer(S.DEADLINE_EXCEEDED, messages=messages, let_go=follow)
                if message is grpc.aio.EOF:
                    break
                messages += 1
            else:
                return Answer(S.OK, messages=messages)  # enough: the rest is not read
            code = await call.code()
            if code != S.OK:
                details = await call.details()
                trailing = await call.trailing_metadata()
                err = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=details)
                return Answer(code, error=err, messages=messages)
            return Answer(S.OK, messages=messages)
        except grpc.aio.AioRpcError as err:
            return Answer(err.code(), error=err, messages=messages)
        finally:
            call.cancel()


def _follows(request: Message | bytes) -> bool:
    """Whether ``request`` asks to follow a log stream (bytes too, when they parse)."""
    if isinstance(request, bytes):
        try:
            request = api_pb2.StreamJobLogsRequest.FromString(request)
        except Exception:  # bytes that parse as nothing follow nothing
            return False
    return isinstance(request, api_pb2.StreamJobLogsRequest) and request.follow


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    t = Target(tmp_path_factory.mktemp("grpc-fuzz")).start()
    try:
        seed(t)
        yield t
    finally:
        t.stop()


def _method(service: str, name: str) -> MethodDescriptor:
    method: MethodDescriptor = api_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[name]
    return method


def request_of(method: MethodDescriptor, **fields: Any) -> Message:
    message: Message = getattr(api_pb2, method.input_type.name)(**fields)
    return message


def ok(target: Target, service: str, name: str, **fields: Any) -> Any:
    """The answer of a call that must succeed."""
    method = _method(service, name)
    answer = target.call(method, request_of(method, **fields))
    assert answer.code == S.OK, (name, fields, answer.error and answer.error.details())
    return answer.response


def seed(target: Target) -> None:
    """Jobs to aim at: a finished batch job of two partitions, a finished ops job, and the
    references that reach them (IDs, prefixes, names, tokens, sequence numbers)."""
    done = ok(
        target,
        "JobService",
        "SubmitJob",
        job_json=json.dumps(noop_job("fuzz-seed", "seed\nlines\n", Count=2)),
        wait_seconds=20,
    )
    assert done.job.state == "Completed", done.job.state_message
    other = ok(
        target,
        "JobService",
        "SubmitJob",
        job_json=json.dumps(noop_job("fuzz-other", Type="ops", Labels={"team": "a"})),
        wait_seconds=20,
    )
    assert other.job.state == "Completed", other.job.state_message
    accepted(target, done.job_id)
    accepted(target, other.job_id)
    refs = target.refs
    for job_id, name in ((done.job_id, "fuzz-seed"), (other.job_id, "fuzz-other")):
        refs.job_refs += [job_id, name, job_id[:4], job_id[:8], job_id[:-1], job_id.upper()]
        refs.job_refs += [f" {job_id}", f"{job_id}\x00", f"{name} ", name.upper(), job_id + "0"]
    refs.job_refs += ["j-", "j", "fuzz", "J-"]  # ambiguous prefixes, a name's prefix
    execs = ok(target, "JobService", "ListExecutions", job_id=done.job_id)
    assert len(execs.executions) == 2
    for ex in execs.executions:
        refs.execution_refs += [ex.id, ex.id[:4], ex.id[:10], ex.id + "0", ex.id.upper()]
    refs.execution_refs += ["e-", "e", "E-"]  # ambiguous prefixes
    refs.node_refs += [*COMPUTE_NODES, "node", "node-", "n", REQUESTER, "req", "node-a\x00"]
    page = ok(target, "JobService", "ListExecutions", job_id=done.job_id, limit=1)
    jobs = ok(target, "JobService", "ListJobs", limit=1)
    reverse = ok(target, "JobService", "ListJobs", limit=1, order_by="id", reverse=True)
    refs.tokens += [t for t in (page.next_token, jobs.next_token, reverse.next_token) if t]
    assert len(refs.tokens) == 3
    history = ok(target, "JobService", "JobHistory", job_id=done.job_id)
    refs.seqs += [item.seq_num for item in history.items[:: max(1, len(history.items) // 4)]]
    refs.seqs.append(history.next_after_seq)
    # Content by CID: a directory with a file and a folder, a file alone, one absent.
    folder = target.data_dir / "content"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.txt").write_bytes(b"content\n" * 1000)
    (folder / "a.bin").write_bytes(bytes(range(256)) * 100)
    with target.store.batch() as sink:
        root = str(Importer(sink).add_path(folder).cid)
    target.store.pin(CID.parse(root))
    absent = str(Importer(None).add_bytes(b"held by nobody").cid)
    refs.cid_refs += [root, f"{root}/sub", f"{root}/sub/f.txt", f"{root}/a.bin", absent]
    refs.cid_refs += [f"{root}/", f"{root}/nope", f"{root}/../x", f"{root}//sub", root[:-1]]


# -- what every answer must be ---------------------------------------------------------------


def check(answer: Answer, method: MethodDescriptor, request: Message | bytes) -> None:
    """The answer is OK or a documented refusal carrying its code (and field)."""
    shown = repr(request[:300]) if isinstance(request, bytes) else _shown(request)
    where = f"{method.name}({shown})"
    if answer.code == S.OK:
        return
    if answer.let_go:
        return  # a followed stream, silent: the caller decides whether it should have ended
    details = answer.error.details() if answer.error is not None else ""
    assert answer.code in REFUSALS, f"{where} -> {answer.code.name}: {details}"
    md = answer.metadata()
    code = md.get(CODE_KEY)
    assert isinstance(code, str) and code, f"{where} -> {answer.code.name} without a code: {md}"
    assert details, f"{where} -> {answer.code.name} ({code}) without a message"
    assert md.get(HINT_KEY), f"{where} -> {answer.code.name} ({code}: {details}) without a hint"
    raw = md.get(DETAILS_KEY)
    if raw is not None:
        assert isinstance(raw, bytes)
        doc = json.loads(raw)
        assert isinstance(doc, dict) and all(isinstance(v, str) for v in doc.values()), doc
    check_rich_status(answer, md, where)
    # A message whose bytes do not parse has no field at fault (the README: "the field at
    # fault (if any)"): the whole message is, and the message says which type it is not.
    malformed = details.startswith("the request is not a valid bacalhau.v1.")
    if answer.code == S.INVALID_ARGUMENT and not malformed:
        assert md.get(FIELD_KEY), f"{where} -> INVALID_ARGUMENT ({code}: {details}) names no field"


def check_rich_status(answer: Answer, md: dict[str, str | bytes], where: str) -> None:
    """The same error in gRPC's standard model: a google.rpc.Status of the call's code, an
    ErrorInfo whose reason is the stable code, and a BadRequest when a field is at fault."""
    raw = md.get(STATUS_KEY)
    assert isinstance(raw, bytes), f"{where} -> {answer.code.name} without {STATUS_KEY}"
    status = status_pb2.Status.FromString(raw)
    assert status.code == answer.code.value[0], (where, status)
    infos, requests = [], []
    for detail in status.details:
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            infos.append(info)
        elif detail.Unpack(bad):
            requests.append(bad)
    assert [(i.reason, i.domain) for i in infos] == [(md[CODE_KEY], "bacalhau.org")], where
    if md.get(FIELD_KEY):
        assert [len(b.field_violations) for b in requests] == [1], (where, status)
        assert requests[0].field_violations[0].field, (where, status)


def _shown(request: Message) -> str:
    """The request, its long strings shortened."""
    parts = []
    for fd, value in request.ListFields():
        if isinstance(value, str) and len(value) > 120:
            value = f"{value[:60]!r}...({len(value)} chars)"
        else:
            value = repr(value)
        parts.append(f"{fd.name}={value}")
    return ", ".join(parts)


def call_and_check(target: Target, method: MethodDescriptor, request: Message | bytes) -> Answer:
    answer = target.call(method, request)
    check(answer, method, request)
    if answer.response is not None and not isinstance(request, bytes):
        follow_up(target, method, request, answer)
    if answer.let_go:
        # A follow let go while silent: fine while the job runs, a hang once it has ended.
        if isinstance(request, bytes):
            request = api_pb2.StreamJobLogsRequest.FromString(request)
        assert isinstance(request, api_pb2.StreamJobLogsRequest)
        job = target.call(
            _method("JobService", "GetJob"),
            api_pb2.GetJobRequest(
                job_id=request.job_id, namespace=request.namespace, job_version=request.job_version
            ),
        )
        if job.code == S.OK:
            state = job.response.job.state
            assert state not in ("Completed", "Failed", "Stopped"), (
                f"StreamJobLogs({_shown(request)}) follows a {state} job without end"
            )
    return answer


def follow_up(target: Target, method: MethodDescriptor, request: Message, answer: Answer) -> None:
    """What an OK answer promises: an accepted job reads back; a page's token goes on."""
    response = answer.response
    if method.name == "SubmitJob":
        accepted(target, response.job_id)
        read_back(target, response.job_id)
    elif "next_token" in response.DESCRIPTOR.fields_by_name and response.next_token:
        # The token goes on, after the page: no item of this page again (in an order of
        # values that stay put, from a page asked for without a token).
        following = type(request)()
        following.CopyFrom(request)
        token_field = "next_token"  # every listing's, by this name
        setattr(following, token_field, response.next_token)
        more = target.call(method, following)
        assert more.code == S.OK, (_shown(following), more.error and more.error.details())
        order = getattr(request, "order_by", "").lower()
        if not getattr(request, token_field) and order not in ("modified_at", "modify_time"):
            repeated = set(_items(response)) & set(_items(more.response))
            assert not repeated, (method.name, _shown(request), repeated)
    elif method.name == "GetJob":
        assert isinstance(json.loads(response.job.job_json), dict)


def _items(response: Message) -> list[tuple[str, int]]:
    """The documents of a page, by ID (and version)."""
    for fd, value in response.ListFields():
        if fd.is_repeated and fd.message_type is not None:
            return [(doc.id, getattr(doc, "version", 0)) for doc in value]
    return []


def read_back(target: Target, job_id: str) -> None:
    """An accepted job reads back, by its ID and by its name, through every read."""
    got = ok(target, "JobService", "GetJob", job_id=job_id)
    assert got.job.id == job_id
    body = json.loads(got.job.job_json)
    assert isinstance(body, dict) and body["ID"] == job_id
    name, namespace = got.job.name, got.job.namespace
    by_name = ok(target, "JobService", "GetJob", job_id=name, namespace=namespace)
    # A name that is another job's full ID finds that job: IDs win.
    assert by_name.job.id in (job_id, name), (name, namespace)
    for rpc, fields in (
        ("GetJob", {"include_history": True, "include_executions": True}),
        ("ListExecutions", {"all_job_versions": True}),
        ("JobHistory", {"include_executions": True}),
        ("ListJobVersions", {}),
        ("GetResults", {}),
        ("StreamJobLogs", {}),
        ("StopJob", {"reason": name}),
    ):
        method = _method("JobService", rpc)
        request = request_of(method, job_id=job_id, **fields)
        answer = target.call(method, request)
        check(answer, method, request)


def restore_compute_node(target: Target) -> None:
    """Undo what UpdateNode did to the compute nodes (rejected or deleted)."""

    async def restore() -> None:
        for node_id in COMPUTE_NODES:
            try:
                node = await target.orch.get_node(node_id)
            except NodeNotFound:
                await target.view.join(compute_node_info(node_id))
                node = await target.orch.get_node(node_id)
            if node.membership is not Membership.APPROVED:
                done, err = await target.orch.update_node(node_id, "approve")
                assert done, err

    target.run(restore())


def accepted(target: Target, job_id: str) -> None:
    assert job_id.startswith("j-"), job_id
    target.accepted.add(job_id)
    target.unchecked.add(job_id)


def assert_healthy(target: Target, *, every_job: bool = False) -> None:
    """The node answers, still holds the jobs it accepted (since the last check, or
    ``every_job``), and runs a job to its end."""
    assert ok(target, "AgentService", "Alive").status == "OK"
    for job_id in sorted(target.accepted if every_job else target.unchecked):
        got = ok(target, "JobService", "GetJob", job_id=job_id)
        assert got.job.id == job_id
    target.unchecked.clear()
    restore_compute_node(target)
    done = ok(
        target,
        "JobService",
        "SubmitJob",
        job_json=json.dumps(noop_job("fuzz-health", "healthy\n")),
        wait_seconds=20,
        force=True,
    )
    assert done.job.state == "Completed", done.job.state_message
    logs = target.run(_logs(target, done.job_id))
    assert b"healthy\n" in logs


async def _logs(target: Target, job_id: str) -> bytes:
    stub = api_pb2_grpc.JobServiceStub(target.channels[False])
    out = b""
    stream = stub.StreamJobLogs(api_pb2.StreamJobLogsRequest(job_id=job_id), timeout=CALL_TIMEOUT)
    async for chunk in stream:
        out += chunk.data
    return out


# -- strategies ------------------------------------------------------------------------------

#: Text of any kind: any code point but a surrogate (proto strings are UTF-8), controls,
#: NUL, invisible and bidi characters, long runs.
controls = st.text(
    st.characters(max_codepoint=0x1F)
    | st.sampled_from("\x7f\x85\xa0\u2028\u2029\ufeff\u202e\u200b\ufffd\U0010ffff"),
    min_size=1,
    max_size=8,
)
long_text = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["x", "j", "\U0001f600", "é", "\x00", "%", "j-0", " "]),
    st.integers(min_value=200, max_value=100_000),
)
any_text = st.one_of(
    st.text(max_size=16),
    st.text(st.characters(codec="utf-8"), max_size=16),
    controls,
    long_text,
    odd_text.filter(lambda s: not any("\ud800" <= c <= "\udfff" for c in s)),
    st.sampled_from(["", " ", "*", "%", "_", "..", "/", "default", "null", "-1", "0", "j-"]),
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn about as often as its weight says (``one_of``
    gives each the same share)."""
    picks = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(min_value=0, max_value=len(picks) - 1).flatmap(lambda i: picks[i])


def id_like(known: list[str]) -> st.SearchStrategy[str]:
    """References: known ones (most often), altered ones, and text."""
    affix = controls | st.text(max_size=4)
    return weighted(
        (6, st.sampled_from(known)),
        (1, st.builds(lambda k, t: k + t, st.sampled_from(known), affix)),
        (1, st.builds(lambda t, k: t + k, affix, st.sampled_from(known))),
        (2, any_text),
    )


def strings_for(name: str, refs: Refs) -> st.SearchStrategy[str]:
    """A request's string field by its name; a field this does not know gets any text."""
    if name == "job_id":
        return id_like(refs.job_refs)
    if name == "execution_id":
        return id_like(refs.execution_refs)
    if name == "node_id":
        return id_like(refs.node_refs)
    if name == "job_json":
        return job_documents(refs)
    if name == "cid":
        return id_like(refs.cid_refs)
    if name == "next_token":
        tokens = st.sampled_from(refs.tokens)
        return weighted(
            (3, tokens),
            (1, st.builds(lambda t, n: t[:n], tokens, st.integers(0, 60))),
            (1, st.builds(lambda t, s: t + s, tokens, any_text)),
            (3, st.builds(_altered_token, tokens, st.data())),
            (1, st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode())),
            (1, st.sampled_from(["====", "Y3JlYXRlZF9hdDpOOjI6MQ", "aWQ6WTo1OjA6ajpq", "e30"])),
            (1, any_text),
        )
    words = _WORDS.get(name)
    if words is None:
        return any_text
    return weighted((3, st.sampled_from(words)), (1, any_text))


#: What a part of a token becomes: numbers at and past every edge, other kinds, text.
_TOKEN_PARTS = st.sampled_from(
    [
        "", "0", "-1", "-0", "1e5", "NaN", "Infinity", "true", "null", '"x"', "[]", "{}",
        str(MAX_INT64), str(MAX_INT64 + 1), str(-(2**63) - 1), "9" * 40, "9" * 5000,
        "Y", "N", "id", "created_at", "modified_at", "j-", "e-", "\x00", ":", ",",
    ]
) | st.text(max_size=6)  # fmt: skip


def _altered_token(token: str, data: st.DataObject) -> str:
    """A token this server made, decoded, one of its parts replaced, encoded again (the
    tokens are base64url of ``a:b:c`` text or of a JSON array)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    separator = "," if raw.startswith("[") else ":"
    body = raw[1:-1] if separator == "," else raw
    parts = body.split(separator)
    i = data.draw(st.integers(min_value=0, max_value=len(parts)))
    new = data.draw(_TOKEN_PARTS)
    if i == len(parts):
        parts.append(new)
    else:
        parts[i] = new
    text = separator.join(parts)
    if separator == ",":
        text = f"[{text}]"
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


#: Values of the string fields that take a few words (or a small language), right and wrong.
_WORDS = {
    "namespace": ["", "", "default", "*", "DEFAULT", " default", "other"],
    "format": ["", "tar", "car", "TAR", "Car", "zip", "tar.gz", " tar"],
    "order_by": [
        "created_at", "modified_at", "id", "create_time", "modify_time", "CREATED_AT", "",
        "size", "name", "state",
    ],
    "labels": [
        "team=a", "team in (a,b)", "team!=", "!!", "a,,b", "team", "!team", "=x",
        "team notin (a)", "x=" + "y" * 70, "team in (", "a=b=c", "",
        # Long ones, nested and repeated: a selector's parsing stays linear.
        "team in (" + ",".join(f"v{i}" for i in range(3000)) + ")",
        ",".join(f"k{i}=v" for i in range(2000)), "!" * 5000, "a in (" + "(" * 5000,
        "a notin " + "(b," * 3000, "a" * 60000 + "=",
    ],
    "event_type": ["", "all", "job", "execution", "ALL", "Execution", "node"],
    "until": ["", "terminal", "TERMINAL", " terminal", "end"],
    "action": ["approve", "reject", "delete", "APPROVE", "Delete", "promote", ""],
}  # fmt: skip


#: Numbers: mostly small (versions, sequence numbers and limits that exist), and the edges.
uint64s = weighted(
    (5, st.integers(min_value=0, max_value=8)),
    (2, st.sampled_from([2**31 - 1, 2**32, 2**53 + 1, MAX_INT64, MAX_INT64 + 1, MAX_UINT64])),
    (1, st.integers(min_value=0, max_value=MAX_UINT64)),
)
uint32s = weighted(
    (5, st.integers(min_value=0, max_value=8)),
    (2, st.sampled_from([100, 2**31 - 1, 2**31, 2**32 - 1])),
    (1, st.integers(min_value=0, max_value=2**32 - 1)),
)
#: Waits: mostly none or short (accepted ones are kept short so the fuzz is quick; a test
#: below gives the unbounded ones), and every refused kind (negative, NaN).
waits = weighted(
    (4, st.just(0.0)),
    (2, st.floats(min_value=0.0, max_value=0.2)),
    (1, st.sampled_from([-0.0, -1.0, -5e-324, math.nan, -math.inf, 5e-324, 0.001, 0.2])),
    (1, st.floats(max_value=0.2)),
)


def signed(bits: int) -> st.SearchStrategy[int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return st.sampled_from([0, -1, 1, low, high]) | st.integers(min_value=low, max_value=high)


def value_strategy(fd: FieldDescriptor, refs: Refs) -> st.SearchStrategy[Any]:
    """Values of one field, by its type (and, for strings, its name)."""
    t = fd.type
    if t == fd.TYPE_STRING:
        one: st.SearchStrategy[Any] = strings_for(fd.name, refs)
    elif t in (fd.TYPE_UINT64, fd.TYPE_FIXED64) and fd.name == "after_seq" and refs.seqs:
        one = weighted((1, st.sampled_from(refs.seqs)), (1, uint64s))
    elif t in (fd.TYPE_UINT64, fd.TYPE_FIXED64):
        one = uint64s
    elif t in (fd.TYPE_UINT32, fd.TYPE_FIXED32):
        one = uint32s
    elif t in (fd.TYPE_INT64, fd.TYPE_SINT64, fd.TYPE_SFIXED64):
        one = signed(64)
    elif t in (fd.TYPE_INT32, fd.TYPE_SINT32, fd.TYPE_SFIXED32):
        one = signed(32)
    elif t in (fd.TYPE_DOUBLE, fd.TYPE_FLOAT):
        one = waits
    elif t == fd.TYPE_BOOL:
        one = st.booleans()
    elif t == fd.TYPE_ENUM:
        # proto3 enums are open: any int32 travels, known or not.
        assert fd.enum_type is not None
        known = [v.number for v in fd.enum_type.values]
        one = st.sampled_from(known) | signed(32)
    elif t == fd.TYPE_BYTES:
        one = st.binary(max_size=64)
    else:  # a message field: none in today's requests
        assert fd.message_type is not None
        one = st.builds(getattr(api_pb2, fd.message_type.name))
    if fd.is_repeated:
        return st.lists(one, max_size=3) | st.lists(one, min_size=100, max_size=400)
    return one


def requests(method: MethodDescriptor, refs: Refs) -> st.SearchStrategy[Message]:
    """Requests of ``method``'s type, each field set or left out."""
    message = getattr(api_pb2, method.input_type.name)
    fields = {fd.name: value_strategy(fd, refs) for fd in method.input_type.fields}
    # What the request is about is nearly always there (its absence is one refusal).
    required = {name: fields.pop(name) for name in _ABOUT if name in fields}
    return st.fixed_dictionaries(required, optional=fields).map(lambda kw: message(**kw))


#: Fields that say what a request is about.
_ABOUT = ("job_id", "node_id", "job_json", "action")


# -- job documents ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _dump(doc: Any) -> str:
    # Lone surrogates leave as \\udXXX escapes and NaN/Infinity as bare literals: what a
    # careless or hostile client sends, in valid UTF-8.
    return json.dumps(doc, allow_nan=True)


@st.composite
def odd_valid_jobs(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """A noop job the compute node runs, with odd text where text is free: the name,
    namespace, labels, meta, the task's name and its output. ``names``: names to collide with."""
    free = any_text.filter(lambda s: len(s) < 2000)
    # Names of jobs that exist, their IDs and prefixes too (a name may be anything).
    name = draw(weighted((3, free), (1, st.sampled_from(names))))
    job = noop_job(name, draw(free), Type=draw(st.sampled_from(["batch", "ops"])))
    if draw(st.booleans()):
        job["Namespace"] = draw(free)
    if draw(st.booleans()):
        job["Labels"] = draw(st.dictionaries(free, free, max_size=3))
    if draw(st.booleans()):
        job["Meta"] = draw(st.dictionaries(free, free, max_size=3))
    if draw(st.booleans()):
        job["Tasks"][0]["Name"] = draw(free)
    if draw(st.booleans()):
        job["Count"] = draw(st.integers(min_value=0, max_value=len(COMPUTE_NODES)))
    if draw(st.booleans()):
        job["Tasks"][0]["Engine"]["Params"]["ExitCode"] = draw(signed(32))
    return job


job_texts = st.sampled_from(
    [
        "", " ", "\ufeff{}", "{}", "[]", "null", "0", '"job"', "{" * 100_000, "[" * 5000,
        '{"Type": "batch"}{}', '{"Type": "batch", "Type": "ops"}', "1e999999", "{\"\\ud800\": 1}",
        '{"Name": "\\ud800", "Type": "batch"}', '{"Name": "\\u0000"}', "NaN", "-Infinity",
        '{"Job": {"Type": "batch"}}', '{"Count": 1e400}', '{"Count": 18446744073709551616}',
        '{"Count": ' + "9" * 5000 + "}", "[" * 990 + "]" * 990, '{"a":' * 990 + "1" + "}" * 990,
    ]
)  # fmt: skip


def job_documents(refs: Refs) -> st.SearchStrategy[str]:
    """``job_json`` values: jobs that run with odd text in them, jobs with a mutation or
    three, any JSON, JSON cut short, and text that is no JSON."""
    return weighted(
        (4, odd_valid_jobs(refs.job_refs).map(_dump)),
        (4, mutated_jobs().map(_dump)),
        (1, json_values.map(_dump)),
        (1, nasty.map(_dump)),
        (1, job_texts),
        (1, st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace"))),
        (1, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
        (
            1,
            mutated_jobs().flatmap(
                lambda job: st.integers(min_value=0, max_value=400).map(lambda n: _dump(job)[:n])
            ),
        ),
    )


# -- raw bytes on the wire -------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 70) - 1
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _string_fields(descriptor: Descriptor) -> list[int]:
    return [fd.number for fd in descriptor.fields if fd.type == fd.TYPE_STRING]


def _number_fields(descriptor: Descriptor) -> list[int]:
    varints = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_BOOL)
    return [fd.number for fd in descriptor.fields if fd.type in varints]


def _double_fields(descriptor: Descriptor) -> list[int]:
    return [fd.number for fd in descriptor.fields if fd.type == FieldDescriptor.TYPE_DOUBLE]


#: Doubles as bit patterns (signalling and negative NaNs, infinities), none a long wait.
_DOUBLE_BITS = [
    struct.pack("<d", v) for v in (-1.0, -math.inf, math.nan, -0.0, 5e-324, 0.1, -1e308)
] + [b"\x01\x00\x00\x00\x00\x00\xf0\x7f", b"\x00\x00\x00\x00\x00\x00\xf8\xff", b"\xff" * 8]


def raw_requests(method: MethodDescriptor, refs: Refs) -> st.SearchStrategy[bytes]:
    """Bytes that are not quite (or not at all) a request of ``method``'s type."""
    descriptor = method.input_type
    valid = requests(method, refs).map(lambda m: m.SerializeToString())
    unknown = st.builds(
        lambda number, wire, payload: _key(number, wire) + payload,
        st.sampled_from([16, 99, 1000, 2**29 - 1]),
        st.sampled_from([0, 1, 2, 5]),
        st.binary(max_size=12),
    )
    groups = st.integers(min_value=1, max_value=300).map(
        lambda depth: _key(77, 3) * depth + _key(77, 4) * depth
    )
    parts = [unknown, groups, st.binary(min_size=1, max_size=16)]
    strings, numbers, doubles = (
        _string_fields(descriptor),
        _number_fields(descriptor),
        _double_fields(descriptor),
    )
    if strings:
        bad_utf8 = st.sampled_from(
            [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"j-\xfe", b"\x80"]
        ) | st.binary(min_size=1, max_size=64)
        parts.append(
            st.builds(
                lambda n, b: _key(n, 2) + _varint(len(b)) + b, st.sampled_from(strings), bad_utf8
            )
        )
        # One field many times over (the last one counts).
        parts.append(
            st.builds(
                lambda n, b, times: (_key(n, 2) + _varint(len(b)) + b) * times,
                st.sampled_from(strings),
                st.text(max_size=40).map(str.encode),
                st.integers(min_value=2, max_value=3000),
            )
        )
        # A string's length past the end, and a string sent as a number.
        parts.append(
            st.builds(lambda n: _key(n, 2) + _varint(2**31) + b"j-", st.sampled_from(strings))
        )
        parts.append(st.builds(lambda n: _key(n, 0) + _varint(7), st.sampled_from(strings)))
    if numbers:
        # Ten-byte (and longer) varints, negative numbers into unsigned fields, a number
        # sent as a string.
        parts.append(
            st.builds(
                lambda n, v: _key(n, 0) + v,
                st.sampled_from(numbers),
                st.sampled_from(
                    [
                        b"\xff" * 9 + b"\x01",
                        b"\xff" * 9 + b"\x7f",
                        b"\x80" * 10 + b"\x00",
                        _varint(MAX_UINT64),
                        _varint(2**64 + 5),
                        b"\xff" * 12,
                    ]
                ),
            )
        )
        parts.append(st.builds(lambda n: _key(n, 2) + b"\x01\x05", st.sampled_from(numbers)))
    if doubles:
        parts.append(
            st.builds(
                lambda n, b: _key(n, 1) + b, st.sampled_from(doubles), st.sampled_from(_DOUBLE_BITS)
            )
        )
    extra = st.one_of(*parts)
    return st.one_of(
        st.binary(max_size=64),
        st.builds(lambda m, e: m + e, valid, extra),
        st.builds(lambda e, m: e + m, extra, valid),
        valid.flatmap(
            lambda m: st.integers(0, max(0, len(m) - 1)).map(lambda n: m[:n] + m[n:][1:])
        ),
    )


# -- the fuzz tests --------------------------------------------------------------------------

METHODS = [
    method
    for service in SERVICES
    for method in api_pb2.DESCRIPTOR.services_by_name[service].methods
    if not method.client_streaming
]
#: Cases per method: more where the request has more to get wrong.
_WEIGHT = {"SubmitJob": 250, "JobHistory": 150, "DiffJob": 100, "ListJobs": 100}


def _examples(method: MethodDescriptor) -> int:
    if method.name in _WEIGHT:
        return _WEIGHT[method.name]
    return 80 if method.input_type.fields else 15


def test_every_method_of_the_services_is_fuzzed() -> None:
    assert {m.name for m in METHODS} >= {
        "SubmitJob", "DiffJob", "GetJob", "ListJobs", "ListExecutions", "JobHistory",
        "StopJob", "RerunJob", "ListJobVersions", "GetResults", "StreamJobLogs",
        "ListNodes", "GetNode", "UpdateNode", "Alive", "Version", "NodeInfo", "Config",
        "WhoAmI", "GetData", "ListData",
    }  # fmt: skip


def _control_key_job() -> str:
    """A job refused at a key holding a control character (the field names the key)."""
    job = noop_job("fuzz-control-key")
    job["Tasks"][0]["Env"] = {"\x01": "x"}
    return json.dumps(job)


def regressions(method: MethodDescriptor, refs: Refs) -> list[Message]:
    """Requests the fuzz found failing, minimised: tried first, every run."""
    seed_id = refs.job_refs[0]
    found: dict[str, list[Message]] = {
        "SubmitJob": [
            api_pb2.SubmitJobRequest(job_json=_control_key_job()),
            api_pb2.SubmitJobRequest(job_json='{"": NaN}'),
        ],
        "DiffJob": [api_pb2.DiffJobRequest(job_json='{"\\u0001": NaN}')],
        "GetJob": [api_pb2.GetJobRequest(job_id="j-")],
        "StreamJobLogs": [api_pb2.StreamJobLogsRequest(job_id=seed_id, execution_id="e-")],
    }
    return found.get(method.name, [])


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_fuzz_requests(target: Target, method: MethodDescriptor) -> None:
    @fuzz(_examples(method))
    @given(request=requests(method, target.refs))
    def send(request: Message) -> None:
        call_and_check(target, method, request)

    for request in regressions(method, target.refs):
        send = example(request=request)(send)
    send()
    assert_healthy(target)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_fuzz_raw_bytes(target: Target, method: MethodDescriptor) -> None:
    @fuzz(25)
    @example(raw=b"\x00")  # field number 0: no message has it
    @given(raw=raw_requests(method, target.refs))
    def send(raw: bytes) -> None:
        call_and_check(target, method, raw)

    send()
    assert_healthy(target)


#: Statuses of a refused credential (the API with users).
AUTH_REFUSALS = {S.UNAUTHENTICATED: "Unauthorized", S.PERMISSION_DENIED: "Forbidden"}


def _basic(user: bytes, password: bytes) -> str:
    return "Basic " + base64.b64encode(user + b":" + password).decode()


#: ``authorization`` values: what clients send, right and wrong. (Metadata values are
#: printable ASCII: a client refuses to send anything else.)
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
utf8 = st.text(max_size=12).map(str.encode)
authorizations = weighted(
    (2, st.sampled_from([key_of(c) for c in (*CAPABILITIES, "write:*")]).map("Bearer ".__add__)),
    (1, st.builds(_basic, st.sampled_from([b"reader", b"READER", b"admin"]), utf8)),
    (1, st.just(_basic(b"reader", READER_PASSWORD.encode()))),
    (1, st.just(_basic(b"admin", b"admin-password-plain"))),
    (2, st.builds(_basic, utf8 | st.binary(max_size=8), utf8 | st.binary(max_size=8))),
    (1, st.binary(max_size=24).map(lambda b: "Basic " + base64.b64encode(b).decode())),
    (
        2,
        st.builds(
            lambda scheme, rest: scheme + rest,
            st.sampled_from(["Basic ", "Bearer ", "basic ", "BEARER ", "Bearer", "Token ", ""]),
            printable,
        ),
    ),
    (1, st.integers(min_value=1, max_value=6000).map(lambda n: "Bearer " + "k" * n)),
)


def test_fuzz_credentials(target: Target) -> None:
    """With users configured: any ``authorization`` (or none) on any method gets OK, a
    refusal of the credential (UNAUTHENTICATED, PERMISSION_DENIED) or of the request, each
    with its code."""

    @fuzz(200)
    @given(
        method=st.sampled_from(METHODS),
        authorization=st.none() | authorizations,
        data=st.data(),
    )
    def send(method: MethodDescriptor, authorization: str | None, data: st.DataObject) -> None:
        request = data.draw(requests(method, target.refs))
        sent = None if authorization is None else (("authorization", authorization),)
        answer = target.call(method, request, metadata=sent, secured=True)
        if answer.code in AUTH_REFUSALS:
            md = answer.metadata()
            assert md.get(CODE_KEY) == AUTH_REFUSALS[answer.code], (method.name, authorization, md)
            assert md.get(HINT_KEY), (method.name, authorization, md)
            check_rich_status(answer, md, f"{method.name} as {authorization!r}")
            return
        check(answer, method, request)
        if answer.code == S.OK and method.name == "SubmitJob":
            accepted(target, answer.response.job_id)

    send()
    assert_healthy(target)


#: A few names, specs and tokens, so that concurrent submissions collide.
race_submissions = st.builds(
    lambda name, out, token, force, wait: api_pb2.SubmitJobRequest(
        job_json=json.dumps(noop_job(name, out)),
        idempotency_token=token,
        force=force,
        wait_seconds=wait,
    ),
    st.sampled_from(["race-a", "race-b"]),
    st.sampled_from(["1\n", "2\n"]),
    st.sampled_from(["", "", "race-token-1", "race-token-2"]),
    st.booleans(),
    st.sampled_from([0.0, 0.05]),
)
race_others = st.one_of(
    st.builds(
        api_pb2.StopJobRequest, job_id=st.sampled_from(["race-a", "race-b"]), reason=st.just("x")
    ),
    st.builds(
        api_pb2.RerunJobRequest,
        job_id=st.sampled_from(["race-a", "race-b"]),
        job_version=st.integers(0, 3),
    ),
    st.builds(
        api_pb2.GetJobRequest,
        job_id=st.sampled_from(["race-a", "race-b"]),
        include_history=st.booleans(),
        include_executions=st.booleans(),
    ),
    st.builds(api_pb2.ListJobVersionsRequest, job_id=st.sampled_from(["race-a", "race-b"])),
    st.builds(
        api_pb2.StreamJobLogsRequest,
        job_id=st.sampled_from(["race-a", "race-b"]),
        follow=st.booleans(),
    ),
)


def test_fuzz_concurrent_calls_on_one_job(target: Target) -> None:
    """Submissions, stops, reruns and reads of the same few jobs at once: each answer as
    alone, no accepted job lost, a name is one job and a token answers one submission."""
    by_type = {type(getattr(api_pb2, m.input_type.name)()): m for m in METHODS}

    async def together(batch: list[Message]) -> list[Answer]:
        calls = [target.call_async(by_type[type(r)], r) for r in batch]
        return list(await asyncio.gather(*calls))

    @fuzz(60)
    @given(batch=st.lists(race_submissions | race_others, min_size=2, max_size=8))
    def race(batch: list[Message]) -> None:
        answers = target.run(together(batch), timeout=CALL_TIMEOUT + 10)
        ids_by_name: dict[str, set[str]] = {}
        ids_by_token: dict[str, set[str]] = {}
        for request, answer in zip(batch, answers, strict=True):
            method = by_type[type(request)]
            check(answer, method, request)
            if answer.let_go:
                continue
            if answer.code == S.OK and isinstance(request, api_pb2.SubmitJobRequest):
                job_id = answer.response.job_id
                accepted(target, job_id)
                ids_by_name.setdefault(json.loads(request.job_json)["Name"], set()).add(job_id)
                if request.idempotency_token:
                    ids_by_token.setdefault(request.idempotency_token, set()).add(job_id)
        for job_id in {i for ids in ids_by_name.values() for i in ids}:
            read_back(target, job_id)
        assert all(len(ids) == 1 for ids in ids_by_name.values()), ids_by_name
        assert all(len(ids) == 1 for ids in ids_by_token.values()), ids_by_token

    race()
    assert_healthy(target)


def test_waits_without_bound_end_with_the_job(target: Target) -> None:
    """Waits beyond every bound on jobs that end at once (or have ended) answer as soon as
    there is nothing to wait for."""
    submit = _method("JobService", "SubmitJob")
    history = _method("JobService", "JobHistory")
    for wait in (math.inf, 1e308, float(MAX_UINT64), 31.0):
        submission = api_pb2.SubmitJobRequest(
            job_json=json.dumps(noop_job("fuzz-wait", f"{wait}\n")),
            wait_seconds=wait,
            include_executions=True,
        )
        answer = call_and_check(target, submit, submission)
        assert answer.code == S.OK and answer.response.job.state == "Completed"
        ref = answer.response.job_id
        last = ok(target, "JobService", "JobHistory", job_id=ref).next_after_seq
        for until in ("", "terminal"):
            poll = api_pb2.JobHistoryRequest(
                job_id=ref, after_seq=last, wait_seconds=wait, until=until
            )
            answer = call_and_check(target, history, poll)
            assert answer.code == S.OK and not answer.response.more
    assert_healthy(target)


def test_jobs_at_and_past_the_size_limit(target: Target) -> None:
    """A job just over what a node takes is refused with RESOURCE_EXHAUSTED, its code and
    the field. One past what gRPC itself reads (twice max_job_size: the README says so) is
    refused by gRPC before the node sees it: RESOURCE_EXHAUSTED all the same, and the node
    stays healthy."""
    submit = _method("JobService", "SubmitJob")
    limit = 4 * 1024 * 1024 - 64 * 1024
    for size in (limit + 1, 9 * 1024 * 1024):
        job = noop_job("fuzz-big")
        job["Meta"] = {"pad": ""}
        job["Meta"]["pad"] = "x" * (size - len(json.dumps(job)))
        text = json.dumps(job)
        assert len(text) == size
        request = api_pb2.SubmitJobRequest(job_json=text)
        if size > 8 * 1024 * 1024:
            answer = target.call(submit, request)
            assert answer.code == S.RESOURCE_EXHAUSTED, size
            continue
        answer = call_and_check(target, submit, request)
        assert answer.code == S.RESOURCE_EXHAUSTED, size
        assert answer.metadata().get(FIELD_KEY) == "job_json", size
    assert_healthy(target)


def test_the_largest_job_reads_back_through_every_call(target: Target) -> None:
    """A job as large as a node takes, in two versions: every call that carries it answers
    in what a client reads by default (4 MiB), or refuses with its code."""
    limit = 4 * 1024 * 1024 - 64 * 1024
    for version in ("1", "2"):
        job = noop_job("fuzz-largest", version)
        job["Meta"] = {"pad": ""}
        job["Meta"]["pad"] = "x" * (limit - len(json.dumps(job)))
        text = json.dumps(job)
        assert len(text) == limit
        request = api_pb2.SubmitJobRequest(
            job_json=text, wait_seconds=20, include_executions=True, force=True
        )
        answer = call_and_check(target, _method("JobService", "SubmitJob"), request)
        assert answer.code == S.OK
    job_id = answer.response.job_id
    for name, fields in (
        ("GetJob", {"job_id": job_id, "include_history": True, "include_executions": True}),
        ("GetJob", {"job_id": job_id, "job_version": 1, "include_history": True}),
        ("ListJobs", {}),
        ("ListJobs", {"limit": 3, "order_by": "modified_at", "reverse": True}),
        ("ListJobVersions", {"job_id": job_id}),
        ("JobHistory", {"job_id": job_id, "include_executions": True, "all_job_versions": True}),
        ("ListExecutions", {"job_id": job_id, "all_job_versions": True}),
        ("DiffJob", {"job_json": text}),
        ("RerunJob", {"job_id": job_id, "job_version": 1}),
    ):
        method = _method("JobService", name)
        call_and_check(target, method, request_of(method, **fields))
    assert_healthy(target)


def test_every_accepted_job_is_still_there_and_stops(target: Target) -> None:
    """Last: every job the module's calls accepted is still there, and stops (or is
    already finished)."""
    stop = _method("JobService", "StopJob")
    for job_id in sorted(target.accepted):
        call_and_check(target, stop, api_pb2.StopJobRequest(job_id=job_id, reason="fuzz done"))
    assert_healthy(target, every_job=True)


def _car_of(target: Target) -> bytes:
    """A CAR of a small directory, as ``bacalhau data add`` sends it."""
    folder = target.data_dir / "upload"
    folder.mkdir(exist_ok=True)
    (folder / "x.txt").write_bytes(b"upload\n" * 500)
    out = io.BytesIO()
    with Blockstore(target.data_dir / "upload-blocks") as store:
        with store.batch() as sink:
            root = Importer(sink).add_path(folder)
        write_car(out, [root.cid], store)
    return out.getvalue()


def test_fuzz_uploads(target: Target) -> None:
    """PutData with chunks of any bytes, a CAR cut or damaged anywhere, and a whole CAR in
    chunks of any size: refused with a documented status and our metadata, or stored."""
    car = _car_of(target)
    put = _method("DataService", "PutData")

    async def upload(chunks: list[bytes]) -> Answer:
        stub = api_pb2_grpc.DataServiceStub(target.channels[False])
        messages = [api_pb2.PutDataRequest(chunk=c) for c in chunks]
        try:
            resp = await stub.PutData(iter(messages), timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            return Answer(err.code(), error=err)
        return Answer(S.OK, resp)

    def cut(data: bytes, sizes: list[int]) -> list[bytes]:
        out, at = [], 0
        for n in sizes:
            out.append(data[at : at + n])
            at += n
        return [*out, data[at:]]

    damaged = st.builds(
        lambda i, b: car[:i] + bytes([b]) + car[i + 1 :],
        st.integers(0, len(car) - 1),
        st.integers(0, 255),
    )
    bodies = weighted(
        (2, st.lists(st.binary(max_size=2000), max_size=5)),
        (2, st.integers(0, len(car) - 1).map(lambda n: [car[:n]])),
        (2, damaged.map(lambda d: [d])),
        (2, st.lists(st.integers(0, 4000), max_size=6).map(lambda sizes: cut(car, sizes))),
        (1, st.just([car, b"x" * (UPLOAD_LIMIT + 1)])),
    )

    @fuzz(60)
    @given(chunks=bodies)
    def send(chunks: list[bytes]) -> None:
        answer = target.run(upload(chunks), timeout=CALL_TIMEOUT + 10)
        check(answer, put, b"".join(chunks)[:300])
        if b"".join(chunks) == car:
            assert answer.code == S.OK and answer.response.cid, answer

    send()
    assert_healthy(target)
