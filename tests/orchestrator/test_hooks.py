"""Requester-side bid approval hooks: real bash programs and a real aiohttp server as the
operator's hooks, the chain's rules, and a real Orchestrator deciding bids with them."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    Execution,
    Job,
    NodeInfo,
    NodeState,
    NodeType,
)
from bacalhau.orchestrator import (
    ApprovalChain,
    ExecApprovalHook,
    HookDecision,
    HookVerdict,
    HttpApprovalHook,
    Orchestrator,
)
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_callbacks import RecordingCompute

LOG = "bacalhau.orchestrator._hooks"


def bid() -> tuple[Job, Execution, NodeState]:
    job = Job.from_dict(
        {
            "ID": "j-1",
            "Type": "batch",
            "Labels": {"team": "blue"},
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}],
        }
    )
    ex = Execution(id="e-1", job_id="j-1", node_id="node-a")
    return job, ex, NodeState(info=compute_node_info("node-a"))


async def decide(chain: ApprovalChain) -> tuple[bool, str, str, tuple[str, ...]]:
    d = await asyncio.wait_for(chain.decide(*bid()), 20)
    return d.accepted, d.decided_by, d.reason, d.reasons


class Fixed:
    """A hook answering the same each time, counting its calls."""

    def __init__(self, name: str, *answers: HookDecision) -> None:
        self.name = name
        self._answers = list(answers)
        self.calls = 0

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        self.calls += 1
        return self._answers[min(self.calls, len(self._answers)) - 1]


class Crashing:
    name = "crashing"

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        raise RuntimeError("division by zero somewhere")


# -- the chain --------------------------------------------------------------------------------


async def test_first_no_wins_and_every_reason_is_kept() -> None:
    first = Fixed("quota", HookDecision.accept("within quota"))
    second = Fixed("blocklist", HookDecision.reject("node-a is on the blocklist"))
    third = Fixed("never-asked", HookDecision.accept())
    chain = ApprovalChain([first, second, third])
    accepted, by, reason, reasons = await decide(chain)
    assert not accepted and by == "blocklist" and reason == "node-a is on the blocklist"
    assert reasons == ("quota: within quota", "blocklist: node-a is on the blocklist")
    assert third.calls == 0


async def test_an_empty_chain_needs_no_approval_and_a_configured_one_does() -> None:
    assert not ApprovalChain().needs_approval
    assert ApprovalChain([Fixed("a", HookDecision.accept())]).needs_approval


async def test_a_deferring_hook_is_asked_again_then_decides() -> None:
    hook = Fixed("budget", HookDecision.defer("recomputing"), HookDecision.accept("ok now"))
    deferred: list[tuple[str, str]] = []
    chain = ApprovalChain([hook], defer_delay=0.01)
    decision = await chain.decide(*bid(), on_defer=lambda h, why: deferred.append((h, why)))
    assert decision.accepted and hook.calls == 2
    assert deferred == [("budget", "recomputing")]


async def test_a_hook_that_defers_forever_is_a_no_after_the_bound() -> None:
    hook = Fixed("budget", HookDecision.defer("still busy"))
    chain = ApprovalChain([hook], defer_delay=0.01, max_defers=3)
    accepted, by, reason, _ = await decide(chain)
    assert not accepted and by == "budget"
    assert reason == "still deferring after 4 asks (still busy)"
    assert hook.calls == 4


async def test_a_crashing_hook_is_a_no_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    chain = ApprovalChain([Crashing()])
    with caplog.at_level(logging.WARNING, logger=LOG):
        results = [await decide(chain) for _ in range(3)]
    assert all(not accepted for accepted, *_ in results)
    assert "crashed: RuntimeError: division by zero somewhere" in results[0][2]
    assert len(caplog.records) == 1


# -- exec hooks -------------------------------------------------------------------------------


def program(tmp_path: Path, body: str, *, executable: bool = True) -> str:
    path = tmp_path / "hook.sh"
    path.write_text("#!/bin/bash\n" + body)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_exec_hook_reads_the_bid_and_answers_by_exit_code(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    hook = ExecApprovalHook(
        "steer",
        program(
            tmp_path,
            f"""cat > {seen}
grep -q '"NodeID": "node-a"' {seen} && {{ echo "node-a is draining" >&2; exit 1; }}
exit 0
""",
        ),
    )
    decision = await hook.approve(*bid())
    assert decision == HookDecision.reject("node-a is draining")
    payload = json.loads(seen.read_text())
    assert payload["Job"]["Labels"] == {"team": "blue"}
    assert payload["Execution"]["ID"] == "e-1"
    assert payload["Node"]["Info"]["NodeID"] == "node-a"


async def test_exec_hook_defers_with_exit_75() -> None:
    decision = await ExecApprovalHook("later", "echo 'ask me later'; exit 75").approve(*bid())
    assert decision.verdict is HookVerdict.DEFER and decision.reason == "ask me later"


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (lambda d: str(d / "no-such-hook"), "No such file or directory"),
        (lambda d: program(d, "exit 0", executable=False), "Permission denied"),
        (lambda d: program(d, "kill -SEGV $$"), "was killed by SIGSEGV"),
        # A wrapper script whose program crashed: bash reports it as exit 128+11.
        (
            lambda d: program(d, "bash -c 'kill -SEGV $$'"),
            "exited with code 139 (SIGSEGV, as a shell reports it)",
        ),
    ],
    ids=["missing", "not-executable", "crashed", "crashed-in-a-wrapper"],
)
async def test_exec_hook_that_cannot_run_is_a_no_logged_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Path], str],
    cause: str,
) -> None:
    chain = ApprovalChain([ExecApprovalHook("operator", make(tmp_path))])
    with caplog.at_level(logging.WARNING, logger=LOG):
        first = await decide(chain)
        await decide(chain)
    accepted, by, reason, _ = first
    assert not accepted and by == "operator"
    assert reason.startswith("hook failed: ") and cause in reason
    assert len([r for r in caplog.records if cause in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda d: str(d / "no-such-hook") + " --flag", "does not exist or is not executable"),
        (lambda d: program(d, "exit 0", executable=False), "does not exist or is not executable"),
        (
            lambda d: "no-such-approver-program --x",
            "'no-such-approver-program' is not found on PATH",
        ),
        (lambda d: "'unclosed", "is not a valid command"),
    ],
    ids=["missing", "not-executable", "not-on-path", "bad-quoting"],
)
def test_exec_hook_that_cannot_run_is_said_when_it_is_made(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: Callable[[Path], str], said: str
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG):
        ExecApprovalHook("operator", make(tmp_path))
    [record] = caplog.records
    assert said in record.getMessage() and "reject every bid" in record.getMessage()


@pytest.mark.parametrize(
    "command", ["true", "exit 1", "bash -c 'exit 0'", "if true; then exit 0; fi", "X=1 env"]
)
def test_exec_hook_that_can_run_is_not_warned_of(
    caplog: pytest.LogCaptureFixture, command: str
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG):
        ExecApprovalHook("operator", command)
    assert caplog.records == []


async def test_exec_hook_that_hangs_is_a_no_at_its_timeout() -> None:
    chain = ApprovalChain([ExecApprovalHook("slow", "sleep 30", timeout=0.3)])
    accepted, _, reason, _ = await decide(chain)
    assert not accepted and reason == "hook failed: did not answer within 0.3s"


async def test_exec_hook_printing_garbage_is_a_readable_no() -> None:
    hook = ExecApprovalHook("noisy", "head -c 2000000 /dev/urandom >&2; exit 3")
    accepted, _, reason, _ = await decide(ApprovalChain([hook]))
    assert not accepted and 0 < len(reason) <= 500


# -- HTTP hooks -------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/approve", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/approve"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_http_hook_accepts_rejects_and_defers(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    answers = iter(
        [
            {"Accept": True, "Reason": "fine"},
            {"accept": False, "reason": "not that node"},
            {"Accept": False, "Defer": True, "Reason": "ask later"},
        ]
    )

    async def handler(req: web.Request) -> web.Response:
        body = await req.json()
        assert body["Execution"]["NodeID"] == "node-a"
        return web.json_response(next(answers))

    hook = HttpApprovalHook("steer", await serve(handler))
    try:
        assert await hook.approve(*bid()) == HookDecision.accept("fine")
        assert await hook.approve(*bid()) == HookDecision.reject("not that node")
        assert await hook.approve(*bid()) == HookDecision.defer("ask later")
    finally:
        await hook.aclose()


async def test_http_hook_answering_non_json_is_a_no_logged_once(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(req: web.Request) -> web.Response:
        return web.Response(text="yes please")

    chain = ApprovalChain([HttpApprovalHook("steer", await serve(handler))])
    try:
        with caplog.at_level(logging.WARNING, logger=LOG):
            results = [await decide(chain) for _ in range(3)]
    finally:
        await chain.aclose()
    assert all(not accepted for accepted, *_ in results)
    assert 'is not {"Accept"' in results[0][2] and "yes please" in results[0][2]
    assert len(caplog.records) == 1


async def test_http_hook_error_status_is_a_no_with_its_reason(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(req: web.Request) -> web.Response:
        return web.json_response({"Reason": "quota exhausted"}, status=429)

    hook = HttpApprovalHook("quota", await serve(handler))
    try:
        assert await hook.approve(*bid()) == HookDecision.reject("quota exhausted")
    finally:
        await hook.aclose()


async def test_http_hook_that_is_slow_or_down_is_a_no(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def handler(req: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"Accept": True})

    slow = HttpApprovalHook("slow", await serve(handler), timeout=0.3)
    down = HttpApprovalHook("down", "http://127.0.0.1:9/approve", timeout=5)
    chain = ApprovalChain([slow])
    try:
        _, _, reason, _ = await decide(chain)
        assert reason == "hook failed: did not answer within 0.3s"
        _, by, reason, _ = await decide(ApprovalChain([down]))
        assert by == "down" and reason.startswith("hook failed: unreachable")
    finally:
        release.set()
        await chain.aclose()
        await down.aclose()


def in_parts(answer: dict[str, object], *, chunked: bool, pause: float = 0.2) -> Handler:
    """A handler writing ``answer`` in two parts, ``pause`` apart, as a proxy or a web
    framework may: with its length declared, or chunked."""
    body = json.dumps(answer).encode()

    async def handler(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(body)
        await resp.prepare(req)
        await resp.write(body[:5])
        await asyncio.sleep(pause)
        await resp.write(body[5:])
        await resp.write_eof()
        return resp

    return handler


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_http_hook_answer_in_parts_is_read_whole(
    serve: Callable[[Handler], Awaitable[str]], chunked: bool
) -> None:
    hook = HttpApprovalHook(
        "steer", await serve(in_parts({"Accept": True, "Reason": "split ok"}, chunked=chunked))
    )
    try:
        assert await hook.approve(*bid()) == HookDecision.accept("split ok")
    finally:
        await hook.aclose()


async def test_http_hook_answer_too_large_or_trickling_is_a_no_saying_so(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def huge(req: web.Request) -> web.Response:
        return web.json_response({"Accept": True, "Reason": "x" * (1 << 20)})

    async def trickle(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 100
        await resp.prepare(req)
        for _ in range(100):
            await resp.write(b" ")
            await asyncio.sleep(0.1)
        return resp

    _, _, reason, _ = await decide(ApprovalChain([HttpApprovalHook("big", await serve(huge))]))
    assert reason == "hook failed: answered more than 64 KiB"
    slow = HttpApprovalHook("slow", await serve(trickle), timeout=0.5)
    _, _, reason, _ = await decide(ApprovalChain([slow]))
    assert reason == "hook failed: did not answer within 0.5s"


# -- in the requester -------------------------------------------------------------------------


class Gate:
    """A hook that holds each bid until the test opens it (a slow operator's hook)."""

    name = "gate"

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waiting = 0

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        self.waiting += 1
        await self.opened.wait()
        return HookDecision.reject("closed for the night")


def _job(name: str) -> Job:
    return Job.from_dict(
        {"Name": name, "Type": "batch", "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
    )


async def test_a_slow_hook_holds_only_its_bid_and_history_names_the_hook(
    tmp_path: Path,
) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    gate = Gate()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        approval_hooks=ApprovalChain([gate]),
    )
    async with orch:
        await view.join(compute_node_info("node-a"))
        slow_id = (await orch.submit_job(_job("slow"))).job_id
        _, ask = await compute.next("ask")
        assert isinstance(ask, AskForBidRequest) and ask.wait_for_approval
        # The node's callback returns at once although the hook has not answered.
        await asyncio.wait_for(
            orch.on_bid_complete(BidResult(ask.execution.id, slow_id, "node-a", accepted=True)),
            2,
        )
        for _ in range(100):
            if gate.waiting:
                break
            await asyncio.sleep(0.01)
        assert gate.waiting == 1
        # Another job is asked and its bid heard meanwhile.
        other_id = (await orch.submit_job(_job("other"))).job_id
        _, other = await compute.next("ask")
        assert isinstance(other, AskForBidRequest) and other.execution.job_id == other_id
        gate.opened.set()
        node, decision = await compute.next("reject")
        assert node == "node-a" and isinstance(decision, BidDecision)
        assert decision.justification == (
            "bid rejected by approval hook gate: closed for the night"
        )
        history = await orch.job_history(slow_id, event_type="execution")
        decided = [h.event for h in history if h.event.details.get("ApprovalHook") == "gate"]
        assert decided and decided[-1].message.endswith("gate: closed for the night")
        asked = [h.event.message for h in history]
        assert "Bid received from node; asking approval hooks: gate" in asked


async def test_a_bid_delivered_twice_asks_the_hooks_once(tmp_path: Path) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    gate = Gate()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        approval_hooks=ApprovalChain([gate]),
    )
    async with orch:
        await view.join(compute_node_info("node-a"))
        job_id = (await orch.submit_job(_job("twice"))).job_id
        _, ask = await compute.next("ask")
        assert isinstance(ask, AskForBidRequest)
        bid_result = BidResult(ask.execution.id, job_id, "node-a", accepted=True)
        await orch.on_bid_complete(bid_result)
        await orch.on_bid_complete(bid_result)  # the node retried its callback
        gate.opened.set()
        await compute.next("reject")
        await asyncio.sleep(0.1)
        assert gate.waiting == 1
        assert not [k for k, _, _ in compute.sent if k == "reject"]


async def test_http_hook_server_error_is_a_failure_logged_once(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """A 5xx is the hook breaking, not a "no": the reason says so, and it is logged once."""

    async def handler(req: web.Request) -> web.Response:
        return web.json_response({"Reason": "database down"}, status=503)

    chain = ApprovalChain([HttpApprovalHook("steer", await serve(handler))])
    try:
        with caplog.at_level(logging.WARNING, logger=LOG):
            results = [await decide(chain) for _ in range(3)]
    finally:
        await chain.aclose()
    assert all(not accepted for accepted, *_ in results)
    assert results[0][2] == "hook failed: HTTP status 503: database down"
    assert len(caplog.records) == 1
