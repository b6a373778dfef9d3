"""Bacalhau v1.8's s3managed publisher end to end: a requester configured with its own bucket
(``Publishers.Types.S3Managed.*``, as Bacalhau spells them) on a real S3 server, a compute node
started by hand **without any S3 credentials**, the upstream project's own job file
(``test_integration/common_assets/job_specs/20-s3managed-publisher.yml``, with a local image),
and ``bacalhau job get`` fetching the results through the requester's signed URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.models import Connection, JobStateType
from tests.integration.devstack import (
    Devstack,
    NodeProcess,
    eventually,
    submitted_job_id,
)
from tests.publisher.seaweedfs import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-managed-results")]

#: The upstream job file, as its lower-case keys have it; only the image is ours.
JOB_FILE = """\
name: A Simple S3 Managed Publisher Job
type: batch
count: 1
tasks:
  - name: main
    engine:
      type: docker
      params:
        image: {image}
        entrypoint:
          - /bin/sh
        parameters:
          - -c
          - echo expected execution stdout
    publisher:
      type: s3managed
"""


def test_results_reach_the_requesters_bucket_from_a_node_without_credentials(
    tmp_path: Path, s3: S3Server, busybox_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.new_bucket()
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)  # the requester's (and the CLI's) environment
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    stack = Devstack.start(
        tmp_path / "devstack",
        compute_nodes=0,
        config=[
            f"Publishers.Types.S3Managed.Bucket={bucket}",
            "Publishers.Types.S3Managed.Key=job-results",
            "Publishers.Types.S3Managed.Region=us-east-1",
            f"Publishers.Types.S3Managed.Endpoint={s3.endpoint}",
        ],
    )
    node: NodeProcess | None = None
    try:
        [requester] = stack.nodes
        node_dir = tmp_path / "no-credentials"
        node_id = stack.certify(node_dir)
        with monkeypatch.context() as bare:
            for key in s3.env():
                bare.delenv(key)  # the compute node's process gets no S3 credentials
            node = NodeProcess.compute(node_dir, requester.grpc_address, "--engines", "docker")

        def joined() -> bool:
            listed = {n.info.node_id: n for n in stack.client.list_nodes()}
            state = listed.get(node_id)
            return state is not None and state.connection == Connection.CONNECTED

        eventually(joined, timeout=30, what="the compute node joining")

        job_file = tmp_path / "20-s3managed-publisher.yml"
        job_file.write_text(JOB_FILE.format(image=busybox_image))
        done = stack.cli("job", "run", str(job_file))
        assert done.returncode == 0, done.stderr
        job_id = submitted_job_id(done.stdout)
        details = stack.client.get_job(job_id, executions=True)
        assert details.job.state == JobStateType.COMPLETED
        [ex] = details.executions
        assert ex.node_id == node_id
        assert ex.published_result is not None and ex.published_result.type == "s3managed"
        # In the requester's bucket, where Bacalhau puts it.
        s3.client().head_object(Bucket=bucket, Key=f"job-results/{job_id}/{ex.id}.tar.gz")

        out = tmp_path / "out"
        got = stack.cli("job", "get", job_id, "--output-dir", str(out))
        assert got.returncode == 0, got.stderr
        assert (out / "stdout").read_text() == "expected execution stdout\n"
    finally:
        code = node.stop() if node is not None else 0
        stack.stop()
    assert code == 0, node.output() if node is not None else ""
