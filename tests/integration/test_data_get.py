"""``job get`` on results published to ``ipfs`` across a real devstack (a requester and two
compute node processes): the requester fetches the result's blocks from the node that made
them and the client extracts them; several executions merge into one folder, or stay apart
with ``--raw``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.models import ExecutionStateType
from tests.integration.devstack import Devstack, bacalhau_command, submitted_job_id

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-data-get")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Devstack]:
    devstack = Devstack.start(tmp_path_factory.mktemp("devstack"), compute_nodes=2)
    try:
        yield devstack
    finally:
        devstack.stop()


def _published_cids(stack: Devstack, job_id: str) -> list[str]:
    executions = stack.client.get_job(job_id, executions=True).executions
    cids = []
    for e in executions:
        assert e.compute_state == ExecutionStateType.COMPLETED
        assert e.published_result is not None and e.published_result.type == "ipfs"
        cids.append(e.published_result.params["CID"])
    return cids


def test_job_get_downloads_an_ipfs_result_by_cid(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    out = stack.ok(
        "docker", "run", "-p", "ipfs", "-o", "out:/outputs", busybox_image, "--",
        "sh", "-c",
        "head -c 700000 /dev/zero | tr '\\0' a > /outputs/big.txt; mkdir /outputs/sub; "
        "echo nested > /outputs/sub/n.txt; mkdir /outputs/left-empty; "
        "echo from-stdout; echo from-stderr >&2",
    )  # fmt: skip
    job_id = submitted_job_id(out)
    [cid] = _published_cids(stack, job_id)

    got = stack.ok("job", "get", job_id, "--output-dir", str(tmp_path / "res"))
    assert str(tmp_path / "res") in got
    res = tmp_path / "res"
    assert (res / "stdout").read_text() == "from-stdout\n"
    assert (res / "stderr").read_text() == "from-stderr\n"
    assert (res / "exitCode").read_text().strip() == "0"
    assert (res / "out" / "big.txt").read_bytes() == b"a" * 700_000
    assert (res / "out" / "sub" / "n.txt").read_text() == "nested\n"
    assert (res / "out" / "left-empty").is_dir()  # an empty folder is a result too
    assert not (res / "raw").exists()

    raw = stack.ok("job", "get", job_id, "--raw", "--output-dir", str(tmp_path / "raw"))
    assert str(tmp_path / "raw") in raw
    assert (tmp_path / "raw" / "raw" / cid / "stdout").read_text() == "from-stdout\n"


def test_job_get_merges_several_ipfs_executions_or_keeps_them_apart(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    out = stack.ok(
        "docker", "run", "--count", "2", "-p", "ipfs", "-o", "out:/outputs", busybox_image,
        "--", "sh", "-c", "echo hi; echo $BACALHAU_EXECUTION_ID > /outputs/$BACALHAU_EXECUTION_ID",
    )  # fmt: skip
    job_id = submitted_job_id(out)
    cids = _published_cids(stack, job_id)
    assert len(cids) == 2 and cids[0] != cids[1]
    executions = stack.client.get_job(job_id, executions=True).executions

    stack.ok("job", "get", job_id, "--output-dir", str(tmp_path / "merged"))
    merged = tmp_path / "merged"
    assert (merged / "stdout").read_text() == "hi\nhi\n"
    assert sorted(p.name for p in (merged / "out").iterdir()) == sorted(e.id for e in executions)

    stack.ok("job", "get", job_id, "--raw", "--output-dir", str(tmp_path / "raw"))
    folders = sorted(p.name for p in (tmp_path / "raw" / "raw").iterdir())
    assert folders == sorted(cids)
    for cid in cids:
        assert (tmp_path / "raw" / "raw" / cid / "stdout").read_text() == "hi\n"
    assert not (tmp_path / "raw" / "stdout").exists()


def test_a_job_get_that_fails_leaves_the_output_folder_as_it_was(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    out = stack.ok(
        "docker", "run", "-p", "ipfs", "-o", "out:/outputs", busybox_image, "--",
        "sh", "-c", "echo kept > /outputs/k.txt; echo printed",
    )  # fmt: skip
    job_id = submitted_job_id(out)
    # A folder holding a file the results would replace: the merge is refused.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "stdout").write_text("mine\n")
    refused = stack.cli("job", "get", job_id, "--output-dir", str(busy))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["stdout"]  # no raw/ copy left behind
    assert (busy / "stdout").read_text() == "mine\n"
    # A download that cannot finish (nothing listens at the API any more for this client):
    # the folder it would have made is not left behind.
    fresh = tmp_path / "fresh" / "res"
    env = {**stack.env(), "BACALHAU_API_PORT": "1"}
    gone = subprocess.run(
        bacalhau_command("job", "get", job_id, "--output-dir", str(fresh)),
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert gone.returncode == 1
    assert not (tmp_path / "fresh").exists()
    # Twice --raw into one folder: the second keeps its own copy beside the first.
    stack.ok("job", "get", job_id, "--raw", "--output-dir", str(tmp_path / "raw"))
    stack.ok("job", "get", job_id, "--raw", "--output-dir", str(tmp_path / "raw"))
    copies = sorted(p.name for p in (tmp_path / "raw" / "raw").iterdir())
    assert len(copies) == 2 and copies[0].endswith(copies[1]), copies
