"""Deterministic staging of a WASM run's read-only inputs and normalised output times.

A module sees its inputs through wasmtime's WASI, which reports the host's file times and
lists a directory in the host filesystem's order; neither can be wrapped from Python. So a
``Deterministic`` run is given a staged copy of each read-only input instead: every file and
directory carries :data:`FIXED_TIME_NS` as its access and modification time, and the copy is
made on a tmpfs where one is available, since tmpfs lists a directory newest entry first: the
entries are created in reverse name order, so the module lists them in name order (ext4 lists
by a hash seeded per filesystem, different on every node).

What stays visible is written down in the executor's docstring (``_executor``).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from bacalhau.executor.wasm._determinism import EPOCH_NS

__all__ = ["FIXED_TIME_NS", "default_staging_root", "fix_times", "stage_tree"]

#: Access and modification time of every staged input entry and of every output entry after
#: a deterministic run: the instant the deterministic clocks start at.
FIXED_TIME_NS = EPOCH_NS

_SHM = Path("/dev/shm")


def default_staging_root() -> Path:
    """Where staged copies go: the tmpfs at /dev/shm when usable (name-ordered listings),
    else the temporary directory."""
    if _SHM.is_dir() and os.access(_SHM, os.W_OK | os.X_OK):
        return _SHM
    return Path(tempfile.gettempdir())


def stage_tree(source: Path, dest: Path) -> None:
    """Copy the directory ``source`` to ``dest`` (which must not exist): contents only, no host
    metadata; entries created in reverse name order; every time fixed.

    Symbolic links are copied as links (never followed, so a link cannot pull in host files
    the input did not hold); other special files are left out.
    """
    _copy_dir(source, dest)
    fix_times(dest)


def fix_times(root: Path) -> None:
    """Set the access and modification time of ``root`` and everything under it (links
    themselves, not their targets) to :data:`FIXED_TIME_NS`; children before their directory,
    since creating or touching a child changes its directory's modification time."""
    times = (FIXED_TIME_NS, FIXED_TIME_NS)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in (*filenames, *dirnames):
            os.utime(os.path.join(dirpath, name), ns=times, follow_symlinks=False)
        os.utime(dirpath, ns=times, follow_symlinks=False)


def _copy_dir(source: Path, dest: Path) -> None:
    dest.mkdir(mode=0o755)
    for name in _reverse_sorted(os.listdir(source)):
        src = source / name
        dst = dest / name
        mode = src.lstat().st_mode
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISDIR(mode):
            _copy_dir(src, dst)
        elif stat.S_ISREG(mode):
            shutil.copyfile(src, dst)
            # The owner's bits only decide the module's view (read, write, execute): keep the
            # executable bit, drop everything host-specific.
            dst.chmod(0o755 if mode & stat.S_IXUSR else 0o644)


def _reverse_sorted(names: Iterable[str]) -> list[str]:
    # By the names' bytes, so the order does not depend on the node's locale.
    return sorted(names, key=os.fsencode, reverse=True)
