"""The CID-addressed store: UnixFS import and export, an on-disk blockstore, CAR files.

Content gets the same CIDs Kubo's ``ipfs add`` gives it for the same settings
(:class:`ImportOptions`), so data moves between this store and any IPFS implementation
(directly by CID, or as CAR files)::

    store = Blockstore(data_dir / "blocks")
    with store.batch() as sink:                     # writes overlap hashing
        root = Importer(sink).add_path("results/")  # ipfs add -r results/
    store.pin(root.cid)
    export(store, root.cid, "copy/")                # ipfs get
    with open("results.car", "wb") as out:           # ipfs dag export
        write_car(out, [root.cid], store)
"""

from __future__ import annotations

from ._batch import BatchWriter
from ._blockstore import Blockstore, BlockstoreStats, GCResult
from ._car import CarImport, CarReader, import_car, write_car
from ._cid import CID, DAG_PB, RAW
from ._exporter import (
    MAX_DIR_DEPTH,
    BlockSource,
    EntryKind,
    LsEntry,
    check_entry_name,
    export,
    ls,
    read_file,
    resolve,
    stat,
)
from ._importer import (
    BlockSink,
    DirectoryBuilder,
    FileBuilder,
    FrameSink,
    Importer,
    ImportOptions,
    ImportResult,
    TreeEntry,
    TreeVisitor,
)

__all__ = [
    "CID",
    "DAG_PB",
    "MAX_DIR_DEPTH",
    "RAW",
    "BatchWriter",
    "BlockSink",
    "BlockSource",
    "Blockstore",
    "BlockstoreStats",
    "CarImport",
    "CarReader",
    "DirectoryBuilder",
    "EntryKind",
    "FileBuilder",
    "FrameSink",
    "GCResult",
    "ImportOptions",
    "ImportResult",
    "Importer",
    "LsEntry",
    "TreeEntry",
    "TreeVisitor",
    "check_entry_name",
    "export",
    "import_car",
    "ls",
    "read_file",
    "resolve",
    "stat",
    "write_car",
]
