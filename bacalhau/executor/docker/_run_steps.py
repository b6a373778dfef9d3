"""The steps of one run on the engine: create (pulling when allowed), attach, start, wait.

:class:`ContainerSteps` drives one container from its create call to its exit: a missing image
is pulled only if the operator allows it, a name left over by an earlier attempt is cleared,
the attach comes before the start so not a byte of output is missed, and a run past its
timeout has its container removed. :meth:`ContainerSteps.failure` says why a run failed
although its container exited (the OOM killer, or the writable layer's cap). A run is
cancelled through its :class:`RunControl`, which every step checks once the engine has
answered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from bacalhau.errors import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorUnavailable,
    ImageNotFound,
    InvalidJobSpec,
)
from bacalhau.executor._base import RunRequest
from bacalhau.executor._results import stream_cap
from bacalhau.executor.docker._defaults import DEFAULT_LAYER_POLL_INTERVAL
from bacalhau.executor.docker._errors import ENGINE_ERRORS, explain, start_error, unreachable
from bacalhau.executor.docker._follow import ContainerExit, follow_container, settle
from bacalhau.executor.docker._images import image_missing
from bacalhau.executor.docker._layer_watch import watch_writable_layer
from bacalhau.executor.docker._params import DockerEngineSpec
from bacalhau.executor.docker._removal import Removals
from bacalhau.models import format_size

__all__ = ["ContainerSteps", "RunControl", "raise_if_cancelled"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class RunControl:
    """What ``cancel`` needs to reach a run in progress."""

    container_id: str | None = None
    cancelled: bool = False
    #: Why the writable-layer watch stopped the container ("": it did not).
    layer_overflow: str = ""


def raise_if_cancelled(control: RunControl, request: RunRequest) -> None:
    """Raise :class:`ExecutionCancelled` once the run has been cancelled."""
    if control.cancelled:
        raise ExecutionCancelled(f"execution {request.execution_id} was cancelled")


#: Exit status of a process killed by SIGKILL (128 + 9), as the OOM killer ends one.
_KILLED = 137
#: Pauses (s) before each further check of a killed container's OOM flag.
_OOM_RECHECKS = (0.05, 0.1, 0.2)


#: How a shell reports a child ended by SIGKILL (bash, dash and busybox sh all print it).
_SHELL_KILLED = b"Killed"
#: Bytes at the end of a job's stderr searched for that report.
_STDERR_TAIL = 4096


def _shell_reports_a_kill(results_dir: Path) -> bool:
    """Whether the end of the job's stderr has a shell's report of a killed child."""
    try:
        with open(results_dir / "stderr", "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _STDERR_TAIL))
            return _SHELL_KILLED in f.read()
    except OSError:
        return False


class ContainerSteps:
    """The engine calls of one run, with the executor's removals and limits.

    ``allow_pull`` lets a missing image be pulled; ``stream_limit`` caps each stream's file.
    """

    def __init__(
        self,
        *,
        removals: Removals,
        allow_pull: bool,
        stream_limit: int,
        layer_poll_interval: float = DEFAULT_LAYER_POLL_INTERVAL,
    ) -> None:
        self._removals = removals
        self._allow_pull = allow_pull
        self._stream_limit = stream_limit
        self._layer_poll_interval = layer_poll_interval

    async def create(self, api: Any, kwargs: dict[str, Any], spec: DockerEngineSpec) -> str:
        """Create the container of ``kwargs`` and return its ID."""
        pulled = False
        cleared_name = False
        while True:
            creating = asyncio.ensure_future(asyncio.to_thread(api.create_container, **kwargs))
            try:
                created = await asyncio.shield(creating)
                return str(created["Id"])
            except asyncio.CancelledError:
                # The engine goes on creating the container, whose ID this run will never
                # know: the executor removes it once it exists (close() waits for that).
                self._removals.remove_once_created(api, kwargs["name"], creating)
                raise
            except docker.errors.ImageNotFound as e:
                if not self._allow_pull:
                    raise image_missing(spec.image) from e
                if pulled:
                    raise ImageNotFound(f"image {spec.image} is still missing after a pull") from e
                await self._pull(api, spec.image)
                pulled = True
            except docker.errors.APIError as e:
                if e.status_code == 409 and not cleared_name:
                    # A container of this very execution survived an earlier attempt.
                    await self._remove(api, kwargs["name"])
                    cleared_name = True
                    continue
                if e.status_code == 400:
                    raise InvalidJobSpec(
                        f"the Docker engine refused the container: {explain(e)}"
                    ) from e
                raise ExecutionFailed(f"failed to create container: {explain(e)}") from e
            except ENGINE_ERRORS as e:
                raise unreachable(e) from e

    async def _pull(self, api: Any, image: str) -> None:
        try:
            await asyncio.to_thread(api.pull, image)
        except ENGINE_ERRORS as e:
            raise ImageNotFound(
                f"image {image} is not present on this node and could not be pulled: {explain(e)}"
            ) from e

    async def start_and_wait(
        self,
        api: Any,
        container_id: str,
        request: RunRequest,
        control: RunControl,
        *,
        before_start: asyncio.Task[None] | None = None,
        after_start: Callable[[], None] | None = None,
        layer_cap: int | None = None,
    ) -> ContainerExit:
        """Attach, start and wait for the container's exit, within the request's timeout.

        ``before_start`` is awaited between the attach and the start; ``after_start`` is
        called once the container has started. With ``layer_cap``, the container is stopped
        once it has written more than that to its own filesystem, saying so in
        ``control.layer_overflow``.
        """
        try:
            # Attach before start (as `docker run` does) so not a byte of output is missed.
            sock = await asyncio.to_thread(
                api.attach_socket, container_id, {"stdout": 1, "stderr": 1, "stream": 1}
            )
        except ENGINE_ERRORS as e:
            raise_if_cancelled(control, request)
            raise ExecutionFailed(f"failed to attach to the container: {explain(e)}") from e
        exited = follow_container(
            api,
            container_id,
            sock,
            request.results_dir,
            limit=stream_cap(self._stream_limit, request.resources),
        )
        if before_start is not None:
            await before_start
        try:
            await asyncio.to_thread(api.start, container_id)
        except ENGINE_ERRORS as e:
            raise_if_cancelled(control, request)
            raise start_error(e) from e
        if after_start is not None:
            after_start()
        watch: asyncio.Task[None] | None = None
        if layer_cap is not None:

            def overflow(size: int) -> None:
                control.layer_overflow = (
                    f"disk limit exceeded: the job wrote {format_size(size)} to its "
                    f"container's own filesystem, past the cap of {format_size(layer_cap)}; "
                    "large data belongs in a result path (ResultPaths), which has a cap of its "
                    "own"
                )

            watch = asyncio.create_task(
                watch_writable_layer(
                    api,
                    container_id,
                    cap=layer_cap,
                    interval=self._layer_poll_interval,
                    overflow=overflow,
                )
            )
        timeout = request.timeout if request.timeout and request.timeout > 0 else None
        try:
            outcome = await asyncio.wait_for(asyncio.shield(exited), timeout)
        except TimeoutError:
            await self._remove(api, container_id)
            await settle(exited)
            raise_if_cancelled(control, request)
            raise ExecutionTimeout(
                f"execution {request.execution_id} timed out after {timeout:g}s"
            ) from None
        finally:
            if watch is not None:
                watch.cancel()
                [ended] = await asyncio.gather(watch, return_exceptions=True)
                if isinstance(ended, Exception):
                    # The cap went unenforced for this run: the operator must hear of it.
                    _log.error(
                        "the writable-layer watch of execution %s failed: %r",
                        request.execution_id,
                        ended,
                    )
        raise_if_cancelled(control, request)
        if outcome.error:
            # The engine stopped answering while the container ran (it restarted, its
            # socket went away): not the job's doing, so it may be run again.
            raise ExecutorUnavailable(f"lost track of the container: {outcome.error}")
        return outcome

    async def failure(
        self,
        api: Any,
        container_id: str,
        request: RunRequest,
        outcome: ContainerExit,
        *,
        control: RunControl,
    ) -> str:
        """Why the run failed although the container exited, or "" (a plain non-zero exit
        is not a failure).

        A job the kernel's OOM killer hit under its memory limit fails, whatever its exit
        code: a shell whose child was killed may well exit 0 with half its work done. So does
        one the writable-layer watcher stopped.
        """
        if control.layer_overflow:
            return control.layer_overflow
        memory = request.resources.memory
        if memory > 0 and await self._oom_killed(
            api, container_id, outcome.status_code, request.results_dir
        ):
            return (
                f"memory limit exceeded: the job was killed for using more than its "
                f"{format_size(memory)} of memory"
            )
        return ""

    async def _oom_killed(
        self, api: Any, container_id: str, status_code: int, results_dir: Path
    ) -> bool:
        # Only asked under a memory limit: without one, the kernel never OOM-kills in the
        # container's cgroup alone.
        # The engine may record the cgroup's OOM event just after the exit (the runtime
        # reports the two separately; seen on a loaded machine: OOMKilled still false), so
        # when something in the container was killed it asks again, for a bounded time: the
        # container itself was (137), or its shell says a child was. Asking again after every
        # exit would cost every job under a memory limit (all of them, by default) the pauses.
        killed = status_code == _KILLED or _shell_reports_a_kill(results_dir)
        pauses = _OOM_RECHECKS if killed else ()
        for pause in (0.0, *pauses):
            if pause:
                await asyncio.sleep(pause)
            try:
                info = await asyncio.to_thread(api.inspect_container, container_id)
            except ENGINE_ERRORS:
                return False
            if info.get("State", {}).get("OOMKilled"):
                return True
        return False

    async def _remove(self, api: Any, container: str) -> None:
        """Kill and remove a container, returning once it is gone (see ``_removal``)."""
        await self._removals.remove(api, container)
