"""Merging downloaded results into one folder keeps the folders a job left empty, and a file
where one of them would go is a conflict that changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.client import ResultsConflict
from bacalhau.client._download import merge_results


def _result(root: Path, name: str) -> Path:
    src = root / name
    (src / "out" / "empty").mkdir(parents=True)
    (src / "out" / "sub").mkdir()
    (src / "out" / "sub" / f"{name}.txt").write_text(name)
    (src / "stdout").write_text(f"{name}\n")
    return src


def test_folders_left_empty_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    merge_results([_result(tmp_path, "a"), _result(tmp_path, "b")], out)
    assert (out / "out" / "empty").is_dir() and not any((out / "out" / "empty").iterdir())
    assert (out / "out" / "sub" / "a.txt").read_text() == "a"
    assert (out / "stdout").read_text() == "a\nb\n"


def test_a_file_where_an_empty_folder_goes_is_a_conflict(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "out").mkdir(parents=True)
    (out / "out" / "empty").write_text("mine")
    src = _result(tmp_path, "a")
    with pytest.raises(ResultsConflict, match="already exists"):
        merge_results([src], out)
    assert (out / "out" / "empty").read_text() == "mine"
    assert not (out / "stdout").exists()  # nothing moved
