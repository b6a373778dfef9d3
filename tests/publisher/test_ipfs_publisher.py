"""The ipfs publisher: results stored and pinned in the node's blockstore under their CID."""

from __future__ import annotations

from pathlib import Path

from bacalhau.models import Job
from bacalhau.publisher import IPFSPublisher, results_cid
from bacalhau.storage.cid import CID, Blockstore, export


async def test_results_are_stored_pinned_and_exportable(tmp_path: Path) -> None:
    results = tmp_path / "e-1"
    (results / "out").mkdir(parents=True)
    (results / "stdout").write_text("hello\n")
    (results / "out" / "data.bin").write_bytes(bytes(range(256)) * 5000)  # several chunks

    with Blockstore(tmp_path / "blocks") as store:
        spec = await IPFSPublisher(store).publish("e-1", Job(), results)
        assert spec.type == "ipfs"
        cid = CID.parse(spec.params["CID"])
        # The same CID `ipfs add -r` (defaults) gives the directory.
        assert str(cid) == results_cid(results) and str(cid).startswith("Qm")
        assert store.is_pinned(cid)
        export(store, cid, tmp_path / "copy")
    assert (tmp_path / "copy" / "stdout").read_text() == "hello\n"
    assert (tmp_path / "copy" / "out" / "data.bin").read_bytes() == bytes(range(256)) * 5000
