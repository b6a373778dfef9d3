"""Our importer gives the CIDs of the reference JS importer (``ipfs-unixfs-importer``, run
with the ``ipfs add`` settings) on inputs that cross every boundary of the format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bacalhau.storage.cid import Blockstore, Importer, ImportOptions, ImportResult
from bacalhau.storage.cid._dagpb import DataType, decode_node, decode_unixfs

from .conftest import CHUNK, RunJs, make_small_tree, seeded_bytes

#: (our options, the reference script's flags): `ipfs add`, `--cid-version 1`,
#: `--cid-version 1 --raw-leaves=false`.
CONFIGS = {
    "v0": (ImportOptions(), ["--cid-version", "0"]),
    "v1": (ImportOptions(cid_version=1), ["--cid-version", "1"]),
    "v1-dagpb-leaves": (
        ImportOptions(cid_version=1, raw_leaves=False),
        ["--cid-version", "1", "--raw-leaves", "false"],
    ),
}


def our_entries(path: Path, options: ImportOptions) -> dict[str, str]:
    seen: dict[str, str] = {}

    def note(rel: str, result: ImportResult) -> None:
        seen[rel] = str(result.cid)

    Importer(None, options).add_path(path, on_entry=note)
    return seen


@pytest.fixture(scope="module")
def boundary_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files at every size boundary: empty, 1 byte, one chunk, one chunk + 1, 174 chunks
    (the widest one-level file) and 174 chunks + 1 byte (a second level)."""
    root = tmp_path_factory.mktemp("boundaries") / "files"
    root.mkdir()
    big = seeded_bytes("big", 174 * CHUNK + 1)
    sizes = {
        "empty": 0,
        "one-byte": 1,
        "one-chunk": CHUNK,
        "one-chunk-plus-1": CHUNK + 1,
        "174-chunks": 174 * CHUNK,
        "175-chunks": 174 * CHUNK + 1,
    }
    for name, size in sizes.items():
        (root / name).write_bytes(big[:size])
    return root


@pytest.mark.parametrize("config", CONFIGS)
def test_files_at_chunk_and_layout_boundaries(
    config: str, boundary_files: Path, run_js: RunJs
) -> None:
    options, flags = CONFIGS[config]
    reference = run_js("import.mjs", boundary_files, *flags)["entries"]
    assert our_entries(boundary_files, options) == reference
    assert len(reference) == 7


@pytest.mark.parametrize("config", CONFIGS)
def test_pushed_files_give_the_reference_cids(
    config: str, boundary_files: Path, run_js: RunJs
) -> None:
    """The push interface (bytes handed over in pieces that straddle chunk ends, entries
    handed to a directory builder) against the reference importer directly."""
    options, flags = CONFIGS[config]
    reference = run_js("import.mjs", boundary_files, *flags)["entries"]
    importer = Importer(None, options)
    directory = importer.directory_builder()
    ours: dict[str, str] = {}
    for path in sorted(boundary_files.iterdir()):
        builder = importer.file_builder()
        with path.open("rb") as stream:
            while piece := stream.read(100_003):
                builder.update(piece)
        result = builder.finish()
        ours[path.name] = str(result.cid)
        directory.add(path.name, result)
    ours[""] = str(directory.finish().cid)
    assert ours == reference


@pytest.mark.parametrize("config", CONFIGS)
def test_nested_tree_with_unicode_empty_dirs_and_symlinks(
    config: str, tmp_path: Path, run_js: RunJs
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    options, flags = CONFIGS[config]
    reference = run_js("import.mjs", tree, *flags)
    ours = our_entries(tree, options)
    # The reference importer reports every entry but empty directories (whose CIDs are
    # still inside their parents'): compare what it reports, the root included.
    assert ours.items() >= reference["entries"].items()
    assert ours[""] == reference["cid"]
    assert "empty-dir" in ours and "ünïcødé/empty-too" in ours and "link-absolute" in ours
    assert not any(name.startswith(".") for name in ours)


def test_hidden_entries_are_added_when_asked(tmp_path: Path, run_js: RunJs) -> None:
    tree = make_small_tree(tmp_path / "tree")
    reference = run_js("import.mjs", tree, "--hidden")["entries"]
    ours = our_entries(tree, ImportOptions(hidden=True))
    assert ours.items() >= reference.items()
    assert ".hidden-dir/inside" in ours


def flat_directory(root: Path, names: list[str]) -> Path:
    root.mkdir()
    for name in names:
        (root / name).write_bytes(b"")
    return root


@pytest.mark.parametrize("config", ["v0", "v1"])
def test_directories_at_the_sharding_threshold(config: str, tmp_path: Path, run_js: RunJs) -> None:
    """1024 links whose names and CIDs add up to exactly 262 144 bytes stay flat; one byte
    more shards (the `>` rule of current Kubo and the JS importer)."""
    options, flags = CONFIGS[config]
    name_len = 256 - (34 if config == "v0" else 36)
    names = [f"{i:0{name_len}d}" for i in range(1024)]
    at = flat_directory(tmp_path / "at", names)
    over = flat_directory(tmp_path / "over", ["x" + names[0], *names[1:]])
    store = Blockstore(tmp_path / "store")

    flat = Importer(store, options).add_path(at).cid
    sharded = Importer(store, options).add_path(over).cid
    assert str(flat) == run_js("import.mjs", at, *flags)["cid"]
    assert str(sharded) == run_js("import.mjs", over, *flags)["cid"]
    assert decode_unixfs(decode_node(store.get(flat)).data).type == DataType.DIRECTORY
    assert decode_unixfs(decode_node(store.get(sharded)).data).type == DataType.HAMT_SHARD


def test_legacy_sharding_rule_shards_at_exactly_the_threshold(
    tmp_path: Path, run_js: RunJs
) -> None:
    """Kubo 0.39 and older shard at `estimate >= 262144`."""
    at = flat_directory(tmp_path / "at", [f"{i:0222d}" for i in range(1024)])
    legacy = Importer(None, ImportOptions(shard_at_threshold=True)).add_path(at).cid
    reference = run_js("import.mjs", at, "--shard-split-threshold", "262143")["cid"]
    assert str(legacy) == reference
    assert legacy != Importer().add_path(at).cid


def test_a_symlink_at_the_top_is_added_as_a_symlink(tmp_path: Path, run_js: RunJs) -> None:
    link = tmp_path / "link"
    os.symlink("some/where", link)
    assert str(Importer().add_path(link).cid) == run_js("import.mjs", link)["cid"]
