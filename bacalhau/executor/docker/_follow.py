"""Following a running container: its output into the results files, then its exit status.

One thread per running container does it: the attach stream blocks for as long as the job
runs, and such a wait must not pin a worker of the event loop's shared pool. The thread hands
the outcome back to the event loop through a future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bacalhau.executor._results import MAX_STREAM_FILE_BYTES, STDERR_FILE, STDOUT_FILE
from bacalhau.executor.docker._errors import ENGINE_ERRORS, explain
from bacalhau.executor.docker._stream import copy_demultiplexed, disable_timeout

_log = logging.getLogger(__name__)

__all__ = ["MAX_STREAM_FILE_BYTES", "ContainerExit", "follow_container", "settle"]

#: After a kill, how long the follower may take to drain the stream and record the exit.
SETTLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ContainerExit:
    """How following a container ended: its status code, or why it could not be known."""

    status_code: int
    error: str = ""


def follow_container(
    api: Any,
    container_id: str,
    sock: Any,
    results_dir: Path,
    limit: int = MAX_STREAM_FILE_BYTES,
) -> asyncio.Future[ContainerExit]:
    """Start following; the future resolves once the output has ended and the exit is known.

    ``sock`` is the container's attach socket, taken before the container was started. Each
    of ``stdout`` and ``stderr`` keeps at most ``limit`` bytes on disk.
    """
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[ContainerExit] = loop.create_future()
    threading.Thread(
        target=_follow,
        args=(api, container_id, sock, results_dir, limit, loop, exited),
        name=f"docker-follow-{container_id[:12]}",
        daemon=True,
    ).start()
    return exited


async def settle(exited: asyncio.Future[ContainerExit]) -> None:
    """After a kill, give the follower time to flush the files (bounded: never hang)."""
    try:
        await asyncio.wait_for(asyncio.shield(exited), SETTLE_SECONDS)
    except TimeoutError:
        _log.warning("container output did not end within %.0fs of a kill", SETTLE_SECONDS)


def _follow(
    api: Any,
    container_id: str,
    sock: Any,
    results_dir: Path,
    limit: int,
    loop: asyncio.AbstractEventLoop,
    exited: asyncio.Future[ContainerExit],
) -> None:
    outcome: ContainerExit
    try:
        disable_timeout(sock)
        with (
            open(results_dir / STDOUT_FILE, "wb") as out,
            open(results_dir / STDERR_FILE, "wb") as err,
        ):
            dropped = copy_demultiplexed(sock, out, err, limit=limit)
        if any(dropped):
            _log.warning(
                "container %s wrote more than %d bytes to a stream; dropped (stdout, stderr) = %s",
                container_id[:12],
                limit,
                dropped,
            )
    except (OSError, ValueError) as e:
        outcome = ContainerExit(-1, f"reading the container's output failed: {e}")
    else:
        try:
            # timeout=None: the wait lasts as long as the job, not the client's call timeout.
            status = api.wait(container_id, timeout=None)
            outcome = ContainerExit(int(status.get("StatusCode", -1)))
        except ENGINE_ERRORS as e:
            outcome = ContainerExit(-1, explain(e))
    finally:
        _close_quietly(sock)
    # RuntimeError: the event loop is gone, so nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_deliver, exited, outcome)


def _deliver(exited: asyncio.Future[ContainerExit], outcome: ContainerExit) -> None:
    if not exited.done():
        exited.set_result(outcome)


def _close_quietly(sock: Any) -> None:
    # The SDK hands out a SocketIO wrapping the real socket: close both.
    for candidate in (sock, getattr(sock, "_sock", None)):
        close = getattr(candidate, "close", None)
        if close is not None:
            with contextlib.suppress(OSError):
                close()
