"""Bad input, end to end on a real devstack: an invalid job spec is refused with the Bacalhau
error body naming the field; a missing image or WASM entry point fails the job within seconds
saying what is missing (a default node asks the image's registry first, and pulls an image
the registry has); a non-zero exit code completes the job with the code recorded."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from bacalhau.models import ExecutionStateType, JobStateType
from tests.executor.registry import local_registry
from tests.integration.devstack import Devstack, submitted_job_id

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-checks")]

#: How long a job that cannot run may take to fail (CLI start-up included).
FAIL_FAST_SECONDS = 10.0


def _docker_job(**task: Any) -> dict[str, Any]:
    engine = {"Type": "docker", "Params": {"Image": "local/busybox:1.37"}}
    return {
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "main", "Engine": engine, **task}],
    }


def _put_job(devstack: Devstack, body: bytes, request_id: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{devstack.api_url}/api/v1/orchestrator/jobs",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    ("job", "code", "field", "words"),
    [
        (
            {**_docker_job(), "Tasks": [{"Name": "main", "Engine": {"Type": "docker"}}]},
            "InvalidJobSpec",
            "Tasks[0].Engine.Params.Image",
            "image",
        ),
        ({**_docker_job(), "Count": -1}, "InvalidJobSpec", "Count", "count"),
        ({**_docker_job(), "Type": "nonsense"}, "InvalidJobSpec", "Type", "nonsense"),
        ({**_docker_job(), "Tasks": []}, "InvalidJobSpec", "Tasks", "tasks"),
        (
            _docker_job(Timeouts={"ExecutionTimeout": -5}),
            "InvalidJobSpec",
            "Tasks[0].Timeouts.ExecutionTimeout",
            "ExecutionTimeout",
        ),
        ({**_docker_job(), "Name": "\ud800"}, "InvalidJobSpec", "Name", "unicode"),
        ({**_docker_job(), "Priority": 1e29}, "InvalidJobSpec", "Priority", "priority"),
        (
            _docker_job(Timeouts={"ExecutionTimeout": 1e30}),
            "InvalidJobSpec",
            "Tasks[0].Timeouts.ExecutionTimeout",
            "ExecutionTimeout",
        ),
        (
            _docker_job(Resources={"Memory": "9" * 400}),
            "InvalidJobSpec",
            "Tasks[0].Resources.Memory",
            "too large",
        ),
    ],
    ids=[
        "no-image",
        "negative-count",
        "unknown-type",
        "no-tasks",
        "negative-timeout",
        "lone-surrogate",
        "huge-priority",
        "huge-timeout",
        "huge-memory",
    ],
)
def test_invalid_job_spec_gets_400_with_the_field_at_fault(
    devstack: Devstack, job: dict[str, Any], code: str, field: str, words: str
) -> None:
    before = set(devstack.job_ids())
    request_id = str(uuid.uuid4())
    status, body = _put_job(devstack, json.dumps({"Job": job}).encode(), request_id)
    assert status == 400, body
    assert body["Status"] == 400
    assert body["Code"] == code
    assert body["Details"]["Field"] == field
    assert words.lower() in body["Message"].lower()
    assert body["RequestID"] == request_id
    assert body["Component"] == "APIServer"
    assert body["Hint"]
    assert set(devstack.job_ids()) == before  # nothing was stored


def test_malformed_body_gets_400_bad_request(devstack: Devstack) -> None:
    status, body = _put_job(devstack, b"{not json", "r-1")
    assert status == 400
    assert body["Code"] == "BadRequest"
    assert "JSON" in body["Message"]


def test_client_errors_are_never_500s(devstack: Devstack) -> None:
    deep = '{"a":' * 1000 + "1" + "}" * 1000
    body = '{"Job":{"Type":"batch","Tasks":[{"Name":"m","Engine":{"Type":"docker","Params":'
    status, answer = _put_job(devstack, (body + deep + "}}]}}").encode(), "r-deep")
    assert status == 400 and answer["Hint"], answer
    for i in range(2):  # an ambiguous prefix needs two jobs
        job = _docker_job()
        job["Tasks"][0]["Engine"]["Params"]["Parameters"] = ["true"]
        status, answer = _put_job(devstack, json.dumps({"Job": job}).encode(), f"r-{i}")
        assert status == 200, answer
    url = f"{devstack.api_url}/api/v1/orchestrator/jobs/j-"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=30)
    with caught.value as err:
        assert err.code == 400
        assert json.loads(err.read())["Code"] == "MultipleJobsFound"


def test_cli_shows_the_invalid_field_and_a_hint(devstack: Devstack, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n"
    )
    done = devstack.cli("job", "run", str(spec))
    assert done.returncode == 1, done
    assert "Error: task main validation failed: docker engine needs an image" in done.stderr
    assert "Field: Tasks[0].Engine.Params.Image" in done.stderr, done.stderr
    assert "Hint: fix the named field" in done.stderr


def test_missing_image_fails_within_seconds_saying_so(devstack: Devstack) -> None:
    image = f"local/not-here-{uuid.uuid4().hex[:8]}:1.0"
    started = time.monotonic()
    done = devstack.cli("docker", "run", image, "--", "echo", "never")
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout
    assert elapsed < FAIL_FAST_SECONDS
    job_id = submitted_job_id(done.stdout)
    assert f"Error: job {job_id} failed" in done.stderr
    assert image in done.stderr and "not present" in done.stderr, done.stderr

    details = devstack.client.get_job(job_id, executions=True)
    assert details.job.state == JobStateType.FAILED
    assert image in details.job.state_message
    assert details.executions, "no node was asked"
    for execution in details.executions:
        assert execution.compute_state in (
            ExecutionStateType.ASK_FOR_BID_REJECTED,
            ExecutionStateType.BID_REJECTED,
            ExecutionStateType.FAILED,
        )
        assert image in execution.compute_message


def test_an_image_in_a_registry_is_pulled_by_a_default_node(
    devstack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    # The devstack's nodes run on the default configuration: pulls allowed.
    with local_registry(tmp_path / "registry") as registry:
        image = registry.push(busybox_image)
        done = devstack.cli("docker", "run", image, "--", "echo", "pulled")
        assert done.returncode == 0, done.stderr
        job_id = submitted_job_id(done.stdout)
        details = devstack.client.get_job(job_id, executions=True)
        assert details.job.state == JobStateType.COMPLETED
        [ran] = [e for e in details.executions if e.run_output is not None]
        assert ran.run_output.stdout == "pulled\n"
        assert registry.manifest_checks(image) >= 1


def test_an_engine_no_node_has_is_named_as_bacalhau_names_it(
    devstack: Devstack, tmp_path: Path
) -> None:
    # Upstream's own job file (test_integration/common_assets/job_specs/
    # unsupported_engine_type.yml) and what its suite looks for in the output.
    job = tmp_path / "unsupported_engine_type.yml"
    job.write_text(
        "Name: Unsupported Engine Type\nType: batch\nCount: 1\nTasks:\n  - Name: main\n"
        "    Engine:\n      Type: vroomvroom\n      Params:\n        Image: busybox:1.37.0\n"
    )
    done = devstack.cli("job", "run", str(job))
    output = done.stdout + done.stderr
    assert "not enough nodes to run job" in output, output
    assert "does not support vroomvroom" in output, output


def test_missing_wasm_entry_point_fails_naming_it(devstack: Devstack, wasm_modules: Path) -> None:
    started = time.monotonic()
    done = devstack.cli(
        "wasm", "run", "--entry-point", "no_such_function", str(wasm_modules / "hello.wasm")
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout
    assert elapsed < FAIL_FAST_SECONDS
    job_id = submitted_job_id(done.stdout)
    assert "'no_such_function'" in done.stderr, done.stderr
    details = devstack.client.get_job(job_id, executions=True)
    assert details.job.state == JobStateType.FAILED
    assert "no_such_function" in details.job.state_message
    assert all("no_such_function" in e.compute_message for e in details.executions)


@pytest.mark.parametrize("engine", ["docker", "wasm"])
def test_non_zero_exit_code_completes_with_the_code_recorded(
    devstack: Devstack, busybox_image: str, wasm_modules: Path, tmp_path: Path, engine: str
) -> None:
    if engine == "docker":
        run = ["docker", "run", busybox_image, "--", "sh", "-c", "echo partial; exit 3"]
        code, stdout = 3, "partial\n"
    else:
        run = ["wasm", "run", str(wasm_modules / "exitcode.wasm"), "--", "5"]
        code, stdout = 5, ""
    out = devstack.ok(*run)  # Bacalhau semantics: the job ran, so the command succeeds
    job_id = submitted_job_id(out)
    assert f"Job {job_id} completed." in out
    assert f"Exit Code: {code}" in out

    details = devstack.client.get_job(job_id, executions=True)
    assert details.job.state == JobStateType.COMPLETED
    [execution] = details.executions
    assert execution.compute_state == ExecutionStateType.COMPLETED
    assert execution.run_output is not None
    assert execution.run_output.exit_code == code

    results = tmp_path / "results"
    devstack.ok("job", "get", job_id, "--output-dir", str(results))
    assert (results / "exitCode").read_text().strip() == str(code)
    assert (results / "stdout").read_text() == stdout
