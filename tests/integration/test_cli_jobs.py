"""The ``bacalhau`` command against a real multi-process devstack: Docker and WASM jobs, their
results downloaded with ``job get``, ``describe``/``list``/``node list`` in every output
format, ``--count 2`` across two nodes, and stopping running jobs (a Docker container, a
busy-looping WASM module)."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bacalhau.models import (
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobStateType,
    short_id,
)
from tests.integration.devstack import Devstack, containers, eventually, submitted_job_id

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-cli")]


def unique_label() -> tuple[str, str]:
    """A label only this test's jobs carry, as (key=value, value)."""
    value = uuid.uuid4().hex[:12]
    return f"test-run={value}", value


def test_docker_job_completes_and_job_get_downloads_its_results(
    devstack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    label, _ = unique_label()
    out = devstack.ok(
        "docker",
        "run",
        "-l",
        label,
        "-o",
        "out:/outputs",
        busybox_image,
        "--",
        "sh",
        "-c",
        "echo hello from docker; echo hi > /outputs/hi.txt",
    )
    job_id = submitted_job_id(out)
    assert f"Job {job_id} completed." in out
    assert "Stdout:\n    hello from docker\n" in out

    results = tmp_path / "results"
    got = devstack.ok("job", "get", job_id, "--output-dir", str(results))
    assert str(results) in got
    assert (results / "stdout").read_text() == "hello from docker\n"
    assert (results / "exitCode").read_text().strip() == "0"
    assert (results / "out" / "hi.txt").read_text() == "hi\n"

    details = devstack.client.get_job(job_id, executions=True)
    assert details.job.state == JobStateType.COMPLETED
    [execution] = details.executions
    assert execution.node_id in {n.node_id for n in devstack.compute}
    assert execution.compute_state == ExecutionStateType.COMPLETED


def test_job_describe_and_list_in_every_output_format(
    devstack: Devstack, busybox_image: str
) -> None:
    label, value = unique_label()
    job_id = devstack.ok(
        "docker", "run", "--id-only", "-l", label, busybox_image, "--", "echo", "described"
    ).strip()
    assert job_id.startswith("j-")

    table = devstack.ok("job", "describe", job_id)
    assert re.search(rf"^ID\s+= {job_id}$", table, re.M), table
    assert re.search(r"^State\s+= Completed$", table, re.M), table
    assert "Job History" in table and "Executions" in table
    assert "described" in table

    as_json = json.loads(devstack.ok("job", "describe", job_id, "--output", "json"))
    assert as_json["Job"]["ID"] == job_id
    assert as_json["Job"]["State"]["StateType"] == "Completed"
    assert as_json["Job"]["Labels"] == {"test-run": value}
    [execution] = as_json["Executions"]["Items"]
    assert execution["RunOutput"]["Stdout"] == "described\n"
    assert execution["NodeID"] in {n.node_id for n in devstack.compute}
    events = [h["Event"]["Message"] for h in as_json["History"]["Items"]]
    assert "Job submitted" in events, events

    as_yaml = yaml.safe_load(devstack.ok("job", "describe", job_id, "--output", "yaml"))
    assert as_yaml["Job"]["ID"] == job_id
    assert as_yaml["Job"]["State"]["StateType"] == "Completed"

    listed = json.loads(devstack.ok("job", "list", "--labels", label, "--output", "json"))
    assert [(j["ID"], j["State"]["StateType"]) for j in listed] == [(job_id, "Completed")]
    listed_table = devstack.ok("job", "list", "--labels", label)
    assert short_id(job_id) in listed_table and "Completed" in listed_table
    # The same selector with a value nobody has lists nothing.
    assert (
        json.loads(devstack.ok("job", "list", "--labels", "test-run=nobody", "--output", "json"))
        == []
    )


def test_wasm_jobs_complete_with_their_stdout_and_result_files(
    devstack: Devstack, wasm_modules: Path, tmp_path: Path
) -> None:
    out = devstack.ok(
        "wasm", "run", "-e", "GREETING=bom dia", str(wasm_modules / "hello.wasm"), "--", "world"
    )
    assert "completed." in out
    assert "hello from wasm\n    arg[1]=world\n    GREETING=bom dia\n" in out, out

    job_id = devstack.ok(
        "wasm",
        "run",
        "--id-only",
        "-o",
        "out:/outputs",
        str(wasm_modules / "wordcount.wasm"),
        "--",
        "/outputs",
        "one two three",
        "four",
    ).strip()
    results = tmp_path / "results"
    devstack.ok("job", "get", job_id, "--output-dir", str(results))
    assert (results / "stdout").read_text() == "4 words\n"
    assert (results / "exitCode").read_text().strip() == "0"
    assert (results / "out" / "counts.txt").read_text() == ("3 one two three\n1 four\ntotal 4\n")
    # With no --output-dir, Bacalhau's folder: job-<the job as named>, so that
    # `bacalhau job get $ID; cat job-$ID/stdout` works; a short ID names its own.
    for ref in (job_id, short_id(job_id)):
        devstack.ok("job", "get", ref, cwd=tmp_path)
        assert (tmp_path / f"job-{ref}" / "stdout").read_text() == "4 words\n"

    # Bacalhau v1.0-v1.3's --download: the same results, written once the run has ended.
    downloaded = tmp_path / "downloaded"
    out = devstack.ok(
        "wasm", "run", "--download", "--output-dir", str(downloaded), "-o", "out:/outputs",
        str(wasm_modules / "wordcount.wasm"), "--", "/outputs", "five six",
    )  # fmt: skip
    assert f"have been written to...\n{downloaded}" in out, out
    assert (downloaded / "out" / "counts.txt").read_text() == "2 five six\ntotal 2\n"


def _compute_metrics(devstack: Devstack) -> dict[str, float]:
    """Every compute node's ``/metrics`` (on its metrics port: it serves no API), summed."""
    totals: dict[str, float] = {}
    for node in devstack.compute:
        assert node.metrics_address, node
        with urllib.request.urlopen(f"http://{node.metrics_address}/metrics", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items()))
                totals[key] = totals.get(key, 0.0) + s.value
    return totals


def test_compute_nodes_serve_their_metrics(devstack: Devstack, wasm_modules: Path) -> None:
    before = _compute_metrics(devstack)
    for _ in range(2):  # the second run of a module known to be short runs inline
        out = devstack.ok("wasm", "run", str(wasm_modules / "hello.wasm"), "--", "x")
        assert "completed." in out
    after = _compute_metrics(devstack)

    def grew(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("bacalhau_compute_executions_finished_total,state=Completed") == 2
    assert grew("bacalhau_compute_ask_seconds_count") == 2
    assert grew("bacalhau_compute_sqlite_transaction_seconds_count") >= 2
    runs = grew("bacalhau_wasm_runs_total,where=inline") + grew(
        "bacalhau_wasm_runs_total,where=worker"
    )
    assert runs == 2
    assert "bacalhau_compute_queue_depth" in after
    assert "bacalhau_event_loop_lag_seconds_count" in after


def test_count_two_runs_on_two_different_nodes(devstack: Devstack, busybox_image: str) -> None:
    job_id = devstack.ok(
        "docker", "run", "--count", "2", "--id-only", busybox_image, "--", "echo", "twice"
    ).strip()
    described = json.loads(devstack.ok("job", "describe", job_id, "--output", "json"))
    assert described["Job"]["Count"] == 2
    assert described["Job"]["State"]["StateType"] == "Completed"
    items = described["Executions"]["Items"]
    assert len(items) == 2
    assert {e["NodeID"] for e in items} == {n.node_id for n in devstack.compute}
    assert [e["RunOutput"]["Stdout"] for e in items] == ["twice\n", "twice\n"]

    executions = json.loads(devstack.ok("job", "executions", job_id, "--output", "json"))
    assert sorted(e["ID"] for e in executions) == sorted(e["ID"] for e in items)


def test_node_list_shows_the_requester_and_both_compute_nodes(devstack: Devstack) -> None:
    nodes = json.loads(devstack.ok("node", "list", "--output", "json"))
    by_id = {n["Info"]["NodeID"]: n for n in nodes}
    assert set(by_id) == {n.node_id for n in devstack.nodes}
    assert by_id[devstack.requester.node_id]["Info"]["NodeType"] == "Requester"
    for node in devstack.compute:
        listed = by_id[node.node_id]
        assert listed["Info"]["NodeType"] == "Compute"
        assert listed["Connection"] == "CONNECTED"
        assert listed["Membership"] == "APPROVED"
        assert listed["Info"]["Labels"]["name"] == node.name
        assert sorted(listed["Info"]["ComputeNodeInfo"]["ExecutionEngines"]) == ["docker", "wasm"]

    table = devstack.ok("node", "list")
    for node in devstack.nodes:
        assert short_id(node.node_id) in table
    assert len(re.findall(r"\bCONNECTED\b", table)) == len(devstack.nodes), table


def _execution(devstack: Devstack, job_id: str) -> tuple[JobStateType, Execution | None]:
    details = devstack.client.get_job(job_id, executions=True)
    return details.job.state, (details.executions[0] if details.executions else None)


def test_job_stop_cancels_the_running_execution_and_removes_its_container(
    devstack: Devstack, busybox_image: str
) -> None:
    job_id = devstack.ok(
        "docker", "run", "--no-wait", "--id-only", busybox_image, "--", "sleep", "60"
    ).strip()

    def container_running() -> Execution | None:
        state, execution = _execution(devstack, job_id)
        if state != JobStateType.RUNNING or execution is None:
            return None
        if containers(f"bacalhau-executionID={execution.id}"):
            return execution
        return None

    execution = eventually(container_running, timeout=30, what="the sleep job's container")
    assert execution.compute_state in (
        ExecutionStateType.BID_ACCEPTED,
        ExecutionStateType.RUNNING,
    )

    out = devstack.ok("job", "stop", job_id, "--reason", "enough sleep")
    assert "Job stop successfully submitted" in out
    stopped_at = time.monotonic()

    def stopped_and_gone() -> Execution | None:
        state, current = _execution(devstack, job_id)
        if state != JobStateType.STOPPED or current is None:
            return None
        if current.compute_state != ExecutionStateType.CANCELLED:
            return None
        if containers(f"bacalhau-executionID={execution.id}"):
            return None
        return current

    cancelled = eventually(
        stopped_and_gone, timeout=10, what="the job Stopped and its container removed"
    )
    assert time.monotonic() - stopped_at < 10
    assert cancelled.id == execution.id
    assert cancelled.desired_state == ExecutionDesiredStateType.STOPPED
    described = json.loads(devstack.ok("job", "describe", job_id, "--output", "json"))
    assert described["Job"]["State"]["StateType"] == "Stopped"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_job_stop_interrupts_a_busy_looping_wasm_job(
    devstack: Devstack, wasm_modules: Path
) -> None:
    job_id = devstack.ok(
        "wasm", "run", "--no-wait", "--id-only", str(wasm_modules / "busyloop.wasm")
    ).strip()

    def looping() -> Execution | None:
        state, execution = _execution(devstack, job_id)
        return execution if state == JobStateType.RUNNING and execution is not None else None

    execution = eventually(looping, timeout=30, what="the busy loop running")
    node = devstack.node(execution.node_id)
    before = _cpu_seconds(node.pid)
    # A loaded machine gives the loop less than a core: wait for it to show, boundedly.
    eventually(
        lambda: _cpu_seconds(node.pid) - before > 0.2,
        timeout=10,
        what="the module looping on its node",
    )

    devstack.ok("job", "stop", job_id)

    def cancelled() -> bool:
        state, current = _execution(devstack, job_id)
        return (
            state == JobStateType.STOPPED
            and current is not None
            and current.compute_state == ExecutionStateType.CANCELLED
        )

    eventually(cancelled, timeout=10, what="the WASM job stopped")
    # The loop itself must end, not just the bookkeeping: the node goes back to idle.
    time.sleep(0.2)
    before = _cpu_seconds(node.pid)
    time.sleep(1.0)
    assert _cpu_seconds(node.pid) - before < 0.3, "the module kept running after the stop"


def test_job_get_delivers_results_holding_links_and_names_the_skipped_ones(
    devstack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    script = (
        "echo data > /outputs/file.txt"
        " && ln -s /etc/shadow /outputs/abs"
        " && ln -s file.txt /outputs/rel"
        " && ln -s ../../../escaped /outputs/up"
    )
    job_id = devstack.ok(
        "docker", "run", "--id-only", "-o", "out:/outputs", busybox_image, "--", "sh", "-c", script
    ).strip()
    results = tmp_path / "dl" / "results"
    done = devstack.cli("job", "get", job_id, "--output-dir", str(results))
    assert done.returncode == 0, done.stderr
    assert str(results) in done.stdout
    assert (results / "out" / "file.txt").read_text() == "data\n"
    assert os.readlink(results / "out" / "rel") == "file.txt"
    assert (results / "out" / "rel").read_text() == "data\n"
    assert not (results / "out" / "abs").is_symlink()
    assert not (results / "out" / "up").is_symlink()
    assert not (tmp_path / "escaped").exists()
    assert "out/abs -> /etc/shadow (link to an absolute path)" in done.stderr
    assert "out/up -> ../../../escaped (link pointing outside the results)" in done.stderr
    assert "out/rel" not in done.stderr


def test_job_get_of_a_failed_job_says_why_and_creates_nothing(
    devstack: Devstack, tmp_path: Path
) -> None:
    run = devstack.cli("docker", "run", "--id-only", "local/no-such-image:0", "--", "true")
    assert run.returncode != 0
    job_id = run.stdout.strip()
    job = devstack.client.get_job(job_id).job
    assert job.state == JobStateType.FAILED and job.state_message
    results = tmp_path / "results"
    done = devstack.cli("job", "get", job_id, "--output-dir", str(results))
    assert done.returncode != 0
    assert f"job {job_id} has no results (Failed: {job.state_message})" in done.stderr
    assert "have been written" not in done.stdout
    assert not results.exists()
    # Without --output-dir: no ./job-<id> folder either.
    done = devstack.cli("job", "get", job_id, cwd=tmp_path)
    assert done.returncode != 0
    assert not list(tmp_path.glob("job-*"))
