"""Deterministic runs: WASI's clocks and random bytes as functions of the job alone.

A module run deterministically sees no ambient input of the node it runs on:

- **clocks**: every clock (realtime, monotonic, process and thread CPU time) reads one virtual
  counter that starts at a fixed instant (:data:`EPOCH_NS`, 2000-01-01T00:00:00Z, for the
  realtime clock; 0 for the others) and advances by :data:`STEP_NS` per read; a sleep
  (``poll_oneoff`` on a clock) returns at once and moves the counter past its end;
- **random bytes**: ``random_get`` reads a SHA-256 counter-mode stream keyed by a seed derived
  from the job ID, the modules' digests, the arguments, the environment and the inputs' mount
  points (see :func:`run_seed`);
- **environment**: only the job's own variables, in sorted order (as every run); the host's
  never reach a module;
- **scheduling**: WASI preview 1 has no threads, and the run is one call on one worker.

- **file system**: inode and device numbers, times, link counts and listing order come from
  the run's virtual file system (``_vfs``, ``_wasi_fs``), not from the host.

The host functions are registered in a linker of their own (:func:`define_deterministic`), so
runs that did not ask for determinism keep wasmtime's native clocks and entropy.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Iterable, Sequence

import wasmtime

__all__ = [
    "CLOCK_REALTIME",
    "EPOCH_NS",
    "STEP_NS",
    "DeterministicSource",
    "define_deterministic",
    "run_seed",
    "running_source",
    "set_running_source",
]

#: The realtime clock's first reading: 2000-01-01T00:00:00Z.
EPOCH_NS = 946_684_800 * 1_000_000_000
#: How far every clock advances per read (and the resolution every clock reports).
STEP_NS = 1_000_000

_WASI = "wasi_snapshot_preview1"
#: WASI's id of the realtime clock (the others count from the start of the run).
CLOCK_REALTIME = 0
_MAX_CLOCK_ID = 3
_ERRNO_SUCCESS = 0
_ERRNO_FAULT = 21
_ERRNO_INVAL = 28
_ERRNO_NOTCAPABLE = 76
_SEED_DOMAIN = b"bacalhau-wasm-deterministic-v1"
_BLOCK = hashlib.sha256().digest_size
_U32 = 0xFFFFFFFF


class DeterministicSource:
    """The virtual clock and the random stream of one deterministic run."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._pending = b""
        #: Nanoseconds since the start of the run, as every clock tells it.
        self.elapsed_ns = 0

    def read_clock(self, clock_id: int) -> int:
        """The clock's reading now; every read moves the virtual time on by one step."""
        value = self.peek_clock(clock_id)
        self.elapsed_ns += STEP_NS
        return value

    def peek_clock(self, clock_id: int) -> int:
        """The clock's reading, without the step of a read (for absolute sleeps)."""
        return self.elapsed_ns + (EPOCH_NS if clock_id == CLOCK_REALTIME else 0)

    def sleep(self, nanoseconds: int) -> None:
        """A sleep takes no real time: the virtual clocks jump past its end."""
        self.elapsed_ns += max(nanoseconds, 0)

    def random_bytes(self, n: int) -> bytes:
        """The next ``n`` bytes of the stream: SHA-256(seed || block counter), block after block."""
        out = [self._pending[:n]]
        got = len(out[0])
        self._pending = self._pending[n:]
        while got < n:
            block = hashlib.sha256(self._seed + struct.pack("<Q", self._counter)).digest()
            self._counter += 1
            take = min(n - got, _BLOCK)
            out.append(block[:take])
            self._pending = block[take:]
            got += take
        return b"".join(out)


def run_seed(
    *,
    job_id: str,
    module_digests: Iterable[str],
    argv: Sequence[str],
    env: Sequence[tuple[str, str]],
    input_targets: Iterable[str],
) -> bytes:
    """The seed of a run's random stream: the same job gives the same seed on every node.

    It depends on the job (not on the execution, the node or the time), so the executions of
    one job agree byte for byte, and two jobs do not share a stream.
    """
    h = hashlib.sha256(_SEED_DOMAIN)
    for part in (
        job_id,
        *sorted(module_digests),
        *argv,
        *(f"{k}={v}" for k, v in env),
        *sorted(input_targets),
    ):
        data = part.encode()
        h.update(struct.pack("<Q", len(data)) + data)  # length-prefixed: no ambiguity
    return h.digest()


_local = threading.local()


def set_running_source(source: DeterministicSource | None) -> None:
    """Declare the deterministic source of the run on the calling worker thread (or None)."""
    _local.source = source


def running_source() -> DeterministicSource | None:
    source: DeterministicSource | None = getattr(_local, "source", None)
    return source


def define_deterministic(linker: wasmtime.Linker) -> None:
    """Shadow WASI's clocks and entropy in ``linker`` (which must allow shadowing)."""
    i32 = wasmtime.ValType.i32()
    i64 = wasmtime.ValType.i64()
    linker.define_func(
        _WASI,
        "clock_time_get",
        wasmtime.FuncType([i32, i64, i32], [i32]),
        _clock_time_get,
        access_caller=True,
    )
    linker.define_func(
        _WASI,
        "clock_res_get",
        wasmtime.FuncType([i32, i32], [i32]),
        _clock_res_get,
        access_caller=True,
    )
    linker.define_func(
        _WASI,
        "random_get",
        wasmtime.FuncType([i32, i32], [i32]),
        _random_get,
        access_caller=True,
    )


def _write(caller: wasmtime.Caller, data: bytes, ptr: int) -> int:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        return _ERRNO_FAULT
    try:
        memory.write(caller, data, ptr & _U32)  # i32 arguments arrive signed
    except (IndexError, ValueError):
        return _ERRNO_FAULT
    return _ERRNO_SUCCESS


def _clock_time_get(caller: wasmtime.Caller, clock_id: int, _precision: int, ptr: int) -> int:
    source = running_source()
    if source is None:
        return _ERRNO_NOTCAPABLE  # never the node's clock in a deterministic linker
    if not 0 <= clock_id <= _MAX_CLOCK_ID:
        return _ERRNO_INVAL
    return _write(caller, struct.pack("<Q", source.read_clock(clock_id)), ptr)


def _clock_res_get(caller: wasmtime.Caller, clock_id: int, ptr: int) -> int:
    if not 0 <= clock_id <= _MAX_CLOCK_ID:
        return _ERRNO_INVAL
    return _write(caller, struct.pack("<Q", STEP_NS), ptr)


def _random_get(caller: wasmtime.Caller, ptr: int, length: int) -> int:
    source = running_source()
    if source is None:
        return _ERRNO_NOTCAPABLE
    memory = caller.get("memory")
    ptr, length = ptr & _U32, length & _U32
    if not isinstance(memory, wasmtime.Memory) or ptr + length > memory.data_len(caller):
        return _ERRNO_FAULT  # checked first: a bad length must not make us hash gigabytes
    return _write(caller, source.random_bytes(length), ptr)
