"""The operator-program runner both roles share: it lies below them (nothing of ours above
it), and it bounds what a program can do to the caller."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
from pathlib import Path

import grpc
import pytest
import uvloop

from bacalhau.hooks import MAX_OUTPUT, HookProgramFailed, run_command

HOOKS = Path(__file__).resolve().parents[2] / "bacalhau" / "hooks"


def test_hooks_import_nothing_of_ours_but_themselves() -> None:
    names = {
        node.module
        for path in HOOKS.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    ours = {n for n in names if n.startswith("bacalhau")}
    assert ours and all(n.startswith("bacalhau.hooks") for n in ours), ours


async def test_payload_on_stdin_and_in_the_environment_and_output_capped() -> None:
    outcome = await run_command(
        'cat; echo "env=$PAYLOAD" >&2; head -c 200000 /dev/zero; exit 3',
        b'{"x": 1}',
        env_name="PAYLOAD",
        timeout=10,
    )
    assert outcome.exit_code == 3
    assert outcome.stdout.startswith(b'{"x": 1}') and len(outcome.stdout) == MAX_OUTPUT
    assert outcome.said == 'env={"x": 1}'


async def test_a_program_past_its_time_is_killed_with_what_it_started() -> None:
    with pytest.raises(HookProgramFailed, match=r"did not answer within 0\.3s"):
        await run_command("sleep 30 & wait", b"", env_name="PAYLOAD", timeout=0.3)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_on_either_event_loop_stdin_is_a_pipe_and_a_large_payload_arrives_whole(
    loop: str,
) -> None:
    # uvloop's subprocess pipes are socket pairs: bash would take itself for a remote shell
    # and read ~/.bashrc. A payload past the environment's limit, on stdin only, to a
    # program that reads it slowly, then to one that never reads it.
    payload = b'{"big": "' + b"x" * 300_000 + b'"}'
    reads = 'test -p /dev/stdin || echo "stdin is not a pipe" >&2; sleep 0.2; wc -c'
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        outcome = runner.run(run_command(reads, payload, env_name="PAYLOAD", timeout=10))
        ignores = runner.run(run_command("exit 0", payload, env_name="PAYLOAD", timeout=10))
    assert (outcome.exit_code, outcome.stderr) == (0, b"")
    assert outcome.stdout.strip() == str(len(payload)).encode()
    assert ignores.exit_code == 0


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_runs_that_end_time_out_or_are_cancelled_leave_no_descriptor_open(loop: str) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def runs() -> None:
        for _ in range(5):
            await run_command("cat >/dev/null; echo ok", b"x" * 1000, env_name="P", timeout=10)
        with pytest.raises(HookProgramFailed):
            await run_command("sleep 30", b"", env_name="P", timeout=0.2)
        task = asyncio.ensure_future(run_command("sleep 30", b"", env_name="P", timeout=10))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)  # closed transports let go of their pipes on the next turn

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(runs())  # the loop's own first-use descriptors (libuv opens /dev/null)
        before = open_fds()
        runner.run(runs())
        assert open_fds() == before


def test_programs_start_cleanly_beside_busy_grpc_threads_on_uvloop() -> None:
    # A node runs its hooks beside gRPC's threads. A child forked by the event loop (uvloop
    # forks the whole process) could crash before its exec, one run in eight here.
    async def runs() -> list[int]:
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary("/bench.Nothing/Here")

        async def traffic() -> None:
            while True:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await call(b"", timeout=1)

        callers = [asyncio.ensure_future(traffic()) for _ in range(4)]
        try:
            return [
                (await run_command("cat >/dev/null", b"{}", env_name="P", timeout=10)).exit_code
                for _ in range(100)
            ]
        finally:
            for caller in callers:
                caller.cancel()
            await channel.close()
            await server.stop(None)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        codes = runner.run(runs())
    assert codes == [0] * 100, sorted(set(codes))
