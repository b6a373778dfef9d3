"""``job get`` on results published to ``ipfs``: fetched by CID through a real requester API
with a real blockstore, extracted under the same link rules as archives, merged or kept
apart per execution."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bacalhau.api import ApiServer
from bacalhau.client import AsyncClient, SkipReason
from bacalhau.errors import BacalhauError
from bacalhau.models import SpecConfig
from bacalhau.orchestrator import OrchestratorAPI
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import Blockstore, Importer
from tests.api.memory_orchestrator import MemoryOrchestrator
from tests.client.test_download import job_with_results


@pytest.fixture
def store(tmp_path: Path) -> Blockstore:
    return Blockstore(tmp_path / "requester-blocks")


@pytest.fixture
async def data_client(orch: MemoryOrchestrator, store: Blockstore) -> AsyncIterator[AsyncClient]:
    api: OrchestratorAPI = orch
    server = ApiServer(api, host="127.0.0.1", port=0, content=BlockstoreContent(store))
    async with server as srv, AsyncClient(srv.url) as c:
        yield c
    store.close()


def publish(store: Blockstore, results: Path, files: dict[str, bytes]) -> SpecConfig:
    """What the ipfs publisher does on a node: import the results directory, pin it."""
    for name, data in files.items():
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_bytes(data)
    with store.batch() as sink:
        root = Importer(sink).add_path(results)
    store.pin(root.cid)
    return SpecConfig("ipfs", {"CID": str(root.cid)})


async def test_ipfs_results_are_fetched_by_cid_merged_or_kept_apart(
    data_client: AsyncClient, orch: MemoryOrchestrator, store: Blockstore, tmp_path: Path
) -> None:
    big = os.urandom(600_000)  # several chunks: a multi-block file
    one = publish(
        store,
        tmp_path / "r1",
        {"stdout": b"one\n", "stderr": b"", "exitCode": b"0", "outputs/big.bin": big},
    )
    two = publish(
        store,
        tmp_path / "r2",
        {"stdout": b"two\n", "stderr": b"", "exitCode": b"0", "outputs/b.txt": b"b"},
    )
    job_id = await job_with_results(orch, data_client, one, two)

    merged = (await data_client.download_results(job_id, tmp_path / "merged")).path
    assert (merged / "stdout").read_text() == "one\ntwo\n"
    assert (merged / "exitCode").read_text() == "00"
    assert (merged / "outputs" / "big.bin").read_bytes() == big
    assert (merged / "outputs" / "b.txt").read_text() == "b"
    assert not (merged / "raw").exists()

    raw = (await data_client.download_results(job_id, tmp_path / "raw", raw=True)).path
    first, second = (raw / "raw" / one.params["CID"]), (raw / "raw" / two.params["CID"])
    assert (first / "stdout").read_text() == "one\n"
    assert (second / "outputs" / "b.txt").read_text() == "b"
    assert not (raw / "stdout").exists()
    assert sorted(p.name for p in (raw / "raw").iterdir()) == sorted([first.name, second.name])


async def test_identical_results_share_a_cid_and_still_get_a_folder_each(
    data_client: AsyncClient, orch: MemoryOrchestrator, store: Blockstore, tmp_path: Path
) -> None:
    same = publish(store, tmp_path / "r", {"stdout": b"same\n", "exitCode": b"0"})
    job_id = await job_with_results(orch, data_client, same, same)
    merged = (await data_client.download_results(job_id, tmp_path / "merged")).path
    assert (merged / "stdout").read_text() == "same\nsame\n"
    raw = (await data_client.download_results(job_id, tmp_path / "raw", raw=True)).path
    assert len(list((raw / "raw").iterdir())) == 2


async def test_links_of_an_ipfs_result_follow_the_archive_rules(
    data_client: AsyncClient, orch: MemoryOrchestrator, store: Blockstore, tmp_path: Path
) -> None:
    results = tmp_path / "r"
    (results / "outputs").mkdir(parents=True)
    (results / "stdout").write_text("x")
    (results / "outputs" / "real.txt").write_text("inside")
    (results / "outputs" / "ok").symlink_to("real.txt")
    (results / "outputs" / "abs").symlink_to("/etc/passwd")
    (results / "outputs" / "up").symlink_to("../../../outside")
    spec = publish(store, results, {})
    job_id = await job_with_results(orch, data_client, spec)
    got = await data_client.download_results(job_id, tmp_path / "out")
    out = got.path
    assert (out / "outputs" / "ok").is_symlink()
    assert (out / "outputs" / "ok").read_text() == "inside"
    assert not (out / "outputs" / "abs").is_symlink()
    assert not (out / "outputs" / "up").is_symlink()
    reasons = {e.path: e.reason for e in got.skipped}
    assert reasons == {
        "outputs/abs": SkipReason.ABSOLUTE_LINK,
        "outputs/up": SkipReason.ESCAPING_LINK,
    }


async def test_a_cid_the_cluster_lacks_is_an_error_naming_it(
    data_client: AsyncClient, orch: MemoryOrchestrator, tmp_path: Path
) -> None:
    lost = "QmSnuWmxptJZdLJpKRarxBMS2Ju2oANVrgbr2xWbie9b2D"
    job_id = await job_with_results(orch, data_client, SpecConfig("ipfs", {"CID": lost}))
    with pytest.raises(BacalhauError) as info:
        await data_client.download_results(job_id, tmp_path / "out")
    assert lost in info.value.message
    assert not (tmp_path / "out" / "stdout").exists()
