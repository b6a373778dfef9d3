"""The job-level ``Verification`` block: additive, omitted when unset, normalised (replicas,
determinism, the meta key compute nodes read) and validated field by field."""

from __future__ import annotations

from typing import Any

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import (
    VERIFICATION_META_KEY,
    Job,
    normalise_job,
    parse_job_document,
    validate_job,
)
from tests.orchestrator.test_scheduler import WASM_HEADER


def _doc(engine: str = "wasm", **over: Any) -> dict[str, Any]:
    params: dict[str, Any] = (
        {"Image": "x"}
        if engine == "docker"
        else {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": WASM_HEADER}}}}
    )
    doc: dict[str, Any] = {
        "Type": "batch",
        "Tasks": [{"Name": "main", "Engine": {"Type": engine, "Params": params}}],
    }
    doc.update(over)
    return doc


def _submitted(doc: dict[str, Any]) -> Job:
    job = Job.from_dict(doc)
    normalise_job(job)
    validate_job(job)
    return job


def test_omitted_when_unset_and_read_back_exactly() -> None:
    plain = _submitted(_doc())
    assert "Verification" not in plain.to_dict() and not plain.verified
    assert plain.partition_count == 1 and VERIFICATION_META_KEY not in plain.meta
    job = _submitted(_doc(Count=3, Verification={"mode": " Majority "}))
    assert job.to_dict()["Verification"] == {"Mode": "majority"}
    assert Job.from_dict(job.to_dict()).verification == job.verification
    assert job.verified and job.count == 3 and job.partition_count == 1
    assert job.meta[VERIFICATION_META_KEY] == "majority"


def test_a_verified_job_runs_at_least_two_replicas_and_wasm_deterministically() -> None:
    job = _submitted(_doc(Verification={"Mode": "majority"}))
    assert job.count == 2
    assert job.task.engine.params["Deterministic"] is True
    assert job.task.runs_deterministically()
    docker = _submitted(_doc("docker", Count=5, Verification={"Mode": "majority"}))
    assert docker.count == 5 and "Deterministic" not in docker.task.engine.params


def test_a_user_cannot_fake_verification_through_meta() -> None:
    job = _submitted(_doc(Meta={VERIFICATION_META_KEY: "majority"}))
    assert not job.verified


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"Verification": {"Mode": "all"}}, "Verification.Mode"),
        ({"Verification": {"Mode": 3}}, "Verification.Mode"),
        ({"Verification": ["majority"]}, "Verification"),
        ({"Type": "ops", "Verification": {"Mode": "majority"}}, "Verification"),
        ({"Type": "daemon", "Verification": {"Mode": "majority"}}, "Verification"),
    ],
)
def test_invalid_verification_names_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        _submitted(_doc(**over))
    assert err.value.field == field


def test_a_verified_wasm_job_cannot_opt_out_of_determinism() -> None:
    doc = _doc(Verification={"Mode": "majority"})
    doc["Tasks"][0]["Engine"]["Params"]["Deterministic"] = False
    with pytest.raises(InvalidJobSpec) as err:
        _submitted(doc)
    assert err.value.field == "Tasks[0].Engine.Params.Deterministic"


def test_job_files_may_ask_for_verification() -> None:
    job = parse_job_document(
        "type: batch\ncount: 3\nverification:\n  mode: majority\n"
        "tasks:\n  - name: main\n    engine:\n      type: docker\n      params:\n"
        "        image: x\n"
    )
    assert job.verification.mode == "majority"
