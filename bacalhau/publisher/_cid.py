"""The CID of a results directory, as ``ipfs add -r`` (default settings) would give it.

Every published result records it (``Params.CID``), so results published anywhere can be
checked against, or found by, their content address.
"""

from __future__ import annotations

from pathlib import Path

from bacalhau.storage.cid import Importer


def results_cid(results_dir: Path) -> str:
    """Hash ``results_dir`` (nothing is stored): CIDv0, 256 KiB chunks, hidden files skipped."""
    return str(Importer(None).add_path(results_dir).cid)
