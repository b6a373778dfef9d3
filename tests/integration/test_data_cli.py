"""Data across a real devstack (a requester and two compute node processes): ``bacalhau data``
round trips through the requester; a chained pipeline runs where job 1's result is, and
fetches it across nodes by block exchange when forced elsewhere; a large local WASM module
is stored by CID instead of inlined."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacalhau.client import content_cid
from bacalhau.models import ExecutionStateType
from tests.integration.devstack import Devstack, eventually, submitted_job_id

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-data-cli")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Devstack]:
    devstack = Devstack.start(
        tmp_path_factory.mktemp("devstack"), compute_nodes=2, config=["ipfs_fetch_timeout=5"]
    )
    try:
        yield devstack
    finally:
        devstack.stop()


def test_data_add_get_ls_round_trip_through_the_cli(stack: Devstack, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(700_000))
    (src / "sub" / "note.txt").write_text("hello data\n")

    only = stack.ok("data", "add", "--only-hash", str(src)).strip()
    assert only == content_cid(src)
    cid = stack.ok("data", "add", str(src)).strip()
    assert cid == only
    v1 = stack.ok("data", "add", "--cid-version", "1", str(src)).strip()
    assert v1 == content_cid(src, cid_version=1) and v1.startswith("bafy")

    listing = stack.ok("data", "ls", cid)
    assert "big.bin" in listing and "sub" in listing and "directory" in listing

    out = tmp_path / "out"
    stack.ok("data", "get", cid, "-o", str(out))
    assert (out / cid / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert (out / cid / "sub" / "note.txt").read_text() == "hello data\n"
    stack.ok("data", "get", cid, "-o", str(out), "--car")
    assert (out / f"{cid}.car").stat().st_size > 700_000

    # Uploaded content is readable by jobs: a compute node fetches it from the requester.
    job = stack.ok(
        "docker", "run", "-i", f"ipfs://{cid}:/in", "local/busybox:1.37", "--",
        "cat", "/in/sub/note.txt",
    )  # fmt: skip
    assert "hello data" in job

    # A CID no node has fails naming the cause.
    absent = content_cid(tmp_path / "out" / f"{cid}.car")
    done = stack.cli("data", "get", absent, "-o", str(tmp_path / "none"))
    assert done.returncode != 0
    assert "not found in the cluster after" in done.stdout + done.stderr


def test_data_get_leaves_out_a_link_pointing_outside_and_writes_the_rest(
    stack: Devstack, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("one\n")
    (src / "sub" / "b.txt").write_text("two\n")
    (src / "link").symlink_to("/etc/passwd")
    (src / "near").symlink_to("a.txt")
    cid = stack.ok("data", "add", str(src)).strip()
    out = tmp_path / "out"
    done = stack.cli("data", "get", cid, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "Warning: 1 entries were not created:" in done.stderr and "link" in done.stderr
    got = out / cid
    assert (got / "a.txt").read_text() == "one\n"
    assert (got / "sub" / "b.txt").read_text() == "two\n"
    assert (got / "near").is_symlink() and (got / "near").read_text() == "one\n"
    assert not (got / "link").exists() and not (got / "link").is_symlink()


def _node_of(stack: Devstack, job_id: str) -> str:
    [execution] = stack.client.get_job(job_id, executions=True).executions
    assert execution.compute_state == ExecutionStateType.COMPLETED
    return execution.node_id


def test_a_chained_job_runs_where_the_result_is_or_fetches_it(
    stack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    first = stack.ok(
        "docker", "run", "-p", "ipfs", "-o", "out:/outputs", busybox_image, "--",
        "sh", "-c", "head -c 3000000 /dev/urandom > /outputs/blob; echo chained > /outputs/msg",
    )  # fmt: skip
    job1 = submitted_job_id(first)
    holder = _node_of(stack, job1)
    [execution] = stack.client.get_job(job1, executions=True).executions
    assert execution.published_result is not None
    cid = execution.published_result.params["CID"]

    # The producing node advertises the result in its gossip record.
    def advertised() -> bool:
        compute = stack.client.get_node(holder).info.compute
        return compute is not None and cid in compute.held_roots

    eventually(advertised, timeout=10, what="the result advertised by its node")

    # A path inside the result, listed and got through the requester, which fetches the
    # folders on the way (and then the file) from the node that holds them.
    assert "msg" in stack.ok("data", "ls", f"{cid}/out") and "blob" in stack.ok(
        "data", "ls", f"{cid}/out"
    )
    got = Path(stack.ok("data", "get", f"{cid}/out/msg", "-o", str(tmp_path)).strip())
    assert got == tmp_path / "msg" and got.read_text() == "chained\n"

    # By default job 2 goes where the data is (several times: not by chance).
    for _ in range(3):
        second = stack.ok(
            "docker", "run", "-i", f"ipfs://{cid}/out:/data", busybox_image, "--",
            "cat", "/data/msg",
        )  # fmt: skip
        assert "chained" in second
        assert _node_of(stack, submitted_job_id(second)) == holder

    # Forced onto the other node, it fetches the result from the holder by block exchange.
    other = next(n for n in stack.compute if n.node_id != holder)
    forced = stack.ok(
        "docker", "run", "-s", f"name={other.name}", "-i", f"ipfs://{cid}:/data",
        busybox_image, "--", "sh", "-c", "cat /data/out/msg; wc -c < /data/out/blob",
    )  # fmt: skip
    assert _node_of(stack, submitted_job_id(forced)) == other.node_id
    assert "chained" in forced and "3000000" in forced


def test_a_large_local_wasm_module_is_stored_by_cid(
    stack: Devstack, wasm_modules: Path, tmp_path: Path
) -> None:
    # A valid module made larger than the inline limit by a custom section (id 0).
    module = tmp_path / "big-cat.wasm"
    shutil.copy(wasm_modules / "cat.wasm", module)
    name, payload = b"padding", os.urandom(1_500_000)
    body = bytes([len(name)]) + name + payload
    size, leb = len(body), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        leb.append(byte | (0x80 if size else 0))
        if not size:
            break
    with module.open("ab") as fh:
        fh.write(b"\x00" + bytes(leb) + body)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "msg.txt").write_text("from a stored module\n")
    data = stack.ok("data", "add", str(tmp_path / "in" / "msg.txt")).strip()

    out = stack.ok("wasm", "run", "-v", f"{data}:/data/msg.txt", str(module), "--", "/data/msg.txt")
    assert "from a stored module" in out
    job = stack.client.get_job(submitted_job_id(out)).job
    entry = job.task.engine.params["EntryModule"]
    assert entry["Source"]["Type"] == "ipfs"
    assert entry["Source"]["Params"]["CID"] == content_cid(module)


def test_a_job_whose_input_no_node_holds_fails_after_one_look(
    stack: Devstack, tmp_path: Path
) -> None:
    lonely = tmp_path / "lonely.txt"
    lonely.write_bytes(os.urandom(64))
    absent = content_cid(lonely)  # never added anywhere
    done = stack.cli(
        "docker", "run", "-i", f"ipfs://{absent}:/in", "local/busybox:1.37", "--", "ls", "/in",
    )  # fmt: skip
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "input is in no node of the cluster" in said, said
    assert "every member of the cluster was asked" in said
    # Its node asked every member, each answered: the other compute node is not tried (one
    # look of ipfs_fetch_timeout, not one per node).
    executions = stack.client.get_job(submitted_job_id(done.stdout), executions=True).executions
    assert len(executions) == 1, [(e.node_id, e.compute_message) for e in executions]
