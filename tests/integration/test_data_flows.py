"""Data in and out of a real devstack (requester + compute node processes, Docker engine):
a job reading an S3 prefix from SeaweedFS and publishing to S3, downloaded by ``job get``; a
job publishing to ``ipfs`` whose result CID is recorded and read by a second job; and bad
inputs failing with the cause named."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.executor._walk import MAX_RESULT_DEPTH
from bacalhau.models import ExecutionStateType, InputSource, Job, SpecConfig, Task
from tests.integration.devstack import Devstack, submitted_job_id
from tests.publisher.seaweedfs import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-data-flows")]


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("host")
    (root / "shared").mkdir()
    (root / "shared" / "notes.txt").write_text("from the host\n")
    (root / "private").mkdir()
    return root


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, s3: S3Server, allowed: Path, busybox_image: str
) -> Iterator[Devstack]:
    """One compute node whose (and whose requester's) AWS environment reaches SeaweedFS."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3.env().items():
            mp.setenv(key, value)  # inherited by the node processes and the CLI
        mp.delenv("AWS_PROFILE", raising=False)
        devstack = Devstack.start(
            tmp_path_factory.mktemp("devstack"),
            compute_nodes=1,
            config=[f"allow_listed_local_paths={allowed / 'shared'}"],
        )
        try:
            yield devstack
        finally:
            devstack.stop()


def test_s3_prefix_in_s3_results_out_downloaded_by_job_get(
    stack: Devstack, s3: S3Server, busybox_image: str, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    for key, body in {
        "logs-2023-04-01.log": "april one\n",
        "logs-2023-04-02.log": "april two\n",
        "logs-2023-05-01.log": "may\n",
    }.items():
        client.put_object(Bucket=bucket, Key=key, Body=body.encode())

    out = stack.ok(
        "docker", "run",
        "-i", f"src=s3://{bucket}/logs-2023-04*,dst=/input,opt=endpoint={s3.endpoint}",
        "-o", "out:/outputs",
        "-p", f"s3://{bucket}/results/{{jobID}},opt=endpoint={s3.endpoint},opt=region=us-east-1",
        busybox_image, "--",
        "sh", "-c", "cat /input/*; ls /input | wc -l > /outputs/count.txt; touch /input/x || true",
    )  # fmt: skip
    job_id = submitted_job_id(out)
    assert "april one\n    april two" in out

    [execution] = stack.client.get_job(job_id, executions=True).executions
    published = execution.published_result
    assert published is not None and published.type == "s3"
    assert published.params["Key"] == f"results/{job_id}.tar.gz"
    assert published.params["CID"].startswith("Qm")
    client.head_object(Bucket=bucket, Key=f"results/{job_id}.tar.gz")

    # The requester answers the archived result as a pre-signed URL.
    [result] = stack.client.results(job_id)
    assert result.type == "s3PreSigned" and result.params["PreSignedURL"].startswith(s3.endpoint)

    got = tmp_path / "got"
    stack.ok("job", "get", job_id, "--output-dir", str(got))
    assert (got / "stdout").read_text() == "april one\napril two\n"
    assert (got / "out" / "count.txt").read_text().strip() == "2"
    # The input was mounted read-only: the job could not write to it.
    assert "Read-only file system" in (got / "stderr").read_text()


def test_a_wasm_module_reads_a_single_local_file(
    stack: Devstack, wasm_modules: Path, allowed: Path
) -> None:
    """A host file (not its folder) given to a WASM module, at the root and below a folder:
    read where it is, as a container would see it."""
    notes = allowed / "shared" / "notes.txt"
    for target in ("/notes.txt", "/in/notes.txt"):
        out = stack.ok(
            "wasm", "run", "-i", f"file://{notes}:{target}",
            str(wasm_modules / "cat.wasm"), "--", target,
        )  # fmt: skip
        assert "from the host" in out, out
    assert notes.read_text() == "from the host\n"


def test_ipfs_result_cid_is_recorded_and_read_by_the_next_job(
    stack: Devstack, busybox_image: str, wasm_modules: Path, allowed: Path
) -> None:
    shutil.copy(wasm_modules / "cat.wasm", allowed / "shared" / "cat.wasm")
    first = stack.ok(
        "docker", "run", "-p", "ipfs", "-o", "out:/outputs",
        "-i", f"file://{allowed / 'shared'}:/host", busybox_image, "--",
        "sh", "-c", "echo chained > /outputs/msg.txt; cp /host/cat.wasm /outputs/",
    )  # fmt: skip
    job1 = submitted_job_id(first)
    [execution] = stack.client.get_job(job1, executions=True).executions
    assert execution.compute_state == ExecutionStateType.COMPLETED
    published = execution.published_result
    assert published is not None and published.type == "ipfs"
    cid = published.params["CID"]
    assert cid.startswith("Qm")

    # Job 2 reads job 1's result by CID (a path inside it), on the node that holds it.
    second = stack.ok(
        "docker", "run", "-i", f"ipfs://{cid}/out:/data", busybox_image, "--",
        "cat", "/data/msg.txt",
    )  # fmt: skip
    assert "chained" in second
    # ... and with the legacy spelling.
    legacy = stack.ok(
        "docker", "run", "-v", f"{cid}:/r", busybox_image, "--", "cat", "/r/out/msg.txt"
    )
    assert "chained" in legacy

    # A WASM module sees a file input at its target (as a preopened read-only directory).
    wasm = stack.ok(
        "wasm", "run", "-v", f"{cid}/out/msg.txt:/data/foo.txt",
        str(wasm_modules / "cat.wasm"), "--", "/data/foo.txt",
    )  # fmt: skip
    assert "chained" in wasm

    # ... and the module itself can be named by CID.
    by_cid = stack.ok(
        "wasm", "run", "-v", f"{cid}/out/msg.txt:/data/foo.txt", f"{cid}/out/cat.wasm",
        "--", "/data/foo.txt",
    )  # fmt: skip
    assert "chained" in by_cid


def test_plain_s3_results_downloaded_with_the_clients_credentials(
    stack: Devstack, s3: S3Server, busybox_image: str, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    out = stack.ok(
        "docker", "run", "-o", "out:/outputs",
        "-p", f"s3://{bucket}/plain/{{jobID}},opt=endpoint={s3.endpoint},opt=compress=false",
        busybox_image, "--", "sh", "-c", "echo plain; echo 7 > /outputs/n.txt",
    )  # fmt: skip
    job_id = submitted_job_id(out)
    [result] = stack.client.results(job_id)
    assert result.type == "s3" and result.params["Key"] == f"plain/{job_id}/"
    got = tmp_path / "got"
    stack.ok("job", "get", job_id, "--output-dir", str(got))
    assert (got / "stdout").read_text() == "plain\n"
    assert (got / "out" / "n.txt").read_text() == "7\n"


def failure_of(stack: Devstack, *args: str) -> str:
    done = stack.cli(*args)
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


def test_bad_inputs_fail_naming_the_cause(
    stack: Devstack, s3: S3Server, busybox_image: str, allowed: Path
) -> None:
    # A URL that answers 404 (the requester's own API serves it). The compute node would
    # download it (the job itself needs no network), but its HEAD at the bid already says
    # there is nothing there: every node declines, and the job fails at once saying why.
    url = f"{stack.api_url}/no/such/file.csv"
    assert f"{url}: the server answers 404 Not Found" in failure_of(
        stack, "docker", "run", "--queue-timeout", "0", "-i", f"{url}:/in", busybox_image,
        "--", "true",
    )  # fmt: skip

    # A missing S3 key.
    bucket = s3.new_bucket()
    assert f"s3://{bucket}/absent.csv: no key matches" in failure_of(
        stack, "docker", "run", "-i", f"src=s3://{bucket}/absent.csv,dst=/in,"
        f"opt=endpoint={s3.endpoint}", busybox_image, "--", "true",
    )  # fmt: skip

    # A local path the operator did not allow: the bid is refused with that reason.
    private = allowed / "private"
    assert f"local path {private} is not allowed on this node" in failure_of(
        stack, "docker", "run", "--queue-timeout", "0", "-i", f"file://{private}:/in",
        busybox_image, "--", "true",
    )  # fmt: skip

    # An allowed one is mounted read-only.
    shared = allowed / "shared"
    ok = stack.ok("docker", "run", "-i", f"file://{shared}:/in", busybox_image, "--",
                  "cat", "/in/notes.txt")  # fmt: skip
    assert "from the host" in ok
    assert sorted(os.listdir(allowed)) == ["private", "shared"]
    assert "x" not in os.listdir(allowed / "shared")


def test_malformed_cid_is_refused_at_submit_naming_the_field(stack: Devstack) -> None:
    job = Job(
        name="bad-cid",
        type="batch",
        count=1,
        tasks=[
            Task(
                name="main",
                engine=SpecConfig("docker", {"Image": "local/busybox:1.37"}),
                input_sources=[InputSource(SpecConfig("ipfs", {"CID": "not-a-cid"}), target="/in")],
            )
        ],
    )
    with pytest.raises(InvalidJobSpec) as caught:
        stack.client.submit(job)
    assert caught.value.field == "Tasks[0].InputSources[0].Source.Params.CID"
    # Nothing was stored.
    assert all(j.name != "bad-cid" for j in stack.client.list_jobs(limit=100).items)


def _deep_tree_job(depth: int, busybox: str) -> list[str]:
    script = (
        f"cd /outputs; i=0; while [ $i -lt {depth} ]; do mkdir d && cd d || exit 3; "
        "i=$((i+1)); done; echo leaf > leaf"
    )
    return ["-p", "local", "-o", "out:/outputs", busybox, "--", "sh", "-c", script]


def test_a_result_tree_too_deep_to_publish_fails_saying_so(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    """Folders nested past the limit fail the job with the reason (it used to end in a
    RecursionError, retried on every node); a tree at the limit publishes whole."""
    deep = stack.cli("docker", "run", *_deep_tree_job(MAX_RESULT_DEPTH + 50, busybox_image))
    assert deep.returncode != 0, deep.stdout[-3000:]
    assert f"more than {MAX_RESULT_DEPTH} folders deep" in deep.stderr + deep.stdout
    assert "RecursionError" not in deep.stderr + deep.stdout

    ok = stack.ok("docker", "run", "--id-only", *_deep_tree_job(MAX_RESULT_DEPTH, busybox_image))
    got = tmp_path / "got"
    stack.ok("job", "get", ok.strip(), "--output-dir", str(got))
    leaf = got / "out" / "/".join(["d"] * MAX_RESULT_DEPTH) / "leaf"
    assert leaf.read_text() == "leaf\n"
