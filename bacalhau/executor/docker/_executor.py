"""The Docker executor: one container per execution, driven through the engine's HTTP API.

A run is ``create -> attach -> start -> wait -> remove`` (the steps are in ``_run_steps``),
using the SDK's low-level client (``_engine``) so no call is spent on an inspect the engine's
answers already make unnecessary. The attach stream is read by a dedicated thread straight
into the results files while the job runs (see ``_follow``); every other SDK call is short
and runs in :func:`asyncio.to_thread`, so the event loop never blocks.

A missing image is pulled when the operator allows it (the default), and only after its
registry confirmed it at bid time (``_images``): a node answers an image it cannot get with
:class:`~bacalhau.errors.ImageNotFound` at once instead of hanging on an unreachable registry.

Every container is confined (see ``_container``): CPU, memory and pids limits, no
capabilities (unless the operator keeps some), no new privileges, a read-only root with a
bounded tmpfs at /tmp, read-only inputs. An operator may let images write to their root: what
a container writes there is then measured and capped (``_layer_watch``). Its result folders
live on a size-capped filesystem of their own (``_disk``) and its streams are capped on disk;
out of memory or past a disk cap, the run fails saying which.
``HTTP``-mode jobs reach only the node's allow-list proxy (``_egress``).

Containers are removed by tasks the executor owns, not the run: a cancelled run cannot
abandon its container halfway, a removal the engine reports as already in progress (409) is
followed until the container is really gone, and closing the executor waits for every
removal. A run that saw its container exit returns without waiting for the removal; one that
did not (cancelled, failed) waits for it. A reaper removes, at start and then on a timer, any
container of this executor's prefix that no run of this process owns, and the capped
filesystems no run holds (``_leftovers``). If the node's process is killed outright, a
watcher process removes its containers at once (``_deathwatch``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import docker
import docker.errors

from bacalhau._capabilities import capability_names
from bacalhau.errors import (
    BacalhauError,
    ExecutionFailed,
)
from bacalhau.executor._base import RunRequest
from bacalhau.executor._disk import (
    CappedFolders,
    capped_folders_supported,
)
from bacalhau.executor._results import (
    MAX_STREAM_FILE_BYTES,
    finish_results,
    prepare_results_dir,
)
from bacalhau.executor.docker._container import (
    BRIDGE_NETWORK,
    HOST_NETWORK,
    NO_NETWORK,
    Confinement,
    NetworkPlan,
    bridge_network,
    container_kwargs,
)
from bacalhau.executor.docker._deathwatch import DeathWatch
from bacalhau.executor.docker._defaults import (
    DEFAULT_CAP_DROP,
    DEFAULT_LAYER_POLL_INTERVAL,
    DEFAULT_PIDS_LIMIT,
    DEFAULT_READ_ONLY_ROOTFS,
    DEFAULT_REAP_INTERVAL,
    DEFAULT_RESULT_DISK_LIMIT,
    DEFAULT_TMP_SIZE,
    DEFAULT_WRITABLE_LAYER_LIMIT,
)
from bacalhau.executor.docker._egress import EgressLease, EgressNetwork
from bacalhau.executor.docker._engine import EngineConnection
from bacalhau.executor.docker._errors import ENGINE_ERRORS
from bacalhau.executor.docker._follow import ContainerExit
from bacalhau.executor.docker._images import FOUND_TTL, MAX_KEPT, ImageCheck
from bacalhau.executor.docker._labels import LABEL_EXECUTION_ID, LABEL_EXECUTOR, LABEL_JOB_ID
from bacalhau.executor.docker._leftovers import Leftovers
from bacalhau.executor.docker._params import DockerEngineSpec
from bacalhau.executor.docker._removal import Removals
from bacalhau.executor.docker._run_steps import (
    ContainerSteps,
    RunControl,
    raise_if_cancelled,
)
from bacalhau.executor.network import DomainAllowList, EgressProxy
from bacalhau.models import NetworkType, RunCommandResult, SpecConfig, format_size

# The labels are re-exported: they were defined here, and callers import them from here.
__all__ = ["LABEL_EXECUTION_ID", "LABEL_EXECUTOR", "LABEL_JOB_ID", "DockerExecutor"]

_log = logging.getLogger(__name__)

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")
_PREFIX_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

#: How long closing the executor waits for removals: a node must stop well within the grace
#: its supervisor gives it; whatever is left then is removed when the node starts again.
_CLOSE_TIMEOUT = 5.0


class DockerExecutor:
    """Runs ``docker`` engine specs on the local Docker engine.

    ``client`` defaults to one built from the environment (``DOCKER_HOST`` etc.) on first use,
    so constructing the executor never fails when the engine is down. ``name_prefix`` names
    and labels this executor's containers; nodes sharing one engine must use distinct
    prefixes, since :meth:`remove_leftovers` removes every container carrying its prefix.
    ``pids_limit`` caps the processes of every container (jobs cannot raise it).
    ``read_only_rootfs`` false lets containers write to their root: ``writable_layer_limit``
    then caps what one writes there (the job's ``Resources.Disk`` when smaller; 0: no cap),
    measured every ``layer_poll_interval`` seconds at the most often; ``cap_drop`` names the
    capabilities taken from Docker's default set (``ALL``: every one).

    As an async context manager it removes leftovers on entry, runs the reaper every
    ``reap_interval`` seconds, and on exit waits for the removals under way and sweeps once
    more, so no container of this executor outlives it.
    """

    def __init__(
        self,
        *,
        client: docker.DockerClient | None = None,
        allow_pull: bool = False,
        image_cache_ttl: float = FOUND_TTL,
        image_cache_size: int = MAX_KEPT,
        name_prefix: str = "bacalhau",
        pids_limit: int = DEFAULT_PIDS_LIMIT,
        reap_interval: float = DEFAULT_REAP_INTERVAL,
        read_only_rootfs: bool = DEFAULT_READ_ONLY_ROOTFS,
        tmp_size: int = DEFAULT_TMP_SIZE,
        cap_drop: tuple[str, ...] = DEFAULT_CAP_DROP,
        writable_layer_limit: int = DEFAULT_WRITABLE_LAYER_LIMIT,
        layer_poll_interval: float = DEFAULT_LAYER_POLL_INTERVAL,
        result_disk_limit: int = DEFAULT_RESULT_DISK_LIMIT,
        stream_limit: int = MAX_STREAM_FILE_BYTES,
        scratch_dir: Path | None = None,
        egress_proxy: EgressProxy | None = None,
        egress_firewall: bool = True,
    ) -> None:
        if not _PREFIX_RE.match(name_prefix):
            raise ValueError(f"invalid container name prefix {name_prefix!r}")
        if pids_limit < 1:
            raise ValueError(f"the pids limit must be at least 1, got {pids_limit}")
        if reap_interval <= 0:
            raise ValueError(f"the reap interval must be positive, got {reap_interval}")
        if layer_poll_interval <= 0:
            raise ValueError(
                f"the writable layer's poll interval must be positive, got {layer_poll_interval}"
            )
        for what, value in (
            ("tmp size", tmp_size),
            ("writable layer limit", writable_layer_limit),
            ("result disk limit", result_disk_limit),
            ("stream limit", stream_limit),
        ):
            if value < 0:
                raise ValueError(f"the {what} must not be negative, got {value}")
        self._engine = EngineConnection(client)
        self._allow_pull = allow_pull
        self._prefix = name_prefix
        self._confinement = Confinement(
            pids_limit=pids_limit,
            read_only_rootfs=read_only_rootfs,
            tmp_size=tmp_size,
            cap_drop=capability_names(cap_drop),
        )
        self._writable_layer_limit = writable_layer_limit
        self._reap_interval = reap_interval
        self._result_disk_limit = result_disk_limit
        self._scratch = scratch_dir or Path(tempfile.gettempdir()) / f"{name_prefix}-scratch"
        self._can_cap = capped_folders_supported()
        self._egress = EgressNetwork(
            prefix=name_prefix,
            label=LABEL_EXECUTOR,
            proxy=egress_proxy or EgressProxy(),
            firewall=egress_firewall,
        )
        self._runs: dict[str, RunControl] = {}
        self._images = ImageCheck(
            allow_pull=allow_pull, found_ttl=image_cache_ttl, max_kept=image_cache_size
        )
        self._removals = Removals()
        self._steps = ContainerSteps(
            removals=self._removals,
            allow_pull=allow_pull,
            stream_limit=stream_limit,
            layer_poll_interval=layer_poll_interval,
        )
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        # Removes the containers as soon as this process dies, however it dies.
        self._deathwatch = DeathWatch(name_prefix, LABEL_EXECUTOR)
        self._leftovers = Leftovers(
            engine=self._engine,
            removals=self._removals,
            prefix=name_prefix,
            scratch=self._scratch,
            runs=self._runs,
            releasing=self._releasing,
        )
        if not self._can_cap:
            _log.warning("result folders are not size-capped: capping needs root and mkfs.ext4")

    @property
    def name(self) -> str:
        return "docker"

    @property
    def pids_limit(self) -> int:
        """The most processes one container may hold."""
        return self._confinement.pids_limit

    @property
    def scratch_dir(self) -> Path:
        """Where the capped result filesystems of running executions live."""
        return self._scratch

    # -- Executor protocol -------------------------------------------------------------------

    async def is_installed(self) -> bool:
        """True when the engine answers a ping (the answer is cached for a few seconds)."""
        return await self._engine.is_installed()

    async def validate(self, engine: SpecConfig) -> None:
        """Check the params and that this node can run the image: present here, or, when
        pulling is allowed, found in its registry (see ``_images``).

        Raises :class:`InvalidJobSpec` for bad params and :class:`ImageNotFound` for an
        image this node cannot get.
        """
        spec = DockerEngineSpec.from_spec(engine)
        await self._images.check(await self._api(), spec.image)

    async def run(self, request: RunRequest) -> RunCommandResult:
        """Run the container to completion; see the module docstring for the steps."""
        spec = DockerEngineSpec.from_spec(request.engine)
        folders = prepare_results_dir(request.results_dir, request.result_paths)
        if request.execution_id in self._runs:
            raise ExecutionFailed(f"execution {request.execution_id} is already running here")
        control = RunControl()
        self._runs[request.execution_id] = control
        capped: CappedFolders | None = None
        mounting: asyncio.Task[None] | None = None
        lease: EgressLease | None = None
        try:
            api = await self._api()
            cap = self._disk_cap(request)
            if cap is not None:
                capped = CappedFolders.layout(self._scratch, request.execution_id, cap, [*folders])
                # Bind mounts are resolved at start, not at create: the filesystem is made
                # and mounted while the container is created and attached.
                mounting = asyncio.create_task(capped.mount())
            network = NO_NETWORK
            if request.network.type in (NetworkType.FULL, NetworkType.HOST):
                network = HOST_NETWORK
            elif request.network.type is NetworkType.BRIDGE:
                network = (
                    bridge_network(request.network.ports)
                    if request.network.ports
                    else BRIDGE_NETWORK
                )
            elif request.network.type is NetworkType.HTTP:
                lease = await self._egress.lease(api, DomainAllowList.of(request.network.domains))
                network = NetworkPlan(
                    mode=self._egress.name,
                    env=lease.env,
                    networking_config=self._egress.networking_config(api, lease),
                )
            kwargs = container_kwargs(
                api,
                request=request,
                spec=spec,
                name=self._container_name(request),
                labels={
                    LABEL_EXECUTOR: self._prefix,
                    LABEL_JOB_ID: request.job_id,
                    LABEL_EXECUTION_ID: request.execution_id,
                },
                result_sources={n: capped.source(n) for n in folders} if capped else folders,
                confinement=self._confinement,
                network=network,
            )
            container_id = await self._steps.create(api, kwargs, spec)
            control.container_id = container_id
            layer_cap = self._layer_cap(request)
            outcome: ContainerExit | None = None
            try:
                raise_if_cancelled(control, request)
                outcome = await self._steps.start_and_wait(
                    api,
                    container_id,
                    request,
                    control,
                    before_start=mounting,
                    after_start=capped.detach_soon if capped is not None else None,
                    layer_cap=layer_cap,
                )
                error_msg = await self._steps.failure(
                    api, container_id, request, outcome, control=control
                )
                if capped is not None and not await capped.collect(folders) and not error_msg:
                    error_msg = (
                        f"disk limit exceeded: the job's result folders went past their cap "
                        f"of {format_size(capped.cap)}"
                    )
                return finish_results(
                    request.results_dir, exit_code=outcome.status_code, error_msg=error_msg
                )
            finally:
                # The removal is the executor's task: cancelling run() cannot stop it. Once
                # the container has exited, its output is in the results: the job does not
                # wait for the engine to delete it (tens of milliseconds), close() does.
                if outcome is not None:
                    self._removals.remove_later(api, container_id)
                else:
                    await self._remove(api, container_id)
        finally:
            if lease is not None:
                self._release_after_removal(
                    lease, control.container_id or self._container_name(request)
                )
            if capped is not None:
                self._release_later(request.execution_id, capped, mounting)
            del self._runs[request.execution_id]

    def _release_later(
        self, execution_id: str, capped: CappedFolders, mounting: asyncio.Task[None] | None
    ) -> None:
        # The results are copied out already: unmounting is off the job's critical path,
        # in a task the executor owns and close() waits for.
        async def release() -> None:
            if mounting is not None:
                await asyncio.gather(mounting, return_exceptions=True)
            await capped.release()

        task = asyncio.get_running_loop().create_task(release(), name=f"release-{execution_id}")
        self._releasing[execution_id] = task
        task.add_done_callback(lambda _: self._releasing.pop(execution_id, None))

    def _release_after_removal(self, lease: EgressLease, container: str) -> None:
        # A cancelled run stops waiting for the removal, not the removal: its address must
        # not go to a new container while the old one may still hold it. ``container`` is
        # the name when the run was cancelled during the create: its removal goes by name.
        pending = self._removals.pending(container)
        if pending is None:
            self._egress.release(lease)
        else:
            pending.add_done_callback(lambda _: self._egress.release(lease))

    def _layer_cap(self, request: RunRequest) -> int | None:
        """The cap on the container's writable layer: the operator's, or the job's disk when
        smaller; None under a read-only root, which has no layer to fill."""
        if self._confinement.read_only_rootfs:
            return None
        return _smallest_cap(self._writable_layer_limit, request.resources.disk)

    def _disk_cap(self, request: RunRequest) -> int | None:
        """The cap on the result folders: the operator's, or the job's disk when smaller."""
        if not request.result_paths or not self._can_cap:
            return None
        return _smallest_cap(self._result_disk_limit, request.resources.disk)

    async def cancel(self, execution_id: str) -> None:
        """Kill and remove the execution's container; a waiting ``run()`` raises promptly."""
        control = self._runs.get(execution_id)
        if control is not None:
            control.cancelled = True
            if control.container_id is not None:
                await self._remove(await self._api(), control.container_id)
            # Otherwise run() is still creating it and checks the flag once it exists.
            return
        # Not running in this process (e.g. the node restarted): remove what is left of it.
        try:
            api = await self._api()
            found = await asyncio.to_thread(
                api.containers,
                all=True,
                filters={
                    "label": [
                        f"{LABEL_EXECUTOR}={self._prefix}",
                        f"{LABEL_EXECUTION_ID}={execution_id}",
                    ]
                },
            )
        except (BacalhauError, *ENGINE_ERRORS) as e:
            _log.warning("cannot look up containers of execution %s: %s", execution_id, e)
            return
        await asyncio.gather(*(self._remove(api, c["Id"]) for c in found))

    # -- node lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> DockerExecutor:
        if await self.is_installed():
            try:
                await self.remove_leftovers()
                # No run of ours exists yet: the network is a previous process's leftover.
                await self._egress.remove_leftover(await self._api())
            except BacalhauError as e:
                _log.warning("cannot remove leftover containers: %s", e)
            self._deathwatch.start()
        self._reaper = asyncio.create_task(self._reap(), name=f"docker-reaper-{self._prefix}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the reaper, wait for the removals under way, then remove what is left."""
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                pending = set(self._removals.all())
                if pending:
                    await asyncio.wait(pending)
                if self._engine.connected:  # else nothing of ours can be there
                    await self._leftovers.sweep(include_owned=True)
        except TimeoutError:
            _log.warning(
                "containers still being removed after %.0fs; the next start removes them",
                _CLOSE_TIMEOUT,
            )
        except BacalhauError as e:
            _log.warning("cannot remove the containers left at close: %s", e)
        late = self._removals.all()
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        await asyncio.gather(*self._releasing.values(), return_exceptions=True)
        await self._leftovers.remove_stale_volumes()
        await self._egress.close(self._engine.api_if_connected())
        await asyncio.to_thread(self._deathwatch.stop)

    async def remove_leftovers(self) -> int:
        """Remove containers of this prefix that no run of this process owns; return how many.

        Called when a node starts and then by the reaper: containers of executions that died
        with a previous process, or whose removal failed, would otherwise linger forever. The
        capped result filesystems of executions not running here go the same way.
        """
        return await self._leftovers.remove()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self._reap_interval)
            try:
                removed = await self.remove_leftovers()
            except BacalhauError as e:
                _log.warning("reaper: %s", e)
                continue
            if removed:
                _log.warning("reaper removed %d stray containers", removed)

    # -- engine calls shared by the run and the node lifecycle -------------------------------

    async def _api(self) -> Any:
        """The low-level API client, created on first use."""
        return await self._engine.api()

    def _container_name(self, request: RunRequest) -> str:
        return _NAME_CHARS.sub("-", f"{self._prefix}-{request.job_id}-{request.execution_id}")

    async def _remove(self, api: Any, container: str) -> None:
        """Kill and remove a container, returning once it is gone (see ``_removal``)."""
        await self._removals.remove(api, container)


def _smallest_cap(*limits: int) -> int | None:
    """The smallest of ``limits`` that caps anything (0: no cap), or None when none does."""
    caps = [n for n in limits if n > 0]
    return min(caps) if caps else None
