"""The file system a deterministic WASM run sees: the host's directories, metadata of our own.

Files are the host's: reads and writes go to host descriptors (``readv``/``writev`` straight
into and out of the module's memory, see ``_wasi_fs``), inputs are read where the node
prepared them (no copy), writes land in the result folders. Everything else a module could tell
two nodes apart by is ours (see ``_vfs_tree``): inode numbers, device numbers (one per root,
numbered in the order the roots are given), times, link counts (always 1), directory sizes
(always 0), and directory listings (``.`` and ``..`` first, then the names sorted by their
bytes, with the position as the cookie).

Why the host's directories and not a tree in memory flushed at the end: inputs are read in
place rather than copied into the node's memory, outputs can be as large as the result folder's
disk allows, and what the module wrote is on disk as it goes, as in a container. The price is
that the module's view of metadata lives in a table beside the files (:class:`MetaTable`).

Read-only roots (the inputs) refuse every change with EROFS, as a read-only mount would; fds
0, 1 and 2 are the run's streams (stdin empty, stdout and stderr written to the descriptors
given, the run's capped pipes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bacalhau.executor.wasm._vfs_entries import (
    Entry,
    FileStat,
    OpenDir,
    OpenFile,
    Preopen,
    Stream,
)
from bacalhau.executor.wasm._vfs_tree import (
    Meta,
    MetaTable,
    Resolved,
    Root,
    filetype,
    resolve,
)
from bacalhau.executor.wasm._wasi_abi import (
    DIRECTORY_RIGHTS,
    ERRNO_ACCES,
    ERRNO_BADF,
    ERRNO_EXIST,
    ERRNO_INVAL,
    ERRNO_ISDIR,
    ERRNO_LOOP,
    ERRNO_MFILE,
    ERRNO_NOENT,
    ERRNO_NOTCAPABLE,
    ERRNO_NOTDIR,
    ERRNO_PERM,
    ERRNO_SPIPE,
    ERRNO_XDEV,
    FDFLAGS_APPEND,
    FDFLAGS_DSYNC,
    FDFLAGS_RSYNC,
    FDFLAGS_SYNC,
    FILE_RIGHTS,
    FILETYPE_DIRECTORY,
    FILETYPE_UNKNOWN,
    OFLAGS_CREAT,
    OFLAGS_DIRECTORY,
    OFLAGS_EXCL,
    OFLAGS_TRUNC,
    RIGHT_FD_ALLOCATE,
    RIGHT_FD_DATASYNC,
    RIGHT_FD_FILESTAT_GET,
    RIGHT_FD_FILESTAT_SET_SIZE,
    RIGHT_FD_READ,
    RIGHT_FD_SEEK,
    RIGHT_FD_SYNC,
    RIGHT_FD_TELL,
    RIGHT_FD_WRITE,
    RIGHT_PATH_CREATE_FILE,
    RIGHT_PATH_FILESTAT_SET_SIZE,
    RIGHT_PATH_OPEN,
    RIGHT_POLL_FD_READWRITE,
    WHENCE_CUR,
    WHENCE_END,
    WHENCE_SET,
    WasiError,
)

__all__ = ["VirtualFS"]

#: The most descriptors a run may hold open (host descriptors are the node's).
MAX_OPEN = 1024
_FIRST_FD = 3
_NEW_FILE_MODE = 0o644
_NEW_DIR_MODE = 0o755


class VirtualFS:
    """The descriptors and file system of one run; ``now`` is the run's virtual clock."""

    def __init__(
        self,
        preopens: Sequence[Preopen],
        *,
        now: Callable[[], int],
        stdout_fd: int | None = None,
        stderr_fd: int | None = None,
    ) -> None:
        self.meta = MetaTable(now)
        # Streams are neither seekable nor terminals (no seek/tell rights, unknown type).
        stream = RIGHT_FD_FILESTAT_GET | RIGHT_POLL_FD_READWRITE
        self._fds: dict[int, Entry] = {
            0: Stream(None, RIGHT_FD_READ | stream),
            1: Stream(stdout_fd, RIGHT_FD_WRITE | stream),
            2: Stream(stderr_fd, RIGHT_FD_WRITE | stream),
        }
        roots: dict[tuple[Path, bool], Root] = {}
        rights = FILE_RIGHTS | DIRECTORY_RIGHTS
        for preopen in preopens:
            host = Path(os.path.realpath(preopen.host))
            # Two names for one folder (an output at its Name and its Path) are one root.
            root = roots.setdefault(
                (host, preopen.writable),
                Root(host, preopen.writable, preopen.guest, dev=len(roots) + 1),
            )
            self._fds[self._free_fd()] = OpenDir(
                root, (), DIRECTORY_RIGHTS, rights, preopen=preopen.guest
            )

    def close(self) -> None:
        """Close every host descriptor the run still holds."""
        for fd in list(self._fds):
            with contextlib.suppress(WasiError):
                self.close_fd(fd)

    # -- descriptors -----------------------------------------------------------------------

    def entry(self, fd: int, rights: int = 0) -> Entry:
        """The open descriptor ``fd``; EBADF if none, ENOTCAPABLE if it lacks ``rights``."""
        entry = self._fds.get(fd)
        if entry is None:
            raise WasiError(ERRNO_BADF)
        if rights & ~entry.rights:
            raise WasiError(ERRNO_NOTCAPABLE)
        return entry

    def directory(self, fd: int, rights: int = 0) -> OpenDir:
        entry = self.entry(fd)
        if not isinstance(entry, OpenDir):
            raise WasiError(ERRNO_NOTDIR)
        if rights & ~entry.rights:
            raise WasiError(ERRNO_NOTCAPABLE)
        return entry

    def file(self, fd: int, rights: int = 0) -> OpenFile | Stream:
        entry = self.entry(fd, rights)
        if isinstance(entry, OpenDir):
            raise WasiError(ERRNO_ISDIR if rights & RIGHT_FD_WRITE else ERRNO_BADF)
        return entry

    def close_fd(self, fd: int) -> None:
        entry = self._fds.pop(fd, None)
        if entry is None:
            raise WasiError(ERRNO_BADF)
        if isinstance(entry, OpenFile):
            os.close(entry.host_fd)

    def renumber(self, fd: int, to: int) -> None:
        entry = self.entry(fd)
        self.entry(to)
        if fd != to:
            self.close_fd(to)
            self._fds[to] = entry
            del self._fds[fd]

    def preopen_name(self, fd: int) -> str:
        entry = self._fds.get(fd)
        if not isinstance(entry, OpenDir) or entry.preopen is None:
            raise WasiError(ERRNO_BADF)
        return entry.preopen

    def set_rights(self, fd: int, rights: int, inheriting: int) -> None:
        """Drop rights (asking for more than the descriptor has is ENOTCAPABLE)."""
        entry = self.entry(fd, rights)
        if isinstance(entry, Stream):
            entry.rights = rights
            return
        if inheriting & ~entry.inheriting:
            raise WasiError(ERRNO_NOTCAPABLE)
        entry.rights, entry.inheriting = rights, inheriting

    def set_fdflags(self, fd: int, fdflags: int) -> None:
        entry = self.entry(fd)
        if isinstance(entry, OpenFile):
            if fdflags & FDFLAGS_APPEND:
                entry.root.check_writable()
            host = fcntl.fcntl(entry.host_fd, fcntl.F_GETFL) & ~os.O_APPEND
            if fdflags & FDFLAGS_APPEND:
                host |= os.O_APPEND
            fcntl.fcntl(entry.host_fd, fcntl.F_SETFL, host)
        entry.fdflags = fdflags

    # -- contents --------------------------------------------------------------------------

    def read(self, fd: int, buffers: list[memoryview], offset: int | None = None) -> int:
        """Read into ``buffers`` (at the file position, or at ``offset`` without moving it)."""
        entry = self.file(fd, RIGHT_FD_READ | (RIGHT_FD_SEEK if offset is not None else 0))
        if isinstance(entry, Stream):
            if offset is not None:
                raise WasiError(ERRNO_SPIPE)
            return 0  # stdin is empty
        if offset is None:
            return os.readv(entry.host_fd, buffers)
        return os.preadv(entry.host_fd, buffers, offset)

    def write(self, fd: int, buffers: list[memoryview], offset: int | None = None) -> int:
        """Write ``buffers`` (at the file position, or at ``offset`` without moving it)."""
        entry = self.file(fd, RIGHT_FD_WRITE | (RIGHT_FD_SEEK if offset is not None else 0))
        if isinstance(entry, Stream):
            if offset is not None:
                raise WasiError(ERRNO_SPIPE)
            return _write_all(entry.host_fd, buffers)
        if offset is None:
            written = os.writev(entry.host_fd, buffers)
        else:
            written = os.pwritev(entry.host_fd, buffers, offset)
        if written:
            entry.meta.touch(self.meta.now())
        return written

    def seek(self, fd: int, offset: int, whence: int) -> int:
        if isinstance(self.entry(fd), Stream):
            raise WasiError(ERRNO_SPIPE)  # a pipe, whatever the rights say
        tell_only = offset == 0 and whence == WHENCE_CUR
        entry = self.file(fd, RIGHT_FD_TELL if tell_only else RIGHT_FD_SEEK)
        assert not isinstance(entry, Stream)
        host_whence = {WHENCE_SET: os.SEEK_SET, WHENCE_CUR: os.SEEK_CUR, WHENCE_END: os.SEEK_END}
        if whence not in host_whence:
            raise WasiError(ERRNO_INVAL)
        return os.lseek(entry.host_fd, offset, host_whence[whence])

    def sync(self, fd: int, *, data_only: bool) -> None:
        entry = self.entry(fd, RIGHT_FD_DATASYNC if data_only else RIGHT_FD_SYNC)
        if isinstance(entry, OpenFile):
            (os.fdatasync if data_only else os.fsync)(entry.host_fd)

    def set_size(self, fd: int, size: int) -> None:
        entry = self.file(fd, RIGHT_FD_FILESTAT_SET_SIZE)
        if isinstance(entry, Stream):
            raise WasiError(ERRNO_INVAL)
        entry.root.check_writable()
        os.ftruncate(entry.host_fd, size)
        entry.meta.touch(self.meta.now())

    def allocate(self, fd: int, offset: int, length: int) -> None:
        """Make the file at least ``offset + length`` bytes long (the rest reads as zeros)."""
        entry = self.file(fd, RIGHT_FD_ALLOCATE)
        if isinstance(entry, Stream):
            raise WasiError(ERRNO_SPIPE)
        entry.root.check_writable()
        if os.fstat(entry.host_fd).st_size < offset + length:
            os.ftruncate(entry.host_fd, offset + length)
            entry.meta.touch(self.meta.now())

    # -- metadata --------------------------------------------------------------------------

    def fd_filestat(self, fd: int) -> FileStat:
        entry = self.entry(fd)
        if isinstance(entry, Stream):
            return FileStat(0, 0, FILETYPE_UNKNOWN, 1, 0, 0, 0, 0)
        if isinstance(entry, OpenDir):
            return self._stat(entry.root, entry.meta_for(self.meta), stat.S_IFDIR, 0)
        st = os.fstat(entry.host_fd)
        return self._stat(entry.root, entry.meta, st.st_mode, st.st_size)

    def path_filestat(self, fd: int, path: str, *, follow: bool) -> FileStat:
        target = self.lookup(fd, path, follow=follow)
        st = os.lstat(target.host)
        _check_dir_only(target, st.st_mode)
        meta = self.meta.get(target.root, target.rel)
        return self._stat(target.root, meta, st.st_mode, st.st_size)

    def set_times(self, meta: Meta, root: Root, atime: int | None, mtime: int | None) -> None:
        root.check_writable()
        if atime is not None:
            meta.atime = atime
        if mtime is not None:
            meta.mtime = mtime
        meta.ctime = self.meta.now()

    def _stat(self, root: Root, meta: Meta, mode: int, size: int) -> FileStat:
        kind = filetype(mode)
        return FileStat(
            dev=root.dev,
            ino=meta.ino,
            filetype=kind,
            nlink=1,
            size=0 if kind == FILETYPE_DIRECTORY else size,
            atime=meta.atime,
            mtime=meta.mtime,
            ctime=meta.ctime,
        )

    # -- paths -----------------------------------------------------------------------------

    def lookup(self, fd: int, path: str, *, follow: bool, rights: int = 0) -> Resolved:
        directory = self.directory(fd, rights)
        return resolve(directory.root, directory.rel, path, follow=follow)

    def open(
        self,
        fd: int,
        path: str,
        *,
        follow: bool,
        oflags: int,
        rights: int,
        inheriting: int,
        fdflags: int,
    ) -> int:
        """``path_open``: a new descriptor for a file or directory under ``fd``."""
        directory = self.directory(fd, RIGHT_PATH_OPEN)
        needed = (RIGHT_PATH_CREATE_FILE if oflags & OFLAGS_CREAT else 0) | (
            RIGHT_PATH_FILESTAT_SET_SIZE if oflags & OFLAGS_TRUNC else 0
        )
        if needed & ~directory.rights or (rights | inheriting) & ~directory.inheriting:
            raise WasiError(ERRNO_NOTCAPABLE)
        # Only FD_WRITE says the module means to write: toolchains differ in which of the
        # other write-ish rights (allocate, set size) they ask for when opening to read.
        writes = rights & RIGHT_FD_WRITE or oflags & (OFLAGS_CREAT | OFLAGS_TRUNC)
        if writes or fdflags & FDFLAGS_APPEND:
            directory.root.check_writable()
        if len(self._fds) >= MAX_OPEN:
            raise WasiError(ERRNO_MFILE)
        target = resolve(directory.root, directory.rel, path, follow=follow)
        try:
            mode: int | None = os.lstat(target.host).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            if oflags & OFLAGS_CREAT:
                raise WasiError(ERRNO_EXIST if oflags & OFLAGS_EXCL else ERRNO_ISDIR)
            if rights & RIGHT_FD_WRITE or oflags & OFLAGS_TRUNC:
                raise WasiError(ERRNO_ISDIR)
            new_dir = OpenDir(
                target.root, target.rel, rights & DIRECTORY_RIGHTS, inheriting, fdflags=fdflags
            )
            return self._add(new_dir)
        if oflags & OFLAGS_DIRECTORY or target.dir_only:
            raise WasiError(ERRNO_NOTDIR if mode is not None else ERRNO_NOENT)
        if mode is not None and not stat.S_ISREG(mode):
            # A fifo would block the worker in open(), a device would be the host's: only
            # regular files and directories are opened (a link here is one not followed).
            raise WasiError(ERRNO_LOOP if stat.S_ISLNK(mode) else ERRNO_ACCES)
        host_fd = os.open(target.host, _host_flags(oflags, rights, fdflags), _NEW_FILE_MODE)
        if mode is None:
            meta = self.meta.created(target.root, target.rel)
        else:
            meta = self.meta.get(target.root, target.rel)
            if oflags & OFLAGS_TRUNC:
                meta.touch(self.meta.now())
        return self._add(
            OpenFile(target.root, meta, host_fd, rights & FILE_RIGHTS, inheriting, fdflags)
        )

    def create_directory(self, fd: int, path: str, rights: int) -> None:
        target = self.lookup(fd, path, follow=False, rights=rights)
        target.root.check_writable()
        os.mkdir(target.host, _NEW_DIR_MODE)
        self.meta.created(target.root, target.rel)

    def remove_directory(self, fd: int, path: str, rights: int) -> None:
        target = self.lookup(fd, path, follow=False, rights=rights)
        target.root.check_writable()
        if target.rel == self.directory(fd).rel:
            raise WasiError(ERRNO_INVAL)  # rmdir(".")
        os.rmdir(target.host)
        self.meta.removed(target.root, target.rel)

    def unlink_file(self, fd: int, path: str, rights: int) -> None:
        target = self.lookup(fd, path, follow=False, rights=rights)
        target.root.check_writable()
        st = os.lstat(target.host)
        if stat.S_ISDIR(st.st_mode):
            raise WasiError(ERRNO_ISDIR)
        _check_dir_only(target, st.st_mode)
        os.unlink(target.host)
        self.meta.removed(target.root, target.rel)

    def rename(self, fd: int, old: str, new_fd: int, new: str, rights: tuple[int, int]) -> None:
        source = self.lookup(fd, old, follow=False, rights=rights[0])
        dest = self.lookup(new_fd, new, follow=False, rights=rights[1])
        source.root.check_writable()
        dest.root.check_writable()
        if source.root != dest.root:
            raise WasiError(ERRNO_XDEV)
        if not source.rel or not dest.rel:
            raise WasiError(ERRNO_INVAL)  # a root cannot be renamed, nor replaced
        st = os.lstat(source.host)
        _check_dir_only(source, st.st_mode)
        os.rename(source.host, dest.host)
        self.meta.moved(source.root, source.rel, dest.rel)

    def symlink(self, fd: int, path: str) -> None:
        """Links are refused: a link made by the module would be a path we must police."""
        target = self.lookup(fd, path, follow=False)
        target.root.check_writable()
        raise WasiError(ERRNO_PERM)

    def link(self, fd: int, path: str) -> None:
        """Hard links are refused: two names, one inode, would need a table of their own."""
        self.symlink(fd, path)

    def readlink(self, fd: int, path: str, rights: int) -> bytes:
        target = self.lookup(fd, path, follow=False, rights=rights)
        return os.fsencode(os.readlink(target.host))

    # -- directory listings ----------------------------------------------------------------

    def list_directory(self, fd: int, cookie: int, rights: int) -> Iterator[tuple[str, int, int]]:
        """``(name, ino, filetype)`` of the entries from position ``cookie`` on, as the caller
        takes them (a reader with a small buffer looks at a few entries per call).

        A listing read from cookie 0 is taken anew; later cookies read the same listing, so
        entries added or removed meanwhile neither shift nor repeat the rest.
        """
        directory = self.directory(fd, rights)
        if cookie == 0 or not directory.listing:
            names = os.listdir(directory.root.host_path(directory.rel))
            directory.listing = [".", "..", *sorted(names, key=os.fsencode)]
        return (
            self._dirent(directory, directory.listing[i])
            for i in range(cookie, len(directory.listing))
        )

    def _dirent(self, directory: OpenDir, name: str) -> tuple[str, int, int]:
        root, rel = directory.root, directory.rel
        if name == ".":
            return name, self.meta.get(root, rel).ino, FILETYPE_DIRECTORY
        if name == "..":
            return name, self.meta.get(root, rel[:-1]).ino, FILETYPE_DIRECTORY
        try:
            kind = filetype(os.lstat(root.host_path((*rel, name))).st_mode)
        except OSError:
            kind = FILETYPE_UNKNOWN  # removed since the listing was taken
        return name, self.meta.get(root, (*rel, name)).ino, kind

    # -- helpers ---------------------------------------------------------------------------

    def _free_fd(self) -> int:
        fd = _FIRST_FD
        while fd in self._fds:
            fd += 1
        return fd

    def _add(self, entry: Entry) -> int:
        fd = self._free_fd()
        self._fds[fd] = entry
        return fd


def _write_all(host_fd: int | None, buffers: list[memoryview]) -> int:
    """Write everything to a stream (a pipe may take it in parts); nowhere counts as written."""
    total = sum(len(b) for b in buffers)
    if host_fd is None:
        return total
    done = os.writev(host_fd, buffers)
    while done < total:
        rest = b"".join(buffers)[done:]
        done += os.write(host_fd, rest)
    return total


def _check_dir_only(target: Resolved, mode: int) -> None:
    if target.dir_only and not stat.S_ISDIR(mode):
        raise WasiError(ERRNO_NOTDIR)


def _host_flags(oflags: int, rights: int, fdflags: int) -> int:
    if rights & RIGHT_FD_WRITE:
        flags = os.O_RDWR if rights & RIGHT_FD_READ else os.O_WRONLY
    else:
        flags = os.O_RDONLY
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    if oflags & OFLAGS_CREAT:
        flags |= os.O_CREAT
    if oflags & OFLAGS_EXCL:
        flags |= os.O_EXCL
    if oflags & OFLAGS_TRUNC:
        flags |= os.O_TRUNC
    if fdflags & FDFLAGS_APPEND:
        flags |= os.O_APPEND
    if fdflags & FDFLAGS_DSYNC:
        flags |= os.O_DSYNC
    if fdflags & (FDFLAGS_SYNC | FDFLAGS_RSYNC):
        flags |= os.O_SYNC
    return flags
