"""WASI preview 1's file system calls, answered by the run's :class:`VirtualFS`.

wasmtime's own WASI cannot be wrapped from Python (a replacement cannot call the original), so a
deterministic linker shadows every ``fd_*``, ``path_*`` and ``sock_*`` function with these:
each decodes its arguments from the module's memory, asks the virtual file system of the run on
the calling worker thread (:func:`set_running_fs`) and encodes the answer. Reads and writes go
between host descriptors and the module's memory through one ``memoryview`` of it, without an
intermediate copy, so a large ``read`` costs one host call, not one per kilobyte.

Errors become WASI errno values: ours (:class:`WasiError`), the host's (mapped by name), and
EFAULT for a pointer outside the module's memory.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
from collections.abc import Callable

import wasmtime

from bacalhau.executor.wasm._vfs import VirtualFS
from bacalhau.executor.wasm._vfs_entries import FileStat, OpenDir, OpenFile, Stream
from bacalhau.executor.wasm._vfs_tree import filetype
from bacalhau.executor.wasm._wasi_abi import (
    ADVICE_MAX,
    DIRENT,
    ERRNO_BADF,
    ERRNO_FAULT,
    ERRNO_INVAL,
    ERRNO_NAMETOOLONG,
    ERRNO_NOTCAPABLE,
    ERRNO_NOTSOCK,
    ERRNO_SUCCESS,
    FDSTAT,
    FILESTAT,
    FILETYPE_DIRECTORY,
    FILETYPE_UNKNOWN,
    FSTFLAGS_ATIM,
    FSTFLAGS_ATIM_NOW,
    FSTFLAGS_MTIM,
    FSTFLAGS_MTIM_NOW,
    IOVEC,
    LOOKUPFLAGS_SYMLINK_FOLLOW,
    PRESTAT,
    RIGHT_FD_ADVISE,
    RIGHT_FD_FILESTAT_GET,
    RIGHT_FD_FILESTAT_SET_TIMES,
    RIGHT_FD_READDIR,
    RIGHT_PATH_CREATE_DIRECTORY,
    RIGHT_PATH_FILESTAT_GET,
    RIGHT_PATH_FILESTAT_SET_TIMES,
    RIGHT_PATH_READLINK,
    RIGHT_PATH_REMOVE_DIRECTORY,
    RIGHT_PATH_RENAME_SOURCE,
    RIGHT_PATH_RENAME_TARGET,
    RIGHT_PATH_UNLINK_FILE,
    WasiError,
    wasi_errno,
)

__all__ = ["define_wasi_fs", "running_fs", "set_running_fs"]

_WASI = "wasi_snapshot_preview1"
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_PUT_U32 = struct.Struct("<I")
_PUT_U64 = struct.Struct("<Q")

_local = threading.local()


def set_running_fs(fs: VirtualFS | None) -> None:
    """Declare the file system of the run on the calling worker thread (None once it ends)."""
    _local.fs = fs


def running_fs() -> VirtualFS:
    fs: VirtualFS | None = getattr(_local, "fs", None)
    if fs is None:
        raise WasiError(ERRNO_NOTCAPABLE)  # a deterministic linker never falls back to the host
    return fs


class _Memory:
    """The calling module's memory, bounds-checked: a bad pointer is EFAULT, never a crash."""

    def __init__(self, caller: wasmtime.Caller) -> None:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise WasiError(ERRNO_FAULT)
        self.size = memory.data_len(caller)
        self.view = memoryview(memory.get_buffer_ptr(caller, self.size)).cast("B")

    def slice(self, ptr: int, length: int) -> memoryview:
        ptr, length = ptr & _U32, length & _U32
        if ptr + length > self.size:
            raise WasiError(ERRNO_FAULT)
        return self.view[ptr : ptr + length]

    def string(self, ptr: int, length: int) -> str:
        raw = bytes(self.slice(ptr, length))
        if b"\0" in raw:
            raise WasiError(ERRNO_INVAL)
        return os.fsdecode(raw)

    def iovecs(self, ptr: int, count: int) -> list[memoryview]:
        table = self.slice(ptr, (count & _U32) * IOVEC.size)
        return [self.slice(p, n) for p, n in IOVEC.iter_unpack(table) if n]

    def put(self, ptr: int, data: bytes) -> None:
        self.slice(ptr, len(data))[:] = data

    def put_u32(self, ptr: int, value: int) -> None:
        self.put(ptr, _PUT_U32.pack(value))

    def put_u64(self, ptr: int, value: int) -> None:
        self.put(ptr, _PUT_U64.pack(value))


def _errno_of(call: Callable[..., None]) -> Callable[..., int]:
    """Run a host call; what it raises becomes the errno the module gets."""

    @functools.wraps(call)
    def host_call(caller: wasmtime.Caller, *args: int) -> int:
        try:
            call(caller, *args)
        except WasiError as e:
            return e.errno
        except OSError as e:
            return wasi_errno(e)
        except (ValueError, OverflowError):
            return ERRNO_INVAL
        return ERRNO_SUCCESS

    return host_call


# -- descriptors --------------------------------------------------------------------------------


def _fd_close(caller: wasmtime.Caller, fd: int) -> None:
    running_fs().close_fd(fd)


def _fd_renumber(caller: wasmtime.Caller, fd: int, to: int) -> None:
    running_fs().renumber(fd, to)


def _fd_prestat_get(caller: wasmtime.Caller, fd: int, ptr: int) -> None:
    name = os.fsencode(running_fs().preopen_name(fd))
    _Memory(caller).put(ptr, PRESTAT.pack(0, len(name)))


def _fd_prestat_dir_name(caller: wasmtime.Caller, fd: int, ptr: int, length: int) -> None:
    name = os.fsencode(running_fs().preopen_name(fd))
    if (length & _U32) < len(name):
        raise WasiError(ERRNO_NAMETOOLONG)
    _Memory(caller).put(ptr, name)


def _fd_fdstat_get(caller: wasmtime.Caller, fd: int, ptr: int) -> None:
    entry = running_fs().entry(fd)
    if isinstance(entry, Stream):
        kind, inheriting = FILETYPE_UNKNOWN, 0
    elif isinstance(entry, OpenDir):
        kind, inheriting = FILETYPE_DIRECTORY, entry.inheriting
    else:
        kind, inheriting = _file_type(entry), entry.inheriting
    _Memory(caller).put(ptr, FDSTAT.pack(kind, entry.fdflags, entry.rights, inheriting))


def _fd_fdstat_set_flags(caller: wasmtime.Caller, fd: int, flags: int) -> None:
    running_fs().set_fdflags(fd, flags & 0xFFFF)


def _fd_fdstat_set_rights(caller: wasmtime.Caller, fd: int, rights: int, inheriting: int) -> None:
    running_fs().set_rights(fd, rights & _U64, inheriting & _U64)


# -- contents -----------------------------------------------------------------------------------


def _fd_read(caller: wasmtime.Caller, fd: int, iovs: int, count: int, out: int) -> None:
    memory = _Memory(caller)
    memory.put_u32(out, running_fs().read(fd, memory.iovecs(iovs, count)))


def _fd_pread(
    caller: wasmtime.Caller, fd: int, iovs: int, count: int, offset: int, out: int
) -> None:
    memory = _Memory(caller)
    memory.put_u32(out, running_fs().read(fd, memory.iovecs(iovs, count), offset & _U64))


def _fd_write(caller: wasmtime.Caller, fd: int, iovs: int, count: int, out: int) -> None:
    memory = _Memory(caller)
    memory.put_u32(out, running_fs().write(fd, memory.iovecs(iovs, count)))


def _fd_pwrite(
    caller: wasmtime.Caller, fd: int, iovs: int, count: int, offset: int, out: int
) -> None:
    memory = _Memory(caller)
    memory.put_u32(out, running_fs().write(fd, memory.iovecs(iovs, count), offset & _U64))


def _fd_seek(caller: wasmtime.Caller, fd: int, offset: int, whence: int, out: int) -> None:
    _Memory(caller).put_u64(out, running_fs().seek(fd, offset, whence & 0xFF))


def _fd_tell(caller: wasmtime.Caller, fd: int, out: int) -> None:
    _fd_seek(caller, fd, 0, 1, out)


def _fd_sync(caller: wasmtime.Caller, fd: int) -> None:
    running_fs().sync(fd, data_only=False)


def _fd_datasync(caller: wasmtime.Caller, fd: int) -> None:
    running_fs().sync(fd, data_only=True)


def _fd_advise(caller: wasmtime.Caller, fd: int, offset: int, length: int, advice: int) -> None:
    running_fs().entry(fd, RIGHT_FD_ADVISE)
    if (advice & 0xFF) > ADVICE_MAX:
        raise WasiError(ERRNO_INVAL)  # advice is only advice: a valid one changes nothing


def _fd_allocate(caller: wasmtime.Caller, fd: int, offset: int, length: int) -> None:
    running_fs().allocate(fd, offset & _U64, length & _U64)


# -- metadata -----------------------------------------------------------------------------------


def _fd_filestat_get(caller: wasmtime.Caller, fd: int, ptr: int) -> None:
    fs = running_fs()
    fs.entry(fd, RIGHT_FD_FILESTAT_GET)
    _Memory(caller).put(ptr, _pack_filestat(fs.fd_filestat(fd)))


def _fd_filestat_set_size(caller: wasmtime.Caller, fd: int, size: int) -> None:
    running_fs().set_size(fd, size & _U64)


def _fd_filestat_set_times(
    caller: wasmtime.Caller, fd: int, atime: int, mtime: int, flags: int
) -> None:
    fs = running_fs()
    entry = fs.entry(fd, RIGHT_FD_FILESTAT_SET_TIMES)
    if isinstance(entry, Stream):
        raise WasiError(ERRNO_BADF)
    meta = entry.meta if isinstance(entry, OpenFile) else entry.meta_for(fs.meta)
    fs.set_times(meta, entry.root, *_new_times(fs, atime, mtime, flags))


def _path_filestat_get(
    caller: wasmtime.Caller, fd: int, lookup: int, path: int, length: int, ptr: int
) -> None:
    memory = _Memory(caller)
    fs = running_fs()
    fs.directory(fd, RIGHT_PATH_FILESTAT_GET)
    found = fs.path_filestat(fd, memory.string(path, length), follow=_follow(lookup))
    memory.put(ptr, _pack_filestat(found))


def _path_filestat_set_times(
    caller: wasmtime.Caller,
    fd: int,
    lookup: int,
    path: int,
    length: int,
    atime: int,
    mtime: int,
    flags: int,
) -> None:
    fs = running_fs()
    target = fs.lookup(
        fd,
        _Memory(caller).string(path, length),
        follow=_follow(lookup),
        rights=RIGHT_PATH_FILESTAT_SET_TIMES,
    )
    os.lstat(target.host)  # ENOENT for a missing file
    meta = fs.meta.get(target.root, target.rel)
    fs.set_times(meta, target.root, *_new_times(fs, atime, mtime, flags))


# -- paths --------------------------------------------------------------------------------------


def _path_open(
    caller: wasmtime.Caller,
    fd: int,
    lookup: int,
    path: int,
    length: int,
    oflags: int,
    rights: int,
    inheriting: int,
    fdflags: int,
    out: int,
) -> None:
    memory = _Memory(caller)
    opened = running_fs().open(
        fd,
        memory.string(path, length),
        follow=_follow(lookup),
        oflags=oflags & 0xFFFF,
        rights=rights & _U64,
        inheriting=inheriting & _U64,
        fdflags=fdflags & 0xFFFF,
    )
    try:
        memory.put_u32(out, opened)
    except WasiError:
        running_fs().close_fd(opened)
        raise


def _path_create_directory(caller: wasmtime.Caller, fd: int, path: int, length: int) -> None:
    path_ = _Memory(caller).string(path, length)
    running_fs().create_directory(fd, path_, RIGHT_PATH_CREATE_DIRECTORY)


def _path_remove_directory(caller: wasmtime.Caller, fd: int, path: int, length: int) -> None:
    path_ = _Memory(caller).string(path, length)
    running_fs().remove_directory(fd, path_, RIGHT_PATH_REMOVE_DIRECTORY)


def _path_unlink_file(caller: wasmtime.Caller, fd: int, path: int, length: int) -> None:
    running_fs().unlink_file(fd, _Memory(caller).string(path, length), RIGHT_PATH_UNLINK_FILE)


def _path_rename(
    caller: wasmtime.Caller, fd: int, old: int, old_len: int, new_fd: int, new: int, new_len: int
) -> None:
    memory = _Memory(caller)
    running_fs().rename(
        fd,
        memory.string(old, old_len),
        new_fd,
        memory.string(new, new_len),
        (RIGHT_PATH_RENAME_SOURCE, RIGHT_PATH_RENAME_TARGET),
    )


def _path_symlink(
    caller: wasmtime.Caller, old: int, old_len: int, fd: int, new: int, new_len: int
) -> None:
    memory = _Memory(caller)
    memory.string(old, old_len)
    running_fs().symlink(fd, memory.string(new, new_len))


def _path_link(
    caller: wasmtime.Caller,
    old_fd: int,
    lookup: int,
    old: int,
    old_len: int,
    fd: int,
    new: int,
    new_len: int,
) -> None:
    memory = _Memory(caller)
    memory.string(old, old_len)
    running_fs().link(fd, memory.string(new, new_len))


def _path_readlink(
    caller: wasmtime.Caller, fd: int, path: int, length: int, buf: int, buf_len: int, out: int
) -> None:
    memory = _Memory(caller)
    target = running_fs().readlink(fd, memory.string(path, length), RIGHT_PATH_READLINK)
    target = target[: buf_len & _U32]  # truncated, as readlink(2) does
    memory.put(buf, target)
    memory.put_u32(out, len(target))


def _fd_readdir(
    caller: wasmtime.Caller, fd: int, buf: int, buf_len: int, cookie: int, out: int
) -> None:
    memory = _Memory(caller)
    buf_len &= _U32
    cookie &= _U64
    entries = running_fs().list_directory(fd, cookie, RIGHT_FD_READDIR)
    packed = bytearray()
    for position, (name, ino, kind) in enumerate(entries, start=cookie + 1):
        raw = os.fsencode(name)
        packed += DIRENT.pack(position, ino, len(raw), kind) + raw
        if len(packed) >= buf_len:
            break
    # A full buffer tells the reader there may be more: it asks again from the last cookie
    # it read whole.
    data = bytes(packed[:buf_len])
    memory.put(buf, data)
    memory.put_u32(out, len(data))


# -- sockets: a deterministic run has none ------------------------------------------------------


def _sock(caller: wasmtime.Caller, fd: int, *_: int) -> None:
    running_fs().entry(fd)
    raise WasiError(ERRNO_NOTSOCK)


# -- registration -------------------------------------------------------------------------------

_CALLS: dict[str, tuple[str, Callable[..., None]]] = {
    # name: (parameter types, i = i32 and I = i64; every call returns an errno, an i32)
    "fd_advise": ("iIIi", _fd_advise),
    "fd_allocate": ("iII", _fd_allocate),
    "fd_close": ("i", _fd_close),
    "fd_datasync": ("i", _fd_datasync),
    "fd_fdstat_get": ("ii", _fd_fdstat_get),
    "fd_fdstat_set_flags": ("ii", _fd_fdstat_set_flags),
    "fd_fdstat_set_rights": ("iII", _fd_fdstat_set_rights),
    "fd_filestat_get": ("ii", _fd_filestat_get),
    "fd_filestat_set_size": ("iI", _fd_filestat_set_size),
    "fd_filestat_set_times": ("iIIi", _fd_filestat_set_times),
    "fd_pread": ("iiiIi", _fd_pread),
    "fd_prestat_get": ("ii", _fd_prestat_get),
    "fd_prestat_dir_name": ("iii", _fd_prestat_dir_name),
    "fd_pwrite": ("iiiIi", _fd_pwrite),
    "fd_read": ("iiii", _fd_read),
    "fd_readdir": ("iiiIi", _fd_readdir),
    "fd_renumber": ("ii", _fd_renumber),
    "fd_seek": ("iIii", _fd_seek),
    "fd_sync": ("i", _fd_sync),
    "fd_tell": ("ii", _fd_tell),
    "fd_write": ("iiii", _fd_write),
    "path_create_directory": ("iii", _path_create_directory),
    "path_filestat_get": ("iiiii", _path_filestat_get),
    "path_filestat_set_times": ("iiiiIIi", _path_filestat_set_times),
    "path_link": ("iiiiiii", _path_link),
    "path_open": ("iiiiiIIii", _path_open),
    "path_readlink": ("iiiiii", _path_readlink),
    "path_remove_directory": ("iii", _path_remove_directory),
    "path_rename": ("iiiiii", _path_rename),
    "path_symlink": ("iiiii", _path_symlink),
    "path_unlink_file": ("iii", _path_unlink_file),
    "sock_accept": ("iii", _sock),
    "sock_recv": ("iiiiii", _sock),
    "sock_send": ("iiiii", _sock),
    "sock_shutdown": ("ii", _sock),
}


def define_wasi_fs(linker: wasmtime.Linker) -> None:
    """Shadow WASI's file system calls in ``linker`` (which must allow shadowing)."""
    types = {"i": wasmtime.ValType.i32(), "I": wasmtime.ValType.i64()}
    for name, (params, call) in _CALLS.items():
        linker.define_func(
            _WASI,
            name,
            wasmtime.FuncType([types[p] for p in params], [types["i"]]),
            _errno_of(call),
            access_caller=True,
        )


# -- encoding -----------------------------------------------------------------------------------


def _pack_filestat(st: FileStat) -> bytes:
    return FILESTAT.pack(
        st.dev, st.ino, st.filetype, st.nlink, st.size, st.atime, st.mtime, st.ctime
    )


def _file_type(entry: OpenFile) -> int:
    return filetype(os.fstat(entry.host_fd).st_mode)


def _follow(lookup: int) -> bool:
    return bool(lookup & LOOKUPFLAGS_SYMLINK_FOLLOW)


def _new_times(fs: VirtualFS, atime: int, mtime: int, flags: int) -> tuple[int | None, int | None]:
    """The times ``*_set_times`` asks for (None: unchanged); ``*_NOW`` is the virtual now."""
    if flags & FSTFLAGS_ATIM and flags & FSTFLAGS_ATIM_NOW:
        raise WasiError(ERRNO_INVAL)
    if flags & FSTFLAGS_MTIM and flags & FSTFLAGS_MTIM_NOW:
        raise WasiError(ERRNO_INVAL)
    now = fs.meta.now()
    new_atime = (
        atime & _U64 if flags & FSTFLAGS_ATIM else now if flags & FSTFLAGS_ATIM_NOW else None
    )
    new_mtime = (
        mtime & _U64 if flags & FSTFLAGS_MTIM else now if flags & FSTFLAGS_MTIM_NOW else None
    )
    return new_atime, new_mtime
