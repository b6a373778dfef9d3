"""The virtual file system of deterministic WASM runs, without a module: path resolution,
inode and time bookkeeping, listings and their cookies, rights and read-only roots, over real
host directories."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bacalhau.executor.wasm import _wasi_abi
from bacalhau.executor.wasm._output_times import FIXED_TIME_NS
from bacalhau.executor.wasm._vfs import VirtualFS
from bacalhau.executor.wasm._vfs_entries import Preopen
from bacalhau.executor.wasm._vfs_tree import Root, resolve
from bacalhau.executor.wasm._wasi_abi import (
    DIRECTORY_RIGHTS,
    ERRNO_ACCES,
    ERRNO_BADF,
    ERRNO_EXIST,
    ERRNO_ISDIR,
    ERRNO_LOOP,
    ERRNO_NOENT,
    ERRNO_NOTCAPABLE,
    ERRNO_NOTDIR,
    ERRNO_PERM,
    ERRNO_ROFS,
    ERRNO_SPIPE,
    ERRNO_XDEV,
    FDFLAGS_APPEND,
    FILE_RIGHTS,
    OFLAGS_CREAT,
    OFLAGS_EXCL,
    OFLAGS_TRUNC,
    RIGHT_FD_READ,
    RIGHT_FD_READDIR,
    RIGHT_FD_WRITE,
    WasiError,
)

ALL = FILE_RIGHTS | DIRECTORY_RIGHTS
#: What wasi-libc asks for when opening to read: everything but writing.
READ = ALL & ~RIGHT_FD_WRITE
INPUTS, OUTPUTS = 3, 4  # the preopens' descriptors, in the order given


class Clock:
    """A virtual clock the test moves by hand."""

    def __init__(self) -> None:
        self.ns = FIXED_TIME_NS

    def __call__(self) -> int:
        return self.ns


def tree(root: Path) -> Path:
    (root / "dir" / "deep").mkdir(parents=True)
    (root / "file").write_text("0123456789")
    (root / "dir" / "deep" / "leaf").write_text("leaf")
    os.symlink("file", root / "inside")
    os.symlink("/etc/passwd", root / "absolute")
    os.symlink("../..", root / "dir" / "climb")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    return root


def new_fs(tmp_path: Path, clock: Clock | None = None) -> VirtualFS:
    inputs = tree(tmp_path / "in")
    outputs = tmp_path / "out"
    outputs.mkdir()
    return VirtualFS(
        [Preopen(inputs, "/inputs", writable=False), Preopen(outputs, "/outputs", writable=True)],
        now=clock or Clock(),
    )


def errno_of(call: object, *args: object, **kwargs: object) -> int:
    with pytest.raises(WasiError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.errno


def open_file(fs: VirtualFS, fd: int, path: str, **kwargs: int) -> int:
    options = {"oflags": 0, "rights": READ, "inheriting": 0, "fdflags": 0, **kwargs}
    return fs.open(fd, path, follow=True, **options)


# -- resolution ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "errno"),
    [
        ("..", ERRNO_NOTCAPABLE),
        ("dir/../..", ERRNO_NOTCAPABLE),
        ("/etc/passwd", ERRNO_NOTCAPABLE),
        ("absolute", ERRNO_NOTCAPABLE),
        ("dir/climb/x", ERRNO_NOTCAPABLE),
        ("loop-a", ERRNO_LOOP),
        ("file/x", ERRNO_NOTDIR),
        ("missing/x", ERRNO_NOENT),
        ("", ERRNO_NOENT),
    ],
)
def test_paths_that_escape_loop_or_do_not_exist(tmp_path: Path, path: str, errno: int) -> None:
    root = Root(tree(tmp_path), writable=False, name="/inputs", dev=1)
    assert errno_of(resolve, root, (), path, follow=True) == errno


def test_paths_inside_resolve_through_links_and_dots(tmp_path: Path) -> None:
    root = Root(tree(tmp_path), writable=False, name="/inputs", dev=1)
    assert resolve(root, (), "inside", follow=True).rel == ("file",)
    assert resolve(root, (), "inside", follow=False).rel == ("inside",)
    assert resolve(root, (), "./dir/deep/../deep//leaf", follow=True).rel == ("dir", "deep", "leaf")
    assert resolve(root, ("dir",), "climb", follow=False).rel == ("dir", "climb")
    # Relative to a subdirectory, nothing may climb above it, even inside the root.
    assert errno_of(resolve, root, ("dir",), "../file", follow=True) == ERRNO_NOTCAPABLE
    assert resolve(root, (), "file/", follow=True).dir_only


# -- inodes and times ---------------------------------------------------------------------------


def test_inode_numbers_follow_from_the_path_not_the_host(tmp_path: Path) -> None:
    one, other = new_fs(tmp_path / "a"), new_fs(tmp_path / "b")
    assert (tmp_path / "a" / "in" / "file").stat().st_ino != (
        tmp_path / "b" / "in" / "file"
    ).stat().st_ino
    for path in ("file", "dir", "dir/deep/leaf"):
        assert one.path_filestat(INPUTS, path, follow=False) == other.path_filestat(
            INPUTS, path, follow=False
        )
    stat = one.path_filestat(INPUTS, "file", follow=False)
    assert (stat.dev, stat.nlink, stat.size) == (1, 1, 10)
    assert stat.atime == stat.mtime == stat.ctime == FIXED_TIME_NS
    assert stat.ino != one.path_filestat(INPUTS, "dir", follow=False).ino
    assert one.path_filestat(OUTPUTS, ".", follow=False).dev == 2


def test_a_rename_keeps_the_inode_and_a_new_file_gets_a_new_one(tmp_path: Path) -> None:
    clock = Clock()
    fs = new_fs(tmp_path, clock)
    os.makedirs(tmp_path / "out" / "old" / "sub")
    (tmp_path / "out" / "old" / "sub" / "f").write_text("x")
    before = fs.path_filestat(OUTPUTS, "old/sub/f", follow=False)
    clock.ns += 7
    fs.rename(OUTPUTS, "old", OUTPUTS, "new", (0, 0))
    after = fs.path_filestat(OUTPUTS, "new/sub/f", follow=False)
    assert after.ino == before.ino  # never looked at through its new path before
    assert fs.path_filestat(OUTPUTS, "new", follow=False).ctime == FIXED_TIME_NS + 7
    fs.close_fd(open_file(fs, OUTPUTS, "old", oflags=OFLAGS_CREAT, rights=ALL))
    created = fs.path_filestat(OUTPUTS, "old", follow=False)
    assert created.ino == (1 << 63) | 1
    assert created.mtime == FIXED_TIME_NS + 7
    assert fs.path_filestat(OUTPUTS, ".", follow=False).mtime == FIXED_TIME_NS + 7


def test_writes_move_the_modification_time_to_the_virtual_now(tmp_path: Path) -> None:
    clock = Clock()
    fs = new_fs(tmp_path, clock)
    fd = open_file(fs, OUTPUTS, "f", oflags=OFLAGS_CREAT, rights=ALL)
    clock.ns += 1_000
    assert fs.write(fd, [memoryview(b"hello "), memoryview(b"world")]) == 11
    stat = fs.fd_filestat(fd)
    assert (stat.size, stat.mtime, stat.ctime, stat.atime) == (
        11,
        clock.ns,
        clock.ns,
        clock.ns - 1000,
    )
    buf = bytearray(5)
    assert fs.read(fd, [memoryview(buf)], offset=6) == 5
    assert buf == b"world"
    assert (tmp_path / "out" / "f").read_bytes() == b"hello world"


# -- listings -----------------------------------------------------------------------------------


def test_listing_in_name_order_with_stable_cookies(tmp_path: Path) -> None:
    fs = new_fs(tmp_path)
    for name in ("c", "a", "B", "b"):
        (tmp_path / "out" / name).write_text(name)
    first = list(fs.list_directory(OUTPUTS, 0, RIGHT_FD_READDIR))
    assert [name for name, _, _ in first] == [".", "..", "B", "a", "b", "c"]
    (tmp_path / "out" / "0-new").write_text("")
    # Reading on from a cookie sees the listing it started with; cookie 0 starts over.
    assert list(fs.list_directory(OUTPUTS, 3, RIGHT_FD_READDIR)) == first[3:]
    again = list(fs.list_directory(OUTPUTS, 0, RIGHT_FD_READDIR))
    assert [name for name, _, _ in again][2] == "0-new"
    assert errno_of(fs.list_directory, OUTPUTS + 1, 0, RIGHT_FD_READDIR) == ERRNO_BADF


# -- rights and read-only roots -----------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        {"rights": ALL},
        {"oflags": OFLAGS_TRUNC},
        {"oflags": OFLAGS_CREAT},
        {"fdflags": FDFLAGS_APPEND},
    ],
)
def test_a_read_only_root_refuses_every_write(tmp_path: Path, how: dict[str, int]) -> None:
    fs = new_fs(tmp_path)
    assert errno_of(open_file, fs, INPUTS, "file", **how) == ERRNO_ROFS
    assert (tmp_path / "in" / "file").read_text() == "0123456789"


def test_read_only_root_changes_and_cross_root_renames(tmp_path: Path) -> None:
    fs = new_fs(tmp_path)
    assert errno_of(fs.create_directory, INPUTS, "new", 0) == ERRNO_ROFS
    assert errno_of(fs.unlink_file, INPUTS, "file", 0) == ERRNO_ROFS
    assert errno_of(fs.rename, INPUTS, "file", OUTPUTS, "file", (0, 0)) == ERRNO_ROFS
    second = VirtualFS(
        [
            Preopen(tmp_path / "out", "/a", writable=True),
            Preopen(tmp_path / "in", "/b", writable=True),
        ],
        now=Clock(),
    )
    assert errno_of(second.rename, 4, "file", 3, "file", (0, 0)) == ERRNO_XDEV
    assert errno_of(second.symlink, 3, "link") == ERRNO_PERM
    fd = open_file(fs, INPUTS, "file")
    buf = bytearray(4)
    assert fs.read(fd, [memoryview(buf)]) == 4
    assert errno_of(fs.write, fd, [memoryview(b"x")]) == ERRNO_NOTCAPABLE


def test_only_regular_files_and_directories_are_opened(tmp_path: Path) -> None:
    fs = new_fs(tmp_path)
    os.mkfifo(tmp_path / "in" / "fifo")  # opening it would block until a writer came
    assert errno_of(open_file, fs, INPUTS, "fifo") == ERRNO_ACCES
    assert (
        errno_of(
            fs.open, INPUTS, "inside", follow=False, oflags=0, rights=READ, inheriting=0, fdflags=0
        )
        == ERRNO_LOOP
    )
    assert errno_of(open_file, fs, INPUTS, "dir", oflags=OFLAGS_CREAT) == ERRNO_ROFS
    assert errno_of(open_file, fs, OUTPUTS, ".", oflags=OFLAGS_CREAT, rights=ALL) == ERRNO_ISDIR
    assert (
        errno_of(open_file, fs, OUTPUTS, ".", oflags=OFLAGS_CREAT | OFLAGS_EXCL, rights=ALL)
        == ERRNO_EXIST
    )


def test_rights_can_be_dropped_never_regained(tmp_path: Path) -> None:
    fs = new_fs(tmp_path)
    fd = open_file(fs, INPUTS, "file")
    fs.set_rights(fd, FILE_RIGHTS & READ & ~RIGHT_FD_READ, 0)
    assert errno_of(fs.read, fd, [memoryview(bytearray(1))]) == ERRNO_NOTCAPABLE
    assert errno_of(fs.set_rights, fd, READ, 0) == ERRNO_NOTCAPABLE
    assert errno_of(open_file, fs, INPUTS, "file", inheriting=1 << 40) == ERRNO_NOTCAPABLE


def test_renumber_and_close(tmp_path: Path) -> None:
    fs = new_fs(tmp_path)
    fd = open_file(fs, INPUTS, "file")
    fs.renumber(fd, INPUTS)  # the preopen is closed, the file takes its number
    assert errno_of(fs.preopen_name, INPUTS) == ERRNO_BADF
    assert fs.fd_filestat(INPUTS).size == 10
    assert errno_of(fs.close_fd, fd) == ERRNO_BADF
    fs.close_fd(INPUTS)
    assert errno_of(fs.fd_filestat, INPUTS) == ERRNO_BADF


def test_stdout_writes_reach_the_stream_whole(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        fs = VirtualFS([], now=Clock(), stdout_fd=write_end)
        assert fs.write(1, [memoryview(b"one "), memoryview(b"two\n")]) == 8
        assert os.read(read_end, 100) == b"one two\n"
        assert fs.read(0, [memoryview(bytearray(4))]) == 0  # stdin is empty
        assert errno_of(fs.seek, 1, 0, 0) == ERRNO_SPIPE
    finally:
        os.close(read_end)
        os.close(write_end)


def test_host_errors_map_to_the_wasi_numbers_by_name() -> None:
    for name in ("ACCES", "BADF", "EXIST", "ISDIR", "LOOP", "NOENT", "NOTDIR", "ROFS", "XDEV"):
        host = OSError(getattr(errno, f"E{name}"), name)
        assert _wasi_abi.wasi_errno(host) == getattr(_wasi_abi, f"ERRNO_{name}")
    assert _wasi_abi.wasi_errno(OSError(errno.EPIPE, "")) == 64  # witx: pipe = 64
    assert _wasi_abi.wasi_errno(OSError(errno.ENOTBLK, "")) == _wasi_abi.ERRNO_IO
