"""The shared results layout: folders, exitCode, and the 2048-byte run summaries."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bacalhau.errors import ExecutionFailed, InvalidJobSpec
from bacalhau.executor import (
    EXIT_CODE_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    finish_results,
    prepare_results_dir,
    read_run_output,
    summarise_output,
    write_exit_code,
)
from bacalhau.models import RUN_OUTPUT_LIMIT, ResultPath


def test_prepare_creates_one_0755_folder_per_result_path(tmp_path: Path) -> None:
    results = tmp_path / "nested" / "results"
    old_umask = os.umask(0o077)
    try:
        folders = prepare_results_dir(
            results, [ResultPath("outputs", "/outputs"), ResultPath("logs", "/var/log/app")]
        )
    finally:
        os.umask(old_umask)
    assert folders == {"outputs": results / "outputs", "logs": results / "logs"}
    for folder in folders.values():
        assert folder.is_dir()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    # Idempotent: preparing again keeps what is there.
    (folders["outputs"] / "kept").write_text("x")
    prepare_results_dir(results, [ResultPath("outputs", "/outputs")])
    assert (folders["outputs"] / "kept").read_text() == "x"


def test_a_name_written_as_a_path_is_the_folder_of_that_name(tmp_path: Path) -> None:
    # Bacalhau's own documents write `Name: /outputs`: it joins the name onto the results
    # directory, so that is the folder `outputs`.
    folders = prepare_results_dir(tmp_path / "r", [ResultPath("/outputs", "/outputs")])
    assert folders == {"/outputs": tmp_path / "r" / "outputs"}
    assert (tmp_path / "r" / "outputs").is_dir()


@pytest.mark.parametrize(
    "name", ["", "/", "..", "/../", ".", "a/b", "/a/b", "../escape", "stdout", "/exitCode"]
)
def test_prepare_rejects_names_that_are_not_plain_folders(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        prepare_results_dir(tmp_path / "r", [ResultPath(name, "/outputs")])
    assert info.value.field == "ResultPaths[0].Name"
    assert not (tmp_path / "escape").exists()


def test_exit_code_is_decimal_without_newline_and_overwrites(tmp_path: Path) -> None:
    write_exit_code(tmp_path, 137)
    assert (tmp_path / EXIT_CODE_FILE).read_bytes() == b"137"
    write_exit_code(tmp_path, 0)
    assert (tmp_path / EXIT_CODE_FILE).read_bytes() == b"0"
    write_exit_code(tmp_path, -1)
    assert (tmp_path / EXIT_CODE_FILE).read_bytes() == b"-1"


def test_summary_at_the_limit_is_not_truncated() -> None:
    data = b"a" * RUN_OUTPUT_LIMIT
    assert summarise_output(data, len(data)) == ("a" * RUN_OUTPUT_LIMIT, False)


def test_summary_beyond_the_limit_is_truncated_to_2048_bytes() -> None:
    data = b"b" * (RUN_OUTPUT_LIMIT + 1)
    text, truncated = summarise_output(data, len(data))
    assert truncated
    assert text == "b" * RUN_OUTPUT_LIMIT


def test_summary_drops_a_character_split_by_the_cut() -> None:
    # 2047 ASCII bytes then a 2-byte "é": the cut falls inside the character.
    data = b"x" * (RUN_OUTPUT_LIMIT - 1) + "é".encode() + b"tail"
    text, truncated = summarise_output(data[:RUN_OUTPUT_LIMIT], len(data))
    assert truncated
    assert text == "x" * (RUN_OUTPUT_LIMIT - 1)
    assert "\ufffd" not in text


def test_summary_replaces_invalid_utf8_instead_of_failing() -> None:
    data = b"ok \xff\xfe done"
    text, truncated = summarise_output(data, len(data))
    assert not truncated
    assert text == "ok \ufffd\ufffd done"


def test_finish_writes_exit_code_and_summarises_the_stream_files(tmp_path: Path) -> None:
    big = ("z" * 1000 + "\n") * 5
    (tmp_path / STDOUT_FILE).write_text(big)
    (tmp_path / STDERR_FILE).write_text("warning\n")
    result = finish_results(tmp_path, exit_code=3, error_msg="")
    assert (tmp_path / EXIT_CODE_FILE).read_bytes() == b"3"
    assert result.exit_code == 3
    assert result.stdout == big[:RUN_OUTPUT_LIMIT]
    assert result.stdout_truncated
    assert result.stderr == "warning\n"
    assert not result.stderr_truncated
    assert result.error_msg == ""
    # The files themselves keep everything.
    assert (tmp_path / STDOUT_FILE).read_text() == big


def test_finish_creates_missing_stream_files(tmp_path: Path) -> None:
    result = finish_results(tmp_path, exit_code=1, error_msg="trap")
    assert (tmp_path / STDOUT_FILE).read_bytes() == b""
    assert (tmp_path / STDERR_FILE).read_bytes() == b""
    assert result.error_msg == "trap"
    assert (result.stdout, result.stderr) == ("", "")


def test_read_run_output_does_not_change_the_directory(tmp_path: Path) -> None:
    result = read_run_output(tmp_path, exit_code=0)
    assert (result.stdout, result.stdout_truncated) == ("", False)
    assert list(tmp_path.iterdir()) == []


def test_prepare_never_follows_a_link_in_place_of_a_result_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    results = tmp_path / "results"
    results.mkdir()
    (results / "outputs").symlink_to(outside)
    with pytest.raises(ExecutionFailed):
        prepare_results_dir(results, [ResultPath("outputs", "/outputs")])
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700
