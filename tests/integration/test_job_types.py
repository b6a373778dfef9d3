"""Every job type on a real devstack (three compute node processes): a daemon job on every
node and on a node that joins afterwards, a service replica restarted after it exits, a
batch job's partitions each run once with their BACALHAU_* variables, templated job files,
env forwarding by allow-list, the v1.7 WASM job shape, and job versions and rerun."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.models import (
    Connection,
    Execution,
    ExecutionStateType,
    JobStateType,
    Membership,
)
from tests.integration.devstack import (
    Devstack,
    NodeProcess,
    eventually,
    submitted_job_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-job-types")]

E = ExecutionStateType
COMPUTE_NODES = 3
#: The one host variable the nodes forward (Compute.Env.AllowList).
ALLOWED = "HOME"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, busybox_image: str, wasm_modules: Path
) -> Iterator[Devstack]:
    devstack = Devstack.start(
        tmp_path_factory.mktemp("job-types"),
        compute_nodes=COMPUTE_NODES,
        config=[f"Compute.Env.AllowList={ALLOWED}", "retry_delay=0.5", "rejoin_grace=0"],
    )
    try:
        yield devstack
    finally:
        devstack.stop()


@pytest.fixture(autouse=True)
def every_node_ready(stack: Devstack) -> None:
    """Each test starts once the requester sees every compute node connected and approved.

    These tests are about job types, not liveness: a saturated machine can make gossip
    suspect a node that is only slow, and the test would then measure that. A node that is
    not back within 30 s fails the test here, naming what the requester sees."""
    wanted = {n.node_id for n in stack.compute}

    def ready() -> bool:
        return wanted <= {
            n.info.node_id
            for n in stack.client.list_nodes()
            if n.connection == Connection.CONNECTED and n.membership == Membership.APPROVED
        }

    try:
        eventually(ready, timeout=30, what="every compute node ready")
    except AssertionError:
        seen = [
            (n.info.node_id, n.connection.value, n.membership.value, n.liveness)
            for n in stack.client.list_nodes()
        ]
        raise AssertionError(f"not every compute node is ready: {seen}") from None


def _docker_job(job_type: str, script: str, image: str, *, count: int = 1, env: str = "") -> str:
    label = uuid.uuid4().hex[:12]
    return json.dumps(
        {
            "Name": f"{job_type}-{label}",
            "Type": job_type,
            "Count": count,
            "Labels": {"test-run": label},
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "docker",
                        "Params": {"Image": image, "Entrypoint": ["sh", "-c", script]},
                    },
                    **({"Env": json.loads(env)} if env else {}),
                    "Resources": {"CPU": "100m", "Memory": "64Mb"},
                }
            ],
        }
    )


def _run_file(stack: Devstack, tmp_path: Path, text: str, *args: str) -> str:
    spec = tmp_path / f"job-{uuid.uuid4().hex[:8]}.yaml"
    spec.write_text(text)
    return stack.ok("job", "run", str(spec), *args)


def _started(executions: list[Execution]) -> list[Execution]:
    return [e for e in executions if e.compute_state in (E.BID_ACCEPTED, E.RUNNING)]


def test_daemon_runs_on_every_node_and_on_a_node_that_joins_later(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    out = _run_file(
        stack, tmp_path, _docker_job("daemon", "echo up; sleep 600", busybox_image), "--wait"
    )
    job_id = submitted_job_id(out)
    # --wait returned: the daemon runs (it would never complete).
    details = stack.client.get_job(job_id, executions=True)
    assert details.job.state == JobStateType.RUNNING
    computes = {n.node_id for n in stack.compute}
    assert {e.node_id for e in _started(details.executions)} == computes

    node_dir = tmp_path / "late-node"
    late_id = stack.certify(node_dir)
    late = NodeProcess.compute(
        node_dir, stack.requester.grpc_address, "--name", "late", "--engines", "docker"
    )
    try:
        eventually(
            lambda: any(
                n.info.node_id == late_id and n.connection == Connection.CONNECTED
                for n in stack.client.list_nodes()
            ),
            timeout=30,
            what="the late node joining",
        )
        eventually(
            lambda: (
                [e for e in _started(stack.client.executions(job_id)) if e.node_id == late_id]
                or None
            ),
            timeout=30,
            what="the daemon's execution on the late node",
        )
        assert len(_started(stack.client.executions(job_id))) == COMPUTE_NODES + 1
    finally:
        stack.ok("job", "stop", job_id)
        late.stop()


def test_a_service_replica_that_exits_is_restarted(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    out = _run_file(
        stack,
        tmp_path,
        _docker_job("service", "echo replica $BACALHAU_PARTITION_INDEX; sleep 1", busybox_image),
        "--wait",
    )
    job_id = submitted_job_id(out)
    try:
        # The replica's program ends after a second: for a service that is a failure.
        ended = eventually(
            lambda: (
                [
                    e
                    for e in stack.client.executions(job_id)
                    if e.compute_state in (E.COMPLETED, E.FAILED)
                ]
                or None
            ),
            timeout=30,
            what="the replica ending",
        )
        eventually(
            lambda: (
                _started([e for e in stack.client.executions(job_id) if e.id != ended[0].id])
                or None
            ),
            timeout=30,
            what="the replica restarted",
        )
        job = stack.client.get_job(job_id).job
        assert job.state == JobStateType.RUNNING
        assert all(e.partition_index == 0 for e in stack.client.executions(job_id))
    finally:
        stack.ok("job", "stop", job_id)


def test_batch_partitions_each_run_once_with_their_variables(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    script = (
        "echo part=$BACALHAU_PARTITION_INDEX of=$BACALHAU_PARTITION_COUNT "
        "type=$BACALHAU_JOB_TYPE job=$BACALHAU_JOB_ID exec=$BACALHAU_EXECUTION_ID "
        "node=$BACALHAU_NODE_ID ns=$BACALHAU_JOB_NAMESPACE name=$BACALHAU_JOB_NAME"
    )
    out = _run_file(stack, tmp_path, _docker_job("batch", script, busybox_image, count=3))
    job_id = submitted_job_id(out)
    details = stack.client.get_job(job_id, executions=True)
    assert details.job.state == JobStateType.COMPLETED
    done = [e for e in details.executions if e.compute_state == E.COMPLETED]
    printed = sorted(e.run_output.stdout.strip() for e in done if e.run_output)
    assert [line.split()[0] for line in printed] == ["part=0", "part=1", "part=2"]
    for e in done:
        assert e.run_output is not None
        fields = dict(word.split("=", 1) for word in e.run_output.stdout.split())
        assert fields["part"] == str(e.partition_index)
        assert fields["of"] == "3" and fields["type"] == "batch" and fields["ns"] == "default"
        assert (fields["job"], fields["exec"], fields["node"]) == (job_id, e.id, e.node_id)
        assert fields["name"] == details.job.name


def test_templated_job_prints_its_variables(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    spec = _docker_job("batch", "echo {{.greeting}} {{ .who }}", busybox_image)
    out = _run_file(stack, tmp_path, spec, "-V", "greeting=hello", "-V", "who=templates")
    assert "hello templates" in out

    missing = tmp_path / "missing.yaml"
    missing.write_text(spec)
    done = stack.cli("job", "run", str(missing), "-V", "greeting=hello")
    assert done.returncode != 0
    assert 'no entry for key "who"' in done.stderr


def test_env_forwarding_follows_the_operator_allow_list(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    allowed = _docker_job(
        "batch", "echo home=$H", busybox_image, env=json.dumps({"H": f"env:{ALLOWED}"})
    )
    out = _run_file(stack, tmp_path, allowed)
    assert "home=/" in out

    refused = _docker_job("batch", "echo $P", busybox_image, env=json.dumps({"P": "env:PATH"}))
    spec = tmp_path / "refused.yaml"
    spec.write_text(refused)
    # No node of the cluster allows PATH: refused at submit rather than declined by all.
    done = stack.cli("job", "run", str(spec))
    assert done.returncode != 0, done.stdout
    assert "Tasks[0].Env.P" in done.stderr and "PATH" in done.stderr, done.stderr
    assert "Compute.Env.AllowList" in done.stderr, done.stderr


def test_v17_wasm_job_file_runs(stack: Devstack, wasm_modules: Path, tmp_path: Path) -> None:
    module = base64.b64encode((wasm_modules / "hello.wasm").read_bytes()).decode()
    spec = f"""
Name: wasm-v17
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: wasm
      Params:
        EntryModule: /app/hello.wasm
        Parameters: [one]
    Env:
      GREETING: from-v17
    InputSources:
      - Target: /app/hello.wasm
        Source:
          Type: inline
          Params:
            URL: "data:application/wasm;base64,{module}"
"""
    out = _run_file(stack, tmp_path, spec)
    assert "hello from wasm" in out
    assert "arg[1]=one" in out
    assert "GREETING=from-v17" in out


def test_rerun_adds_a_version_and_runs_it(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    out = _run_file(stack, tmp_path, _docker_job("batch", "echo again", busybox_image))
    job_id = submitted_job_id(out)
    # As `job run` does, rerun waits for the job and shows how it went.
    rerun = stack.ok("job", "rerun", job_id)
    assert "version: 2" in rerun and "again" in rerun
    # Upstream's jobs-update suite: the runtime flags of `job run`.
    third = stack.ok("job", "rerun", job_id, "--version=1", "--wait=false", "--id-only")
    assert third == f"{job_id}\n"
    eventually(
        lambda: len(_completed(stack, job_id)) == 3 or None,
        timeout=60,
        what="the reruns completing",
    )
    executions = stack.client.executions(job_id, all_versions=True)
    assert sorted(e.job_version for e in executions) == [1, 2, 3]
    assert stack.client.get_job(job_id).job.state == JobStateType.COMPLETED
    versions = json.loads(stack.ok("job", "versions", job_id, "--output", "json"))
    assert [v["Version"] for v in versions] == [1, 2, 3]
    table = stack.ok("job", "versions", job_id)
    assert "VERSION" in table


def _completed(stack: Devstack, job_id: str) -> list[Execution]:
    every = stack.client.executions(job_id, all_versions=True)
    return [e for e in every if e.compute_state == E.COMPLETED]


def test_the_version_flags_read_and_rerun_one_version(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    """``-v/--version`` and ``--all-versions`` as Bacalhau v1.8 has them, on ``describe``,
    ``executions``, ``history``, ``logs`` and ``rerun``: a job run under its name twice
    (printing "first", then "second"), then version 1 rerun as version 3."""
    first = json.loads(_docker_job("batch", "echo first", busybox_image))
    second = {
        **first,
        "Tasks": json.loads(_docker_job("batch", "echo second", busybox_image))["Tasks"],
    }
    job_id = submitted_job_id(_run_file(stack, tmp_path, json.dumps(first)))
    assert submitted_job_id(_run_file(stack, tmp_path, json.dumps(second))) == job_id

    def table_versions(*args: str) -> list[str]:
        rows = stack.ok(*args, "--output", "csv").strip().splitlines()[1:]
        return sorted(row.split(",")[3] for row in rows)

    # Results are the latest version's (as Bacalhau serves them), logs too by default.
    assert len(stack.client.results(job_id)) == 1
    assert table_versions("job", "executions", job_id) == ["2"]
    assert table_versions("job", "executions", job_id, "-v", "1") == ["1"]
    assert table_versions("job", "executions", job_id, "--all-versions") == ["1", "2"]
    assert stack.ok("job", "logs", job_id) == "second\n"
    assert stack.ok("job", "logs", job_id, "--version", "1") == "first\n"
    described = json.loads(stack.ok("job", "describe", job_id, "-v", "1", "--output", "json"))
    assert described["Job"]["Version"] == 1
    assert described["Job"]["State"]["StateType"] == "Completed"
    # As the latest version reads (Bacalhau's completion sets no message): no message.
    latest = json.loads(stack.ok("job", "describe", job_id, "--output", "json"))["Job"]
    assert described["Job"]["State"] == latest["State"] == {"StateType": "Completed"}
    assert [e["JobVersion"] for e in described["Executions"]["Items"]] == [1]
    assert {h["JobVersion"] for h in described["History"]["Items"]} == {1}
    history = json.loads(stack.ok("job", "history", job_id, "--all-versions", "--output", "json"))
    assert {h["JobVersion"] for h in history} == {1, 2}
    history = json.loads(stack.ok("job", "history", job_id, "--output", "json"))
    assert {h["JobVersion"] for h in history} == {2}
    assert "version: 3" in stack.ok("job", "rerun", job_id, "--version", "1")
    eventually(
        lambda: len(_completed(stack, job_id)) == 3 or None,
        timeout=60,
        what="version 3 completing",
    )
    assert stack.ok("job", "logs", job_id) == "first\n"
    assert len(stack.client.results(job_id)) == 1
    missing = stack.cli("job", "describe", job_id, "--version", "9")
    assert missing.returncode != 0 and "has no version 9" in missing.stderr


def test_more_partitions_than_nodes_is_refused_at_submit_naming_count(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    spec = tmp_path / "too-many.yaml"
    spec.write_text(_docker_job("batch", "echo x", busybox_image, count=COMPUTE_NODES + 1))
    done = stack.cli("job", "run", str(spec))
    assert done.returncode != 0
    assert f"Count {COMPUTE_NODES + 1}" in done.stderr and "partitions" in done.stderr
    assert "Job successfully submitted" not in done.stdout
