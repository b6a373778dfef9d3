"""Results copied out of a job's capped folders onto a node disk that fills meanwhile: the
execution fails saying so, and the partial copy is removed (it kept the disk full)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.errors import ExecutionFailed
from bacalhau.executor._disk import copy_results
from tests.small_disk import needs_root, small_tmpfs

pytestmark = needs_root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "4m") as disk:
        yield disk


def test_a_disk_that_fills_fails_the_copy_saying_so_and_keeps_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    source = tmp_path / "capped"
    (source / "out" / "sub").mkdir(parents=True)
    (source / "out" / "small.txt").write_text("fits\n")
    (source / "out" / "sub" / "big.bin").write_bytes(b"\0" * (6 * 2**20))
    target = small_disk / "results" / "out"
    target.mkdir(parents=True)
    with pytest.raises(ExecutionFailed, match="ran out of disk space copying") as failed:
        copy_results(source, ["out"], {"out": target})
    assert "free space" in (failed.value.hint or "")
    assert list(target.iterdir()) == []  # the partial copy went


def test_results_that_fit_are_copied_whole(tmp_path: Path, small_disk: Path) -> None:
    source = tmp_path / "capped"
    (source / "out").mkdir(parents=True)
    (source / "out" / "a.txt").write_text("a\n")
    target = small_disk / "out"
    target.mkdir()
    copy_results(source, ["out"], {"out": target})
    assert (target / "a.txt").read_text() == "a\n"
