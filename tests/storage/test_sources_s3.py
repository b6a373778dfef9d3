"""The s3 input source against a real S3 server (SeaweedFS started by the fixture)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from bacalhau.errors import ExecutionFailed, UnsafePath
from bacalhau.models import SpecConfig
from bacalhau.models._s3_partition import fnv1a_32
from bacalhau.storage import Partition, S3Source
from bacalhau.storage._s3 import relative_name
from tests.publisher.seaweedfs import SECRET_KEY, S3Server


def spec(s3: S3Server, bucket: str, key: str, **params: str) -> SpecConfig:
    return SpecConfig("s3", {"Bucket": bucket, "Key": key, "Endpoint": s3.endpoint, **params})


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_prefix_glob_lays_objects_out_relative_to_the_keys_parent(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    for key in ("logs/2023-04-01.log", "logs/2023-04-02.log", "logs/2023-05-01.log"):
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())

    prepared = await S3Source().prepare(spec(s3, bucket, "logs/2023-04*"), tmp_path)

    assert prepared.read_only
    assert tree(prepared.path) == {
        "2023-04-01.log": b"logs/2023-04-01.log",
        "2023-04-02.log": b"logs/2023-04-02.log",
    }


async def test_folder_key_and_filter(s3: S3Server, creds: None, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    for key in ("data/a.csv", "data/sub/b.csv", "data/sub/c.txt", "other/d.csv"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    prepared = await S3Source().prepare(spec(s3, bucket, "data/", Filter=r"\.csv$"), tmp_path)

    assert sorted(tree(prepared.path)) == ["a.csv", "sub/b.csv"]


async def test_the_filter_reads_keys_after_the_prefix_as_bacalhaus_does(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    keys = ("data/a.txt", "data/b.csv", "data/sub/c.txt", "logs-04-01.txt", "logs-05-01.txt")
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    anchored = await S3Source().prepare(spec(s3, bucket, "data/", Filter="^b"), tmp_path / "1")
    assert sorted(tree(anchored.path)) == ["b.csv"]
    # A folder named without its slash is listed below "data/" as well (and laid out
    # below its name).
    bare = await S3Source().prepare(spec(s3, bucket, "data", Filter="^(a|b)\\."), tmp_path / "2")
    assert sorted(tree(bare.path)) == ["data/a.txt", "data/b.csv"]
    globbed = await S3Source().prepare(spec(s3, bucket, "logs-*", Filter="^04"), tmp_path / "3")
    assert sorted(tree(globbed.path)) == ["logs-04-01.txt"]
    # The prefix itself is no longer part of what the filter sees.
    with pytest.raises(ExecutionFailed, match="no object matches"):
        await S3Source().prepare(spec(s3, bucket, "data/", Filter="^data/"), tmp_path / "4")


async def test_folder_markers_become_empty_folders(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    # The object before the markers: SeaweedFS answers a PUT below an existing marker only
    # after its 60 s read timeout.
    for key, body in (("in/a.txt", b"a"), ("in/", b""), ("in/empty/", b""), ("in/deep/er/", b"")):
        client.put_object(Bucket=bucket, Key=key, Body=body)

    prepared = await S3Source().prepare(spec(s3, bucket, "in/"), tmp_path)

    assert tree(prepared.path) == {"a.txt": b"a"}
    assert (prepared.path / "empty").is_dir() and (prepared.path / "deep" / "er").is_dir()
    # Markers alone are no input: the job would see nothing at all.
    client.delete_object(Bucket=bucket, Key="in/a.txt")
    with pytest.raises(ExecutionFailed, match="no object matches"):
        await S3Source().prepare(spec(s3, bucket, "in/"), tmp_path / "again")


async def test_an_object_that_is_also_a_folder_is_named_before_any_download(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    for key in ("data/a", "data/a/b.csv", "data/c.csv"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    with pytest.raises(ExecutionFailed) as caught:
        await S3Source().prepare(spec(s3, bucket, "data/"), tmp_path)

    assert "'data/a' and object 'data/a/b.csv' cannot both be downloaded" in str(caught.value)
    assert tree(tmp_path) == {}
    narrowed = await S3Source().prepare(spec(s3, bucket, "data/", Filter=r"\.csv$"), tmp_path)
    assert sorted(tree(narrowed.path)) == ["a/b.csv", "c.csv"]


async def test_single_object_checked_against_its_sha256(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    body = b"the data" * 1000
    s3.client().put_object(Bucket=bucket, Key="in/file.bin", Body=body)
    good = base64.b64encode(hashlib.sha256(body).digest()).decode()

    (tmp_path / "ok").mkdir()
    ok = await S3Source().prepare(
        spec(s3, bucket, "in/file.bin", ChecksumSHA256=good), tmp_path / "ok"
    )
    assert tree(ok.path) == {"file.bin": body}

    (tmp_path / "bad").mkdir()
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ExecutionFailed, match="does not match its SHA-256 checksum"):
        await S3Source().prepare(
            spec(s3, bucket, "in/file.bin", ChecksumSHA256=wrong), tmp_path / "bad"
        )


async def test_missing_key_names_it(s3: S3Server, creds: None, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    with pytest.raises(ExecutionFailed, match=rf"s3://{bucket}/nope.txt: no key matches"):
        await S3Source().prepare(spec(s3, bucket, "nope.txt"), tmp_path)
    assert os.listdir(tmp_path) == []


async def test_bad_credentials_are_named(
    s3: S3Server, creds: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key="k", Body=b"x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-" + SECRET_KEY)
    with pytest.raises(ExecutionFailed, match="refused the compute node's credentials"):
        await S3Source().prepare(spec(s3, bucket, "k"), tmp_path)
    with pytest.raises(ExecutionFailed, match="refused the compute node's credentials"):
        await S3Source().prepare(spec(s3, bucket, "k*"), tmp_path)


async def test_over_the_size_limit_is_refused_before_download(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key="big/a", Body=b"x" * 600)
    s3.client().put_object(Bucket=bucket, Key="big/b", Body=b"x" * 600)
    with pytest.raises(ExecutionFailed, match="more than the limit of 1000"):
        await S3Source(max_bytes=1000).prepare(spec(s3, bucket, "big/"), tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_key_climbing_out_of_the_input_is_refused() -> None:
    assert relative_name("logs/a/b.txt", "logs/") == "a/b.txt"
    for key in ("logs/../../etc/passwd", "logs/..", "logs/"):
        with pytest.raises(UnsafePath):
            relative_name(key, "logs/")


async def test_partitions_of_a_job_share_the_objects_between_its_executions(
    s3: S3Server, creds: None, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    keys = [f"data/2024-01-{day:02d}/part.csv" for day in range(1, 11)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    # Bacalhau v1.7's date partitioning, three executions: each takes its share, together
    # all of them, and each day's object goes where FNV-1a of the day says.
    source = spec(s3, bucket, "data/")
    source.params["Partition"] = {"Type": "date", "DateFormat": "2006-01-02"}
    shares = []
    for index in range(3):
        dest = tmp_path / str(index)
        dest.mkdir()
        prepared = await S3Source().prepare_partition(source, dest, Partition(index, 3))
        shares.append(tree(prepared.path))
    assert sorted(name for share in shares for name in share) == sorted(
        k.removeprefix("data/") for k in keys
    )
    for index, share in enumerate(shares):
        for name in share:
            assert fnv1a_32(name[:10]) % 3 == index
    # A partition may get nothing (more executions than objects): an empty input, not an error.
    one = spec(s3, bucket, keys[0])
    one.params["Partition"] = {"Type": "object"}
    empty = [i for i in range(2) if fnv1a_32(keys[0]) % 2 != i]
    dest = tmp_path / "empty"
    dest.mkdir()
    prepared = await S3Source().prepare_partition(one, dest, Partition(empty[0], 2))
    assert tree(prepared.path) == {}
