"""The push interface (bytes and finished entries handed to the importer as someone else
reads them) gives the CIDs of the pull one, and a visitor reads each file once."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from bacalhau.storage.cid import (
    Importer,
    ImportOptions,
    ImportResult,
    TreeEntry,
)
from bacalhau.storage.cid._importer import _read_whole

from ..opens import count_opens
from .conftest import CHUNK, make_small_tree, seeded_bytes

CONFIGS = {
    "v0": ImportOptions(),
    "v1": ImportOptions(cid_version=1),
    "v1-dagpb-leaves": ImportOptions(cid_version=1, raw_leaves=False),
}

#: Pieces of every awkward size: smaller than a chunk, straddling chunk ends, larger.
PIECES = (1, 7, 4096, 65_537, CHUNK - 1, CHUNK, CHUNK + 3, 1 << 20)


def push(importer: Importer, data: bytes) -> ImportResult:
    """``data`` pushed in pieces of every size in turn."""
    builder = importer.file_builder()
    view = memoryview(data)
    for size in itertools.cycle(PIECES):
        if not view:
            break
        builder.update(view[:size])
        view = view[size:]
    return builder.finish()


def push_tree(importer: Importer, path: Path) -> ImportResult:
    """A tree imported through the builders only, hidden names left out as ``ipfs add``
    leaves them out."""
    if path.is_symlink():
        return importer.add_symlink(os.fsencode(os.readlink(path)))
    if path.is_file():
        return push(importer, path.read_bytes())
    directory = importer.directory_builder()
    for child in path.iterdir():
        if not child.name.startswith("."):
            directory.add(child.name, push_tree(importer, child))
    return directory.finish()


@pytest.fixture(scope="module")
def content() -> bytes:
    return seeded_bytes("push", 175 * CHUNK + 5)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 174 * CHUNK, 174 * CHUNK + 1, 175 * CHUNK + 5]
)
def test_pushed_bytes_give_the_cid_of_add_path(
    config: str, size: int, content: bytes, tmp_path: Path
) -> None:
    options = CONFIGS[config]
    path = tmp_path / "file"
    path.write_bytes(content[:size])
    pulled = Importer(None, options).add_path(path)
    assert push(Importer(None, options), content[:size]) == pulled
    # One update of the whole, and one byte at a time for the small ones.
    whole = Importer(None, options).file_builder()
    whole.update(content[:size])
    assert whole.finish() == pulled
    if size <= CHUNK + 1:
        trickle = Importer(None, options).file_builder()
        for i in range(size):
            trickle.update(content[i : i + 1])
        assert trickle.finish() == pulled


@pytest.mark.parametrize("config", CONFIGS)
def test_pushed_tree_gives_the_cid_of_add_path_hidden_entries_left_out(
    config: str, tmp_path: Path
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    options = CONFIGS[config]
    assert push_tree(Importer(None, options), tree) == Importer(None, options).add_path(tree)
    # The hidden entries are there to be left out: adding them changes the CID.
    hidden = Importer(None, ImportOptions(cid_version=options.cid_version, hidden=True))
    assert hidden.add_path(tree).cid != Importer(None, options).add_path(tree).cid


def test_a_finished_file_takes_no_more_bytes() -> None:
    builder = Importer().file_builder()
    builder.update(b"abc")
    builder.finish()
    with pytest.raises(RuntimeError):
        builder.update(b"d")
    with pytest.raises(RuntimeError):
        builder.finish()


def test_a_directory_refuses_names_that_are_not_entries() -> None:
    importer = Importer()
    entry = importer.add_bytes(b"x")
    directory = importer.directory_builder()
    directory.add("a", entry)
    for name in ("a", "", ".", "..", "b/c"):
        with pytest.raises(ValueError):
            directory.add(name, entry)


@pytest.mark.parametrize("config", CONFIGS)
def test_a_visitor_sees_every_entry_and_its_reads_make_the_cids(
    config: str, tmp_path: Path
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    (tree / "big.bin").write_bytes(seeded_bytes("big", 3 * CHUNK + 11))
    options = CONFIGS[config]
    expected: dict[str, ImportResult] = {}
    Importer(None, options).add_path(tree, on_entry=expected.__setitem__)

    seen: dict[str, TreeEntry] = {}
    read: dict[str, bytes] = {}

    def visit(entry: TreeEntry) -> None:
        seen[entry.rel] = entry
        if entry.content is None:
            return
        # Read some files whole in odd pieces, some in part, some not at all: the CID
        # covers the whole file whatever the visitor read.
        if entry.rel.endswith(("three-chunks.bin", "inside")):
            return
        if entry.rel == "big.bin":
            read[entry.rel] = entry.content.read(CHUNK + 5)
            return
        pieces = []
        while piece := entry.content.read(1000):
            pieces.append(piece)
        read[entry.rel] = b"".join(pieces)

    got: dict[str, ImportResult] = {}
    root = Importer(None, options).add_path(tree, on_entry=got.__setitem__, visitor=visit)
    assert got == expected and root == expected[""]
    # Hidden entries are shown to the visitor (an archive keeps them), outside the DAG.
    assert {rel for rel, e in seen.items() if not e.imported} == {
        ".hidden",
        ".hidden-dir",
        ".hidden-dir/inside",
    }
    assert {rel for rel, e in seen.items() if e.imported} == set(expected)
    assert list(seen) == sorted(seen, key=lambda rel: os.fsencode(rel).split(b"/"))
    assert read["big.bin"] == (tree / "big.bin").read_bytes()[: CHUNK + 5]
    for rel, data in read.items():
        if rel != "big.bin":
            assert data == (tree / rel).read_bytes(), rel


def test_a_visited_tree_is_read_once(tmp_path: Path) -> None:
    """Whatever the visitor reads and whatever it leaves, each file is opened once."""
    tree = make_small_tree(tmp_path / "tree")
    files = {
        str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and not p.is_symlink()
    }

    def visit(entry: TreeEntry) -> None:
        if entry.content is not None and entry.rel.startswith("h"):
            entry.content.read()

    with count_opens(tree) as opens:
        Importer(None).add_path(tree, visitor=visit)
    assert dict(opens) == dict.fromkeys(files, 1)


def test_a_small_file_is_read_whole_and_a_grown_one_is_left_to_the_reader(
    tmp_path: Path,
) -> None:
    """Files listed small are read in one go for the visitor and the CID; one found larger
    than that when read (it grew since it was listed) is refused, to be streamed instead."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    with open(path, "rb", buffering=0) as raw:
        assert _read_whole(raw, 100) == b"x" * 100
    with open(path, "rb", buffering=0) as raw:  # listed smaller than it is now
        assert _read_whole(raw, 100, expected=10) == b"x" * 100
    with open(path, "rb", buffering=0) as raw:
        assert _read_whole(raw, 99) is None
    path.write_bytes(b"")
    with open(path, "rb", buffering=0) as raw:
        assert _read_whole(raw, 99) == b""


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_a_file_known_whole_gives_the_cid_of_its_bytes_pushed(config: str) -> None:
    options = CONFIGS[config]
    for size in (0, 1, 4096, CHUNK - 1, CHUNK, CHUNK + 1):
        data = seeded_bytes(f"whole{size}", size)
        builder = Importer(None, options).file_builder()
        builder.update(data)
        assert Importer(None, options)._add_whole(data) == builder.finish(), size
