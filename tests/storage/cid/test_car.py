"""CAR v1 files: ours are read by the reference JS tools, theirs are imported by us, and
nothing unverified gets in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bacalhau.errors import CorruptBlock, InvalidContent
from bacalhau.storage.cid import (
    CID,
    Blockstore,
    CarReader,
    Importer,
    ImportOptions,
    export,
    import_car,
    write_car,
)
from bacalhau.storage.cid._car import encode_header
from bacalhau.storage.cid._cid import encode_varint

from .conftest import RunJs, make_small_tree, seeded_bytes, tree_snapshot


def sharded_tree(root: Path) -> Path:
    """A tree holding a HAMT-sharded directory (names long enough to pass the threshold)."""
    big = root / "big"
    big.mkdir(parents=True)
    for i in range(1100):
        (big / f"{i:0230d}").write_bytes(str(i).encode())
    return root


@pytest.mark.parametrize("version", [0, 1])
def test_a_car_we_write_is_read_by_the_reference_tools(
    version: int, tmp_path: Path, run_js: RunJs
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    sharded_tree(tree / "sharded")
    store = Blockstore(tmp_path / "store")
    root = Importer(store, ImportOptions(cid_version=version)).add_path(tree).cid
    car = tmp_path / "out.car"
    with car.open("wb") as out:
        written = write_car(out, [root], store)

    result = run_js("read-car.mjs", car, tmp_path / "js-export")

    assert result == {"roots": [str(root)], "blocks": written}
    expected = {k: v for k, v in tree_snapshot(tree).items() if not k.startswith(".")}
    assert tree_snapshot(tmp_path / "js-export") == expected


@pytest.mark.parametrize("version", [0, 1])
def test_a_car_the_reference_tools_write_is_imported_by_us(
    version: int, tmp_path: Path, run_js: RunJs
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    sharded_tree(tree / "sharded")
    car = tmp_path / "js.car"
    reference = run_js("import.mjs", tree, "--cid-version", str(version), "--car", car)
    store = Blockstore(tmp_path / "store")

    with car.open("rb") as stream:
        imported = import_car(stream, store)

    root = CID.parse(reference["cid"])
    assert imported.roots == [root] and imported.blocks == reference["blocks"]
    assert store.is_pinned(root)
    export(store, root, tmp_path / "ours")
    expected = {k: v for k, v in tree_snapshot(tree).items() if not k.startswith(".")}
    assert tree_snapshot(tmp_path / "ours") == expected


def car_bytes(roots: list[CID], blocks: list[tuple[CID, bytes]]) -> bytes:
    header = encode_header(roots)
    out = [encode_varint(len(header)), header]
    for cid, block in blocks:
        out += [encode_varint(len(cid.binary) + len(block)), cid.binary, block]
    return b"".join(out)


def test_a_block_that_does_not_match_its_cid_is_refused(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "store")
    good = Importer().add_bytes(b"good").cid
    forged = car_bytes([good], [(good, b"evil")])

    with pytest.raises(CorruptBlock) as caught:
        import_car(io.BytesIO(forged), store)

    assert caught.value.details["CID"] == str(good)
    assert not store.has(good) and store.pins() == []


def test_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "store")
    cid = CID.for_block(b"data", codec=0x55, version=1)
    whole = car_bytes([cid], [(cid, b"data")])
    for broken in (whole[:-2], b"", b"\x05hello", b"\x0a" + b"\xa1" * 10):
        with pytest.raises(InvalidContent):
            import_car(io.BytesIO(broken), store)
    # A CAR v2 header ({"version": 2}) is named as such.
    with pytest.raises(InvalidContent, match="version 2"):
        CarReader(io.BytesIO(b"\x0a\xa1\x67version\x02"))


def test_roundtrip_keeps_every_block_and_both_roots(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "a")
    first = Importer(store).add_bytes(seeded_bytes("car", 700_000)).cid  # 3 leaves + root
    second = Importer(store, ImportOptions(cid_version=1)).add_bytes(b"y" * 10).cid
    buffer = io.BytesIO()
    count = write_car(buffer, [first, second], store)
    other = Blockstore(tmp_path / "b")

    result = import_car(io.BytesIO(buffer.getvalue()), other, pin_roots=False)

    assert result.roots == [first, second] and result.blocks == count == 4 + 1
    assert other.pins() == []
    assert other.get(first) == store.get(first)
