"""WASI preview 1 as numbers: errno values, rights, flags, file types and record layouts.

Taken from the ``wasi_snapshot_preview1`` witx definitions (wasi-libc's ``wasi/api.h``); the
virtual file system (``_vfs``) and its ABI glue (``_wasi_fs``) speak in these.
"""

from __future__ import annotations

import errno
import struct

__all__ = [
    "ERRNO_ACCES",
    "ERRNO_BADF",
    "ERRNO_EXIST",
    "ERRNO_FAULT",
    "ERRNO_INVAL",
    "ERRNO_IO",
    "ERRNO_ISDIR",
    "ERRNO_LOOP",
    "ERRNO_MFILE",
    "ERRNO_NAMETOOLONG",
    "ERRNO_NOENT",
    "ERRNO_NOTCAPABLE",
    "ERRNO_NOTDIR",
    "ERRNO_NOTEMPTY",
    "ERRNO_NOTSOCK",
    "ERRNO_NOTSUP",
    "ERRNO_PERM",
    "ERRNO_ROFS",
    "ERRNO_SPIPE",
    "ERRNO_SUCCESS",
    "ERRNO_XDEV",
    "WasiError",
    "wasi_errno",
]

# fmt: off
_ERRNO_NAMES = [
    "E2BIG", "EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EAFNOSUPPORT", "EAGAIN", "EALREADY",
    "EBADF", "EBADMSG", "EBUSY", "ECANCELED", "ECHILD", "ECONNABORTED", "ECONNREFUSED",
    "ECONNRESET", "EDEADLK", "EDESTADDRREQ", "EDOM", "EDQUOT", "EEXIST", "EFAULT", "EFBIG",
    "EHOSTUNREACH", "EIDRM", "EILSEQ", "EINPROGRESS", "EINTR", "EINVAL", "EIO", "EISCONN",
    "EISDIR", "ELOOP", "EMFILE", "EMLINK", "EMSGSIZE", "EMULTIHOP", "ENAMETOOLONG", "ENETDOWN",
    "ENETRESET", "ENETUNREACH", "ENFILE", "ENOBUFS", "ENODEV", "ENOENT", "ENOEXEC", "ENOLCK",
    "ENOLINK", "ENOMEM", "ENOMSG", "ENOPROTOOPT", "ENOSPC", "ENOSYS", "ENOTCONN", "ENOTDIR",
    "ENOTEMPTY", "ENOTRECOVERABLE", "ENOTSOCK", "ENOTSUP", "ENOTTY", "ENXIO", "EOVERFLOW",
    "EOWNERDEAD", "EPERM", "EPIPE", "EPROTO", "EPROTONOSUPPORT", "EPROTOTYPE", "ERANGE", "EROFS",
    "ESPIPE", "ESRCH", "ESTALE", "ETIMEDOUT", "ETXTBSY", "EXDEV",
]
# fmt: on
#: The host's errno -> WASI's (WASI numbers the POSIX names in this order from 1).
_FROM_HOST = {getattr(errno, name): i for i, name in enumerate(_ERRNO_NAMES, start=1)}

ERRNO_SUCCESS = 0
ERRNO_ACCES = 2
ERRNO_BADF = 8
ERRNO_EXIST = 20
ERRNO_FAULT = 21
ERRNO_INVAL = 28
ERRNO_IO = 29
ERRNO_ISDIR = 31
ERRNO_LOOP = 32
ERRNO_MFILE = 33
ERRNO_NAMETOOLONG = 37
ERRNO_NOENT = 44
ERRNO_NOTDIR = 54
ERRNO_NOTEMPTY = 55
ERRNO_NOTSOCK = 57
ERRNO_NOTSUP = 58
ERRNO_PERM = 63
ERRNO_ROFS = 69
ERRNO_SPIPE = 70
ERRNO_XDEV = 75
ERRNO_NOTCAPABLE = 76


class WasiError(Exception):
    """A WASI call's failure, carrying the errno the module receives."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.errno = code


def wasi_errno(e: OSError) -> int:
    """The WASI errno for a host error (EIO for one WASI has no name for)."""
    return _FROM_HOST.get(e.errno or 0, ERRNO_IO)


# -- file types ---------------------------------------------------------------------------------
FILETYPE_UNKNOWN = 0
FILETYPE_CHARACTER_DEVICE = 2
FILETYPE_DIRECTORY = 3
FILETYPE_REGULAR_FILE = 4
FILETYPE_SYMBOLIC_LINK = 7

# -- rights -------------------------------------------------------------------------------------
RIGHT_FD_DATASYNC = 1 << 0
RIGHT_FD_READ = 1 << 1
RIGHT_FD_SEEK = 1 << 2
RIGHT_FD_FDSTAT_SET_FLAGS = 1 << 3
RIGHT_FD_SYNC = 1 << 4
RIGHT_FD_TELL = 1 << 5
RIGHT_FD_WRITE = 1 << 6
RIGHT_FD_ADVISE = 1 << 7
RIGHT_FD_ALLOCATE = 1 << 8
RIGHT_PATH_CREATE_DIRECTORY = 1 << 9
RIGHT_PATH_CREATE_FILE = 1 << 10
RIGHT_PATH_LINK_SOURCE = 1 << 11
RIGHT_PATH_LINK_TARGET = 1 << 12
RIGHT_PATH_OPEN = 1 << 13
RIGHT_FD_READDIR = 1 << 14
RIGHT_PATH_READLINK = 1 << 15
RIGHT_PATH_RENAME_SOURCE = 1 << 16
RIGHT_PATH_RENAME_TARGET = 1 << 17
RIGHT_PATH_FILESTAT_GET = 1 << 18
RIGHT_PATH_FILESTAT_SET_SIZE = 1 << 19
RIGHT_PATH_FILESTAT_SET_TIMES = 1 << 20
RIGHT_FD_FILESTAT_GET = 1 << 21
RIGHT_FD_FILESTAT_SET_SIZE = 1 << 22
RIGHT_FD_FILESTAT_SET_TIMES = 1 << 23
RIGHT_PATH_SYMLINK = 1 << 24
RIGHT_PATH_REMOVE_DIRECTORY = 1 << 25
RIGHT_PATH_UNLINK_FILE = 1 << 26
RIGHT_POLL_FD_READWRITE = 1 << 27

#: What a regular file's descriptor can be given.
FILE_RIGHTS = (
    RIGHT_FD_DATASYNC
    | RIGHT_FD_READ
    | RIGHT_FD_SEEK
    | RIGHT_FD_FDSTAT_SET_FLAGS
    | RIGHT_FD_SYNC
    | RIGHT_FD_TELL
    | RIGHT_FD_WRITE
    | RIGHT_FD_ADVISE
    | RIGHT_FD_ALLOCATE
    | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FILESTAT_SET_SIZE
    | RIGHT_FD_FILESTAT_SET_TIMES
    | RIGHT_POLL_FD_READWRITE
)
#: What a directory's descriptor can be given.
DIRECTORY_RIGHTS = (
    RIGHT_FD_FDSTAT_SET_FLAGS
    | RIGHT_FD_SYNC
    | RIGHT_FD_ADVISE
    | RIGHT_PATH_CREATE_DIRECTORY
    | RIGHT_PATH_CREATE_FILE
    | RIGHT_PATH_LINK_SOURCE
    | RIGHT_PATH_LINK_TARGET
    | RIGHT_PATH_OPEN
    | RIGHT_FD_READDIR
    | RIGHT_PATH_READLINK
    | RIGHT_PATH_RENAME_SOURCE
    | RIGHT_PATH_RENAME_TARGET
    | RIGHT_PATH_FILESTAT_GET
    | RIGHT_PATH_FILESTAT_SET_SIZE
    | RIGHT_PATH_FILESTAT_SET_TIMES
    | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FILESTAT_SET_TIMES
    | RIGHT_PATH_SYMLINK
    | RIGHT_PATH_REMOVE_DIRECTORY
    | RIGHT_PATH_UNLINK_FILE
)

# -- flags --------------------------------------------------------------------------------------
FDFLAGS_APPEND = 1 << 0
FDFLAGS_DSYNC = 1 << 1
FDFLAGS_NONBLOCK = 1 << 2
FDFLAGS_RSYNC = 1 << 3
FDFLAGS_SYNC = 1 << 4
OFLAGS_CREAT = 1 << 0
OFLAGS_DIRECTORY = 1 << 1
OFLAGS_EXCL = 1 << 2
OFLAGS_TRUNC = 1 << 3
LOOKUPFLAGS_SYMLINK_FOLLOW = 1 << 0
FSTFLAGS_ATIM = 1 << 0
FSTFLAGS_ATIM_NOW = 1 << 1
FSTFLAGS_MTIM = 1 << 2
FSTFLAGS_MTIM_NOW = 1 << 3
WHENCE_SET = 0
WHENCE_CUR = 1
WHENCE_END = 2
ADVICE_MAX = 5

# -- records ------------------------------------------------------------------------------------
#: filestat: dev, ino, filetype, nlink, size, atim, mtim, ctim (64 bytes)
FILESTAT = struct.Struct("<QQB7xQQQQQ")
#: fdstat: filetype, flags, rights base, rights inheriting (24 bytes)
FDSTAT = struct.Struct("<BxH4xQQ")
#: prestat of a directory: tag 0, name length (8 bytes)
PRESTAT = struct.Struct("<B3xI")
#: dirent header: next cookie, ino, name length, type (24 bytes, the name follows)
DIRENT = struct.Struct("<QQIB3x")
#: iovec / ciovec: pointer, length
IOVEC = struct.Struct("<II")
