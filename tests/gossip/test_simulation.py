"""Whole clusters of real protocol cores over the simulated network, in virtual time.

Bounds here are in virtual seconds of a deterministic simulation (fixed seeds), so they test
the protocol's design (rounds, timeouts, fan-out), not the speed of this machine.
"""

from __future__ import annotations

import random
from dataclasses import replace

from bacalhau.gossip import MemberEvent, MemberEventKind, Outbound, Ping
from bacalhau.gossip.simulation import NetworkConditions, Simulation
from bacalhau.models import LivenessState, Resources
from bacalhau.transport import MEMBER_RECORD_CODEC

ALIVE, SUSPECT, DEAD, LEFT = (
    LivenessState.ALIVE,
    LivenessState.SUSPECT,
    LivenessState.DEAD,
    LivenessState.LEFT,
)


def simulation(seed: int, *, loss: float = 0.0) -> Simulation:
    return Simulation(codec=MEMBER_RECORD_CODEC, seed=seed, network=NetworkConditions(loss=loss))


class Recorder:
    """Every event, as (virtual time, observer, event)."""

    def __init__(self, sim: Simulation) -> None:
        self.events: list[tuple[float, str, MemberEvent]] = []
        sim.observers.append(lambda at, observer, e: self.events.append((at, observer, e)))

    def about(self, node_id: str, kind: MemberEventKind) -> list[tuple[float, str]]:
        return [
            (at, observer)
            for at, observer, e in self.events
            if e.member.node_id == node_id and e.kind is kind
        ]


def test_at_100_nodes_a_new_record_spreads_in_3s_and_a_killed_node_is_dead_everywhere_in_5s() -> (
    None
):
    sim = simulation(seed=11)
    rng = random.Random("test-100")
    ids = sim.start_cluster(100)
    sim.run_for(2.0)

    newcomer = sim.add_node(seeds=[sim.address(rng.choice(ids))])
    took = sim.run_until(lambda: sim.everyone_sees(newcomer, ALIVE), timeout=3.0)
    assert took is not None, "the newcomer's record did not reach every member within 3 s"
    # ... and the newcomer learned everyone through its seed.
    assert all(sim.view(newcomer, i) is ALIVE for i in ids)

    victim = rng.choice(ids)
    sim.kill(victim)
    took = sim.run_until(lambda: sim.everyone_sees(victim, DEAD), timeout=5.0)
    assert took is not None, "the killed member was not dead at every member within 5 s"
    # Nobody else died along the way.
    assert all(sim.view(ids[0] if i != ids[0] else ids[1], i) is ALIVE for i in ids if i != victim)


def test_a_record_update_reaches_every_member() -> None:
    sim = simulation(seed=12)
    ids = sim.start_cluster(100)
    sim.run_for(1.0)
    source = ids[5]
    core = sim.core(source)
    core.publish(replace(core.local_record, available_capacity=Resources(cpu=0.25)), sim.now)
    version = core.local_record.version
    took = sim.run_until(lambda: sim.everyone_sees(source, ALIVE, version=version), timeout=3.0)
    assert took is not None
    assert sim.core(ids[77]).member(source).record.available_capacity.cpu == 0.25  # type: ignore[union-attr]


def test_the_indirect_probe_saves_a_node_behind_a_broken_direct_link() -> None:
    sim = simulation(seed=13)
    ids = sim.start_cluster(8)
    a, b = ids[0], ids[1]
    sim.network.cut.add(frozenset((sim.address(a), sim.address(b))))
    recorder = Recorder(sim)
    lost_pings = []

    def note(sender: str, out: Outbound, delivered: bool) -> None:
        if sender == a and out.node_id == b and isinstance(out.message, Ping) and not delivered:
            lost_pings.append(out)

    sim.transmit_observers.append(note)
    sim.run_for(30.0)
    assert len(lost_pings) >= 3  # a really probed b, directly, in vain, several times
    assert recorder.about(b, MemberEventKind.SUSPECT) == []
    assert sim.view(a, b) is ALIVE


def test_a_quiet_lossy_cluster_has_no_false_death() -> None:
    sim = simulation(seed=14, loss=0.05)
    sim.start_cluster(60)
    recorder = Recorder(sim)
    sim.run_for(30.0)
    assert sim.messages_dropped > 0
    assert [e for _, _, e in recorder.events if e.kind is MemberEventKind.DEAD] == []


def test_a_partitioned_node_is_declared_dead_and_rejoins_with_a_higher_version() -> None:
    sim = simulation(seed=15)
    ids = sim.start_cluster(30)
    sim.run_for(1.0)
    cut_off = ids[3]
    version_before = sim.core(cut_off).local_record.version

    sim.isolate([cut_off])
    assert sim.run_until(lambda: sim.everyone_sees(cut_off, DEAD), timeout=10.0) is not None
    # From its side of the cut, the others are failing (slowly: every probe it makes fails
    # without a nack, so Lifeguard's local health stretches its timing and it accuses late).
    sim.run_for(10.0)
    assert any(sim.view(cut_off, i) in (SUSPECT, DEAD) for i in ids if i != cut_off)
    assert sim.core(cut_off).awareness > 0

    sim.heal()
    assert sim.run_until(lambda: sim.everyone_sees(cut_off, ALIVE), timeout=15.0) is not None
    assert sim.core(cut_off).local_record.version > version_before
    assert (
        sim.run_until(
            lambda: all(sim.view(cut_off, i) is ALIVE for i in ids if i != cut_off), timeout=15.0
        )
        is not None
    )


def test_a_restarted_node_supersedes_its_old_records() -> None:
    sim = simulation(seed=16)
    ids = sim.start_cluster(20)
    sim.run_for(1.0)
    node = ids[4]
    old_version = sim.core(node).local_record.version
    sim.kill(node)
    assert sim.run_until(lambda: sim.everyone_sees(node, DEAD), timeout=10.0) is not None
    sim.run_for(1.0)

    sim.restart(node, seeds=[sim.address(ids[0])])
    new_version = sim.core(node).local_record.version
    assert new_version > old_version
    took = sim.run_until(lambda: sim.everyone_sees(node, ALIVE, version=new_version), timeout=5)
    assert took is not None
    assert all(sim.view(node, i) is ALIVE for i in ids if i != node)


def test_a_member_that_leaves_is_left_everywhere_and_never_dead() -> None:
    sim = simulation(seed=17)
    ids = sim.start_cluster(40)
    sim.run_for(1.0)
    recorder = Recorder(sim)
    leaver = ids[9]
    sim.leave(leaver)
    assert sim.run_until(lambda: sim.everyone_sees(leaver, LEFT), timeout=3.0) is not None
    sim.kill(leaver)  # the process exits after its goodbye
    sim.run_for(20.0)
    assert recorder.about(leaver, MemberEventKind.DEAD) == []
    assert recorder.about(leaver, MemberEventKind.SUSPECT) == []
    assert sim.everyone_sees(leaver, LEFT)


def test_a_seed_that_left_and_started_again_is_rejoined_by_the_members_it_seeded() -> None:
    # A requester's `systemctl restart`: it leaves gracefully, comes back knowing nobody and
    # with no seeds of its own, while its compute nodes stay alive to each other.
    sim = simulation(seed=21)
    seed = sim.add_node()
    a = sim.add_node(seeds=[sim.address(seed)])
    b = sim.add_node(seeds=[sim.address(seed)])
    trio = (seed, a, b)

    def all_alive() -> bool:
        return all(sim.view(x, y) is ALIVE for x in trio for y in trio if x != y)

    assert sim.run_until(all_alive, timeout=10.0) is not None
    sim.leave(seed)
    assert sim.run_until(
        lambda: sim.view(a, seed) is LEFT and sim.view(b, seed) is LEFT, timeout=5.0
    )
    sim.run_for(2.0)
    sim.restart(seed)
    # The members rejoin their seed within a reconnect interval (5 s) or two.
    assert sim.run_until(all_alive, timeout=12.0) is not None
