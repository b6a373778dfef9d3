"""The exporter rebuilds files, directories (flat and sharded) and symlinks, lists
directories, and never writes outside its target, whatever the DAG says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bacalhau.errors import InvalidContent, UnsafePath
from bacalhau.storage.cid import (
    CID,
    Blockstore,
    EntryKind,
    Importer,
    ImportOptions,
    export,
    ls,
    read_file,
    resolve,
)
from bacalhau.storage.cid._dagpb import PBLink, decode_node, encode_node

from .conftest import make_small_tree, seeded_bytes, tree_snapshot


@pytest.mark.parametrize("version", [0, 1])
def test_export_rebuilds_the_tree(version: int, tmp_path: Path) -> None:
    tree = make_small_tree(tmp_path / "tree")
    store = Blockstore(tmp_path / "store")
    root = Importer(store, ImportOptions(cid_version=version, hidden=True)).add_path(tree).cid

    export(store, root, tmp_path / "out")

    assert tree_snapshot(tmp_path / "out") == tree_snapshot(tree)
    # Symlinks come back as symlinks, targets untouched and not followed.
    assert os.readlink(tmp_path / "out" / "link-absolute") == "/etc/passwd"


def test_a_sharded_directory_lists_and_exports(tmp_path: Path) -> None:
    tree = tmp_path / "big"
    tree.mkdir()
    names = [f"{i:0240d}" for i in range(1200)]
    for name in names:
        (tree / name).write_bytes(name[-4:].encode())
    store = Blockstore(tmp_path / "store")
    root = Importer(store).add_path(tree).cid

    entries = ls(store, root)

    assert [e.name for e in entries] == names
    assert {e.kind for e in entries} == {EntryKind.FILE} and {e.size for e in entries} == {4}
    assert b"".join(read_file(store, resolve(store, root, names[7]))) == b"0007"
    export(store, root, tmp_path / "out")
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(tree)


def test_ls_names_kinds_and_sizes(tmp_path: Path) -> None:
    tree = make_small_tree(tmp_path / "tree")
    store = Blockstore(tmp_path / "store")
    root = Importer(store).add_path(tree).cid

    listing = {e.name: (e.kind, e.size) for e in ls(store, root)}

    assert listing["three-chunks.bin"] == (EntryKind.FILE, 2 * 262_144 + 7)
    assert listing["empty-dir"] == (EntryKind.DIRECTORY, 0)
    assert listing["link-to-hello"] == (EntryKind.SYMLINK, 0)
    assert ".hidden" not in listing


def test_a_single_file_exports_to_the_target_path(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "store")
    content = seeded_bytes("file", 1_000_000)
    root = Importer(store, ImportOptions(cid_version=1)).add_bytes(content).cid
    export(store, root, tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == content


def hostile_directory(store: Blockstore, links: list[tuple[bytes, CID]]) -> CID:
    """A directory node written by hand, with whatever names an attacker chooses."""
    importer = Importer(store)
    return importer.add_directory_links([PBLink(cid, name, 0) for name, cid in links]).cid


@pytest.mark.parametrize("name", [b"..", b".", b"", b"a/../../x", b"/etc/x", b"nul\x00"])
def test_names_that_would_escape_are_refused(name: bytes, tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "store")
    payload = Importer(store).add_bytes(b"payload").cid
    root = hostile_directory(store, [(name, payload)])
    (tmp_path / "victim").mkdir()

    with pytest.raises(UnsafePath):
        export(store, root, tmp_path / "victim" / "out")

    assert not (tmp_path / "x").exists() and not (tmp_path / "victim" / "x").exists()


def test_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    """A DAG naming a symlink `a` -> outside, then a directory `a` holding a file, must not
    place that file outside the target (the second `a` collides instead)."""
    store = Blockstore(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    link = Importer(store).add_symlink(os.fsencode(outside)).cid
    inner = hostile_directory(store, [(b"planted", Importer(store).add_bytes(b"!").cid)])
    root = hostile_directory(store, [(b"a", link), (b"a", inner)])

    with pytest.raises(UnsafePath):
        export(store, root, tmp_path / "out")

    assert list(outside.iterdir()) == []
    assert os.readlink(tmp_path / "out" / "a") == str(outside)


def test_export_refuses_an_existing_target_unless_an_empty_directory(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "store")
    tree = make_small_tree(tmp_path / "tree")
    root = Importer(store).add_path(tree).cid
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_bytes(b"mine")
    (tmp_path / "empty").mkdir()

    with pytest.raises(UnsafePath):
        export(store, root, tmp_path / "full")
    export(store, root, tmp_path / "empty")

    assert (tmp_path / "full" / "keep").read_bytes() == b"mine"
    assert (tmp_path / "empty" / "hello.txt").read_bytes() == b"hello world\n"


def test_a_file_shorter_than_it_claims_is_refused(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "store")
    whole = Importer(store).add_bytes(seeded_bytes("short", 600_000)).cid
    first_leaf = decode_node(store.get(whole)).links[0].cid
    store.delete(first_leaf)
    # A node with the root's data but only its second and third links:
    node = decode_node(store.get(whole))
    assert node.data is not None
    block = encode_node(node.links[1:], node.data)
    forged = CID.for_block(block, codec=0x70, version=0)
    store.put(forged, block)

    with pytest.raises(InvalidContent, match="declares 600000"):
        b"".join(read_file(store, forged))
