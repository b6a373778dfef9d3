"""The ``ipfs`` publisher: results imported into the producing node's blockstore and pinned.

The result is the root CID (``{"Type": "ipfs", "Params": {"CID": "Qm..."}}``), computed by the
same pass that stores the blocks. Other nodes get the content by CID from this node's store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bacalhau.errors import PublishFailed
from bacalhau.models import Job, SpecConfig
from bacalhau.storage.cid import Blockstore, Importer


class IPFSPublisher:
    """Stores results by CID in ``store`` and pins them (GC never drops published results)."""

    def __init__(self, store: Blockstore) -> None:
        self._store = store

    @property
    def name(self) -> str:
        return "ipfs"

    @property
    def copies_results(self) -> bool:
        return True

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        return None

    async def publish(self, execution_id: str, job: Job, results_dir: Path) -> SpecConfig:
        def store() -> str:
            with self._store.batch() as sink:
                root = Importer(sink).add_path(results_dir)
            self._store.pin(root.cid)
            return str(root.cid)

        try:
            cid = await asyncio.to_thread(store)
        except OSError as err:
            raise PublishFailed(
                f"ipfs publisher could not store {results_dir}: {err}",
                hint="check the compute node's disk space",
            ) from err
        return SpecConfig(type="ipfs", params={"CID": cid})
