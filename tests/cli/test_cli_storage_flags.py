"""``-i``, ``-p`` and ``-l`` written as Bacalhau's documents write them, and what a script
reads from ``--wait=false``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.cli.conftest import Cli


def dry_task(bacalhau: Cli, *flags: str) -> dict[str, Any]:
    result = bacalhau(["docker", "run", "--dry-run", *flags, "busybox", "--", "true"])
    assert result.exit_code == 0, result.output
    task: dict[str, Any] = yaml.safe_load(result.stdout)["Tasks"][0]
    return task


@pytest.mark.parametrize(
    ("flag", "source", "target"),
    [
        # Bacalhau's S3 page: URI:target, then an option after a comma.
        (
            "s3://noaa-goes16/ABI-L1b-RadC/2000/001/12/OR_ABI*:/inputs,opt=region=us-east-1",
            {
                "Bucket": "noaa-goes16",
                "Key": "ABI-L1b-RadC/2000/001/12/OR_ABI*",
                "Region": "us-east-1",
            },
            "/inputs",
        ),
        (
            "s3://b/key.txt,opt=region=eu-west-1,opt=endpoint=http://127.0.0.1:9000",
            {
                "Bucket": "b",
                "Key": "key.txt",
                "Region": "eu-west-1",
                "Endpoint": "http://127.0.0.1:9000",
            },
            "/inputs",
        ),
        (
            "s3://b/k,dst=/data,opt=versionID=v1",
            {"Bucket": "b", "Key": "k", "VersionID": "v1"},
            "/data",
        ),
        ("src=s3://b/k,dst=/d,opt=region=eu", {"Bucket": "b", "Key": "k", "Region": "eu"}, "/d"),
        ("file:///tmp/x,dst=/data", {"SourcePath": "/tmp/x", "ReadWrite": False}, "/data"),
        ("file:///tmp/x:/data,opt=rw=true", {"SourcePath": "/tmp/x", "ReadWrite": True}, "/data"),
        ("https://h:8080/a.csv", {"URL": "https://h:8080/a.csv"}, "/inputs"),
        ("https://h/a.csv:/data/a.csv", {"URL": "https://h/a.csv"}, "/data/a.csv"),
    ],
)
def test_inputs_as_bacalhau_reads_them(
    bacalhau: Cli, flag: str, source: dict[str, Any], target: str
) -> None:
    (given,) = dry_task(bacalhau, "-i", flag)["InputSources"]
    assert given["Source"]["Params"] == source
    assert given["Target"] == target


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        ("s3://b/k,opt=bogus=1", "unknown option 'bogus' for storage s3"),
        ("s3://b/k,/inputs", "it must be a key=value pair"),
        ("s3://b/k,where=/x", "unknown key 'where'"),
    ],
)
def test_bad_inputs_are_usage_errors(bacalhau: Cli, flag: str, problem: str) -> None:
    result = bacalhau(["docker", "run", "-i", flag, "busybox"])
    assert result.exit_code == 2 and problem in result.stderr, result.output


@pytest.mark.parametrize(
    ("flag", "publisher"),
    [
        ("local", {"Type": "local"}),
        ("target=local", {"Type": "local"}),
        ("dst=ipfs", {"Type": "ipfs"}),
        ("destination=s3managed", {"Type": "s3managed"}),
        (
            "dst=s3://b/out,opt=region=eu-west-1",
            {"Type": "s3", "Params": {"Bucket": "b", "Key": "out", "Region": "eu-west-1"}},
        ),
        (
            "s3://b/out,opt=encoding=plain",
            {"Type": "s3", "Params": {"Bucket": "b", "Key": "out", "Encoding": "plain"}},
        ),
    ],
)
def test_publishers_as_bacalhau_reads_them(
    bacalhau: Cli, flag: str, publisher: dict[str, Any]
) -> None:
    given = dry_task(bacalhau, "-p", flag)["Publisher"]
    assert {k: v for k, v in given.items() if v} == publisher


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        ("foo", "unknown publisher type: 'foo'"),
        ("type=local", "unknown key 'type'"),
        ("ftp://x/y", "unknown publisher type: 'ftp'"),
    ],
)
def test_unknown_publishers_are_usage_errors(bacalhau: Cli, flag: str, problem: str) -> None:
    result = bacalhau(["docker", "run", "-p", flag, "busybox"])
    assert result.exit_code == 2 and problem in result.stderr, result.output


def test_a_label_without_a_value_is_an_empty_one(bacalhau: Cli) -> None:
    result = bacalhau(["docker", "run", "--dry-run", "-l", "team", "-l", "env=prod", "busybox"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["Labels"] == {"team": "", "env": "prod"}


def test_wait_false_prints_the_job_id_alone(bacalhau: Cli) -> None:
    result = bacalhau(["docker", "run", "--wait=false", "busybox", "--", "echo", "x"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.startswith("j-")
    assert f"bacalhau job describe {line}" in result.stderr


def test_bacalhau_1_0_run_flags(bacalhau: Cli) -> None:
    args = ["docker", "run", "--dry-run", "--verifier", "deterministic", "--min-bids", "2"]
    args += ["--output-volumes", "out:/outputs", "--skip-syntax-checking", "busybox"]
    result = bacalhau(args)
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    assert job["Verification"] == {"Mode": "majority"}
    assert job["Tasks"][0]["ResultPaths"] == [{"Name": "out", "Path": "/outputs"}]
    assert "Flag --verifier is deprecated: use --verify" in result.stderr
    assert "Flag --min-bids is deprecated and has no effect" in result.stderr
    noop = bacalhau(["docker", "run", "--dry-run", "--verifier", "noop", "busybox"])
    assert "Verification" not in yaml.safe_load(noop.stdout)
    bad = bacalhau(["docker", "run", "--verifier", "magic", "busybox"])
    assert bad.exit_code == 2 and "unknown verifier 'magic'" in bad.stderr
