"""The operator's exec and HTTP probes, and the built-in admission rules, against real
programs (bash scripts in a temp dir) and a real HTTP server (aiohttp on loopback)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from bacalhau.compute import (
    Bidder,
    BidRequest,
    ExecProbe,
    HttpProbe,
    LocalInputs,
    Locality,
    RejectStatelessJobs,
    default_strategies,
)
from bacalhau.hooks import MAX_REASON, reason_text
from bacalhau.models import InputSource, Job, Resources, SpecConfig
from bacalhau.publisher import NoopPublisher
from bacalhau.storage.cid import Blockstore, Importer
from tests.compute.jobs import make_execution
from tests.compute.shell_executor import ShellExecutor
from tests.orchestrator.test_hooks import in_parts


def job_of(labels: dict[str, str] | None = None) -> Job:
    job = make_execution().job
    assert job is not None
    job.labels = dict(labels or {})
    return job


def request(job: Job | None = None) -> BidRequest:
    return BidRequest(node_id="node-1", job=job or job_of(), usage=Resources())


def script(tmp_path: Path, body: str, *, executable: bool = True) -> str:
    path = tmp_path / "probe.sh"
    path.write_text("#!/bin/bash\n" + body)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# -- exec probe -------------------------------------------------------------------------------


async def test_a_reason_cannot_drive_the_terminal_and_a_signal_is_named(tmp_path: Path) -> None:
    """A probe's reason is stored in job history and printed by the CLI: its control bytes
    are escaped, and a probe a signal ended says which signal."""
    noisy = ExecProbe(script(tmp_path, "printf 'RED\\033[31m\\x00\\x07 \\xff\\n' >&2; exit 3"))
    verdict = await noisy.evaluate(request())
    assert verdict.reason == "this node does not accept this job: RED\\x1b[31m\\x00\\x07 \ufffd"
    crashing = ExecProbe(script(tmp_path, "kill -SEGV $$"))
    verdict = await crashing.evaluate(request())
    assert verdict.reason.endswith("was killed by SIGSEGV")


async def test_exec_probe_sees_the_job_and_decides_by_exit_code(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    probe = ExecProbe(
        script(
            tmp_path,
            f"""cat > {seen}
if grep -q '"team": "blue"' {seen}; then echo "no blue jobs here" >&2; exit 1; fi
[ -n "$BACALHAU_JOB_SELECTION_PROBE_DATA" ] || exit 3
""",
        )
    )
    blue = await probe.evaluate(request(job_of({"team": "blue"})))
    assert not blue.should_bid
    assert blue.reason == "this node does not accept this job: no blue jobs here"
    payload = json.loads(seen.read_text())
    assert payload["NodeID"] == "node-1" and payload["Job"]["Labels"] == {"team": "blue"}
    green = await probe.evaluate(request(job_of({"team": "green"})))
    assert green.should_bid, green.reason


async def test_exec_probe_reason_is_the_first_line_of_stdout_without_stderr(
    tmp_path: Path,
) -> None:
    probe = ExecProbe("printf '\\n  too busy  \\nsecond line\\n'; exit 2")
    verdict = await probe.evaluate(request())
    assert verdict.reason == "this node does not accept this job: too busy"


async def test_exec_probe_environment_holds_only_the_payload_and_path(tmp_path: Path) -> None:
    os.environ["PROBE_TEST_SECRET"] = "x"
    try:
        out = tmp_path / "env"
        verdict = await ExecProbe(f"env > {out}").evaluate(request())
    finally:
        del os.environ["PROBE_TEST_SECRET"]
    assert verdict.should_bid
    names = {line.partition("=")[0] for line in out.read_text().splitlines()}
    assert "PROBE_TEST_SECRET" not in names
    assert {"PATH", "BACALHAU_JOB_SELECTION_PROBE_DATA"} <= names


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (lambda d: str(d / "missing-probe"), "No such file or directory"),
        (lambda d: script(d, "exit 0", executable=False), "Permission denied"),
        (lambda d: script(d, "kill -SEGV $$"), "was killed by SIGSEGV"),
        (
            lambda d: script(d, "bash -c 'kill -ABRT $$'"),
            "exited with code 134 (SIGABRT, as a shell reports it)",
        ),
    ],
    ids=["missing", "not-executable", "crashed", "crashed-in-a-wrapper"],
)
async def test_exec_probe_that_cannot_run_is_a_no_logged_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Path], str],
    cause: str,
) -> None:
    probe = ExecProbe(make(tmp_path))
    with caplog.at_level(logging.WARNING, logger="bacalhau.compute._probes"):
        first = await probe.evaluate(request())
        second = await probe.evaluate(request())
    assert not first.should_bid and not second.should_bid
    assert first.reason.startswith("this node does not accept this job: exec probe ")
    assert cause in first.reason
    assert len([r for r in caplog.records if cause in r.getMessage()]) == 1


def test_exec_probe_that_cannot_run_is_said_when_it_is_made(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bacalhau.compute._probes"):
        ExecProbe(str(tmp_path / "missing-probe") + " --json")
        ExecProbe("/bin/true")
    [record] = caplog.records
    assert "missing-probe' does not exist or is not executable" in record.getMessage()
    assert "this node will bid on no job" in record.getMessage()


async def test_exec_probe_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    probe = ExecProbe(f"sleep 30 & echo $! > {pid_file}; wait", timeout=0.5)
    verdict = await asyncio.wait_for(probe.evaluate(request()), 10)
    assert not verdict.should_bid
    assert "did not answer within 0.5s" in verdict.reason
    # The whole process group is gone, the sleeping child included.
    child = int(pid_file.read_text())
    for _ in range(50):
        if _proc_state(child) == "Z":
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the probe's child survived its timeout")


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


async def test_exec_probe_printing_garbage_is_a_bounded_no() -> None:
    # Megabytes of binary noise on both streams, then a failing exit: a no, with a reason
    # cut to a readable length.
    probe = ExecProbe("head -c 3000000 /dev/urandom; head -c 3000000 /dev/urandom >&2; exit 9")
    verdict = await probe.evaluate(request())
    assert not verdict.should_bid
    assert len(verdict.reason) < 600


async def test_exec_probe_of_a_large_job_reads_it_on_stdin_or_ignores_it() -> None:
    job = job_of()
    job.meta = {"blob": "x" * 300_000}  # more than a pipe or an environment variable holds
    assert (await ExecProbe("exit 0", timeout=5).evaluate(request(job))).should_bid
    reader = ExecProbe("[ $(wc -c) -gt 300000 ]", timeout=5)
    assert (await reader.evaluate(request(job))).should_bid


# -- HTTP probe -------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/probe", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/probe"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_http_probe_posts_the_payload_and_reads_the_answer(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    bodies: list[dict[str, object]] = []

    async def handler(req: web.Request) -> web.Response:
        body = await req.json()
        bodies.append(body)
        blue = body["Job"]["Labels"].get("team") == "blue"
        # Bacalhau v1.5.0 spelled the keys in camel case: any case is read.
        return web.json_response({"shouldBid": not blue, "reason": "blue goes elsewhere"})

    async with HttpProbe(await serve(handler)) as probe:
        blue = await probe.evaluate(request(job_of({"team": "blue"})))
        green = await probe.evaluate(request(job_of({"team": "green"})))
    assert not blue.should_bid and blue.reason.endswith("blue goes elsewhere")
    assert green.should_bid
    assert bodies[0]["NodeID"] == "node-1"


async def test_http_probe_status_decides_when_the_body_is_empty(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(req: web.Request) -> web.Response:
        return web.Response(status=200 if req.query.get("ok") else 403)

    url = await serve(handler)
    assert (await HttpProbe(url + "?ok=1").evaluate(request())).should_bid
    refused = await HttpProbe(url).evaluate(request())
    assert not refused.should_bid and "HTTP status 403" in refused.reason


async def test_http_probe_answering_non_json_is_a_no_logged_once(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(req: web.Request) -> web.Response:
        return web.Response(text="<html>sure</html>", content_type="text/html")

    probe = HttpProbe(await serve(handler))
    with caplog.at_level(logging.WARNING, logger="bacalhau.compute._probes"):
        verdicts = [await probe.evaluate(request()) for _ in range(3)]
    assert all(not v.should_bid for v in verdicts)
    assert 'not {"ShouldBid"' in verdicts[0].reason and "<html>sure" in verdicts[0].reason
    assert len(caplog.records) == 1


async def test_http_probe_that_is_slow_is_a_no_at_its_timeout(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def handler(req: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ShouldBid": True})

    probe = HttpProbe(await serve(handler), timeout=0.3)
    verdict = await asyncio.wait_for(probe.evaluate(request()), 10)
    release.set()
    assert not verdict.should_bid and "did not answer within 0.3s" in verdict.reason


async def test_http_probe_that_is_down_is_a_no() -> None:
    verdict = await HttpProbe("http://127.0.0.1:9/probe", timeout=5).evaluate(request())
    assert not verdict.should_bid and "unreachable" in verdict.reason


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_http_probe_answer_in_parts_is_read_whole(
    serve: Callable[[Handler], Awaitable[str]], chunked: bool
) -> None:
    answer = {"ShouldBid": True, "Reason": "split ok"}
    probe = HttpProbe(await serve(in_parts(answer, chunked=chunked)))
    verdict = await probe.evaluate(request())
    assert verdict.should_bid and verdict.reason == "split ok"


async def test_http_probe_answer_too_large_is_a_no_saying_so(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def huge(req: web.Request) -> web.Response:
        return web.json_response({"ShouldBid": True, "Reason": "x" * (1 << 20)})

    verdict = await HttpProbe(await serve(huge)).evaluate(request())
    assert not verdict.should_bid and verdict.reason.endswith("answered more than 64 KiB")


# -- built-in admission rules -----------------------------------------------------------------


async def test_stateless_jobs_are_refused_when_the_operator_says_so() -> None:
    stateless = job_of()
    with_input = job_of()
    with_input.task.input_sources = [
        InputSource(SpecConfig("inline", {"URL": "data:,hi"}), target="/in")
    ]
    rule = RejectStatelessJobs()
    refused = await rule.evaluate(request(stateless))
    assert refused.reason == "this node does not accept jobs without inputs"
    assert (await rule.evaluate(request(with_input))).should_bid


async def test_locality_takes_only_jobs_whose_data_is_here(tmp_path: Path) -> None:
    with Blockstore(tmp_path / "blocks") as blocks:
        here = Importer(blocks).add_bytes(b"the data on this node").cid
        absent_cid = str(Importer(None).add_bytes(b"not on this node").cid)
        rule = Locality(LocalInputs(blocks))

        def job_reading(*sources: SpecConfig) -> Job:
            job = job_of()
            job.task.input_sources = [
                InputSource(s, target=f"/in{i}") for i, s in enumerate(sources)
            ]
            return job

        local_dir = SpecConfig("localDirectory", {"SourcePath": str(tmp_path)})
        taken = job_reading(SpecConfig("ipfs", {"CID": str(here)}), local_dir)
        assert (await rule.evaluate(request(taken))).should_bid
        for elsewhere in (
            SpecConfig("ipfs", {"CID": absent_cid}),
            SpecConfig("localDirectory", {"SourcePath": str(tmp_path / "nope")}),
            SpecConfig("urlDownload", {"URL": "http://example.com/x"}),
        ):
            verdict = await rule.evaluate(request(job_reading(elsewhere)))
            assert verdict.reason == "this node does not have this job's input data locally"


async def test_probes_run_after_the_built_in_rules_and_their_no_is_the_bid(
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls"
    strategies = default_strategies(
        executors={"shell": ShellExecutor()},
        publishers={"noop": NoopPublisher()},
        max_job_requirements=Resources(cpu=4, memory=8 * 2**30, disk=2**36),
        storage_sources=("inline",),
        reject_stateless_jobs=True,
        probes=[ExecProbe(f"echo called >> {calls}; echo 'not today' >&2; exit 1")],
    )
    bidder = Bidder(node_id="n", strategies=strategies)
    # Refused by a built-in rule: the operator's program is not even started.
    stateless = await bidder.bid(job_of())
    assert stateless.reason == "this node does not accept jobs without inputs"
    assert not calls.exists()
    job = job_of()
    job.task.input_sources = [InputSource(SpecConfig("inline", {"URL": "data:,x"}), target="/i")]
    verdict = await bidder.bid(job)
    assert verdict.reason == "this node does not accept this job: not today"
    assert calls.read_text() == "called\n"


async def test_http_probe_server_error_is_a_failure_logged_once(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(req: web.Request) -> web.Response:
        return web.Response(status=500, text="Internal Server Error")

    probe = HttpProbe(await serve(handler))
    with caplog.at_level(logging.WARNING, logger="bacalhau.compute._probes"):
        verdicts = [await probe.evaluate(request()) for _ in range(3)]
    assert all(not v.should_bid for v in verdicts)
    assert verdicts[0].reason.endswith("failed: HTTP status 500")
    assert len(caplog.records) == 1


def test_a_long_reason_is_cut_saying_so() -> None:
    assert reason_text("no") == "no"
    assert reason_text("n" * MAX_REASON) == "n" * MAX_REASON
    cut = reason_text("n" * 10 * MAX_REASON)
    assert len(cut) == MAX_REASON and cut.endswith("…")
    escaped = reason_text("\x1b" * MAX_REASON)  # four characters each once escaped
    assert len(escaped) == MAX_REASON and escaped.endswith("…") and "\x1b" not in escaped
