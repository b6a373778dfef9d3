"""The s3managed publisher's upload, alone: a refused or unreachable upload URL fails the
publish saying which, and nothing is left in the results' folder."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bacalhau.errors import PublishFailed
from bacalhau.models import Job, SpecConfig, Task
from bacalhau.publisher import ManagedBucket, S3ManagedPublisher
from tests.publisher.seaweedfs import S3Server


def _results(tmp_path: Path) -> Path:
    out = tmp_path / "execution" / "results"
    out.mkdir(parents=True)
    (out / "stdout").write_text("hi\n")
    (out / "stderr").write_text("")
    (out / "exitCode").write_text("0")
    return out


def _job() -> Job:
    return Job(id="j-1", tasks=[Task(name="main", publisher=SpecConfig(type="s3managed"))])


def _publisher(url: str) -> S3ManagedPublisher:
    async def upload_url(job: Job, execution_id: str) -> str:
        return url

    return S3ManagedPublisher(upload_url=upload_url)


async def test_a_url_the_bucket_refuses_fails_the_publish_with_its_answer(
    tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    url = ManagedBucket(bucket=s3.new_bucket(), endpoint=s3.endpoint).upload_url("j-1", "e-1")
    tampered = url.replace("e-1.tar.gz", "e-2.tar.gz")  # signed for another key
    results = _results(tmp_path)
    with pytest.raises(PublishFailed) as err:
        await _publisher(tampered).publish("e-2", _job(), results)
    assert "refused the results (403)" in err.value.message
    assert "SignatureDoesNotMatch" in err.value.message
    assert sorted(p.name for p in results.parent.iterdir()) == ["results"]  # no archive left


async def test_an_unreachable_bucket_fails_the_publish(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    with pytest.raises(PublishFailed) as err:
        await _publisher(f"http://127.0.0.1:{port}/b/k.tar.gz?X-Amz-Signature=x").publish(
            "e-1", _job(), _results(tmp_path)
        )
    assert "uploading the results to the requester's managed bucket failed" in err.value.message
    assert "reach the bucket's endpoint" in err.value.hint


def test_the_key_is_prefix_job_and_execution() -> None:
    assert ManagedBucket(bucket="b").key("j-1", "e-1") == "j-1/e-1.tar.gz"
    assert ManagedBucket(bucket="b", prefix="/results/").key("j-1", "e-1") == (
        "results/j-1/e-1.tar.gz"
    )


def test_only_s3managed_results_are_rewritten() -> None:
    bucket = ManagedBucket(bucket="b")
    other = SpecConfig(type="local", params={"URL": "http://x"})
    assert bucket.rewrite(other) is other
    incomplete = SpecConfig(type="s3managed", params={"JobID": "j-1"})
    assert bucket.rewrite(incomplete) is incomplete
