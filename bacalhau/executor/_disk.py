"""A size-capped filesystem for a job's result folders.

The cap must hold against a job that writes as fast as the disk allows (``dd if=/dev/zero``),
so it is enforced by the kernel, not by watching: each capped execution gets its own ext4
filesystem in a sparse image file, loop-mounted by the node, and its result folders are
folders of that filesystem bind-mounted into the container. A write past the end fails with
``ENOSPC`` whatever the job does. A watcher that polls the folder's size would let a fast
writer run far past the cap between two polls; a tmpfs would hold the cap but spend the
node's memory on what is meant to be disk (and charge it to the job's memory limit).

The image is sized a little above the cap so that the job can write ``cap`` bytes of its own
(ext4 keeps some blocks for itself); it went past the cap if it filled the image. Once the
container has exited, what the job wrote is copied into the ordinary results folders (regular
files, folders and symbolic links; sparse files count at their apparent size, as a publisher
would see them), and the filesystem is unmounted and its image deleted.

Mounting needs root (CAP_SYS_ADMIN) and ``mkfs.ext4``; :func:`capped_folders_supported` says
whether this node has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bacalhau.errors import ExecutionFailed
from bacalhau.executor._walk import walk

__all__ = [
    "CappedFolders",
    "capped_folders_supported",
    "copy_results",
    "list_volumes",
    "remove_volumes",
]

_log = logging.getLogger(__name__)

_MKFS = "mkfs.ext4"
_IMAGE = "image"
_MOUNT = "mnt"
_FOLDER_MODE = 0o755
_COMMAND_TIMEOUT = 60.0
#: What ext4 keeps for itself (inode tables, bitmaps, directories) beyond the job's bytes.
_MIN_HEADROOM = 4 * 1024 * 1024
_COPY_CHUNK = 1024 * 1024
#: Free space below which the filesystem counts as filled by the job.
_FULL_BELOW = 256 * 1024


def capped_folders_supported() -> bool:
    """Whether this process can make and mount the capped filesystems (root and mkfs.ext4)."""
    return os.geteuid() == 0 and shutil.which(_MKFS) is not None


def _run(*argv: str) -> None:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise OSError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")


@dataclass(slots=True)
class CappedFolders:
    """The capped filesystem of one execution, under ``<scratch>/<execution_id>/``.

    Create it with :meth:`layout` (folders only, instant: the container can be created
    against them), then :meth:`mount` before the container starts and :meth:`detach_soon`
    once it has; after it has exited, :meth:`collect` and, always, :meth:`release`.

    Once the container runs, its own mount namespace holds the filesystem: the node's mount is
    detached (lazy unmount) and the node keeps only an open descriptor of its root. So the
    filesystem lives exactly as long as the container and the node process: if the node is
    killed, nothing stays mounted on the host and the loop device frees itself once the
    container is gone.
    """

    root: Path
    cap: int
    names: list[str]
    _fd: int = -1
    _detaching: asyncio.Task[None] | None = None
    _released: bool = False

    @classmethod
    def layout(cls, scratch: Path, execution_id: str, cap: int, names: list[str]) -> CappedFolders:
        root = scratch / execution_id
        if root.exists():
            # A leftover of an earlier attempt of this execution on this node.
            _release_dir(root)
        (root / _MOUNT).mkdir(parents=True)
        folders = cls(root=root, cap=cap, names=list(names))
        for name in names:
            folders.source(name).mkdir(mode=_FOLDER_MODE)
        return folders

    def source(self, name: str) -> Path:
        """The host folder bind-mounted for result ``name`` (valid once mounted)."""
        return self.root / _MOUNT / _component(name)

    async def mount(self) -> None:
        await asyncio.to_thread(self._mount)

    def _mount(self) -> None:
        image = self.root / _IMAGE
        # ext4's own share: on an image under 512 MB (mke2fs's "small" type, 1 KiB blocks,
        # a 256-byte inode per 4 KiB) the inode tables alone take 6.25%, plus the bitmaps and
        # a big file's extent blocks; the image is sparse, so the margin costs nothing
        # unwritten. A job writing past the cap is caught by the apparent sizes either way.
        size = self.cap + max(self.cap // 6, _MIN_HEADROOM)
        with open(image, "xb") as f:
            f.truncate(size)
        mnt = self.root / _MOUNT
        try:
            _run(
                _MKFS,
                "-q",
                "-F",
                "-m",
                "0",
                # No journal (nothing to recover: the filesystem lives for one run) and no
                # blocks reserved for growing it: a few hundred KiB of metadata in all.
                "-O",
                "^has_journal,^resize_inode",
                "-E",
                "lazy_itable_init=1,nodiscard,root_owner=0:0",
                # Seeded with the empty result folders: the paths the container's bind mounts
                # name exist at every instant, before, during and after the mount.
                "-d",
                str(mnt),
                str(image),
            )
            # noinit_itable: the kernel would otherwise zero the inode tables in the
            # background, writing to the image for seconds and slowing the unmount.
            _run("mount", "-o", "loop,nosuid,nodev,noinit_itable", str(image), str(mnt))
        except (OSError, subprocess.SubprocessError) as e:
            raise ExecutionFailed(
                f"cannot prepare the capped result folders: {e}",
                hint="the node needs loop devices to cap result folders; an operator can "
                "turn the cap off with docker_result_disk_limit=0",
            ) from e
        os.chmod(mnt, _FOLDER_MODE)
        for name in self.names:
            os.chmod(self.source(name), _FOLDER_MODE)
        (mnt / "lost+found").rmdir()
        self._fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)

    def detach_soon(self) -> None:
        """Detach the node's mount in the background; call once the container has started."""
        if self._detaching is None and self._fd >= 0:
            self._detaching = asyncio.get_running_loop().create_task(
                asyncio.to_thread(_detach, self.root / _MOUNT)
            )

    async def _detached(self) -> None:
        if self._detaching is not None:
            await asyncio.gather(self._detaching, return_exceptions=True)

    async def collect(self, destination: dict[str, Path]) -> bool:
        """Copy each result folder to ``destination[name]``; False if the job went past the cap.

        Past the cap means the filesystem filled up (the job's writes failed), or the files'
        apparent sizes add up to more than the cap (sparse files). Nothing is copied then:
        the results are incomplete and the execution fails.
        """
        await self._detached()
        return await asyncio.to_thread(self._collect, destination)

    def _collect(self, destination: dict[str, Path]) -> bool:
        st = os.fstatvfs(self._fd)
        # The image has room beyond the cap: a job that stayed within it never fills it.
        if st.f_bavail * st.f_frsize < _FULL_BELOW or st.f_favail == 0:
            return False
        # Through the descriptor: the node's mount may be detached already.
        root = Path(f"/proc/self/fd/{self._fd}")
        if sum(_apparent_size(root / _component(name)) for name in self.names) > self.cap:
            return False
        copy_results(root, self.names, destination)
        return True

    async def release(self) -> None:
        """Unmount and delete everything (idempotent; never raises)."""
        if self._released:
            return
        self._released = True
        await self._detached()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        await asyncio.to_thread(_release_dir, self.root)


def _detach(mnt: Path) -> None:
    try:
        _run("umount", "-l", str(mnt))
    except (OSError, subprocess.SubprocessError) as e:
        _log.warning("cannot detach %s: %s", mnt, e)


def _release_dir(root: Path) -> None:
    mnt = root / _MOUNT
    if os.path.ismount(mnt):
        try:
            _run("umount", str(mnt))
        except (OSError, subprocess.SubprocessError):
            # Still in use by a container being torn down: detach now, freed when it goes.
            try:
                _run("umount", "-l", str(mnt))
            except (OSError, subprocess.SubprocessError) as e:
                _log.warning("cannot unmount %s: %s", mnt, e)
                return
    shutil.rmtree(root, ignore_errors=True)


def list_volumes(scratch: Path) -> list[str]:
    """The executions that have capped folders under ``scratch``."""
    if not scratch.is_dir():
        return []
    return [entry.name for entry in scratch.iterdir() if entry.is_dir()]


def remove_volumes(scratch: Path, executions: list[str]) -> None:
    """Unmount and delete the capped folders of ``executions`` under ``scratch``."""
    for name in executions:
        _release_dir(scratch / name)


def _apparent_size(root: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in walk(root):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def copy_results(root: Path, names: list[str], destination: dict[str, Path]) -> None:
    """Copy result folder ``name`` under ``root`` to ``destination[name]``, for each name.
    A node whose own disk fills meanwhile fails the execution saying so (another node may
    have room), with what was copied removed: a partial copy would keep the disk full."""
    try:
        for name in names:
            _copy_tree(root / _component(name), destination[name])
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        for name in names:
            _empty(destination[name])
        raise ExecutionFailed(
            "the compute node ran out of disk space copying the job's results out of its "
            f"capped folders: {err.strerror}",
            hint="another node may have room; the node's operator should free space in its "
            "data dir (or lower docker_result_disk_limit below what the disk holds)",
        ) from None


def _empty(folder: Path) -> None:
    for entry in list(folder.iterdir()) if folder.is_dir() else ():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _copy_tree(source: Path, target: Path) -> None:
    """Copy what a job wrote: folders, regular files and links (never followed); FIFOs,
    sockets and devices are left out, as nothing could publish them."""
    for dirpath, dirnames, filenames in walk(source):
        rel = os.path.relpath(dirpath, source)
        out_dir = target if rel == "." else target / rel
        for name in (*dirnames, *filenames):
            src = os.path.join(dirpath, name)
            dst = out_dir / name
            st = os.lstat(src)
            if stat.S_ISDIR(st.st_mode):
                dst.mkdir(exist_ok=True)
                os.chmod(dst, stat.S_IMODE(st.st_mode) | 0o700)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(st.st_mode):
                _copy_file(src, dst, stat.S_IMODE(st.st_mode))


def _copy_file(src: str, dst: Path, mode: int) -> None:
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            while chunk := os.read(fd_in, _COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _component(name: str) -> str:
    """The one path component result ``name`` is kept under: its folder (Bacalhau's own
    documents write ``Name: /outputs``; joined as it is, that would be the host's /outputs).
    Anything that is still not a plain component is refused, never joined."""
    component = name.strip("/")
    if not component or "/" in component or component in (".", "..") or "\0" in component:
        raise ValueError(f"result name {name!r} is not a plain folder name")
    return component
