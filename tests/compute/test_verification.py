"""The compute side of verified jobs: replicas see one partition, Docker ones bid only on the
operator's deterministic images, and a faulty node alters its results."""

from __future__ import annotations

from pathlib import Path

from bacalhau.compute import BidRequest, DeterministicImages, corrupt_results
from bacalhau.compute._envvars import execution_environment
from bacalhau.compute._verification import FAULTY_MARK
from bacalhau.models import VERIFICATION_META_KEY, Execution, Job, Resources


def _job(engine: dict[str, object], *, verified: bool, count: int = 3) -> Job:
    job = Job.from_dict(
        {"ID": "j-1", "Type": "batch", "Count": count, "Tasks": [{"Name": "m", "Engine": engine}]}
    )
    if verified:
        # What a compute node receives: the bprotocol job carries the system meta key.
        job.meta[VERIFICATION_META_KEY] = "majority"
    return job


def test_every_replica_sees_one_partition() -> None:
    job = _job({"Type": "docker", "Params": {"Image": "x"}}, verified=True)
    for index in (0, 1, 2):
        ex = Execution(id=f"e-{index}", job_id="j-1", node_id="n")
        env = execution_environment(ex, job, node_id="n", allow_list=(), host_env={})
        assert (env["BACALHAU_PARTITION_INDEX"], env["BACALHAU_PARTITION_COUNT"]) == ("0", "1")
    unverified = _job({"Type": "docker", "Params": {"Image": "x"}}, verified=False)
    env = execution_environment(
        Execution(id="e", job_id="j-1", node_id="n"), unverified, node_id="n", allow_list=(),
        host_env={},
    )  # fmt: skip
    assert env["BACALHAU_PARTITION_COUNT"] == "3"


async def test_verified_docker_jobs_only_on_deterministic_images() -> None:
    strategy = DeterministicImages(["local/busybox:1.37", "local/tools:*"])

    async def verdict(image: str, *, verified: bool = True) -> tuple[bool, str]:
        job = _job({"Type": "docker", "Params": {"Image": image}}, verified=verified)
        answer = await strategy.evaluate(BidRequest("n", job, Resources()))
        return answer.should_bid, answer.reason

    assert (await verdict("local/busybox:1.37"))[0]
    assert (await verdict("local/tools:2"))[0]
    refused, reason = await verdict("ubuntu:24.04")
    assert not refused
    assert "'ubuntu:24.04'" in reason and "deterministic_images" in reason
    assert (await verdict("ubuntu:24.04", verified=False))[0]  # unverified: not its business
    wasm = _job({"Type": "wasm", "Params": {}}, verified=True)
    assert (await strategy.evaluate(BidRequest("n", wasm, Resources()))).should_bid


def test_a_faulty_node_alters_the_first_output_file(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_text("4 words\n")
    (tmp_path / "exitCode").write_text("0")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "counts.txt").write_text("total 4\n")
    assert corrupt_results(tmp_path) == tmp_path / "out" / "counts.txt"
    assert (tmp_path / "out" / "counts.txt").read_bytes() == b"total 4\n" + FAULTY_MARK
    assert (tmp_path / "stdout").read_text() == "4 words\n"


def test_without_outputs_a_faulty_node_alters_stdout(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_text("hi\n")
    assert corrupt_results(tmp_path) == tmp_path / "stdout"
    assert (tmp_path / "stdout").read_bytes() == b"hi\n" + FAULTY_MARK
