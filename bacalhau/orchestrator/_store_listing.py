"""Listing the job store's jobs: pages ordered and filtered in SQL over the state columns
(namespace, labels, times, document size), then the documents of one page only, read on the
event loop or, for a large page, through a connection of its own in a worker thread."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bacalhau.models import Job
from bacalhau.orchestrator._store_jobs import MODULE_JSON_PATH, JobRecords, JobRow, with_state

#: Columns a job listing can be ordered by.
JOB_ORDER_COLUMNS = ("create_time", "modify_time", "id")
#: Rows fetched per statement when reading a page's documents.
_FETCH_CHUNK = 500


@dataclass(slots=True)
class StoredJobPage:
    """One page of a job listing: the IDs, in order, and the size of their stored documents
    (read them with :meth:`JobStore.read_jobs`)."""

    ids: list[str]
    #: Bytes of stored documents the page holds (large pages are worth reading off the loop).
    size: int
    #: True when more matching jobs follow the page.
    has_more: bool


_JOB_COLUMNS = (
    "j.id, j.state, j.state_message, j.revision, j.version, j.modify_time,"
    f" CASE WHEN s.blob IS NULL THEN s.data ELSE json_set(s.data, '{MODULE_JSON_PATH}',"
    " (SELECT b.data FROM blobs b WHERE b.hash = s.blob)) END"
    " FROM jobs j JOIN job_specs s ON s.job_id = j.id AND s.version = j.version"
)


def decode_jobs(rows: Sequence[JobRow]) -> list[Job]:
    """Decode stored jobs (pure; safe to run in a worker thread)."""
    return [with_state(Job.from_dict(json.loads(row[6])), row) for row in rows]


class JobListing(JobRecords):
    """Pages of jobs and the jobs of a page."""

    #: The store's file (a worker thread opens a connection of its own to it).
    _path: str

    def list_jobs(self) -> list[Job]:
        return self.read_jobs(self.page_jobs().ids)

    def page_jobs(
        self,
        *,
        namespace: str = "",
        labels_match: Callable[[Mapping[str, str]], bool] | None = None,
        order_by: str = "create_time",
        reverse: bool = False,
        limit: int = 0,
        offset: int = 0,
        after: tuple[int | str, str] | None = None,
    ) -> StoredJobPage:
        """One page of jobs, ordered by ``order_by`` (a column of :data:`JOB_ORDER_COLUMNS`)
        then ID, in SQL; only the page's documents are read.

        ``namespace`` "" or "*" means all; ``labels_match`` filters on the labels column;
        ``after`` is a keyset cursor ``(sort value, job ID)`` of the last job already seen
        (``offset`` skips matches instead, for paging tokens of older versions); ``limit`` 0
        means no limit.
        """
        if order_by not in JOB_ORDER_COLUMNS:
            raise ValueError(f"cannot order jobs by {order_by!r}")
        where: list[str] = []
        args: list[object] = []
        if namespace and namespace != "*":
            where.append("namespace = ?")
            args.append(namespace)
        if after is not None:
            where.append(f"({order_by}, id) {'<' if reverse else '>'} (?, ?)")
            args.extend(after)
        direction = "DESC" if reverse else "ASC"
        sql = (
            f"SELECT id, labels, size FROM jobs{' WHERE ' + ' AND '.join(where) if where else ''}"
            f" ORDER BY {order_by} {direction}, id {direction}"
        )
        ids: list[str] = []
        size = 0
        skipped = 0
        has_more = False
        for job_id, labels, job_size in self._db.execute(sql, args):
            if labels_match is not None and not labels_match(json.loads(labels or "{}")):
                continue
            if skipped < offset:
                skipped += 1
                continue
            if limit and len(ids) == limit:
                has_more = True
                break
            ids.append(str(job_id))
            size += int(job_size or 0)
        return StoredJobPage(ids=ids, size=size, has_more=has_more)

    def read_jobs(self, ids: Sequence[str], *, own_connection: bool = False) -> list[Job]:
        """The jobs with these IDs, in this order (IDs no longer stored are skipped).

        ``own_connection`` reads through a connection of its own, so that the call can run in
        a worker thread while the event loop keeps using the store (WAL: it sees committed
        data only).
        """
        if not own_connection:
            return [self._decode(row) for row in self._rows(self._db, ids)]
        db = sqlite3.connect(self._path, isolation_level=None)
        try:
            return decode_jobs(self._rows(db, ids))
        finally:
            db.close()

    @staticmethod
    def _rows(db: sqlite3.Connection, ids: Sequence[str]) -> list[JobRow]:
        found: dict[str, JobRow] = {}
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = list(ids[start : start + _FETCH_CHUNK])
            marks = ",".join("?" for _ in chunk)
            for row in db.execute(f"SELECT {_JOB_COLUMNS} WHERE j.id IN ({marks})", chunk):
                found[str(row[0])] = row
        return [found[i] for i in ids if i in found]
