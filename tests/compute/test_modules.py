"""Modules that arrive by reference: put back from the execution store, or fetched once.

The requester is stood in for by :class:`GatedRequester`, a ModuleSource holding each answer
until the test releases it (the real one over gRPC is in tests/transport/
test_modules_by_reference.py); the store and the resolver are the real ones.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bacalhau.compute import ExecutionStore, ModuleResolver
from bacalhau.compute._module_memo import ModuleMemo
from bacalhau.errors import InvalidJobSpec, NotFound, RevisionConflict
from bacalhau.models import (
    Execution,
    Job,
    LocalExecutionState,
    entry_module_url,
    module_digest,
    module_reference,
    referenced_module_digest,
    with_entry_module_url,
)
from tests.compute.wasm_jobs import module_url, wasm_job


class GatedRequester:
    """Answers module requests from ``modules`` once ``release`` is set; counts them."""

    def __init__(self, modules: dict[str, str]) -> None:
        self.modules = modules
        self.release = asyncio.Event()
        self.asked: list[tuple[str, str]] = []

    async def get_module(self, requester_id: str, sha256: str) -> str:
        self.asked.append((requester_id, sha256))
        await self.release.wait()
        if sha256 not in self.modules:
            raise NotFound(f"no module {sha256}")
        return self.modules[sha256]


def _by_reference(url: str) -> Job:
    return with_entry_module_url(wasm_job(url), module_reference(module_digest(url)))


async def test_concurrent_asks_for_one_module_wait_for_one_fetch(tmp_path: Path) -> None:
    url = module_url("coalesced")
    requester = GatedRequester({module_digest(url): url})
    with ExecutionStore(tmp_path / "compute.db") as store:
        resolver = ModuleResolver(store=store, source=requester)
        asks = [
            asyncio.create_task(resolver.resolve("requester-1", _by_reference(url)))
            for _ in range(5)
        ]
        while not requester.asked:  # noqa: ASYNC110 - the fetch has no event of its own
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)  # every ask has had its turn: all wait for the one fetch
        requester.release.set()
        jobs = await asyncio.gather(*asks)

        assert [entry_module_url(job) for job in jobs] == [url] * 5
        assert requester.asked == [("requester-1", module_digest(url))]
        assert resolver.fetches == 1
        # Kept: a later ask is answered from the store.
        assert store.module(module_digest(url)) == url
        assert entry_module_url(await resolver.resolve("requester-1", _by_reference(url))) == url
        assert resolver.fetches == 1


async def test_a_failed_fetch_fails_every_waiter_and_the_next_ask_tries_again(
    tmp_path: Path,
) -> None:
    url = module_url("not there yet")
    requester = GatedRequester({})
    requester.release.set()
    with ExecutionStore(tmp_path / "compute.db") as store:
        resolver = ModuleResolver(store=store, source=requester)
        results = await asyncio.gather(
            resolver.resolve("requester-1", _by_reference(url)),
            resolver.resolve("requester-1", _by_reference(url)),
            return_exceptions=True,
        )
        assert all(isinstance(r, NotFound) for r in results), results
        assert len(requester.asked) == 1

        requester.modules[module_digest(url)] = url
        job = await resolver.resolve("requester-1", _by_reference(url))
        assert entry_module_url(job) == url and len(requester.asked) == 2


async def test_a_job_without_a_reference_is_left_as_it_is(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "compute.db") as store:
        resolver = ModuleResolver(store=store, source=None)
        job = wasm_job(module_url("inline"))
        assert await resolver.resolve("requester-1", job) is job


def test_a_reference_names_the_sha256_of_the_data_url() -> None:
    url = module_url("named")
    reference = module_reference(module_digest(url))
    assert reference.startswith("ni:///sha-256;") and "=" not in reference
    assert referenced_module_digest(reference) == module_digest(url)
    assert referenced_module_digest(url) is None
    for malformed in ("ni:///sha-256;", "ni:///sha-256;AAAA", reference + "A", reference[:-1]):
        with pytest.raises(InvalidJobSpec):
            referenced_module_digest(malformed)


def test_the_store_keeps_one_copy_of_a_module_and_gives_jobs_back_whole(tmp_path: Path) -> None:
    url = module_url("stored once")
    db = tmp_path / "compute.db"
    with ExecutionStore(db) as store:
        ids = []
        for n in range(3):
            execution = Execution(id=f"e-{n}", job_id=f"j-{n}", node_id="n", job=wasm_job(url))
            store.create(execution, requester_id="requester-1")
            ids.append(execution.id)
        assert [entry_module_url(store.get(i).job) for i in ids] == [url] * 3
        assert [entry_module_url(r.job) for r in store.executions()] == [url] * 3
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM modules").fetchone() == (1,)
            for (body,) in conn.execute("SELECT execution FROM executions"):
                assert url not in body and module_reference(module_digest(url)) in body

        # Forgotten with the last execution that runs it, once unused since the cut-off.
        for i in ids:
            record = store.get(i)
            store.transition(record, LocalExecutionState.CANCELLED)
        store.prune(finished_before_ns=2**62, limit=2)
        assert store.module(module_digest(url)) == url  # one execution still runs it
        store.prune(finished_before_ns=2**62, limit=2)
        assert store.module(module_digest(url)) is None


def test_a_store_of_the_first_schema_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "compute.db"
    with ExecutionStore(db) as store:
        store.create(
            Execution(id="e-old", job_id="j", node_id="n", job=wasm_job("data:,x")),
            requester_id="requester-1",
        )
    with sqlite3.connect(db) as conn:  # as the first schema had it
        conn.execute("DROP INDEX executions_by_module")
        conn.execute("ALTER TABLE executions DROP COLUMN module")
        conn.execute("PRAGMA user_version=1")
    with ExecutionStore(db) as store:
        assert entry_module_url(store.get("e-old").job) == "data:,x"
        url = module_url("after the upgrade")
        store.create(
            Execution(id="e-new", job_id="j", node_id="n", job=wasm_job(url)),
            requester_id="requester-1",
        )
        assert entry_module_url(store.get("e-new").job) == url


def test_a_kept_module_is_handed_out_as_one_object_and_not_written_again(tmp_path: Path) -> None:
    url = module_url("handed out once")
    digest = module_digest(url)
    db = tmp_path / "compute.db"
    with ExecutionStore(db) as store:
        store.keep_module(digest, url)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT used_time FROM modules").fetchall()
    with ExecutionStore(db) as store:  # a restarted node reads it from the database
        first = store.module(digest)
        assert first == url and first is not url
        # The next ask gets the very same object (not read, decoded and hashed again)...
        assert store.module(digest) is first
        for n in range(2):
            job = with_entry_module_url(wasm_job("data:,x"), first)
            execution = Execution(id=f"e-{n}", job_id="j", node_id="n", job=job)
            store.create(execution, requester_id="requester-1")
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT module FROM executions WHERE id = ?", (execution.id,))
                assert row.fetchone() == (digest,)
                # ...and executions made with it leave its row alone (see prune).
                assert conn.execute("SELECT used_time FROM modules").fetchall() == stored
        assert entry_module_url(store.get("e-1").job) == url


def test_a_module_whose_execution_was_refused_is_still_kept_by_the_next(tmp_path: Path) -> None:
    first, second = module_url("first"), module_url("second")
    with ExecutionStore(tmp_path / "compute.db") as store:
        store.create(
            Execution(id="e-1", job_id="j", node_id="n", job=wasm_job(first)),
            requester_id="requester-1",
        )
        again = Execution(id="e-1", job_id="j", node_id="n", job=wasm_job(second))
        with pytest.raises(RevisionConflict):
            store.create(again, requester_id="requester-1")  # rolled back, module too
        job = again.job
        assert job is not None
        store.create(
            Execution(id="e-2", job_id="j", node_id="n", job=job), requester_id="requester-1"
        )
        assert store.module(module_digest(second)) == second
    with ExecutionStore(tmp_path / "compute.db") as store:
        assert entry_module_url(store.get("e-2").job) == second


def test_the_module_memo_forgets_the_oldest() -> None:
    memo = ModuleMemo()
    urls = [module_url(f"module {n}") for n in range(17)]
    for url in urls:
        memo.remember(module_digest(url), url)
    assert memo.url(module_digest(urls[0])) is None
    assert memo.url(module_digest(urls[-1])) is urls[-1]
    memo.clear()
    assert memo.url(module_digest(urls[-1])) is None
