"""The compute side of verified jobs: which Docker images this node vouches for, and the
faulty-results switch that exercises the requester's verifier with a real node.

A verified job runs as replicas on several nodes whose results must be byte-identical. WASM
runs are deterministic by construction (the executor fixes clocks and randomness); a Docker
image is only if its program is, which the operator vouches for by listing the image in
``deterministic_images``. A node bids for a verified Docker job only on such an image.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import logging
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from bacalhau.compute._bidder import BidRequest, BidVerdict
from bacalhau.models import Obj, SpecConfig
from bacalhau.publisher import results_cid

__all__ = ["FAULTY_MARK", "DeterministicImages", "corrupt_results", "publish_faultily"]

_log = logging.getLogger(__name__)


class DeterministicImages:
    """Bid for a verified Docker job only when its image is one the operator lists as
    deterministic (exact references or shell-style patterns: ``local/tools:*``)."""

    def __init__(self, images: Collection[str]) -> None:
        self._images = tuple(images)

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        job = request.job
        if not job.verified or job.task.engine.type.lower() != "docker":
            return BidVerdict.accept()
        image = Obj(job.task.engine.params, "Engine.Params").get_str("Image")
        if any(fnmatch.fnmatchcase(image, pattern) for pattern in self._images):
            return BidVerdict.accept()
        return BidVerdict.reject(
            f"the job asks for verified results, and this node's operator does not list the "
            f"image {image!r} as deterministic (deterministic_images)"
        )


#: What a faulty node appends to a result file.
FAULTY_MARK = b"\n(altered by a node configured with faulty_results=corrupt)\n"


def corrupt_results(results_dir: Path) -> Path:
    """Alter the results in ``results_dir`` so that their CID differs: the first output file
    (by path) gets :data:`FAULTY_MARK` appended, or ``stdout`` when the job wrote none.
    Returns the file altered. Test only (``faulty_results``)."""
    logs = {"stdout", "stderr", "exitCode"}
    outputs = sorted(
        p
        for p in results_dir.rglob("*")
        if p.is_file() and p.relative_to(results_dir).as_posix() not in logs
    )
    target = outputs[0] if outputs else results_dir / "stdout"
    with target.open("ab") as f:
        f.write(FAULTY_MARK)
    return target


async def publish_faultily(
    mode: str, results_dir: Path, publish: Callable[[], Awaitable[SpecConfig]]
) -> SpecConfig:
    """Publish ``results_dir`` altered as ``faulty_results`` says. ``corrupt``: the altered
    results under their own CID. ``misclaim``: the altered results, claiming the CID of the
    unaltered ones (what a node that lies about its work would send). Test only."""
    claimed = await asyncio.to_thread(results_cid, results_dir) if mode == "misclaim" else ""
    altered = await asyncio.to_thread(corrupt_results, results_dir)
    _log.warning("faulty node (%s): altered %s", mode, altered)
    published = await publish()
    if claimed:
        published = dataclasses.replace(published, params={**published.params, "CID": claimed})
    return published
