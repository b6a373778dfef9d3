"""Walking result trees deeper than Python's recursion limit (os.walk recurses on 3.11)."""

from __future__ import annotations

import os
from pathlib import Path

from bacalhau.executor._walk import deepest, walk


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
