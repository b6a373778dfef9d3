"""Specs every node would fail are refused at submit, naming the field: Docker mount points
written with ``..``, inside the runtime's own /proc, /sys or /dev (runc refuses them at every
container's start) or at the root folder; an S3 checksum that cannot be a SHA-256; less
memory than Docker allows a container. Ordinary values pass."""

from __future__ import annotations

from typing import Any

import pytest

from bacalhau.errors import BacalhauError
from bacalhau.models import Job, LabelSelectorRequirement
from bacalhau.models._validate import validate_job


def _job(
    engine: str = "docker",
    *,
    target: str = "",
    result: str = "",
    source: dict[str, Any] | None = None,
) -> Job:
    task: dict[str, Any] = {"Name": "main", "Engine": {"Type": engine, "Params": {}}}
    if engine == "docker":
        task["Engine"]["Params"] = {"Image": "busybox"}
    if target:
        source = source or {"Type": "urlDownload", "Params": {"URL": "http://example.com/a"}}
        task["InputSources"] = [{"Source": source, "Target": target}]
    if result:
        task["ResultPaths"] = [{"Name": "out", "Path": result}]
    return Job.from_dict({"Type": "batch", "Count": 1, "Tasks": [task]})


@pytest.mark.parametrize(
    ("target", "result", "field", "says"),
    [
        ("/a/../../etc", "", "Tasks[0].InputSources[0].Target", "holds '..'"),
        ("/proc/x", "", "Tasks[0].InputSources[0].Target", "inside /proc"),
        ("/dev", "", "Tasks[0].InputSources[0].Target", "inside /dev"),
        ("/", "", "Tasks[0].InputSources[0].Target", "cannot be mounted at the root folder"),
        ("", "/proc", "Tasks[0].ResultPaths[0].Path", "inside /proc"),
        ("", "/sys/fs/x", "Tasks[0].ResultPaths[0].Path", "inside /sys"),
        ("", "/outputs/../tmp", "Tasks[0].ResultPaths[0].Path", "holds '..'"),
    ],
)
def test_mount_points_no_node_could_use_are_refused(
    target: str, result: str, field: str, says: str
) -> None:
    with pytest.raises(BacalhauError) as caught:
        validate_job(_job(target=target, result=result))
    assert says in caught.value.message
    assert caught.value.details["Field"] == field
    assert caught.value.hint


def test_ordinary_folders_pass() -> None:
    validate_job(_job(target="/inputs/data", result="/outputs"))
    validate_job(_job(target="/devices", result="/processed"))  # only names alike


@pytest.mark.parametrize(
    ("checksum", "ok"),
    [
        ("notbase64", False),
        ("YWJj", False),  # base64, but of 3 bytes
        ("ungAY3wg0E4Jv4fV8Z1uqgiCS1fHqLHUyZgkCrJQwmU=", True),
        ("9e780063" * 8, True),  # hex
    ],
)
def test_an_s3_checksum_that_cannot_be_one_is_refused(checksum: str, ok: bool) -> None:
    source = {
        "Type": "s3",
        "Params": {"Bucket": "b", "Key": "k", "ChecksumSHA256": checksum},
    }
    job = _job(target="/inputs", source=source)
    if ok:
        validate_job(job)
        return
    with pytest.raises(BacalhauError) as caught:
        validate_job(job)
    assert "is not a SHA-256 checksum" in caught.value.message
    assert caught.value.details["Field"] == "Tasks[0].InputSources[0].Source.Params.ChecksumSHA256"


def _mounts(engine: str, targets: list[str], results: list[str]) -> Job:
    job = _job(engine)
    task = job.to_dict()["Tasks"][0]
    if engine == "wasm":
        module = {"Type": "urlDownload", "Params": {"URL": "http://example.com/m.wasm"}}
        task["Engine"]["Params"] = {"EntryModule": {"Source": module, "Target": "/m.wasm"}}
    url = {"Type": "urlDownload", "Params": {"URL": "http://example.com/a"}}
    task["InputSources"] = [{"Source": url, "Target": t} for t in targets]
    task["ResultPaths"] = [{"Name": f"r{i}", "Path": p} for i, p in enumerate(results)]
    return Job.from_dict({"Type": "batch", "Count": 1, "Tasks": [task]})


@pytest.mark.parametrize(
    ("engine", "targets", "results", "field", "says"),
    [
        ("docker", ["/outputs"], ["/outputs/"], "ResultPaths[0].Path", "also the target of"),
        ("wasm", ["/data"], ["/data"], "ResultPaths[0].Path", "also the target of"),
        ("docker", ["/d", "/d/sub"], [], "InputSources[1].Target", "is inside the target '/d'"),
        ("docker", ["/d/sub", "/d"], [], "InputSources[0].Target", "is inside the target '/d'"),
        ("docker", ["/in"], ["/in/out"], "ResultPaths[0].Path", "is inside the target '/in'"),
    ],
)
def test_inputs_and_results_that_would_share_a_mount_point_are_refused(
    engine: str, targets: list[str], results: list[str], field: str, says: str
) -> None:
    with pytest.raises(BacalhauError) as caught:
        validate_job(_mounts(engine, targets, results))
    assert says in caught.value.message
    assert caught.value.details["Field"] == f"Tasks[0].{field}"
    assert caught.value.hint


def test_sibling_and_wasm_nested_mounts_pass() -> None:
    validate_job(_mounts("docker", ["/inputs/a", "/inputs/b", "/inputsx"], ["/outputs"]))
    # WASM folders may nest: a path goes to the folder with the longest matching name.
    validate_job(_mounts("wasm", ["/d", "/d/sub"], ["/d/out"]))


@pytest.mark.parametrize(("memory", "ok"), [("1Kb", False), ("5000000", False), ("6Mi", True)])
def test_less_memory_than_docker_allows_is_refused(memory: str, ok: bool) -> None:
    job = _job()
    job.tasks[0].resources.memory = memory
    if ok:
        validate_job(job)
        return
    with pytest.raises(BacalhauError) as caught:
        validate_job(job)
    assert "less memory than Docker allows" in caught.value.message
    assert caught.value.details["Field"] == "Tasks[0].Resources.Memory"


@pytest.mark.parametrize("size", ["0.5", "0.9b", ".1"])
def test_a_size_under_one_byte_is_refused_not_read_as_no_limit(size: str) -> None:
    job = _job()
    job.tasks[0].resources.disk = size
    with pytest.raises(BacalhauError) as caught:
        validate_job(job)
    assert "less than one byte" in caught.value.message
    assert caught.value.details["Field"] == "Tasks[0].Resources.Disk"
    assert "add a unit" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("value", "ok"), [("abc", False), ("1.5", False), ("", False), ("-3", True)]
)
def test_gt_and_lt_in_a_job_file_need_an_integer_as_on_the_command_line(
    value: str, ok: bool
) -> None:
    job = _job()
    job.constraints = [LabelSelectorRequirement(key="tier", operator="lt", values=[value])]
    if ok:
        validate_job(job)
        return
    with pytest.raises(BacalhauError) as caught:
        validate_job(job)
    assert "operator lt needs an integer" in caught.value.message
    assert caught.value.details["Field"] == "Constraints[0].Values"
