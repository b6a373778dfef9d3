"""The s3 publisher against a real S3 server (SeaweedFS), and pre-signed result downloads."""

from __future__ import annotations

import datetime
import gzip
import io
import os
import tarfile
from pathlib import Path

import aiohttp
import pytest

from bacalhau.client import ResultOverwritten
from bacalhau.client._fetch import RestFetcher, fetch_results
from bacalhau.client._transport import Transport
from bacalhau.errors import InvalidJobSpec, PublishFailed
from bacalhau.models import Job, SpecConfig, Task
from bacalhau.publisher import S3Publisher, presign_result, render_key, results_cid
from bacalhau.storage.cid import Importer
from tests.publisher.seaweedfs import SECRET_KEY, S3Server
from tests.storage.opens import count_opens

NODE = "12D3KooWNodeForTests"


def make_results(tmp_path: Path) -> Path:
    results = tmp_path / "e-1"
    (results / "out" / "deep").mkdir(parents=True)
    (results / "stdout").write_text("hello\n")
    (results / "stderr").write_text("")
    (results / "exitCode").write_text("0")
    (results / "out" / "deep" / "r.txt").write_text("42")
    return results


def job(s3: S3Server, bucket: str, key: str, **params: object) -> Job:
    publisher = SpecConfig("s3", {"Bucket": bucket, "Key": key, "Endpoint": s3.endpoint, **params})
    return Job(id="j-1234", tasks=[Task(name="main", publisher=publisher)])


def test_key_templates() -> None:
    now = datetime.datetime(2026, 11, 30, 8, 5, 9, tzinfo=datetime.UTC)
    key = render_key(
        "r/{jobID}/{executionID}-{nodeID}/{date}T{time}",
        job_id="j-1",
        execution_id="e-2",
        node_id="n-3",
        now=now,
    )
    assert key == "r/j-1/e-2-n-3/20261130T080509"


async def test_archive_upload_records_key_and_cid_and_presigns(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    results = make_results(tmp_path)
    spec = await S3Publisher(node_id=NODE).publish(
        "e-1", job(s3, bucket, "results/{jobID}/{executionID}"), results
    )
    key = "results/j-1234/e-1.tar.gz"
    assert spec.type == "s3" and spec.params["Encoding"] == "gzip"
    assert spec.params["Bucket"] == bucket and spec.params["Key"] == key
    assert spec.params["CID"] == results_cid(results)

    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        assert sorted(tar.getnames()) == [
            "exitCode", "out", "out/deep", "out/deep/r.txt", "stderr", "stdout",
        ]  # fmt: skip

    signed = presign_result(spec)
    assert signed.type == "s3PreSigned"
    async with aiohttp.ClientSession() as http, http.get(signed.params["PreSignedURL"]) as resp:
        assert resp.status == 200
        assert await resp.read() == body


@pytest.mark.parametrize("how", [{"Compress": "false"}, {"Encoding": "plain"}])
async def test_plain_objects(
    s3: S3Server, creds: None, tmp_path: Path, how: dict[str, str]
) -> None:
    # Bacalhau v1.7 says Encoding: plain; Compress: false is our older spelling.
    bucket = s3.new_bucket()
    results = make_results(tmp_path)
    spec = await S3Publisher(node_id=NODE).publish(
        "e-1", job(s3, bucket, "plain/{jobID}", **how), results
    )
    assert spec.params["Key"] == "plain/j-1234/" and spec.params["Compress"] is False
    assert spec.params["Encoding"] == "plain"
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="plain/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        "plain/j-1234/exitCode",
        "plain/j-1234/out/deep/r.txt",
        "plain/j-1234/stderr",
        "plain/j-1234/stdout",
    ]
    # Plain results are not one object: they keep their s3 form for the client to list.
    assert presign_result(spec) == spec


async def test_bad_credentials_fail_naming_the_cause(
    s3: S3Server, creds: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.new_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-" + SECRET_KEY)
    with pytest.raises(PublishFailed, match="refused the compute node's credentials"):
        await S3Publisher(node_id=NODE).publish("e-1", job(s3, bucket, "k"), make_results(tmp_path))


async def test_missing_bucket_or_key_is_refused(s3: S3Server) -> None:
    with pytest.raises(Exception, match="needs Key"):
        await S3Publisher(node_id=NODE).validate(SpecConfig("s3", {"Bucket": "b"}))


def make_large_results(tmp_path: Path) -> Path:
    """Results with a file past boto3's multipart threshold (8 MiB), a hidden file and an
    empty one."""
    results = make_results(tmp_path)
    (results / "out" / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024 + 5))
    (results / "out" / ".hidden").write_text("published, not in the CID")
    return results


def regular_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


async def test_plain_upload_and_cid_come_from_one_read_of_each_file(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    results = make_large_results(tmp_path)
    with count_opens(results) as opens:
        spec = await S3Publisher(node_id=NODE).publish(
            "e-1", job(s3, bucket, "once/{jobID}", Compress="false"), results
        )
    assert dict(opens) == dict.fromkeys(regular_files(results), 1)
    assert spec.params["CID"] == str(Importer(None).add_path(results).cid)
    client = s3.client()
    for rel in regular_files(results):
        body = client.get_object(Bucket=bucket, Key=f"once/j-1234/{rel}")["Body"].read()
        assert body == (results / rel).read_bytes(), rel


async def test_archive_upload_and_cid_come_from_one_read_of_each_file(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    results = make_large_results(tmp_path)
    with count_opens(results) as opens:
        spec = await S3Publisher(node_id=NODE).publish(
            "e-1", job(s3, bucket, "once/{jobID}"), results
        )
    assert dict(opens) == dict.fromkeys(regular_files(results), 1)
    assert spec.params["CID"] == str(Importer(None).add_path(results).cid)


async def test_an_unknown_encoding_is_refused() -> None:
    spec = SpecConfig("s3", {"Bucket": "b", "Key": "k", "Encoding": "zstd"})
    with pytest.raises(InvalidJobSpec) as err:
        await S3Publisher(node_id=NODE).validate(spec)
    assert err.value.field == "Publisher.Params.Encoding"


async def test_a_result_another_execution_overwrote_is_refused_at_download(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    publisher = S3Publisher(node_id=NODE)
    first_dir, second_dir = make_results(tmp_path / "a"), make_results(tmp_path / "b")
    (second_dir / "stdout").write_text("another execution's\n")
    # A key without {executionID}: the second execution overwrites the first one's result.
    first = await publisher.publish("e-1", job(s3, bucket, "shared/result"), first_dir)
    second = await publisher.publish("e-2", job(s3, bucket, "shared/result"), second_dir)
    assert first.params["Key"] == second.params["Key"]
    assert first.params["CID"] != second.params["CID"]

    transport = Transport("http://127.0.0.1:9")  # the API is not asked: results come from S3
    try:
        for n, spec in enumerate((presign_result(first), first)):  # a URL, the client's keys
            raw = tmp_path / f"raw-{n}"
            raw.mkdir()
            with pytest.raises(ResultOverwritten, match="was overwritten") as caught:
                await fetch_results(RestFetcher(transport), [spec], raw, set(), timeout=30)
            assert second.params["CID"] in caught.value.message
            assert "{executionID}" in (caught.value.hint or "")
        raw = tmp_path / "raw-latest"
        raw.mkdir()
        [got] = await fetch_results(
            RestFetcher(transport), [presign_result(second)], raw, set(), timeout=30
        )
        assert got.exists()
    finally:
        await transport.close()
