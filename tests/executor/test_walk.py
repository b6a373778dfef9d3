"""Walking result trees deeper than Python's recursion limit (os.walk recurses on 3.11)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from bacalhau.executor._walk import INLINE_FOLDERS, deepest, depth_of, walk


def test_a_tree_deeper_than_the_recursion_limit_is_walked_and_measured(tmp_path: Path) -> None:
    path = tmp_path
    for _ in range(1500):
        path = path / "d"
        os.mkdir(path)
    (path / "leaf").write_text("x")
    (tmp_path / "top.txt").write_text("y")
    os.symlink(tmp_path, tmp_path / "loop")  # never followed

    walked = list(walk(tmp_path))
    assert len(walked) == 1501
    assert walked[0][:2] == (str(tmp_path), ["d"])
    assert sorted(walked[0][2]) == ["loop", "top.txt"]
    assert walked[-1][2] == ["leaf"]
    assert deepest(tmp_path, stop_at=10_000) == 1500
    assert deepest(tmp_path, stop_at=7) == 7
    # Removed bottom-up here: pytest's own clean-up (shutil.rmtree) recurses too.
    (path / "leaf").unlink()
    while path != tmp_path:
        path.rmdir()
        path = path.parent


async def test_depth_of_walks_a_small_tree_at_once_and_a_large_one_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "small"
    (small / "outputs" / "a").mkdir(parents=True)
    (small / "stdout").write_text("x")
    threads: list[object] = []
    real = asyncio.to_thread

    async def counted(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        threads.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    assert await depth_of(small) == 2 == deepest(small)
    assert threads == []  # a job's usual results: no thread's round trip
    wide = tmp_path / "wide"
    for i in range(INLINE_FOLDERS + 1):
        (wide / f"f{i}" / "g").mkdir(parents=True)
    assert await depth_of(wide) == 2 == deepest(wide)
    assert threads == [deepest]
    deep = tmp_path / "deep"
    path = deep
    for _ in range(40):
        path = path / "d"
    path.mkdir(parents=True)
    assert await depth_of(deep, stop_at=30) == 30 == deepest(deep, stop_at=30)
