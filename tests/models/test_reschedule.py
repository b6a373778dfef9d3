"""The job-level ``Reschedule`` block: additive, exact spellings, validated field by field."""

from __future__ import annotations

import json

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import Job, parse_duration, parse_job_document, validate_job

POLICY = {"Attempts": 3, "AttemptsPerNode": 1, "Delay": "1s", "MaxDelay": "1m30s"}


def _doc(**extra: object) -> dict[str, object]:
    return {
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "main", "Engine": {"Type": "docker", "Params": {"Image": "x"}}}],
        **extra,
    }


def test_the_block_reads_back_exactly_as_written() -> None:
    job = Job.from_dict(_doc(Reschedule=POLICY))
    validate_job(job)
    assert job.to_dict()["Reschedule"] == POLICY
    assert (job.reschedule.delay_seconds(), job.reschedule.max_delay_seconds()) == (1.0, 90.0)
    # Through the stored JSON document and back, unchanged.
    again = Job.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again.to_dict() == job.to_dict()


def test_a_job_without_the_block_has_none_on_the_wire() -> None:
    assert "Reschedule" not in Job.from_dict(_doc()).to_dict()


def test_keys_are_case_insensitive_and_yaml_job_files_carry_it() -> None:
    job = parse_job_document(
        "Type: batch\n"
        "Tasks:\n"
        "  - Name: main\n"
        "    Engine: {Type: docker, Params: {Image: x}}\n"
        "reschedule:\n"
        "  attempts: 4\n"
        "  attemptsPerNode: 2\n"
        "  delay: 500ms\n"
    )
    validate_job(job)
    assert job.to_dict()["Reschedule"] == {"Attempts": 4, "AttemptsPerNode": 2, "Delay": "500ms"}


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"Attempts": -1}, "Reschedule.Attempts"),
        ({"Attempts": 10**6}, "Reschedule.Attempts"),
        ({"AttemptsPerNode": -2}, "Reschedule.AttemptsPerNode"),
        ({"Attempts": "many"}, "Reschedule.Attempts"),
        ({"Delay": "soon"}, "Reschedule.Delay"),
        ({"Delay": "5"}, "Reschedule.Delay"),
        ({"MaxDelay": "1s2"}, "Reschedule.MaxDelay"),
        ({"Delay": "10s", "MaxDelay": "1s"}, "Reschedule.MaxDelay"),
        ({"Delay": "9999999999h"}, "Reschedule.Delay"),
        ({"Delay": {"s": 1}}, "Reschedule.Delay"),
        ("3", "Reschedule"),
    ],
)
def test_bad_policies_name_their_field(policy: object, field: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        validate_job(Job.from_dict(_doc(Reschedule=policy)))
    assert err.value.field == field


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("1s", 1.0), ("250ms", 0.25), ("1h2m3s", 3723.0), ("1.5m", 90.0)],
)
def test_durations_in_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text, field="f") == pytest.approx(seconds)
