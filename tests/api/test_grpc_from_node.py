"""The public gRPC API from another language: a Node.js client (``js_grpc/client.mjs``,
``@grpc/grpc-js`` with ``@grpc/proto-loader`` reading ``proto/`` at run time, message size
limits at grpc-js's defaults) against a real devstack, one requester and one compute node process
running the ``noop`` engine.

The client prints one JSON object per call; these tests check what a JavaScript user gets:
a job submitted and awaited in one call, read back every way, its output streamed, nodes
listed, and refusals that carry the documented status codes and trailing metadata.

The npm packages are installed by ``scripts/setup.sh`` (``npm ci`` in ``js_grpc``), or here
when missing; a machine without ``node`` fails these tests (every machine has it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.devstack import Devstack

JS_DIR = Path(__file__).resolve().parent / "js_grpc"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.integration,
    # One devstack for the module: its tests stay on one worker under --dist loadgroup.
    pytest.mark.xdist_group("grpc-from-node"),
]

#: What the job prints (a non-ASCII character: the bytes are joined before decoding).
STDOUT = "hello from a noop job\nsecond line \u00fc\n"
STDERR = "a line on stderr\n"

#: The job the Node.js client submits (given on its stdin, as a user's job file would be).
JOB: dict[str, Any] = {
    "Type": "batch",
    "Count": 1,
    "Labels": {"client": "node"},
    "Tasks": [
        {
            "Name": "main",
            "Engine": {"Type": "noop", "Params": {"Stdout": STDOUT, "Stderr": STDERR}},
            "Publisher": {"Type": "local"},
        }
    ],
}

Records = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    # Every machine has Node.js (the IPFS reference tests need it too): a missing one is
    # a broken setup, not a test to skip. A missing install is done here, as the IPFS
    # reference tests do (`npm ci`, pinned by the lock file).
    if NODE is None:
        pytest.fail("node is not installed: run scripts/setup.sh")
    if not (JS_DIR / "node_modules" / ".package-lock.json").exists():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True)
    devstack = Devstack.start(tmp_path_factory.mktemp("grpc-node"), compute_nodes=1, engines="noop")
    try:
        yield devstack
    finally:
        devstack.stop()


def run_client(stack: Devstack, *args: str, stdin: str = "") -> Records:
    """Run ``node client.mjs <gRPC API address> ARGS...``; its records by call name."""
    address = stack.manifest["GRPCAPIAddress"]
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(JS_DIR / "client.mjs"), address, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"node exited with {done.returncode}:\n{done.stderr}"
    records: Records = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        assert record["call"] not in records, f"{record['call']} printed twice"
        records[record["call"]] = record
    return records


def ok(records: Records, call: str) -> Any:
    """The response of ``call``, which must have succeeded."""
    record = records.get(call)
    assert record is not None, f"no record of {call}: {sorted(records)}"
    assert record["ok"], f"{call} failed: {record['error']}"
    return record.get("response")


def refused(records: Records, call: str, status: str, code: str) -> dict[str, Any]:
    """The error of ``call``, which must have been refused with ``status`` and our stable
    ``code``, a component and a hint; returns what the client read of it."""
    record = records.get(call)
    assert record is not None, f"no record of {call}: {sorted(records)}"
    assert not record["ok"], f"{call} succeeded: {record.get('response')}"
    error = record["error"]
    assert error["status"] == status, error
    ours = error["bacalhau"]
    assert ours["code"] == code, error
    assert ours["component"], error
    assert ours["hint"], error
    assert error["message"], error
    return dict(ours)


def test_agent_answers_version_alive_and_its_node(stack: Devstack) -> None:
    records = run_client(stack, "agent")
    assert ok(records, "Version")["git_version"].startswith("v")
    assert ok(records, "Alive") == {"status": "OK"}
    info = ok(records, "NodeInfo")
    assert info["node_id"] == stack.requester.node_id
    assert info["node_type"] == "Requester"
    parsed = ok(records, "NodeInfo.parsed")
    assert parsed["NodeID"] == stack.requester.node_id and parsed["NodeType"] == "Requester"
    assert {"API", "Orchestrator"} <= set(ok(records, "Config.parsed")["keys"])


def test_a_job_submitted_from_node_completes_and_reads_back(stack: Devstack) -> None:
    records = run_client(stack, "job", stdin=json.dumps(JOB))

    # Submitted and awaited in one call, with its execution.
    submitted = ok(records, "SubmitJob")
    job_id = submitted["job_id"]
    assert job_id.startswith("j-") and submitted["evaluation_id"]
    assert submitted["job"]["id"] == job_id, stack.story(job_id)
    assert submitted["job"]["state"] == "Completed", stack.story(job_id)
    assert [e["compute_state"] for e in submitted["executions"]] == ["Completed"]
    execution_id = submitted["executions"][0]["id"]

    # The history long-poll: whole, in order, over, with the executions.
    history = ok(records, "JobHistory")
    assert "JobHistory#1" not in records  # one held call was enough
    assert history["more"] is False and history["job"]["state"] == "Completed"
    seqs = [int(item["seq_num"]) for item in history["items"]]
    assert seqs == sorted(seqs) and seqs[0] == 1 and int(history["next_after_seq"]) == seqs[-1]
    assert [json.loads(i["item_json"])["SeqNum"] for i in history["items"]] == seqs
    assert [e["id"] for e in history["executions"]] == [execution_id]

    # GetJob with history and executions; the documents parse to the job that was sent.
    got = ok(records, "GetJob")
    assert got["job"]["id"] == job_id and got["job"]["type"] == "batch"
    assert got["job"]["state"] == "Completed" and got["job"]["version"] == "1"
    assert got["history_more"] is False and got["executions_next_token"] == ""
    assert [h["seq_num"] for h in got["history"]] == [i["seq_num"] for i in history["items"]]
    parsed = ok(records, "GetJob.parsed")
    assert parsed["job"]["ID"] == job_id and parsed["job"]["Labels"] == {"client": "node"}
    assert parsed["job"]["State"]["StateType"] == "Completed"
    assert parsed["job"]["Tasks"][0]["Engine"]["Params"]["Stdout"] == STDOUT
    assert [e["ID"] for e in parsed["executions"]] == [execution_id]
    assert parsed["executions"][0]["RunOutput"]["Stdout"] == STDOUT
    # execution_json numbers states as types.proto's ExecutionStateType (v1.5.2's numbering:
    # Completed is 9), whatever the REST API gives a client that sends no version header.
    assert parsed["execution_states"] == [
        {
            "compute_state": "Completed",
            "json_number": 9,
            "json_name": "EXECUTION_STATE_TYPE_COMPLETED",
        }
    ]
    assert ok(records, "GetJob.prefix")["job"]["id"] == job_id

    executions = ok(records, "ListExecutions")
    assert executions["next_token"] == ""
    assert executions["executions"] == got["executions"]
    assert executions["executions"][0]["node_id"] == stack.compute[0].node_id

    # The output as the job wrote it, replayed, followed (ends with the finished execution)
    # and tailed.
    for call in ("StreamJobLogs", "StreamJobLogs.follow"):
        logs = ok(records, call)
        assert (logs["stdout"], logs["stderr"]) == (STDOUT, STDERR), call
    tail = ok(records, "StreamJobLogs.tail")
    assert (tail["stdout"], tail["stderr"]) == (STDOUT.splitlines(True)[-1], STDERR)

    results = ok(records, "GetResults.parsed")
    assert len(results) == 1 and results[0]["Type"], results

    listed = ok(records, "ListJobs.all")["jobs"]
    assert {"id": job_id, "state": "Completed", "type": "batch"} in listed


def test_refusals_carry_their_code_field_hint_and_details(stack: Devstack) -> None:
    records = run_client(stack, "errors")

    for call in ("GetJob.unknown", "StreamJobLogs.unknown"):
        error = refused(records, call, "NOT_FOUND", "NotFound")
        assert error["details"]["Kind"] == "JobNotFound", (call, error)
    node = refused(records, "GetNode.unknown", "NOT_FOUND", "NotFound")
    assert node["details"]["Kind"] == "NodeNotFound"

    # A job the requester refuses names the field at fault.
    for call, field in (
        ("SubmitJob.invalid_type", "Type"),
        ("SubmitJob.invalid_timeout", "Tasks[0].Timeouts.ExecutionTimeout"),
    ):
        error = refused(records, call, "INVALID_ARGUMENT", "InvalidJobSpec")
        assert error["field"] == field and error["details"]["Field"] == field, (call, error)
    assert refused(records, "SubmitJob.not_json", "INVALID_ARGUMENT", "BadRequest")["field"] == (
        "job_json"
    )
    assert refused(records, "SubmitJob.empty", "INVALID_ARGUMENT", "InvalidJobSpec")["field"]

    # A request's own bad values: a BadQuery naming the request field.
    for call, field in (
        ("SubmitJob.negative_wait", "wait_seconds"),
        ("SubmitJob.nan_wait", "wait_seconds"),
        ("JobHistory.bad_until", "until"),
    ):
        error = refused(records, call, "INVALID_ARGUMENT", "BadRequest")
        assert error["field"] == field, (call, error)
        assert error["details"] == {"Field": field, "Kind": "BadQuery"}, (call, error)


def test_nodes_are_listed_and_each_is_found(stack: Devstack) -> None:
    records = run_client(stack, "nodes")
    listed = {n["id"]: n for n in ok(records, "ListNodes")["nodes"]}
    compute = stack.compute[0].node_id
    assert set(listed) == {stack.requester.node_id, compute}
    assert listed[stack.requester.node_id]["node_type"] == "Requester"
    assert listed[compute]["node_type"] == "Compute"
    assert listed[compute]["membership"] == "APPROVED"
    assert listed[compute]["connection"] == "CONNECTED"
    parsed = {n["Info"]["NodeID"]: n for n in ok(records, "ListNodes.parsed")}
    assert set(parsed) == set(listed)
    assert "noop" in parsed[compute]["Info"]["ComputeNodeInfo"]["ExecutionEngines"]
    for node_id in listed:
        assert ok(records, f"GetNode:{node_id}")["node"]["id"] == node_id


def test_every_version_of_a_job_reaches_a_client_with_default_limits(stack: Devstack) -> None:
    """KNOWN SERVER BUG (fails until fixed): ListJobVersions answers every version in one
    message, with no bound on its size and no paging. Twelve versions of a 400 KB job (each
    well inside max_job_size) make a 4.8 MB answer, which grpc-js, like gRPC clients of
    every language, refuses by default (RESOURCE_EXHAUSTED "Received message larger than
    max"); the README promises answers that fit 4 MiB. The client follows a ``next_token``
    should the answer come in pages."""
    job = {
        "Name": "many-versions",
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "main", "Engine": {"Type": "noop", "Params": {"Pad": "x" * 400_000}}}],
    }
    records = run_client(stack, "versions", "12", stdin=json.dumps(job))
    ok(records, "ListJobVersions")  # <- fails today: RESOURCE_EXHAUSTED in the client
    versions = ok(records, "ListJobVersions.all")["versions"]
    assert [int(v["version"]) for v in versions] == list(range(1, 13))
