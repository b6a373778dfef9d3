"""One node per data directory: a second node on it is refused naming the first's process,
and the lock goes with its holder however it ends (SIGKILL included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration
from bacalhau.node._data_lock import lock_data_dir

HOLD = (
    "import sys, time; from pathlib import Path; "
    "from bacalhau.node._data_lock import lock_data_dir; "
    "lock_data_dir(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)"
)


def test_a_second_lock_is_refused_naming_the_holder_until_it_is_released(
    tmp_path: Path,
) -> None:
    fd = lock_data_dir(tmp_path)
    with pytest.raises(InvalidConfiguration) as refused:
        lock_data_dir(tmp_path)
    assert f"data dir {tmp_path} is in use by another node (process {os.getpid()})" in str(
        refused.value
    )
    assert refused.value.details["Field"] == "data_dir"
    os.close(fd)
    os.close(lock_data_dir(tmp_path))  # free again


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(InvalidConfiguration, match=f"process {holder.pid}"):
            lock_data_dir(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            os.close(lock_data_dir(tmp_path))
            break
        except InvalidConfiguration:
            assert time.monotonic() < deadline, "the lock outlived its holder"
            time.sleep(0.05)
