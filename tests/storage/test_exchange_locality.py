"""What a node advertises it holds (its largest pinned roots), how that travels in its signed
gossip record, and which members the exchange asks first."""

from __future__ import annotations

import os
from pathlib import Path

from bacalhau.gossip import NodeRecord
from bacalhau.models import NodeType
from bacalhau.storage import BlockPeer, HeldRoots, Member, order_providers
from bacalhau.storage.cid import Blockstore, Importer
from bacalhau.transport import MEMBER_RECORD_CODEC


def test_a_node_advertises_its_largest_pinned_roots_with_their_sizes(tmp_path: Path) -> None:
    with Blockstore(tmp_path / "blocks") as store:
        roots = []
        for size in (10, 700_000, 3000):
            with store.batch() as sink:
                root = Importer(sink).add_bytes(os.urandom(size))
            store.pin(root.cid)
            roots.append(root)
        unpinned = Importer(store).add_bytes(b"not pinned")
        # Pinned before its blocks arrived (a fetch under way): not held yet.
        store.pin(Importer(None).add_bytes(b"elsewhere").cid)

        held = HeldRoots(store, limit=2).snapshot()

    assert held == {str(roots[1].cid): roots[1].tsize, str(roots[2].cid): roots[2].tsize}
    assert str(unpinned.cid) not in held


def test_what_a_node_advertises_follows_its_pins_and_late_blocks(tmp_path: Path) -> None:
    # cached() is what the record publisher reads on the event loop, four times a second: the
    # last snapshot while it still holds, None when only a snapshot (a thread) can say.
    with Blockstore(tmp_path / "blocks") as store:
        held = HeldRoots(store)
        assert held.cached() is None
        first = Importer(store).add_bytes(b"first")
        store.pin(first.cid)
        assert held.snapshot() == {str(first.cid): first.tsize}
        assert held.cached() == {str(first.cid): first.tsize}
        data = b"arrives after its pin"
        late = Importer(None).add_bytes(data)
        store.pin(late.cid)  # a fetch under way: not held yet
        assert held.cached() is None  # a pin changed
        assert held.snapshot() == {str(first.cid): first.tsize}
        assert held.cached() is None  # incomplete: look again until the blocks are here
        Importer(store).add_bytes(data)  # its blocks arrive; no pin changes
        assert held.snapshot() == {str(first.cid): first.tsize, str(late.cid): late.tsize}
        assert held.cached() == {str(first.cid): first.tsize, str(late.cid): late.tsize}
        store.unpin(first.cid)
        assert held.cached() is None
        assert held.snapshot() == {str(late.cid): late.tsize}


def test_held_roots_travel_in_the_signed_record() -> None:
    cid = str(Importer(None).add_bytes(b"x").cid)
    record = NodeRecord(
        node_id="n", version=3, roles=frozenset({NodeType.COMPUTE}), held_roots={cid: 12}
    )
    decoded = MEMBER_RECORD_CODEC.decode(MEMBER_RECORD_CODEC.encode(record))
    assert decoded.held_roots == {cid: 12}
    assert decoded.to_node_info().compute is not None
    assert decoded.to_node_info().compute.held_roots == {cid: 12}


def test_members_advertising_the_root_are_asked_first_then_compute_nodes() -> None:
    root = Importer(None).add_bytes(b"data").cid

    def member(name: str, held: dict[str, int], compute: bool) -> Member:
        return Member(BlockPeer(name, f"{name}:1"), held, compute)

    members = [
        member("a-requester", {}, False),
        member("b-compute", {}, True),
        member("c-holder", {str(root): 4}, True),
        member("d-holder-v1", {str(root.to_v1()): 4}, True),
    ]
    assert [p.node_id for p in order_providers(root, members)] == [
        "c-holder",
        "d-holder-v1",
        "b-compute",
        "a-requester",
    ]
