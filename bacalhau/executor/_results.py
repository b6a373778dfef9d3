"""The results layout every executor leaves behind (Bacalhau ``pkg/executor/results.go``).

::

    <results_dir>/
        stdout          the full standard output
        stderr          the full standard error
        exitCode        the decimal exit code, no newline
        <Name>/         one folder per ResultPath, holding what the job wrote at its Path

The run summary sent to the orchestrator (:class:`~bacalhau.models.RunCommandResult`) carries
only the first :data:`~bacalhau.models.RUN_OUTPUT_LIMIT` bytes of each stream, with a flag
saying whether there was more.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from pathlib import Path

from bacalhau.errors import ExecutionFailed, InvalidJobSpec
from bacalhau.models import RUN_OUTPUT_LIMIT, Resources, ResultPath, RunCommandResult

__all__ = [
    "EXIT_CODE_FILE",
    "MAX_STREAM_FILE_BYTES",
    "RESERVED_NAMES",
    "STDERR_FILE",
    "STDOUT_FILE",
    "StreamHead",
    "finish_results",
    "prepare_results_dir",
    "read_run_output",
    "stream_cap",
    "summarise_output",
    "write_exit_code",
]

STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
EXIT_CODE_FILE = "exitCode"
#: Names a result folder may not take: they are the files of the layout itself.
RESERVED_NAMES = frozenset({STDOUT_FILE, STDERR_FILE, EXIT_CODE_FILE})
#: Each of ``stdout`` and ``stderr`` keeps at most this much (Bacalhau's limit), whatever the
#: engine; the rest of a runaway stream is dropped and the drop logged as a warning.
MAX_STREAM_FILE_BYTES = 1 << 30

_FOLDER_MODE = 0o755


def stream_cap(node_limit: int, resources: Resources) -> int:
    """How much of each of ``stdout`` and ``stderr`` an execution keeps: the node's limit,
    or the disk the job asked for when that is less. The streams are files on the node's
    disk, as its results are: a job that asked for 10 MB must not leave a gigabyte of them."""
    return min(node_limit, resources.disk) if resources.disk > 0 else node_limit


#: What the writer of a stream's file knows of it: its first bytes (all of them, or at least
#: :data:`~bacalhau.models.RUN_OUTPUT_LIMIT`) and the file's size.
StreamHead = tuple[bytes, int]


def prepare_results_dir(results_dir: Path, result_paths: Sequence[ResultPath]) -> dict[str, Path]:
    """Create ``results_dir`` and one folder (0755) per result path (its
    :attr:`~bacalhau.models.ResultPath.folder`); map each name to its folder.

    The names are checked again here although job validation already did: they become host
    paths, so a name must never reach outside ``results_dir``.
    """
    if not results_dir.is_dir():  # (usually made by the caller: a stat costs less than mkdir)
        results_dir.mkdir(parents=True, exist_ok=True)
    folders: dict[str, Path] = {}
    for i, rp in enumerate(result_paths):
        name = rp.folder
        if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
            raise InvalidJobSpec(
                f"result name {name!r} is not a valid folder name",
                field=f"ResultPaths[{i}].Name",
            )
        if name in RESERVED_NAMES:
            raise InvalidJobSpec(
                f"result name {name!r} is reserved for the results layout",
                field=f"ResultPaths[{i}].Name",
                hint="stdout, stderr and exitCode are reserved; pick another name",
            )
        folder = results_dir / name
        if folder.is_symlink():
            # mkdir and chmod would follow it: the node must never act on a link's target.
            raise ExecutionFailed(f"result folder {folder} is a link; refusing to follow it")
        folder.mkdir(mode=_FOLDER_MODE, exist_ok=True)
        # mkdir's mode is filtered by the umask; the layout promises 0755.
        os.chmod(folder, _FOLDER_MODE)
        folders[rp.name] = folder
    return folders


def write_exit_code(results_dir: Path, exit_code: int) -> None:
    """Write the ``exitCode`` file: the decimal code, no newline."""
    data = str(exit_code).encode("ascii")
    # Overwrite then cut, rather than O_TRUNC: ext4 flushes a file truncated to zero and
    # rewritten on close, which would cost a disk write on every run that writes it twice.
    fd = os.open(results_dir / EXIT_CODE_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def summarise_output(head: bytes, total_size: int) -> tuple[str, bool]:
    """Turn the first bytes of a stream into its summary text and truncation flag.

    ``head`` holds at most :data:`RUN_OUTPUT_LIMIT` bytes of a stream of ``total_size`` bytes.
    Invalid UTF-8 becomes U+FFFD rather than an exception; when the stream was cut, a
    multi-byte character split by the cut is dropped instead of shown as garbage.
    """
    head = head[:RUN_OUTPUT_LIMIT]
    truncated = total_size > len(head)
    if truncated:
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(head, final=False)
    else:
        text = head.decode("utf-8", errors="replace")
    return text, truncated


def _summarise_file(path: Path, *, create: bool = False) -> tuple[str, bool]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if create:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        return "", False
    try:
        size = os.fstat(fd).st_size
        head = os.read(fd, RUN_OUTPUT_LIMIT)
    finally:
        os.close(fd)
    # The file may have grown between fstat and read (a stray writer); trust what was read.
    return summarise_output(head, max(size, len(head)))


def read_run_output(results_dir: Path, *, exit_code: int, error_msg: str = "") -> RunCommandResult:
    """Build the run summary from the ``stdout`` and ``stderr`` files of ``results_dir``."""
    return _run_output(results_dir, exit_code=exit_code, error_msg=error_msg, create=False)


def finish_results(
    results_dir: Path,
    *,
    exit_code: int,
    error_msg: str = "",
    streams: tuple[StreamHead, StreamHead] | None = None,
) -> RunCommandResult:
    """Complete the layout (``exitCode``, empty streams if none were written) and summarise it.

    ``streams``, from an executor that wrote ``stdout`` and ``stderr`` itself and knows what
    they hold, summarises them without reading the files again.
    """
    write_exit_code(results_dir, exit_code)
    if streams is None:
        return _run_output(results_dir, exit_code=exit_code, error_msg=error_msg, create=True)
    (stdout_head, stdout_size), (stderr_head, stderr_size) = streams
    return _summary(
        summarise_output(stdout_head, stdout_size),
        summarise_output(stderr_head, stderr_size),
        exit_code=exit_code,
        error_msg=error_msg,
    )


def _run_output(
    results_dir: Path, *, exit_code: int, error_msg: str, create: bool
) -> RunCommandResult:
    return _summary(
        _summarise_file(results_dir / STDOUT_FILE, create=create),
        _summarise_file(results_dir / STDERR_FILE, create=create),
        exit_code=exit_code,
        error_msg=error_msg,
    )


def _summary(
    stdout_summary: tuple[str, bool],
    stderr_summary: tuple[str, bool],
    *,
    exit_code: int,
    error_msg: str,
) -> RunCommandResult:
    (stdout, stdout_truncated), (stderr, stderr_truncated) = stdout_summary, stderr_summary
    return RunCommandResult(
        stdout=stdout,
        stdout_truncated=stdout_truncated,
        stderr=stderr,
        stderr_truncated=stderr_truncated,
        exit_code=exit_code,
        error_msg=error_msg,
    )
