"""The README's cluster by hand on two hosts, with nothing but the documented flags: a
requester started on a fresh data dir (no TLS files, no ``--advertise-host``, bound to every
interface) on host ``a``, and a compute node on host ``b`` joining it with a join token
through ``a``'s address, also without ``--advertise-host``.

Each host is a network namespace of its own (``netns.py``): ``127.0.0.1`` on one is not the
other. A requester used to certify itself for its host name and loopback only (a token join
through its address then failed host name verification), and nodes gave out ``127.0.0.1``
(the other host then probed its own loopback, and a healthy node kept dying). Now each
certifies itself for its addresses and gives one out, and the cluster stays whole.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.devstack import eventually, node_env
from tests.integration.netns import HUB, PrivateNetwork, root_skip_reason

pytestmark = [pytest.mark.integration]

GRPC_PORT = 4222
API_PORT = 1234
#: Gossip a little faster than the defaults, so that a member given out at an address the
#: other host cannot reach is suspected within the test's few seconds.
FAST = ["-c", "gossip.probe_interval=0.3", "-c", "gossip.probe_timeout=0.1"]


def _serve(net: PrivateNetwork, host: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return net.popen(
            host,
            [sys.executable, "-m", "bacalhau", "serve", *FAST, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=node_env(),
        )


def _cli(net: PrivateNetwork, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACALHAU_")}
    env.update(BACALHAU_API_HOST=net.address("a"), BACALHAU_API_PORT=str(API_PORT))
    done = net.run(HUB, [sys.executable, "-m", "bacalhau", *args], env=env)
    return json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None


def _debug(net: PrivateNetwork) -> dict[str, Any]:
    code = (
        "import json, urllib.request; print(urllib.request.urlopen("
        f"'http://{net.address('a')}:{API_PORT}/api/v1/agent/debug', timeout=5).read().decode())"
    )
    done = net.run(HUB, [sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)["Gossip"]["Metrics"]
    assert isinstance(metrics, dict)
    return metrics


def test_a_requester_and_a_token_joined_node_on_two_hosts_find_and_keep_each_other(
    tmp_path: Path,
) -> None:
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    token = secrets.token_urlsafe(24)
    with PrivateNetwork(["a", "b"]) as net:
        requester_log, compute_log = tmp_path / "a.log", tmp_path / "b.log"
        requester = _serve(
            net, "a", requester_log,
            "--orchestrator", "--data-dir", str(tmp_path / "a"), "--grpc-port", str(GRPC_PORT),
            "--api-port", str(API_PORT), "--api-grpc-port", "0",
            "-c", f"Orchestrator.Auth.Token={token}",
        )  # fmt: skip
        compute: subprocess.Popen[bytes] | None = None
        try:
            eventually(
                lambda: "bprotocol:" in requester_log.read_text() or requester.poll() is not None,
                timeout=60,
                what=f"the requester's start:\n{requester_log.read_text()}",
            )
            said = requester_log.read_text()
            assert requester.poll() is None, said
            assert f"bprotocol: {net.address('a')}:{GRPC_PORT}" in said, said
            assert net.address("a") in said.split("certified itself for", 1)[1].split("\n")[0]

            compute = _serve(
                net, "b", compute_log,
                "--compute", "--data-dir", str(tmp_path / "b"), "--engines", "noop",
                "-c", f"Compute.Orchestrators=nats://{net.address('a')}:{GRPC_PORT}",
                "-c", f"Compute.Auth.Token={token}",
            )  # fmt: skip

            def compute_node() -> dict[str, Any] | None:
                nodes = _cli(net, "node", "list", "--output", "json") or []
                found = [n for n in nodes if n["Info"]["NodeType"] == "Compute"]
                return found[0] if found and found[0]["Connection"] == "CONNECTED" else None

            node = eventually(
                compute_node,
                timeout=60,
                what=f"the compute node joining:\n{compute_log.read_text()[-3000:]}",
            )
            assert node["Addresses"]["GRPC"] == f"{net.address('b')}:{GRPC_PORT}", node

            # Each probes the other where it said it is: nobody is suspected or refutes.
            time.sleep(6)
            gossip = _debug(net)
            assert gossip.get("deaths", 0) == 0 and gossip.get("refutations", 0) == 0, gossip
            assert gossip.get("probes", 0) > 0, gossip
            assert compute_node() is not None

            # And work goes both ways: an ask to the node, its result back.
            job = tmp_path / "job.json"
            job.write_text(
                json.dumps(
                    {"Type": "batch", "Count": 1,
                     "Tasks": [{"Name": "main", "Engine": {"Type": "noop",
                                                             "Params": {"Stdout": "on b"}}}]}
                )
            )  # fmt: skip
            env = {k: v for k, v in os.environ.items() if not k.startswith("BACALHAU_")}
            env.update(BACALHAU_API_HOST=net.address("a"), BACALHAU_API_PORT=str(API_PORT))
            ran = net.run(HUB, [sys.executable, "-m", "bacalhau", "job", "run", str(job)], env=env)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert "on b" in ran.stdout
        finally:
            for process in (compute, requester):
                if process is not None and process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            print(f"--- a ---\n{requester_log.read_text()[-3000:]}")
            if compute_log.exists():
                print(f"--- b ---\n{compute_log.read_text()[-3000:]}")
