"""A real Docker registry on loopback for the pull tests: Debian's ``docker-registry``
(the CNCF distribution server), installed by scripts/setup.sh.

The Docker engine treats a registry on 127.0.0.0/8 as insecure (plain HTTP) without any
configuration, so a test pushes a local image to it and has a node pull it back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_CONFIG = """\
version: 0.1
log:
  level: info  # the access log, read by manifest_checks()
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


@dataclass
class Registry:
    """A running registry and the images pushed to it (removed from the engine at the end)."""

    host: str
    process: subprocess.Popen[bytes]
    log: Path

    def push(self, local_image: str) -> str:
        """Push ``local_image`` under a fresh name; returns that name. The engine keeps no
        image of that name, so a node that runs it must pull it."""
        name = f"{self.host}/pulled-{uuid.uuid4().hex[:8]}:1.0"
        _docker("tag", local_image, name)
        try:
            _docker("push", name)
        finally:
            _docker("rmi", name)
        return name

    def manifest_checks(self, image: str) -> int:
        """How many times the registry was asked whether it has ``image`` (the HEAD of its
        manifest, as the engine's distribution lookup makes it), from its access log."""
        repo, _, tag = image.removeprefix(f"{self.host}/").rpartition(":")
        asked = f'"HEAD /v2/{repo}/manifests/{tag} '
        return sum(asked in line for line in self.log.read_text().splitlines())

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def local_registry(root: Path) -> Iterator[Registry]:
    """A registry storing under ``root``, stopped (and what was pulled from it removed from
    the engine) at the end."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed: run scripts/setup.sh")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "registry.yml"
    config.write_text(_CONFIG.format(root=root / "data", port=port))
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    registry = Registry(host=f"127.0.0.1:{port}", process=process, log=root / "registry.log")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://{registry.host}/v2/", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the registry did not start: {(root / 'registry.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield registry
    finally:
        if process.poll() is None:
            registry.stop()
        log.close()
        # By name: a pulled image shares its ID with the local image it was pushed from.
        pulled = subprocess.run(
            [
                "docker",
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                f"reference={registry.host}/*",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if pulled:
            subprocess.run(["docker", "rmi", *pulled], capture_output=True, check=False)
