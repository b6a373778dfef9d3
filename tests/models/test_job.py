"""The job model: exact wire spellings, case-insensitive decoding, validation naming fields."""

from __future__ import annotations

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import Job, normalise_job, parse_job_document, validate_job
from bacalhau.models._resources import format_cpu, format_size


def _job(**task: object) -> dict[str, object]:
    t: dict[str, object] = {
        "Name": "main",
        "Engine": {"Type": "docker", "Params": {"Image": "local/busybox:1.37"}},
    }
    t.update(task)
    return {"Type": "batch", "Count": 1, "Tasks": [t]}


def test_round_trip_keeps_exact_spellings() -> None:
    job = Job.from_dict(_job(ResultPaths=[{"Name": "out", "Path": "/outputs"}]))
    out = job.to_dict()
    assert set(out) >= {"ID", "Name", "Namespace", "Type", "Count", "Constraints", "Meta", "Labels"}
    assert out["Tasks"][0]["ResultPaths"] == [{"Name": "out", "Path": "/outputs"}]
    # A name written as a path (Bacalhau's documents do) is valid and reads back as written.
    slashed = Job.from_dict(_job(ResultPaths=[{"Name": "/outputs", "Path": "/outputs"}]))
    normalise_job(slashed)
    validate_job(slashed)
    assert slashed.to_dict()["Tasks"][0]["ResultPaths"][0]["Name"] == "/outputs"
    assert out["Constraints"] == [] and out["Meta"] == {} and out["Labels"] == {}
    assert Job.from_dict(out).to_dict() == out


def test_keys_are_case_insensitive() -> None:
    job = Job.from_dict({"type": "batch", "TASKS": [{"name": "x", "engine": {"type": "wasm"}}]})
    assert job.type == "batch" and job.tasks[0].name == "x" and job.task.engine.type == "wasm"


def test_a_null_item_of_a_list_of_strings_is_the_empty_string() -> None:
    # Go decodes `[--end, null]` into a []string as ["--end", ""]: a template that renders
    # an unset optional variable as `- ` (Bacalhau's docs do) makes such an item.
    job = Job.from_dict(
        _job(Engine={"Type": "docker", "Params": {"Image": "x", "Parameters": ["--end", None]}})
    )
    normalise_job(job)
    validate_job(job)
    assert job.task.engine.params["Parameters"] == ["--end", ""]
    numbers = Job.from_dict(
        _job(Engine={"Type": "docker", "Params": {"Image": "x", "Parameters": [1]}})
    )
    normalise_job(numbers)
    with pytest.raises(InvalidJobSpec):
        validate_job(numbers)  # a number is still no string, as in Go


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"Tasks": [{"Name": "m", "Engine": {"Type": "docker"}}]}, "Type"),
        ({"Type": "nope", "Tasks": []}, "Type"),
        ({"Type": "batch", "Count": -1, "Tasks": []}, "Count"),
        ({"Type": "batch", "Tasks": []}, "Tasks"),
        (_job(Engine={"Type": ""}), "Tasks[0].Engine.Type"),
        (_job(Engine={"Type": "docker", "Params": {}}), "Tasks[0].Engine.Params.Image"),
        (_job(Resources={"CPU": "lots"}), "Tasks[0].Resources.CPU"),
        (_job(Resources={"Memory": "1 potato"}), "Tasks[0].Resources.Memory"),
        (_job(ResultPaths=[{"Name": "o", "Path": "rel"}]), "Tasks[0].ResultPaths[0].Path"),
        (
            _job(ResultPaths=[{"Name": "o", "Path": "/a"}, {"Name": "o", "Path": "/b"}]),
            "Tasks[0].ResultPaths[1].Name",
        ),
        (
            # `/o` is the folder `o` too.
            _job(ResultPaths=[{"Name": "o", "Path": "/a"}, {"Name": "/o", "Path": "/b"}]),
            "Tasks[0].ResultPaths[1].Name",
        ),
        (_job(ResultPaths=[{"Name": "/a/b", "Path": "/a"}]), "Tasks[0].ResultPaths[0].Name"),
        (_job(Timeouts={"ExecutionTimeout": -3}), "Tasks[0].Timeouts.ExecutionTimeout"),
    ],
)
def test_validation_names_the_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        job = Job.from_dict(doc)
        normalise_job(job)
        validate_job(job)
    assert info.value.field == field


def test_type_mismatch_names_the_field() -> None:
    with pytest.raises(InvalidJobSpec) as info:
        Job.from_dict({"Type": "batch", "Tasks": [{"Name": "m", "Engine": "docker"}]})
    assert info.value.field == "Tasks[0].Engine"


def test_normalise_warns_and_strips_reserved_meta() -> None:
    job = Job.from_dict(
        {**_job(), "ID": "j-mine", "Meta": {"bacalhau.org/requester.id": "x", "mine": "y"}}
    )
    warnings = normalise_job(job)
    assert job.meta == {"mine": "y"}
    assert any("reserved" in w for w in warnings)
    assert any("job ID is ignored" in w for w in warnings)


def test_yaml_and_json_documents() -> None:
    yaml_doc = """
Job:
  Type: batch
  Count: 1
  Tasks:
    - Name: main
      Engine:
        Type: docker
        Params:
          Image: local/busybox:1.37
          Parameters: [echo, hi]
"""
    job = parse_job_document(yaml_doc)
    assert job.task.engine.params["Parameters"] == ["echo", "hi"]
    assert parse_job_document('{"Type": "batch", "Tasks": []}').type == "batch"
    with pytest.raises(InvalidJobSpec):
        parse_job_document("Type: [unclosed")


def test_sizes_are_said_in_units_that_fit_them() -> None:
    """A job asking for a petabyte is told so, not "1.13e+03TB"."""
    assert format_size(512) == "512B"
    assert format_size(17_700_000_000) == "17.7GB"
    assert format_size(2**50) == "1.13PB"
    assert format_size(10**19) == "10EB"


def test_cpu_is_said_as_a_person_writes_it() -> None:
    """A tiny CPU request is echoed as ``0.0000001``, not ``1e-07`` (which reads as a typo)."""
    assert format_cpu(1e-07) == "0.0000001"
    assert [format_cpu(x) for x in (0.5, 2.0, 0.1 + 0.2, 0.0)] == ["0.5", "2", "0.3", "0"]
    assert format_cpu(1e-12) == "1e-12"  # not "0": it is not nothing
    assert format_cpu(1e20) == "1e+20"


@pytest.mark.parametrize("kind", ["ops", "daemon"])
def test_ops_and_daemon_jobs_refuse_a_count_over_one(kind: str) -> None:
    """They run on every matching node: a Count of 2 says something nothing would do."""
    job = Job.from_dict(
        {
            "Type": kind,
            "Count": 2,
            "Tasks": [{"Name": "t", "Engine": {"Type": "docker", "Params": {"Image": "x"}}}],
        }
    )
    normalise_job(job)
    with pytest.raises(InvalidJobSpec) as err:
        validate_job(job)
    assert err.value.field == "Count"
    assert f"{kind} jobs cannot specify count > 1" in err.value.message
    job.count = 1
    validate_job(job)


def test_a_nul_in_a_task_name_is_refused() -> None:
    job = Job.from_dict(
        {
            "Type": "batch",
            "Tasks": [{"Name": "a\x00b", "Engine": {"Type": "docker", "Params": {"Image": "x"}}}],
        }
    )
    with pytest.raises(InvalidJobSpec) as err:
        validate_job(job)
    assert err.value.field == "Tasks[0].Name"
    assert "task name cannot contain null characters" in err.value.message
