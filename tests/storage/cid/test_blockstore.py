"""The on-disk blockstore: every read verified, pins kept, everything else collected."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bacalhau.errors import BlockNotFound, CorruptBlock
from bacalhau.storage.cid import (
    CID,
    RAW,
    Blockstore,
    BlockstoreStats,
    Importer,
    ImportOptions,
    read_file,
    resolve,
)

from .conftest import seeded_bytes


def corrupt_on_disk(store: Blockstore, content: bytes) -> None:
    """Flip one byte of ``content`` where it sits in the store's pack files."""
    for pack in (store.root / "packs").glob("*.pack"):
        data = bytearray(pack.read_bytes())
        at = data.find(content)
        if at >= 0:
            data[at + len(content) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))
            return
    raise AssertionError("content not found in any pack")


def test_put_get_has_delete_and_size(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    cid = CID.for_block(b"abc", codec=RAW, version=1)
    assert not store.has(cid)

    store.put(cid, b"abc")

    assert store.has(cid) and store.get(cid) == b"abc" and store.size(cid) == 3
    assert store.stats().blocks == 1 and store.stats().bytes == 3
    assert store.delete(cid) and not store.delete(cid)
    with pytest.raises(BlockNotFound) as caught:
        store.get(cid)
    assert caught.value.details["CID"] == str(cid)


def test_put_refuses_bytes_that_do_not_match_the_cid(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    cid = CID.for_block(b"abc", codec=RAW, version=1)
    with pytest.raises(CorruptBlock):
        store.put(cid, b"abd")
    assert not store.has(cid)


def test_a_corrupted_block_is_an_error_naming_its_cid_never_returned(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    cid = Importer(store).add_bytes(b"precious").cid
    corrupt_on_disk(store, b"precious")

    with pytest.raises(CorruptBlock) as caught:
        store.get(cid)

    assert caught.value.code == "CorruptBlock"
    assert caught.value.details["CID"] == str(cid)
    assert str(cid) in caught.value.message


def test_the_same_bytes_under_v0_and_v1_are_one_block(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    v0 = Importer(store, ImportOptions(cid_version=0)).add_bytes(b"same").cid
    v1 = Importer(store, ImportOptions(cid_version=1, raw_leaves=False)).add_bytes(b"same").cid
    assert v0 != v1 and v0.to_v1() == v1
    assert store.stats().blocks == 1 and store.get(v1) == store.get(v0)


def test_gc_keeps_whole_pinned_dags_and_removes_the_rest(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "store")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "big").write_bytes(seeded_bytes("gc", 600_000))  # 3 leaves + 1 node
    (tree / "small").write_bytes(b"small")
    kept = Importer(store).add_path(tree).cid
    dropped = Importer(store, ImportOptions(cid_version=1)).add_bytes(seeded_bytes("x", 300_000))
    store.pin(kept)
    before = store.stats()

    result = store.gc(grace_s=0)

    assert result.removed_blocks == 3  # the unpinned file: 2 raw leaves + its root
    assert result.kept_blocks == before.blocks - 3 == 7
    assert not store.has(dropped.cid)
    # Every block under the pin still reads and verifies, and nothing else is left:
    assert len(store.reachable([kept])) == store.stats().blocks == 7
    assert b"".join(read_file(store, resolve(store, kept, "sub/big"))) == seeded_bytes(
        "gc", 600_000
    )

    assert store.unpin(kept) and store.pins() == []
    assert store.gc(grace_s=0).removed_blocks == 7
    assert store.stats().blocks == 0


def test_gc_compacts_packs_that_are_mostly_garbage(tmp_path: Path) -> None:
    """Deleted blocks take disk space until their pack is rewritten; live blocks move."""
    store = Blockstore(tmp_path, pack_limit=1 << 20)
    kept = Importer(store).add_bytes(seeded_bytes("keep", 100_000)).cid
    dropped = Importer(store).add_bytes(seeded_bytes("drop", 3 << 20)).cid
    store.pin(kept)
    before = store.stats()
    assert before.disk_bytes > 3 << 20

    result = store.gc(grace_s=0)

    assert result.compacted_packs >= 3 and not store.has(dropped)
    after = store.stats()
    assert after.blocks == 1 and after.disk_bytes < 1 << 20
    assert b"".join(read_file(store, kept)) == seeded_bytes("keep", 100_000)
    store.close()
    with Blockstore(tmp_path) as reopened:
        assert b"".join(read_file(reopened, kept)) == seeded_bytes("keep", 100_000)


def test_gc_leaves_blocks_written_within_the_grace_period(tmp_path: Path) -> None:
    """An import in progress has stored blocks it has not pinned yet."""
    store = Blockstore(tmp_path)
    cid = Importer(store).add_bytes(b"in flight").cid
    assert store.gc(grace_s=60).removed_blocks == 0
    assert store.has(cid)


def test_a_batch_writes_every_block_before_it_ends(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    content = seeded_bytes("batch", 5 * 262_144 + 3)
    with store.batch(threads=2, max_pending=2) as sink:
        root = Importer(sink).add_bytes(content).cid
    assert root == Importer().add_bytes(content).cid
    assert store.stats().blocks == 6 + 1
    assert b"".join(read_file(store, root)) == content


def test_a_failed_background_write_is_raised_when_the_batch_ends(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    (tmp_path / "packs").rmdir()  # the first write cannot create its pack
    with pytest.raises(FileNotFoundError), store.batch() as sink:
        Importer(sink).add_bytes(b"lost")


def test_storing_a_block_again_restarts_its_grace_period(tmp_path: Path) -> None:
    """An import that finds a block already stored relies on it: GC must not drop it."""
    store = Blockstore(tmp_path)
    cid = CID.for_block(b"old", codec=RAW, version=1)
    store.put(cid, b"old")
    time.sleep(0.3)
    store.put(cid, b"old")  # a new import of the same content, not pinned yet

    assert store.gc(grace_s=0.2).removed_blocks == 0
    assert store.get(cid) == b"old"
    assert store.stats().disk_bytes == 3  # stored once


def test_many_blocks_are_stored_in_one_call_across_packs(tmp_path: Path) -> None:
    """One call stores new blocks, skips ones already stored or repeated, and starts a new
    pack where the limit says so."""
    store = Blockstore(tmp_path, pack_limit=250)
    blocks = [(CID.for_block(d, codec=RAW, version=1), d) for d in (b"a" * 100, b"b" * 100)]
    store.put_many_trusted(blocks[:1])
    more = [(CID.for_block(d, codec=RAW, version=1), d) for d in (b"c" * 100, b"d" * 300)]
    store.put_many_trusted([*blocks, blocks[1], *more])
    for cid, data in [*blocks, *more]:
        assert store.get(cid) == data
    assert store.stats().blocks == 4 and store.stats().disk_bytes == 600
    assert len(list((tmp_path / "packs").glob("*.pack"))) == 3  # a+b, c, then d alone


def test_a_batch_hands_back_written_frames_for_reuse(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    frame = bytearray(b"frame")
    cid = CID.for_block(bytes(frame), codec=RAW, version=1)
    with store.batch() as sink:
        sink.put_frame(cid, frame)
    assert sink.spare_frame(6) is None  # only a frame of the asked size
    with store.batch() as sink:
        sink.put_frame(cid, frame)
    spare = sink.spare_frame(5)
    assert spare is frame
    spare[:] = b"reuse"  # the block was written before its buffer came back
    assert store.get(cid) == b"frame"
    assert sink.spare_frame(5) is None


_KILLED_IMPORT = """
import hashlib, sys
from bacalhau.storage.cid import Blockstore, Importer
store = Blockstore(sys.argv[1])
with store.batch() as sink:
    builder = Importer(sink).file_builder()
    for i in range(1 << 16):  # 2 GiB, far more than is written before the kill
        builder.update(hashlib.sha256(i.to_bytes(8, "big")).digest() * 1024)
"""


def test_an_import_killed_midway_leaves_only_verifiable_blocks_and_reclaimable_bytes(
    tmp_path: Path,
) -> None:
    """A crash mid-import leaves committed batches (each block readable and verified) and
    at most unreferenced bytes of the batch in flight; GC reclaims both once the grace
    period is over, the dead process's pack included."""
    store_dir = tmp_path / "store"
    Blockstore(store_dir).close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_IMPORT, store_dir], env=env)
    try:
        with Blockstore(store_dir) as watcher:
            deadline = time.monotonic() + 60
            while watcher.stats().blocks < 40 and child.poll() is None:
                assert time.monotonic() < deadline, "the import wrote nothing"
                time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with Blockstore(store_dir) as store:
        stats = store.stats()
        assert stats.blocks >= 40 and stats.disk_bytes >= stats.bytes
        with sqlite3.connect(store_dir / "index.sqlite") as db:
            rows = db.execute("SELECT multihash FROM blocks").fetchall()
        for (multihash,) in rows:
            # The codec does not matter to the store: blocks are keyed by multihash.
            cid = CID.from_digest(multihash[2:], codec=RAW, version=1)
            assert len(store.get(cid)) > 0  # verified against its CID on the way
        gc = store.gc(grace_s=0)
        assert gc.removed_blocks == stats.blocks and gc.compacted_packs >= 1
        assert store.stats() == BlockstoreStats(blocks=0, bytes=0, pins=0, disk_bytes=0)


def test_a_batch_stores_repeated_and_already_stored_blocks_once(tmp_path: Path) -> None:
    """A file of identical chunks, imported twice: its leaf is written once, whether the
    repeat is still waiting for its index row or long committed."""
    store = Blockstore(tmp_path)
    content = bytes(20 * 262_144)  # twenty identical leaves
    with store.batch(max_pending=4) as sink:
        first = Importer(sink).add_bytes(content).cid
    stored = store.stats()
    assert stored.blocks == 2 and stored.disk_bytes == stored.bytes  # a leaf and the root
    with store.batch() as sink:
        again = Importer(sink).add_bytes(content).cid
    assert again == first and store.stats() == stored
    assert b"".join(read_file(store, first)) == content
