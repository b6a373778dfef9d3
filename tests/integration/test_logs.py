"""Live logs and full outputs on a real devstack (a requester process and a compute node
process, Docker and WASM): following a running job through the CLI and the WebSocket at the
same time, replaying a finished job, a job that does not exist, and 50 MB of stdout kept whole
and downloadable byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bacalhau.errors import NotFound
from bacalhau.models import TAIL_FLAG_LINES, JobStateType
from tests.integration.devstack import Devstack, bacalhau_command, eventually

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-logs")]

LINES = 6
#: One line a second on stdout, and one line on stderr at the end.
TICKER = f"for i in $(seq 1 {LINES}); do echo line-$i; sleep 1; done; echo done >&2"
BIG_BYTES = 50 * 1024 * 1024
PATTERN = b"0123456789abcdef\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Devstack]:
    devstack = Devstack.start(tmp_path_factory.mktemp("logs"), compute_nodes=1)
    try:
        yield devstack
    finally:
        devstack.stop()


def _submit(stack: Devstack, image: str, script: str) -> str:
    out = stack.ok(
        "docker", "run", "--no-wait", "--id-only", "-l", f"t={uuid.uuid4().hex[:8]}", image,
        "--", "sh", "-c", script,
    )  # fmt: skip
    return out.strip().splitlines()[-1]


def _state(stack: Devstack, job_id: str) -> JobStateType:
    return stack.client.get_job(job_id).job.state


def _logs_url(stack: Devstack, job_id: str) -> str:
    return f"{stack.api_url}/api/v1/orchestrator/jobs/{job_id}/logs"


async def _ws_frames(url: str, params: dict[str, str], *, first: threading.Event) -> list[Any]:
    frames: list[Any] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, params=params) as ws,
    ):
        async for msg in ws:
            assert msg.type is aiohttp.WSMsgType.TEXT
            frames.append(json.loads(msg.data))
            first.set()
        assert ws.close_code == 1000
    return frames


def test_two_followers_receive_lines_while_the_job_runs_then_replay(
    stack: Devstack, busybox_image: str
) -> None:
    job_id = _submit(stack, busybox_image, TICKER)
    # Follower 1: the CLI. Follower 2: a WebSocket client, at the same time.
    cli = subprocess.Popen(
        bacalhau_command("job", "logs", "--follow", job_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=stack.env(),
    )
    ws_first = threading.Event()
    ws_result: list[Any] = []
    ws_thread = threading.Thread(
        target=lambda: ws_result.append(
            asyncio.run(_ws_frames(_logs_url(stack, job_id), {"follow": "true"}, first=ws_first))
        )
    )
    ws_thread.start()
    try:
        assert cli.stdout is not None
        first = cli.stdout.readline()
        state_at_first_line = _state(stack, job_id)
        assert ws_first.wait(60)
        state_at_first_frame = _state(stack, job_id)
        # Read the rest through the same text stream as the first line: readline() may have
        # buffered more than one line, which communicate() (reading the raw pipe) would skip.
        cli.wait(timeout=60)  # six short lines: the pipes cannot fill up
        rest = cli.stdout.read()
        assert cli.stderr is not None
        err = cli.stderr.read()
    finally:
        if cli.poll() is None:
            cli.kill()
        ws_thread.join(60)

    # Lines arrived while the job was still running, and the followers ended with it.
    assert first == "line-1\n"
    assert not state_at_first_line.is_terminal()
    assert not state_at_first_frame.is_terminal()
    assert cli.returncode == 0, err
    assert first + rest == "".join(f"line-{i}\n" for i in range(1, LINES + 1))
    assert err == "done\n"
    (frames,) = ws_result
    assert [f["value"] for f in frames] == [
        {"Type": 1, "Line": f"line-{i}\n"} for i in range(1, LINES + 1)
    ] + [{"Type": 2, "Line": "done\n"}]
    # Each frame says where the output goes on after it: the bytes of each stream so far.
    (execution,) = {f["resume"].split(":")[0] for f in frames}
    out_ends = itertools.accumulate(len(f"line-{i}\n") for i in range(1, LINES + 1))
    out_total = len("".join(f"line-{i}\n" for i in range(1, LINES + 1)))
    err_total = len("done\n")
    assert [f["resume"] for f in frames] == [f"{execution}:{end}:0" for end in out_ends] + [
        f"{execution}:{out_total}:{err_total}"
    ]
    eventually(
        lambda: _state(stack, job_id) == JobStateType.COMPLETED or None,
        timeout=30,
        what="the job to complete",
    )

    # Finished: following replays the whole output and ends; --tail keeps the last lines.
    # (The older spelling, `logs`, says on stderr that it is one: stdout is the same.)
    replay = stack.cli("logs", "--follow", job_id, timeout=30)
    assert (replay.returncode, replay.stdout, replay.stderr) == (
        0,
        "".join(f"line-{i}\n" for i in range(1, LINES + 1)),
        "Command 'logs' is deprecated: use 'bacalhau job logs'.\ndone\n",
    )
    tail = stack.ok("job", "logs", "--tail", "2", job_id)
    assert tail == f"line-{LINES - 1}\nline-{LINES}\n"
    lines = [(ln.stream, ln.text) for ln in stack.client.logs(job_id, follow=True)]
    assert len(lines) == LINES + 1


def test_job_run_follow_prints_the_output_as_it_comes(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    """``job run -f``, as ``docker run -f``: the job's output is the answer."""
    spec = {
        "Type": "batch",
        "Count": 1,
        "Labels": {"t": uuid.uuid4().hex[:8]},
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": busybox_image,
                        "Entrypoint": ["sh", "-c", "echo first; sleep 1; echo second >&2"],
                    },
                },
            }
        ],
    }
    path = tmp_path / "follow.json"
    path.write_text(json.dumps(spec))
    done = stack.cli("job", "run", str(path), "-f", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("first\n") and "Job successfully submitted" in done.stdout
    assert done.stderr.endswith("second\n")


def test_a_job_that_does_not_exist_is_not_found_at_once(stack: Devstack) -> None:
    missing = f"j-{uuid.uuid4()}"
    done = stack.cli("job", "logs", "--follow", missing, timeout=30)
    assert done.returncode == 1
    assert "not found" in done.stderr
    with pytest.raises(NotFound):
        list(stack.client.logs(missing, follow=True))
    frames = asyncio.run(
        _ws_frames(_logs_url(stack, missing), {"follow": "true"}, first=threading.Event())
    )
    assert len(frames) == 1
    assert frames[0]["value"] == {"Type": 0, "Line": ""}
    assert frames[0]["code"] == "NotFound" and frames[0]["error"]


def test_tail_as_bacalhau_writes_it_a_flag_or_a_count(stack: Devstack, busybox_image: str) -> None:
    # Bacalhau's CLI has `--tail` as a flag (`job logs --tail JOB`) and its client sends
    # `tail=true`: both show the log's last TAIL_FLAG_LINES lines; a count shows that many.
    job_id = _submit(stack, busybox_image, "for i in $(seq 1 25); do echo n-$i; done")
    eventually(
        lambda: _state(stack, job_id) == JobStateType.COMPLETED or None,
        timeout=30,
        what="the job to complete",
    )
    last = "".join(f"n-{i}\n" for i in range(26 - TAIL_FLAG_LINES, 26))
    assert stack.ok("job", "logs", "--tail", job_id) == last
    assert stack.ok("job", "logs", "-t", job_id) == last
    assert stack.ok("job", "logs", "-t", "3", job_id) == "n-23\nn-24\nn-25\n"
    assert stack.ok("logs", job_id, "--tail") == last
    frames = asyncio.run(
        _ws_frames(_logs_url(stack, job_id), {"tail": "true"}, first=threading.Event())
    )
    assert "".join(f["value"]["Line"] for f in frames) == last
    everything = asyncio.run(
        _ws_frames(_logs_url(stack, job_id), {"tail": "false"}, first=threading.Event())
    )
    assert len(everything) == 25
    bad = asyncio.run(
        _ws_frames(_logs_url(stack, job_id), {"tail": "lots"}, first=threading.Event())
    )
    assert bad[0]["code"] == "BadRequest" and "true or false" in bad[0]["error"], bad


def test_a_stream_resumed_from_a_lines_position_goes_on_after_that_line(
    stack: Devstack, busybox_image: str
) -> None:
    """Each frame's ``resume`` token, given back, reads on after that frame's line (each
    stream from its own byte; a tail asked for is not read): what a follower whose stream
    broke uses. A token that is not a position, or names no execution of the job, is a clear
    error."""
    job_id = _submit(
        stack, busybox_image, "for i in $(seq 1 12); do echo n-$i; echo e-$i >&2; done"
    )
    eventually(
        lambda: _state(stack, job_id) == JobStateType.COMPLETED or None,
        timeout=30,
        what="the job to complete",
    )

    def frames(params: dict[str, str]) -> list[Any]:
        return asyncio.run(_ws_frames(_logs_url(stack, job_id), params, first=threading.Event()))

    def lines(of: list[Any], kind: int) -> list[str]:
        return [f["value"]["Line"] for f in of if f["value"]["Type"] == kind]

    whole = frames({})
    assert lines(whole, 1) == [f"n-{i}\n" for i in range(1, 13)]
    assert lines(whole, 2) == [f"e-{i}\n" for i in range(1, 13)]
    # A finished execution's output comes stream by stream: stdout's lines, then stderr's.
    at = {f["value"]["Line"]: f["resume"] for f in whole}
    token = at["n-5\n"]
    after = frames({"resume": token, "tail": "3"})
    assert lines(after, 1) == [f"n-{i}\n" for i in range(6, 13)]
    assert lines(after, 2) == [f"e-{i}\n" for i in range(1, 13)]
    later = frames({"resume": at["e-3\n"]})
    assert lines(later, 1) == []
    assert lines(later, 2) == [f"e-{i}\n" for i in range(4, 13)]
    # The SDK takes the token back as well; its lines carry theirs.
    resumed = list(stack.client.logs(job_id, resume=token))
    assert [line.text for line in resumed] == [f["value"]["Line"] for f in after]
    assert resumed[-1].resume == whole[-1]["resume"] == after[-1]["resume"]

    bad = frames({"resume": "from-the-middle"})
    assert bad[0]["code"] == "BadRequest" and "resume must be" in bad[0]["error"], bad
    elsewhere = frames({"resume": "e-00000000-0000-0000-0000-000000000000:0:0"})
    assert elsewhere[0]["code"] == "NotFound", elsewhere
    assert "no execution e-00000000" in elsewhere[0]["error"], elsewhere


def test_docker_and_wasm_run_follow_print_the_output(
    stack: Devstack, busybox_image: str, wasm_modules: Path
) -> None:
    docker = stack.cli(
        "docker", "run", "-f", busybox_image, "--", "sh", "-c", "echo hi; echo oops >&2"
    )
    assert (docker.returncode, docker.stderr.endswith("oops\n")) == (0, True), docker.stderr
    assert docker.stdout.endswith("hi\n")
    wasm = stack.cli("wasm", "run", "--follow", str(wasm_modules / "hello.wasm"), "--", "x")
    assert wasm.returncode == 0, wasm.stderr
    assert wasm.stdout.endswith("hello from wasm\narg[1]=x\n")
    assert wasm.stderr.endswith("hello on stderr\n")


def test_fifty_megabytes_of_stdout_are_kept_whole(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    expected = (PATTERN * (BIG_BYTES // len(PATTERN) + 1))[:BIG_BYTES]
    digest = hashlib.sha256(expected).hexdigest()
    script = f"yes 0123456789abcdef | head -c {BIG_BYTES}"
    job_id = stack.ok(
        "docker", "run", "--id-only", busybox_image, "--", "sh", "-c", script, timeout=300
    ).strip().splitlines()[-1]  # fmt: skip

    (execution,) = stack.client.executions(job_id)
    assert execution.run_output is not None and execution.run_output.stdout_truncated
    stack.ok("job", "get", "--output-dir", str(tmp_path / "out"), job_id, timeout=300)
    downloaded = (tmp_path / "out" / "stdout").read_bytes()
    assert len(downloaded) == BIG_BYTES
    assert hashlib.sha256(downloaded).hexdigest() == digest

    # The logs endpoint replays it too (plain GET: the output as it was written).
    async def fetch() -> str:
        sha = hashlib.sha256()
        async with (
            aiohttp.ClientSession() as session,
            session.get(_logs_url(stack, job_id)) as resp,
        ):
            assert resp.status == 200
            async for chunk in resp.content.iter_chunked(1 << 20):
                sha.update(chunk)
        return sha.hexdigest()

    assert asyncio.run(fetch()) == digest


def test_replaying_a_flood_of_short_lines_never_holds_the_requester(
    stack: Devstack, busybox_image: str
) -> None:
    """300,000 two-byte lines replayed to two followers at once (some 600,000 frames):
    the requester's event loop is never held long enough to warn of it (nor to miss its
    members' heartbeats and hold them dead), and each follower gets every line."""
    count = 300_000
    job_id = stack.ok(
        "docker", "run", "--id-only", busybox_image, "--",
        "sh", "-c", f"yes | head -c {2 * count}", timeout=120,
    ).strip().splitlines()[-1]  # fmt: skip
    requester = next(n for n in stack.nodes if n.role == "requester")
    warned_before = requester.log.read_text(errors="replace").count("event loop was blocked")

    async def follow() -> int:
        lines = 0
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(_logs_url(stack, job_id)) as ws,
        ):
            async for msg in ws:
                lines += json.loads(msg.data)["value"]["Line"] == "y\n"
        return lines

    async def both() -> list[int]:
        return list(await asyncio.gather(follow(), follow()))

    assert asyncio.run(both()) == [count, count]
    log = requester.log.read_text(errors="replace")
    assert log.count("event loop was blocked") == warned_before, log[-3000:]


def test_followers_leaving_a_flood_leave_no_error_on_the_node(
    stack: Devstack, busybox_image: str
) -> None:
    """Followers that leave while a job floods its output: the node's relay stops quietly
    (a caller gone is no error), with no traceback in the compute node's log."""
    job_id = _submit(stack, busybox_image, "yes | head -c 50000000; sleep 1")
    compute = next(n for n in stack.nodes if n.role == "compute")

    async def leave_early() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(_logs_url(stack, job_id), params={"follow": "true"}) as ws,
        ):
            for _ in range(2000):
                await ws.receive()

    for _ in range(5):
        asyncio.run(leave_early())
    eventually(
        lambda: _state(stack, job_id).is_terminal() or None, timeout=60, what="the job to end"
    )
    log = compute.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "ExecuteBatchError" not in log, log[-3000:]


def _output_readers(pid: int) -> list[str]:
    """Files named stdout/stderr that process ``pid`` holds open read-only (log readers; the
    executor's own writers hold them write-only)."""
    found = []
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
            flags = int(
                Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split("flags:")[1].split()[0], 8
            )
        except (FileNotFoundError, IndexError):
            continue
        if (
            target.rsplit("/", 1)[-1] in ("stdout", "stderr")
            and flags & os.O_ACCMODE == os.O_RDONLY
        ):
            found.append(target)
    return found


def test_a_follower_that_leaves_releases_its_stream_while_the_job_runs(
    stack: Devstack, busybox_image: str
) -> None:
    job_id = _submit(
        stack,
        busybox_image,
        "i=0; while [ $i -lt 40 ]; do echo tick-$i; i=$((i+1)); sleep 0.25; done",
    )
    (compute,) = stack.compute

    async def follow_one_frame_then_leave() -> list[str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(_logs_url(stack, job_id), params={"follow": "true"}) as ws,
        ):
            msg = await ws.receive(timeout=60)
            assert json.loads(msg.data)["value"]["Line"] == "tick-0\n"
            # While it follows, the compute node reads the output files for it.
            return eventually(
                lambda: _output_readers(compute.pid) or None, timeout=10, what="a log reader"
            )

    assert asyncio.run(follow_one_frame_then_leave())
    # Gone with the follower, while the job still runs; the job then ends normally.
    eventually(
        lambda: not _output_readers(compute.pid) or None, timeout=10, what="the reader to close"
    )
    assert not _state(stack, job_id).is_terminal()
    eventually(
        lambda: _state(stack, job_id) == JobStateType.COMPLETED or None,
        timeout=60,
        what="the job to complete",
    )


def test_long_and_unterminated_lines_arrive_whole_in_bounded_frames(
    stack: Devstack, busybox_image: str
) -> None:
    script = "head -c 100000 /dev/zero | tr '\\0' x; printf '\\nend'"
    job_id = stack.ok("docker", "run", "--id-only", busybox_image, "--", "sh", "-c", script)
    job_id = job_id.strip().splitlines()[-1]

    frames = asyncio.run(_ws_frames(_logs_url(stack, job_id), {}, first=threading.Event()))

    lines = [f["value"]["Line"] for f in frames]
    assert "".join(lines) == "x" * 100_000 + "\nend"
    assert lines[-1] == "end"  # the last line, without its newline, once the output ended
    assert max(len(line) for line in lines) <= 64 * 1024
