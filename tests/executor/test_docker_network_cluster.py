"""Network policy through a real cluster: ``--network http --domain ...`` from the CLI to a
compute node that accepts networked jobs (its proxy serves the allowed address, refuses any
other), and a node that does not accept them refusing the bid with the reason. A Bacalhau job
file with ``Network.Ports`` runs and sees its ports; one whose static port is taken on the
node is refused at the bid, saying which.

The "allowed domain" is a local HTTP server on the address of Docker's default bridge, named
by its IP in the allow-list, so that the node's own resolver needs no lookup and nothing leaves
the machine. The client in the container is busybox ``nc`` speaking to ``$http_proxy``.
"""

from __future__ import annotations

import http.server
import ipaddress
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from bacalhau.models import JobStateType
from tests.compute.test_ports import free_run
from tests.integration.devstack import Devstack, submitted_job_id

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-network")]

BODY = b"served to an allowed job"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[tuple[str, int]]:
    """A server on the host's address on Docker's default bridge."""
    config = docker.from_env().api.inspect_network("bridge")["IPAM"]["Config"][0]
    # Docker gives the bridge's own address the first host of its subnet unless told otherwise.
    address = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    server = http.server.ThreadingHTTPServer((address, 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield address, server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def networked_devstack(
    tmp_path_factory: pytest.TempPathFactory, busybox_image: str
) -> Iterator[Devstack]:
    stack = Devstack.start(
        tmp_path_factory.mktemp("networked"),
        compute_nodes=1,
        config=["JobAdmissionControl.AcceptNetworkedJobs=true"],
    )
    try:
        yield stack
    finally:
        stack.stop()


def _through_proxy(address: str, port: int) -> str:
    return (
        "p=${http_proxy#http://}; "
        f"printf 'GET http://{address}:{port}/ HTTP/1.0\\r\\n\\r\\n'"
        " | busybox nc -w 5 ${p%:*} ${p##*:}"
    )


def test_http_job_reaches_its_allowed_address_through_the_node_proxy(
    networked_devstack: Devstack, busybox_image: str, origin: tuple[str, int]
) -> None:
    address, port = origin
    out = networked_devstack.ok(
        "docker", "run", "--network", "http", "--domain", address,
        busybox_image, "--", "sh", "-c", _through_proxy(address, port),
    )  # fmt: skip
    assert BODY.decode() in out


def test_http_job_is_refused_by_the_proxy_for_an_address_not_allowed(
    networked_devstack: Devstack, busybox_image: str, origin: tuple[str, int]
) -> None:
    address, port = origin
    out = networked_devstack.ok(
        "docker", "run", "--network", "http", "--domain", "only.example",
        busybox_image, "--", "sh", "-c", _through_proxy(address, port),
    )  # fmt: skip
    assert "403 Forbidden" in out
    assert BODY.decode() not in out


def test_node_not_accepting_networked_jobs_refuses_the_bid_saying_why(
    tmp_path: Path, busybox_image: str
) -> None:
    stack = Devstack.start(tmp_path / "closed", compute_nodes=1)
    try:
        run = stack.cli(
            "docker", "run", "--network", "http", "--domain", "example.com",
            busybox_image, "--", "true",
        )  # fmt: skip
        assert run.returncode != 0
        job = stack.client.get_job(submitted_job_id(run.stdout + run.stderr)).job
        assert job.state == JobStateType.FAILED
        assert "does not accept jobs that require network access" in (
            job.state_message + run.stdout + run.stderr
        )
    finally:
        stack.stop()


_PORTS_JOB = """
Name: ports
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: {image}
        Entrypoint:
          - sh
          - -c
          - >-
            echo "web=$BACALHAU_HOST_PORT_web:$BACALHAU_PORT_web
            admin=$BACALHAU_HOST_PORT_admin:$BACALHAU_PORT_admin"
    Network:
      Type: Bridge
      Ports:
        - Name: web
          Target: 8080
        - Name: admin
          Static: {static}
          HostNetwork: 127.0.0.1
"""


def _ports_job(tmp_path: Path, image: str, static: int) -> Path:
    path = tmp_path / f"ports-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(_PORTS_JOB.format(image=image, static=static))
    return path


def test_a_job_file_with_ports_runs_and_sees_them(
    networked_devstack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    static = free_run(1)
    out = networked_devstack.ok("job", "run", str(_ports_job(tmp_path, busybox_image, static)))
    found = re.search(r"web=(\d+):8080 admin=(\d+):(\d+)", out)
    assert found, out
    web, admin, admin_target = (int(g) for g in found.groups())
    assert 20000 <= web <= 32000  # the node's default range
    assert admin == admin_target == static


def test_a_static_port_taken_on_the_node_is_refused_at_the_bid(
    networked_devstack: Devstack, busybox_image: str, tmp_path: Path
) -> None:
    static = free_run(1)
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", static))
        holder.listen()
        run = networked_devstack.cli("job", "run", str(_ports_job(tmp_path, busybox_image, static)))
    assert run.returncode != 0
    job = networked_devstack.client.get_job(submitted_job_id(run.stdout + run.stderr)).job
    assert job.state == JobStateType.FAILED
    assert f"does not have port {static} free" in job.state_message + run.stdout + run.stderr
