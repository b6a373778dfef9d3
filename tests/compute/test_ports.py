"""Host ports for ``Network.Ports``: the allocator (range, static ports, the host's own
listeners, exhaustion, release), the bid check, the environment, and the pipeline holding
ports exactly while an execution runs, whatever ends it. Real sockets, a real store and a
real (shell) executor."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bacalhau.compute import (
    BidRequest,
    ExecutionPipeline,
    ExecutionStore,
    LocalExecution,
    PortAllocator,
    PortsAvailable,
    host_port_free,
)
from bacalhau.compute._envvars import execution_environment
from bacalhau.errors import ExecutionFailed
from bacalhau.models import (
    Execution,
    LocalExecutionState,
    NetworkConfig,
    NetworkType,
    PortMapping,
    Resources,
)
from tests.compute.jobs import make_execution
from tests.compute.shell_executor import ShellExecutor
from tests.compute.waiting import eventually

L = LocalExecutionState
BRIDGE, HOST = NetworkType.BRIDGE, NetworkType.HOST


def free_run(n: int) -> int:
    """The first of ``n`` consecutive ports free on this host (random, inside the default
    range, so that parallel tests rarely meet)."""
    for _ in range(500):
        first = random.randint(21000, 31000 - n)
        if all(host_port_free(p) for p in range(first, first + n)):
            return first
    raise AssertionError(f"no {n} consecutive free ports")


@contextmanager
def listening(port: int, address: str = "0.0.0.0") -> Iterator[socket.socket]:
    """A real listener holding ``port``, as another program on the node would."""
    sock = socket.socket()
    sock.bind((address, port))
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


def net(kind: NetworkType, *ports: PortMapping) -> NetworkConfig:
    return NetworkConfig(type=kind, ports=list(ports))


def test_dynamic_ports_come_from_the_range_once_each() -> None:
    first = free_run(4)
    ports = PortAllocator(first, first + 3)
    got = [
        ports.allocate(f"e-{i}", net(BRIDGE, PortMapping(name="web")))[0].static for i in range(4)
    ]
    assert sorted(got) == list(range(first, first + 4))
    assert ports.free_in_range() == 0
    with pytest.raises(ExecutionFailed, match=f"no free port for web in .* {first}-{first + 3}"):
        ports.allocate("e-5", net(BRIDGE, PortMapping(name="web")))
    assert ports.held_by("e-5") == []
    assert ports.release("e-2") == [got[2]]
    again = ports.allocate("e-6", net(BRIDGE, PortMapping(name="web")))
    assert again[0].static == got[2]


def test_a_port_given_back_is_the_last_to_be_given_again() -> None:
    first = free_run(3)
    ports = PortAllocator(first, first + 2)
    a = ports.allocate("a", net(HOST, PortMapping(name="p")))[0].static
    ports.release("a")
    b = ports.allocate("b", net(HOST, PortMapping(name="p")))[0].static
    c = ports.allocate("c", net(HOST, PortMapping(name="p")))[0].static
    assert a not in (b, c)


def test_a_port_taken_on_the_host_is_skipped() -> None:
    first = free_run(2)
    ports = PortAllocator(first, first + 1)
    with (
        listening(first),
        listening(first + 1, "127.0.0.1"),
        pytest.raises(ExecutionFailed, match="no free port"),
    ):
        ports.allocate("e", net(HOST, PortMapping(name="p")))
    with listening(first):
        (got,) = ports.allocate("e", net(HOST, PortMapping(name="p")))
    assert got.static == first + 1


def test_mappings_get_host_ports_and_bridge_targets() -> None:
    first = free_run(3)
    ports = PortAllocator(first, first + 1)
    bridge = ports.allocate(
        "e-1",
        net(
            BRIDGE,
            PortMapping(name="web", target=8080),
            PortMapping(name="same"),
            PortMapping(name="fixed", static=first + 2, host_network="127.0.0.1"),
        ),
    )
    web, same, fixed = bridge
    assert web.target == 8080 and first <= web.static <= first + 1
    assert same.target == same.static and same.static != web.static
    assert fixed == PortMapping(
        name="fixed", static=first + 2, target=first + 2, host_network="127.0.0.1"
    )
    assert sorted(ports.held_by("e-1")) == list(range(first, first + 3))
    ports.release("e-1")
    (host,) = ports.allocate("e-2", net(HOST, PortMapping(name="web")))
    assert host.target == 0  # the task listens on the host port itself


def test_a_host_port_is_never_another_mappings_container_port() -> None:
    first = free_run(2)
    ports = PortAllocator(first, first + 1)
    # Port "b" without a Target goes to its host port in the container: not "a"'s target.
    a, b = ports.allocate(
        "e", net(BRIDGE, PortMapping(name="a", target=first), PortMapping(name="b"))
    )
    assert b.static == b.target == first + 1
    assert a.target == first and a.static == first  # a's host port may equal its own target


def test_static_ports_must_be_free() -> None:
    first = free_run(2)
    ports = PortAllocator(first, first)
    ports.allocate("e-1", net(HOST, PortMapping(name="p", static=first + 1)))
    with pytest.raises(ExecutionFailed, match=f"port {first + 1} .* held by execution e-1"):
        ports.allocate("e-2", net(BRIDGE, PortMapping(name="p", static=first + 1)))
    ports.release("e-1")
    with listening(first + 1), pytest.raises(ExecutionFailed, match="in use on this node"):
        ports.allocate("e-2", net(BRIDGE, PortMapping(name="p", static=first + 1)))
    assert ports.allocate("e-2", net(BRIDGE, PortMapping(name="p", static=first + 1)))


def test_a_failed_allocation_takes_nothing() -> None:
    first = free_run(2)
    ports = PortAllocator(first, first)
    with listening(first + 1), pytest.raises(ExecutionFailed):
        ports.allocate(
            "e", net(HOST, PortMapping(name="ok"), PortMapping(name="bad", static=first + 1))
        )
    assert ports.held_by("e") == [] and ports.holder(first) is None
    assert ports.free_in_range() == 1


def test_an_address_the_node_lacks_is_named() -> None:
    ports = PortAllocator(free_run(1), 32000)
    mapping = PortMapping(name="web", host_network="192.0.2.55")
    with pytest.raises(ExecutionFailed, match=r"does not have the address 192\.0\.2\.55"):
        ports.allocate("e", net(BRIDGE, mapping))
    assert "192.0.2.55" in ports.refusal(net(BRIDGE, mapping))


def test_networks_without_ports_allocate_nothing() -> None:
    ports = PortAllocator()
    assert ports.allocate("e", net(BRIDGE)) == []
    assert ports.held_by("e") == [] and ports.release("e") == []


@pytest.mark.parametrize(("start", "end"), [(1023, 2000), (20000, 65536), (30000, 20000), (0, 0)])
def test_a_range_outside_the_unprivileged_ports_is_refused(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        PortAllocator(start, end)


async def test_the_bid_is_refused_when_the_ports_cannot_be_given() -> None:
    first = free_run(3)
    ports = PortAllocator(first, first + 1)
    check = PortsAvailable(ports)

    async def verdict(*mappings: PortMapping) -> tuple[bool, str]:
        job = make_execution(network=BRIDGE).job
        assert job is not None
        job.task.network.ports = list(mappings)
        answer = await check.evaluate(BidRequest("n", job, Resources()))
        return answer.should_bid, answer.reason

    assert (await verdict(PortMapping(name="a"), PortMapping(name="b")))[0]
    assert not (await verdict(*(PortMapping(name=f"p{i}") for i in range(3))))[0]
    ports.allocate("e-1", net(HOST, PortMapping(name="x", static=first + 2)))
    ok, reason = await verdict(PortMapping(name="x", static=first + 2))
    assert not ok and f"port {first + 2} free: its execution e-1 holds it" in reason
    ports.release("e-1")
    with listening(first + 2):
        ok, reason = await verdict(PortMapping(name="x", static=first + 2))
    assert not ok and "does not have port" in reason
    ports.allocate("e-2", net(HOST, PortMapping(name="y")))
    ok, reason = await verdict(PortMapping(name="a"), PortMapping(name="b"))
    assert not ok and f"2 free ports in its port range {first}-{first + 1} (1 not held" in reason


def test_the_task_sees_its_ports_in_its_environment() -> None:
    ex = Execution(id="e-1", job_id="j-1", node_id="n-1")
    job = make_execution().job
    assert job is not None
    env = execution_environment(
        ex,
        job,
        node_id="n-1",
        allow_list=(),
        host_env={},
        ports=[
            PortMapping(name="web", static=20001, target=8080),
            PortMapping(name="Api_2", static=20002),
        ],
    )
    assert env["BACALHAU_HOST_PORT_web"] == "20001"
    assert env["BACALHAU_PORT_web"] == "8080"
    # On the host's network the task listens on its host port: both name it.
    assert env["BACALHAU_HOST_PORT_Api_2"] == env["BACALHAU_PORT_Api_2"] == "20002"


# -- the pipeline holds ports for the run -------------------------------------------------


@dataclass
class Rig:
    store: ExecutionStore
    pipeline: ExecutionPipeline
    ports: PortAllocator
    shell: ShellExecutor
    first: int

    def submit(self, command: str, *mappings: PortMapping, **kwargs: object) -> Execution:
        execution = make_execution(command, network=HOST, **kwargs)  # type: ignore[arg-type]
        assert execution.job is not None
        execution.job.task.network.ports = list(mappings)
        self.store.create(execution, requester_id="requester", state=L.BID_ACCEPTED)
        return execution

    def stdout(self, record: LocalExecution) -> str:
        assert record.run_output is not None, record
        return record.run_output.stdout


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    first = free_run(4)
    ports = PortAllocator(first, first + 3)
    shell = ShellExecutor()
    with ExecutionStore(tmp_path / "compute.db") as store:
        pipeline = ExecutionPipeline(
            node_id="compute-node",
            store=store,
            executors={"shell": shell},
            publishers={},
            results_root=tmp_path / "executions",
            ports=ports,
        )
        yield Rig(store, pipeline, ports, shell, first)
        pipeline.close()


async def test_concurrent_executions_never_share_a_port(rig: Rig) -> None:
    # Each task really listens on its host port (as on a Host network) while the others run.
    serve = (
        "echo $BACALHAU_HOST_PORT_web $BACALHAU_PORT_web; "
        "python3 -c 'import os, socket, time; s = socket.socket(); "
        's.bind(("0.0.0.0", int(os.environ["BACALHAU_HOST_PORT_web"]))); '
        "s.listen(); time.sleep(0.5)'"
    )
    executions = [rig.submit(serve, PortMapping(name="web")) for _ in range(4)]
    records = await asyncio.gather(*(rig.pipeline.run(e.id) for e in executions))
    assert all(r.state is L.COMPLETED for r in records), [r.message for r in records]
    assert all(r.run_output is not None and r.run_output.exit_code == 0 for r in records)
    seen = [rig.stdout(r).split() for r in records]
    host_ports = sorted(int(host) for host, _ in seen)
    assert host_ports == list(range(rig.first, rig.first + 4))
    assert all(host == listen for host, listen in seen)
    assert rig.ports.free_in_range() == 4  # every one given back


async def test_ports_are_held_while_running_and_released_on_completion(rig: Rig) -> None:
    execution = rig.submit("sleep 30", PortMapping(name="a"), PortMapping(name="b"))
    run = asyncio.create_task(rig.pipeline.run(execution.id))
    await eventually(lambda: execution.id in rig.shell.running())
    assert len(rig.ports.held_by(execution.id)) == 2
    await rig.shell.cancel(execution.id)  # the workload ends (killed): a normal completion
    record = await run
    assert record.state is L.COMPLETED
    assert rig.ports.held_by(execution.id) == [] and rig.ports.free_in_range() == 4


async def test_ports_are_released_when_the_run_fails(rig: Rig) -> None:
    execution = rig.submit("true", PortMapping(name="a"), error_message="it broke")
    record = await rig.pipeline.run(execution.id)
    assert record.state is L.FAILED and record.message == "it broke"
    assert rig.ports.held_by(execution.id) == [] and rig.ports.free_in_range() == 4


async def test_ports_are_released_when_the_run_is_cancelled(rig: Rig) -> None:
    execution = rig.submit("sleep 30", PortMapping(name="a"))
    run = asyncio.create_task(rig.pipeline.run(execution.id))
    await eventually(lambda: execution.id in rig.shell.running())
    assert rig.ports.free_in_range() == 3
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert rig.ports.held_by(execution.id) == [] and rig.ports.free_in_range() == 4
    assert rig.store.get(execution.id).state is L.FAILED  # interrupted, not cancelled by us


async def test_an_allocation_failure_fails_the_execution_saying_why(rig: Rig) -> None:
    static = free_run(1)
    with listening(static):
        execution = rig.submit("echo never", PortMapping(name="db", static=static))
        record = await rig.pipeline.run(execution.id)
    assert record.state is L.FAILED
    assert f"port {static} (db) is in use on this node" in record.message
    assert execution.id not in rig.shell.started  # nothing ran
    assert rig.ports.held_by(execution.id) == []
    events = [e.message for e in rig.store.pending_callbacks("requester")]
    assert events, "the failure is reported to the requester"
