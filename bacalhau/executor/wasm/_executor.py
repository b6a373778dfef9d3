"""The WASM executor: WASI preview 1 modules on one shared wasmtime engine.

Every run gets its own store and WASI context (argv, env, stdout/stderr written to the
results files up to the same cap as a container's, result folders preopened writable) and runs
in a worker thread; wasmtime releases the GIL while WebAssembly executes, so runs proceed in
parallel. A module known to end within a fraction of a millisecond runs on the event loop's
own thread instead, within a slice, and again on a worker if it overruns it (see ``_inline``).
Compiled modules are cached by content (see ``_modules``); timeouts and cancellation
go through the engine's epoch (see ``_interrupt``) and, for a module asleep in WASI's
``poll_oneoff``, through a wake-up of that sleep (see ``_poll``). Closing the executor stops
every run and waits for its worker, so a node's shutdown never waits on a sleeping module.

A run's linear memory is capped at the job's ``Resources.Memory``, itself capped by the
operator's ``max_memory``; a run that fails (traps or exits non-zero) with its memory within
an eighth of that cap is reported as "memory limit exceeded", since wasmtime answers a refused
``memory.grow`` with -1 and the module's allocator then fails in its own words. Modules import
WASI and the job's ``ImportModules`` by name (see ``_linking``); a ``Deterministic`` run sees
virtual clocks and a seeded random stream (see ``_determinism``) and a virtual file system
(see ``_vfs``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import wasmtime

from bacalhau.errors import (
    EntryPointNotFound,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionTimeout,
    InvalidJobSpec,
)
from bacalhau.executor._base import RunRequest
from bacalhau.executor._disk import capped_folders_supported, list_volumes, remove_volumes
from bacalhau.executor._results import (
    MAX_STREAM_FILE_BYTES,
    STDERR_FILE,
    STDOUT_FILE,
    finish_results,
    prepare_results_dir,
    stream_cap,
)
from bacalhau.executor.wasm._determinism import (
    CLOCK_REALTIME,
    DeterministicSource,
    run_seed,
    set_running_source,
)
from bacalhau.executor.wasm._inline import InlinePolicy, InlineRunStats, empty_folder
from bacalhau.executor.wasm._interrupt import CANCELLED, TIMED_OUT, EpochInterrupter, RunWatch
from bacalhau.executor.wasm._job_modules import inline_url, job_modules
from bacalhau.executor.wasm._linking import (
    DETERMINISTIC,
    STANDARD,
    ProcExit,
    instantiate_linked,
    new_linker,
)
from bacalhau.executor.wasm._metrics import INLINE_YIELDS, RUNS
from bacalhau.executor.wasm._modules import (
    CompiledModule,
    ModuleCache,
    ModuleCacheStats,
    wasm_error_cause,
)
from bacalhau.executor.wasm._output import CappedStreams, MemoryStreams
from bacalhau.executor.wasm._output_times import fix_times
from bacalhau.executor.wasm._params import WasmEngineSpec
from bacalhau.executor.wasm._poll import RunStopped, set_running_watch
from bacalhau.executor.wasm._run_folders import disk_cap, run_capped, run_preopens
from bacalhau.executor.wasm._vfs import VirtualFS
from bacalhau.executor.wasm._wasi_fs import set_running_fs
from bacalhau.models import IN_THE_JOB, RunCommandResult, SpecConfig

__all__ = ["WASM32_MAX_MEMORY", "WasmExecutor"]

_log = logging.getLogger(__name__)

#: A wasm32 memory cannot grow beyond 4 GiB: a larger limit is no limit.
WASM32_MAX_MEMORY = 1 << 32
#: A failed run whose memory is within this share of its limit ran out of memory.
_NEAR_LIMIT_SHARE = 8
#: How often ``run()`` looks whether a stopped run is overdue, and how long it grants it.
_BACKSTOP_POLL_SECONDS = 0.25
_BACKSTOP_GRACE_SECONDS = 0.5
#: How long closing the executor waits for the workers of the runs it stopped.
_CLOSE_TIMEOUT = 5.0
#: How long a known-short run may hold the event loop's thread before it yields to a worker
#: (it notices at the next epoch tick, so the loop is held at most this and a tick).
INLINE_SLICE_SECONDS = 0.002

# Bound once: a labelled child's lookup would cost on every run.
_INLINE_RUNS = RUNS.labels(where="inline")
_WORKER_RUNS = RUNS.labels(where="worker")


class _Yielded(Exception):
    """An inline run gave the event loop's thread back before its end (see ``_inline``)."""


class WasmExecutor:
    """Runs ``wasm`` engine specs in-process with wasmtime.

    ``module_cache_size`` compiled modules are kept (least recently used evicted first);
    ``max_concurrent_runs`` bounds the worker threads running modules, which are separate from
    the event loop's default pool so long jobs cannot starve other blocking work. Each of
    ``stdout`` and ``stderr`` keeps at most ``max_stream_bytes``. No run's memory grows past
    ``max_memory`` bytes, whatever its job asks (a job that asks nothing gets that much).
    A module whose runs took under half of ``inline_slice`` seconds runs on the event loop's
    thread, for at most that slice (0: every run on a worker; see ``_inline``).

    A ``Deterministic`` run sees its inputs and result folders through a virtual file system
    (see ``_vfs``): the files are the host's, read in place and written where the results go,
    but inode and device numbers, times, link counts and the order of directory listings are
    the same on every node (inodes from paths, times from the run's virtual clock, listings in
    name order). Result folders carry 2000-01-01T00:00:00Z on the host before and after the
    run, so published results hold no trace of when they were written.
    """

    def __init__(
        self,
        *,
        module_cache_size: int = 64,
        max_concurrent_runs: int = 32,
        max_stream_bytes: int = MAX_STREAM_FILE_BYTES,
        max_memory: int = WASM32_MAX_MEMORY,
        inline_slice: float = INLINE_SLICE_SECONDS,
        result_disk_limit: int = 0,
        scratch_dir: Path | None = None,
    ) -> None:
        """``result_disk_limit`` caps a run's result folders (0: only by the job's disk) on a
        filesystem of their own under ``scratch_dir``, where the node can mount one."""
        if max_stream_bytes < 0:
            raise ValueError(f"max_stream_bytes must not be negative, got {max_stream_bytes}")
        if max_memory <= 0:
            raise ValueError(f"max_memory must be positive, got {max_memory}")
        config = wasmtime.Config()
        config.epoch_interruption = True
        self._engine = wasmtime.Engine(config)
        linkers = {mode: new_linker(self._engine, mode) for mode in (STANDARD, DETERMINISTIC)}
        self._max_stream_bytes = max_stream_bytes
        self._max_memory = min(max_memory, WASM32_MAX_MEMORY)
        self._modules = ModuleCache(self._engine, linkers, module_cache_size)
        self._interrupter = EpochInterrupter(self._engine)
        self._workers = ThreadPoolExecutor(
            max_workers=max_concurrent_runs, thread_name_prefix="wasm-run"
        )
        self._inline = InlinePolicy(inline_slice, capacity=4 * module_cache_size)
        self._runs: dict[str, RunWatch] = {}
        self._result_disk_limit = result_disk_limit
        self._scratch = scratch_dir or Path(tempfile.gettempdir()) / "bacalhau-wasm-scratch"
        self._can_cap = capped_folders_supported()
        if self._can_cap:
            remove_volumes(self._scratch, list_volumes(self._scratch))  # a killed run's
        #: Every worker still running a module, including those of runs no one awaits.
        self._busy: set[asyncio.Future[RunCommandResult]] = set()

    @property
    def name(self) -> str:
        return "wasm"

    @property
    def busy_workers(self) -> int:
        """Worker threads still inside a module, counting runs already reported as stopped."""
        return len(self._busy)

    def cache_stats(self) -> ModuleCacheStats:
        """Hits, misses and size of the compiled-module cache."""
        return self._modules.stats()

    def inline_stats(self) -> InlineRunStats:
        """Runs made on the event loop's thread, and how many of them yielded to a worker."""
        return self._inline.stats()

    # -- Executor protocol -------------------------------------------------------------------

    async def is_installed(self) -> bool:
        """Always true: the runtime is part of this process."""
        return True

    async def validate(self, engine: SpecConfig) -> None:
        """Check the params and, for an inline module, that it compiles and has the entry point.

        Compiling here warms the cache, so the run that follows starts at once.
        """
        spec = WasmEngineSpec.from_spec(engine)
        refs = (spec.entry_module, *spec.import_modules)
        if not all(ref.is_inline for ref in refs):
            return  # fetched by the storage plugins at run time
        urls = [inline_url(ref) for ref in refs]
        if all(url is not None and self._modules.peek_inline(url) is not None for url in urls):
            # All compiled already: checking them is quicker than a trip to a worker thread.
            job_modules(self._modules, spec, [])
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._workers, job_modules, self._modules, spec, [])

    async def run(self, request: RunRequest) -> RunCommandResult:
        """Run the entry point to completion and write the results layout. A spec error
        found only now (a module an input brings imports one nothing provides, an entry point
        it does not export) is flagged :data:`~bacalhau.models.IN_THE_JOB`: every input is
        the job's own, so any node would fail it the same way."""
        try:
            return await self._run(request)
        except (InvalidJobSpec, EntryPointNotFound) as err:
            err.details[IN_THE_JOB] = "true"
            raise

    async def _run(self, request: RunRequest) -> RunCommandResult:
        spec = WasmEngineSpec.from_spec(request.engine)
        if request.execution_id in self._runs:
            raise ExecutionFailed(f"execution {request.execution_id} is already running here")
        timeout = request.timeout
        cap = disk_cap(request, self._result_disk_limit) if self._can_cap else None
        if cap is not None:
            return await run_capped(
                lambda sources: self._run_on_worker(spec, request, timeout, sources),
                request,
                scratch=self._scratch,
                cap=cap,
                deterministic=spec.deterministic,
            )
        digest = self._inline_candidate(spec, request)
        if digest is not None:
            started = time.monotonic()
            result = self._run_inline(spec, request, digest)
            if result is not None:
                return result
            if timeout is not None and timeout > 0:
                # The slice it used counts against its time (never down to "no limit").
                timeout = max(timeout - (time.monotonic() - started), 0.001)
        return await self._run_on_worker(spec, request, timeout)

    def _inline_candidate(self, spec: WasmEngineSpec, request: RunRequest) -> str | None:
        """The entry module's digest when this run may start on the event loop's thread: a
        compiled inline module known to end quickly, importing nothing, given no inputs."""
        if request.inputs or spec.import_modules:
            return None
        url = inline_url(spec.entry_module)
        compiled = self._modules.peek_inline(url) if url is not None else None
        if compiled is None or compiled.imports:
            return None
        return compiled.digest if self._inline.may_run_inline(compiled.digest) else None

    def _run_inline(
        self, spec: WasmEngineSpec, request: RunRequest, digest: str
    ) -> RunCommandResult | None:
        """Run on the event loop's thread; None when the run yielded (its results folder is
        then empty again, for the run on a worker)."""
        watch = self._interrupter.new_watch(request.timeout)
        watch.slice_end = time.thread_time() + self._inline.slice_seconds
        self._inline.started_inline()
        _INLINE_RUNS.inc()
        self._runs[request.execution_id] = watch
        try:
            return self._run_sync(spec, request, watch)
        except _Yielded:
            self._inline.yielded(digest)
            INLINE_YIELDS.inc()
            empty_folder(request.results_dir)
            return None
        finally:
            del self._runs[request.execution_id]

    async def _run_on_worker(
        self,
        spec: WasmEngineSpec,
        request: RunRequest,
        timeout: float | None,
        sources: dict[str, Path] | None = None,
    ) -> RunCommandResult:
        watch = self._interrupter.new_watch(timeout)
        self._runs[request.execution_id] = watch
        _WORKER_RUNS.inc()
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._workers, self._run_sync, spec, request, watch, sources)
        self._busy.add(running)
        running.add_done_callback(self._busy.discard)
        try:
            return await _outcome(running, watch, request.execution_id)
        except asyncio.CancelledError:
            # The worker thread cannot be cancelled from here; stop its WebAssembly instead.
            watch.cancel()
            raise
        finally:
            del self._runs[request.execution_id]
            if not running.done():
                # Abandoned while blocked in a host call: it ends on its own; nobody waits.
                running.add_done_callback(_discard)

    async def cancel(self, execution_id: str) -> None:
        """Stop the run: it traps at its next epoch tick and ``run()`` raises."""
        watch = self._runs.get(execution_id)
        if watch is not None:
            watch.cancel()

    async def close(self) -> None:
        """Stop every run, wait (briefly) for their workers, and release the worker threads.

        A module sleeping in a host call wakes at once and busy WebAssembly traps at the next
        epoch tick, so the wait is short; the process can then exit without waiting for a
        worker thread still inside a module.
        """
        for watch in self._runs.values():
            watch.cancel()
        if self._busy:
            _, late = await asyncio.wait(set(self._busy), timeout=_CLOSE_TIMEOUT)
            if late:
                _log.warning("%d WASM runs did not stop within %.0fs", len(late), _CLOSE_TIMEOUT)
        self._workers.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> WasmExecutor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the run, in a worker thread ---------------------------------------------------------

    def _run_sync(
        self,
        spec: WasmEngineSpec,
        request: RunRequest,
        watch: RunWatch,
        sources: dict[str, Path] | None = None,
    ) -> RunCommandResult:
        # ``sources``: the result folders to preopen instead of the ordinary ones (capped).
        folders = sources or prepare_results_dir(request.results_dir, request.result_paths)
        compiled, imports = job_modules(self._modules, spec, request.inputs)
        store = wasmtime.Store(self._engine)
        memory_limit = self._memory_limit(request.resources.memory)
        if memory_limit < WASM32_MAX_MEMORY:
            store.set_limits(memory_size=memory_limit)
        mode = DETERMINISTIC if spec.deterministic else STANDARD
        source = None
        if spec.deterministic:
            source = DeterministicSource(_seed(spec, request, compiled, imports))

        def instantiate() -> wasmtime.Instance:
            if not compiled.imports:
                return compiled.pres[mode].instantiate(store)
            return instantiate_linked(
                self._engine,
                mode,
                store,
                compiled.module,
                {name: c.module for name, c in imports.items()},
            )

        # An inline run's output is bounded by its slice: it needs no pipes (see ``_output``).
        streams = (CappedStreams if watch.slice_end is None else MemoryStreams)(
            request.results_dir / STDOUT_FILE,
            request.results_dir / STDERR_FILE,
            stream_cap(self._max_stream_bytes, request.resources),
        )
        fs: VirtualFS | None = None
        try:
            preopens = run_preopens(spec, request, folders, set(imports))
            wasi = wasmtime.WasiConfig()
            wasi.argv = spec.argv()
            wasi.env = spec.merged_env(request.env)
            if source is not None:
                for folder in folders.values():
                    fix_times(folder)
                # Our file system, not wasmtime's: it writes the streams into the pipes itself.
                stdout_fd, stderr_fd = streams.writer_fds
                fs = VirtualFS(
                    preopens,
                    now=functools.partial(source.peek_clock, CLOCK_REALTIME),
                    stdout_fd=stdout_fd,
                    stderr_fd=stderr_fd,
                )
            else:
                for preopen in preopens:
                    wasi.preopen_dir(str(preopen.host), preopen.guest, preopen.writable)
                wasi.stdout_file = streams.stdout_path
                wasi.stderr_file = streams.stderr_path
            watch.monotonic_base_ns = time.monotonic_ns()
            store.set_wasi(wasi)
            if fs is None:
                streams.handed_over()
            if watch.cancelled_at is not None:
                raise ExecutionCancelled(f"execution {request.execution_id} was cancelled")
            self._interrupter.arm(store, watch)
            set_running_watch(watch)
            set_running_source(source)
            set_running_fs(fs)
            if watch.slice_end is not None:
                # The slice bounds the module's own run, from here: its preparation (result
                # folders, the store, a garbage collection meanwhile) must not count, or one
                # slow preparation would send a short module to the workers for good.
                watch.slice_end = time.thread_time() + self._inline.slice_seconds
            began = time.thread_time()  # this thread's CPU: waits for a core are not the module's
            try:
                exit_code, error_msg, memory_size = _call(instantiate, store, spec.entry_point)
                spent = time.thread_time() - began
            finally:
                set_running_fs(None)
                set_running_source(None)
                set_running_watch(None)
                self._interrupter.disarm(watch)
        finally:
            store.close()  # closes the module's ends of the pipes
            if fs is not None:
                fs.close()
            dropped = streams.finish()
        if watch.yielded:
            raise _Yielded
        if not watch.stopped:
            self._inline.ran(compiled.digest, spent)
        if spec.deterministic:
            # Published results carry no trace of when the module wrote them.
            for folder in folders.values():
                fix_times(folder)
        if any(dropped):
            # As for a container's streams: the files keep the head, the drop is logged.
            _log.warning(
                "execution %s wrote more than %d bytes to a stream; dropped (stdout, stderr) = %s",
                request.execution_id,
                stream_cap(self._max_stream_bytes, request.resources),
                dropped,
            )
        if watch.stopped == CANCELLED:
            raise ExecutionCancelled(f"execution {request.execution_id} was cancelled")
        if watch.stopped == TIMED_OUT:
            raise ExecutionTimeout(
                f"execution {request.execution_id} timed out after {watch.timeout:g}s"
            )
        if (exit_code != 0 or error_msg) and _near_limit(memory_size, memory_limit):
            cause = error_msg or f"exit code {exit_code}"
            error_msg = (
                f"memory limit exceeded: the module's memory reached {memory_size} bytes "
                f"of its {memory_limit}-byte limit ({cause})"
            )
        return finish_results(
            request.results_dir, exit_code=exit_code, error_msg=error_msg, streams=streams.heads()
        )

    def _memory_limit(self, asked: int) -> int:
        """The job's memory, capped by the operator's; a job asking nothing gets the cap."""
        return min(asked, self._max_memory) if asked > 0 else self._max_memory


async def _outcome(
    running: asyncio.Future[RunCommandResult], watch: RunWatch, execution_id: str
) -> RunCommandResult:
    """The run's result, or its stop, even if the module is stuck in a host call.

    The epoch stops a module only while it runs WebAssembly; one blocked in a WASI call (a
    long sleep) notices when the call returns. ``run()`` must not wait that long for a
    cancelled or expired run: past a grace period it reports the stop and leaves the worker
    to finish on its own.
    """
    while True:
        done, _ = await asyncio.wait({running}, timeout=_BACKSTOP_POLL_SECONDS)
        if done:
            return running.result()
        now = time.monotonic()
        if watch.cancelled_at is not None and now > watch.cancelled_at + _BACKSTOP_GRACE_SECONDS:
            raise ExecutionCancelled(f"execution {execution_id} was cancelled")
        if watch.deadline is not None and now > watch.deadline + _BACKSTOP_GRACE_SECONDS:
            raise ExecutionTimeout(f"execution {execution_id} timed out after {watch.timeout:g}s")


def _discard(future: asyncio.Future[RunCommandResult]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: an abandoned run's end is not worth a warning


def _seed(
    spec: WasmEngineSpec,
    request: RunRequest,
    entry: CompiledModule,
    imports: dict[str, CompiledModule],
) -> bytes:
    modules = spec.module_targets([m.target for m in request.inputs])
    return run_seed(
        job_id=request.job_id,
        module_digests=[entry.digest, *(f"{n}={c.digest}" for n, c in imports.items())],
        argv=spec.argv(),
        env=spec.merged_env(request.env),
        input_targets=[m.target for m in request.inputs if m.target not in modules],
    )


def _near_limit(memory_size: int, limit: int) -> bool:
    return limit < WASM32_MAX_MEMORY and memory_size + limit // _NEAR_LIMIT_SHARE > limit


def _memory_size(instance: wasmtime.Instance, store: wasmtime.Store) -> int:
    memory = instance.exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0


def _call(
    instantiate: Callable[[], wasmtime.Instance], store: wasmtime.Store, entry_point: str
) -> tuple[int, str, int]:
    """Instantiate and call; return ``(exit code, error message)`` as Bacalhau reports them,
    and the size of the module's memory at its end."""
    try:
        instance = instantiate()
    except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
        return 1, f"failed to instantiate the WASM module: {wasm_error_cause(e)}", 0
    func = instance.exports(store)[entry_point]
    if not isinstance(func, wasmtime.Func):
        raise EntryPointNotFound(
            f"unable to find the entrypoint '{entry_point}' in the WASM module"
        )
    try:
        func(store)
    except ProcExit as e:
        return e.code, "", _memory_size(instance, store)
    except RunStopped as e:
        return 1, f"execution {e}", 0  # the caller reports the stop itself
    except wasmtime.ExitTrap as e:
        return int(e.code), "", _memory_size(instance, store)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
        return 1, wasm_error_cause(e), _memory_size(instance, store)
    return 0, "", _memory_size(instance, store)
