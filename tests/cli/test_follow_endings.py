"""How the commands that follow a job end, on a real devstack: Ctrl+C leaves the job running
and exits 130 without tracebacks, a log stream that breaks off or a job that fails is an error,
a job that never ran is reported as the run commands report it; and the command-line edges
around them (empty job IDs, ``--tail 0``, ``job rerun --wait=false``)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner

from bacalhau.cli import cli
from bacalhau.cli._args import Persistent, normalize_args
from bacalhau.errors import Unavailable
from bacalhau.models import JobStateType
from tests.executor.conftest import busybox_image
from tests.integration.devstack import Devstack, bacalhau_command, eventually

__all__ = ["busybox_image"]

pytestmark = pytest.mark.integration

#: A job that says it started, then runs long enough to be interrupted.
LONG = "echo started; sleep 30"
#: What a traceback or asyncio's complaints at exit look like on standard error.
NOISE = (
    "Traceback",
    "Exception ignored",
    "Task exception",
    "Event loop is closed",
    "was never awaited",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Devstack]:
    devstack = Devstack.start(tmp_path_factory.mktemp("follow"), compute_nodes=1)
    try:
        yield devstack
    finally:
        devstack.stop()


def _start(stack: Devstack, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        bacalhau_command(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=stack.env(),
    )


def _read_until(stream: IO[str] | None, wanted: str) -> str:
    """Standard output up to and including the first line holding ``wanted``."""
    assert stream is not None
    seen = ""
    while wanted not in seen:
        line = stream.readline()
        assert line, f"the output ended before {wanted!r}:\n{seen}"
        seen += line
    return seen


def _submit(stack: Devstack, image: str, script: str, *flags: str) -> str:
    return stack.ok(
        "docker", "run", "--wait=false", *flags, image, "--", "sh", "-c", script
    ).strip()


def _interrupted(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


@pytest.mark.parametrize("form", ["docker run -f", "job run --follow", "job logs -f"])
def test_ctrl_c_while_following_exits_130_and_leaves_the_job_running(
    stack: Devstack, busybox_image: str, tmp_path: Path, form: str
) -> None:
    if form == "docker run -f":
        process = _start(stack, "docker", "run", "-f", busybox_image, "--", "sh", "-c", LONG)
    elif form == "job run --follow":
        spec = tmp_path / "job.yaml"
        spec.write_text(
            "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n"
            f"      Params:\n        Image: {busybox_image}\n"
            f'        Entrypoint: ["sh", "-c", "{LONG}"]\n'
        )
        process = _start(stack, "job", "run", "--follow", str(spec))
    else:
        process = _start(stack, "job", "logs", "-f", _submit(stack, busybox_image, LONG))
    try:
        _read_until(process.stdout, "started")
        code, stderr = _interrupted(process)
    finally:
        process.kill()
    assert code == 130, stderr
    assert "Stopped following; the job keeps running." in stderr
    # Bacalhau's notice before the output, on stderr: stdout is the job's output alone.
    assert ("Waiting for logs..." in stderr) is (form != "job logs -f"), stderr
    assert not [n for n in NOISE if n in stderr], stderr
    job_id = stderr.rsplit("bacalhau job logs --follow ", 1)[1].strip()
    assert stack.client.get_job(job_id).job.state == JobStateType.RUNNING
    stack.client.stop_job(job_id)


def test_ctrl_c_while_waiting_exits_130_without_tracebacks(
    stack: Devstack, busybox_image: str
) -> None:
    process = _start(stack, "docker", "run", busybox_image, "--", "sh", "-c", LONG)
    try:
        # The job runs: the CLI is in the middle of its long-poll for the next event.
        _read_until(process.stdout, "Running")
        time.sleep(2)
        code, stderr = _interrupted(process)
    finally:
        process.kill()
    assert code == 130, stderr
    assert "Stopped waiting; the job keeps running." in stderr
    assert not [n for n in NOISE if n in stderr], stderr
    job_id = stderr.rsplit("bacalhau job describe ", 1)[1].strip()
    stack.client.stop_job(job_id)


def test_following_a_job_that_fails_or_is_stopped_ends_non_zero(
    stack: Devstack, busybox_image: str
) -> None:
    timed_out = _submit(stack, busybox_image, "echo started; sleep 20", "--timeout", "2")
    followed = stack.cli("job", "logs", "-f", timed_out)
    assert followed.returncode == 1, followed.stderr
    # --timeout is the job's (TotalTimeout): it fails at 2 s, whatever ran.
    assert set(followed.stdout.splitlines()) == {"started"}, followed.stdout
    assert f"Error: job {timed_out} failed: " in followed.stderr
    assert "timed out" in followed.stderr

    stopped = _submit(stack, busybox_image, LONG)
    process = _start(stack, "job", "logs", "-f", stopped)
    try:
        _read_until(process.stdout, "started")
        stack.ok("job", "stop", stopped, "--quiet")
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 1, stderr
    assert f"Error: job {stopped} was stopped" in stderr

    completed = _submit(stack, busybox_image, "echo one; sleep 1; echo two")
    done = stack.cli("job", "logs", "-f", completed)
    assert (done.returncode, done.stdout, done.stderr) == (0, "one\ntwo\n", "")


def test_a_followed_job_that_never_ran_is_reported_as_without_follow(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    spec = tmp_path / "too-big.yaml"
    spec.write_text(
        "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n"
        f"      Params:\n        Image: {busybox_image}\n"
        '    Resources:\n      CPU: "500"\n    Timeouts:\n      QueueTimeout: 1\n'
    )
    waited = stack.cli("job", "run", str(spec))
    followed = stack.cli("job", "run", "-f", str(spec))
    for done in (waited, followed):
        assert done.returncode == 1, done.stderr
        assert "failed: the job waited its QueueTimeout of 1s" in done.stderr, done.stderr
    assert "no executions found" not in followed.stderr


def test_tail_0_shows_no_past_lines_and_is_refused_with_follow(
    stack: Devstack, busybox_image: str
) -> None:
    job_id = _submit(stack, busybox_image, "echo old; echo old-err >&2; sleep 6; echo new")
    eventually(
        lambda: len(list(stack.client.logs(job_id))) == 2,
        timeout=20,
        what="the job's first lines",
    )
    past = stack.cli("job", "logs", "--tail", "0", job_id)
    assert (past.returncode, past.stdout, past.stderr) == (0, "", "")
    followed = stack.cli("job", "logs", "--tail", "0", "-f", job_id)
    assert followed.returncode == 2 and "use --tail 1" in followed.stderr
    wrong = stack.cli("job", "logs", "--tail", "0", "j-00000000-nope")
    assert wrong.returncode == 1 and wrong.stdout == ""


def test_rerun_with_wait_false_prints_the_job_id_alone(stack: Devstack, busybox_image: str) -> None:
    job_id = _submit(stack, busybox_image, "echo hi")
    done = stack.cli("job", "rerun", "--wait=false", job_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{job_id}\n"
    assert f"Job successfully rerun. Job ID: {job_id}, version: 2" in done.stderr


def test_a_log_stream_that_breaks_off_is_ridden_out_then_given_up(
    tmp_path: Path, busybox_image: str
) -> None:
    """The requester killed under a follower and not started again: the CLI says it lost
    contact and keeps trying (it would go on where it was, see test_restarts); a follower
    whose grace runs out gets an error naming the job and how to follow it again."""
    # Its own devstack: the requester is killed.
    stack = Devstack.start(tmp_path / "devstack", compute_nodes=1)
    try:
        job_id = _submit(stack, busybox_image, LONG)
        process = _start(stack, "job", "logs", "-f", job_id)
        try:
            _read_until(process.stdout, "started")
            stack.kill_node("requester")
            warned = _read_until(process.stderr, "lost contact")
            assert process.poll() is None, "the follower gave up at once"
        finally:
            process.kill()
            process.communicate(timeout=30)
        with pytest.raises(Unavailable) as caught:
            list(stack.client.logs(job_id, follow=True, reconnect_grace=1.0))
    finally:
        stack.stop(check=False)
    assert f"lost contact with the API while following job {job_id}" in warned, warned
    assert "ended unexpectedly (WebSocket closed with code 1006)" in warned, warned
    assert "the job itself keeps running" in warned, warned
    assert not [n for n in NOISE if n in warned], warned
    assert f"while following job {job_id}, which keeps running" in caught.value.message
    assert caught.value.hint == (
        f"once the node answers again, follow the job with: bacalhau job logs --follow {job_id}"
    )


# -- refused before any request: no node listens on the address given -----------------------

_NOWHERE = ["--api-host", "127.0.0.1", "--api-port", "9"]


@pytest.mark.parametrize(
    "command",
    [
        ["job", "logs"],
        ["job", "logs", "-f"],
        ["logs"],
        ["job", "describe"],
        ["job", "executions"],
        ["job", "history"],
        ["job", "stop"],
        ["job", "rerun"],
        ["job", "versions"],
        ["job", "get"],
    ],
)
def test_an_empty_job_id_is_a_usage_error(command: list[str]) -> None:
    for empty in ("", "  "):
        done = CliRunner().invoke(cli, [*_NOWHERE, *command, empty])
        assert done.exit_code == 2, done.output
        assert "Invalid value for 'JOB_ID': a job ID (or name) is required" in done.output


@pytest.mark.parametrize("spelling", [["--tail", "-1"], ["--tail=-1"], ["-t", "-1"], ["-t-1"]])
def test_a_negative_tail_is_a_usage_error(spelling: list[str]) -> None:
    done = CliRunner().invoke(cli, [*_NOWHERE, "job", "logs", *spelling, "j-1"])
    assert done.exit_code == 2, done.output
    assert "N must be 0 or more" in done.output


@pytest.mark.parametrize(
    ("spelling", "read_as"),
    [
        (["--tail=true"], ["--tail", "10"]),
        (["-t=true"], ["-t", "10"]),
        (["--tail=false"], []),
        (["-t=5"], ["-t", "5"]),
        (["-ft"], ["-f", "-t", "10"]),
        (["-tf"], ["-t", "10", "-f"]),
        (["-f=true", "-t"], ["-f", "-t", "10"]),
    ],
)
def test_bacalhaus_boolean_tail_and_grouped_flags_read_as_it_writes_them(
    spelling: list[str], read_as: list[str]
) -> None:
    """Bacalhau's ``--tail``/``-t`` is a boolean flag, which pflag lets one group with ``-f``
    and give a value (``--tail=true``); here it also takes a count."""
    command = cli.commands["job"].commands["logs"]  # type: ignore[attr-defined]
    assert normalize_args(command, [*spelling, "j-1"], Persistent()) == [*read_as, "j-1"]
    wrong = CliRunner().invoke(cli, [*_NOWHERE, "job", "logs", "--tail=perhaps", "j-1"])
    assert wrong.exit_code == 2 and "'perhaps' is neither a count nor true or false" in wrong.output
