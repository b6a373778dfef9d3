"""The job store's SQLite schema: its tables and indexes, and the migrations that bring a store
written by an earlier version to the current layout (run once, when the store opens)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator

from bacalhau.errors import InternalError

#: Jobs: what changes (state, its message, revision, modify time) in columns; the job's
#: spec, written once per version, in ``job_specs``. A state change rewrites one small row.
#: ``state_message`` holds JSON text (like the documents): a message may carry text SQLite
#: cannot bind as a string (a lone surrogate from a client) and must still be stored.
#: ``name`` is the job's Name when it has one of its own, NULL when its name is its ID (a job
#: submitted without one): those need no entry in ``jobs_by_name``, so the jobs that make up
#: most of the traffic cost that index nothing (their ID finds them).
_JOBS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT,
    state INTEGER NOT NULL,
    state_message TEXT NOT NULL DEFAULT '""',
    revision INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    create_time INTEGER NOT NULL,
    modify_time INTEGER NOT NULL,
    labels TEXT,
    size INTEGER
);
"""

_SCHEMA = (
    _JOBS_TABLE.format(name="jobs")
    + """
CREATE TABLE IF NOT EXISTS job_specs (
    job_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, version)
);
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    compute_state INTEGER NOT NULL,
    desired_state INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    modify_time INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_job ON executions(job_id);
CREATE INDEX IF NOT EXISTS executions_by_node ON executions(node_id);
CREATE TABLE IF NOT EXISTS history (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,
    wait_until INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_by_status ON evaluations(status);
CREATE TABLE IF NOT EXISTS idempotency (
    token TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    evaluation_id TEXT NOT NULL,
    warnings TEXT NOT NULL
);
"""
)

#: Per compute node, how often its verified results agreed or disagreed with the accepted
#: ones (``orchestrator._reputation``); kept when the node's jobs are deleted by retention.
_REPUTATION_TABLE = """
CREATE TABLE IF NOT EXISTS node_reputation (
    node_id TEXT PRIMARY KEY,
    agreements INTEGER NOT NULL DEFAULT 0,
    disagreements INTEGER NOT NULL DEFAULT 0,
    modify_time INTEGER NOT NULL
);
"""

_LIST_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_create_time ON jobs(create_time, id);
CREATE INDEX IF NOT EXISTS jobs_by_modify_time ON jobs(modify_time, id);
CREATE INDEX IF NOT EXISTS jobs_by_namespace ON jobs(namespace, create_time, id);
CREATE INDEX IF NOT EXISTS jobs_by_namespace_modified ON jobs(namespace, modify_time, id);
CREATE INDEX IF NOT EXISTS jobs_by_state_modified ON jobs(state, modify_time);
-- Lookups by state use jobs_by_state_modified (state leads it); a second index on state
-- alone only cost one more page write per job state change.
DROP INDEX IF EXISTS jobs_by_state;
CREATE INDEX IF NOT EXISTS evaluations_by_job ON evaluations(job_id);
CREATE INDEX IF NOT EXISTS idempotency_by_job ON idempotency(job_id);
-- A name is unique in its namespace: a job submitted under an existing name updates that
-- job. Unique in SQL too, so the guarantee costs no read (the insert finds the slot anyway).
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_name ON jobs(namespace, name) WHERE name IS NOT NULL;
"""


#: ``PRAGMA user_version`` of the store's layout. 0: written before stores said theirs.
#: 1: says it, so that a node of an older layout refuses the store rather than write rows
#: it does not fill (a job without its ``name``, which its name then no longer finds).
_SCHEMA_VERSION = 1


@contextlib.contextmanager
def _migration(db: sqlite3.Connection) -> Iterator[None]:
    """One migration step, all or nothing."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def open_database(path: str) -> sqlite3.Connection:
    """Open (or create) the store at ``path``: WAL, the current schema, the layouts of
    earlier versions migrated. Refuses a store written by a newer node."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > _SCHEMA_VERSION:
        db.close()
        raise InternalError(
            f"job store {path} has schema {version}, newer than this node understands "
            f"({_SCHEMA_VERSION})",
            hint="run the newer version of the node, or move the data dir aside",
        )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    # Waits out a WAL restart of the checkpoint thread (see _wal_checkpoints).
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA foreign_keys=ON")
    # Space freed by retention is given back in small steps (a new store only: an
    # existing one reuses its free pages, so its file stops growing all the same).
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.executescript(_SCHEMA)
    _migrate(db)
    _migrate_specs(db)
    _migrate_blobs(db)
    if not _migrate_names(db) and version < 1:
        _refill_names(db)
    db.executescript(_REPUTATION_TABLE)
    db.executescript(_LIST_INDEXES)
    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Add the ``labels`` and ``size`` columns to a store written before listing paged
    in SQL."""
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(jobs)")}
    if {"labels", "size"} <= columns:
        return
    # The document is in the row itself, or (a store of the current layout missing the
    # columns) in its spec.
    data = (
        "data"
        if "data" in columns
        else "(SELECT s.data FROM job_specs s WHERE s.job_id = jobs.id"
        " AND s.version = jobs.version)"
    )
    with _migration(db):
        if "size" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN size INTEGER")
            db.execute(f"UPDATE jobs SET size = length(CAST({data} AS BLOB))")
        if "labels" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN labels TEXT")
            for job_id, doc in db.execute(f"SELECT id, {data} FROM jobs").fetchall():
                labels = json.loads(doc).get("Labels") or {}
                db.execute("UPDATE jobs SET labels = ? WHERE id = ?", (json.dumps(labels), job_id))


def _migrate_blobs(db: sqlite3.Connection) -> None:
    """Give ``job_specs`` its ``blob`` column (stores written before inline modules were
    kept by content hash have none; their specs keep the module inline)."""
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(job_specs)")}
    if "blob" not in columns:
        db.execute("ALTER TABLE job_specs ADD COLUMN blob TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS job_specs_by_blob ON job_specs(blob)")


def _migrate_specs(db: sqlite3.Connection) -> None:
    """Move a store written when each job was one document (``jobs.data``, rewritten on
    every state change) to a spec per version plus state columns, in one transaction."""
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(jobs)")}
    if "data" not in columns:
        return
    with _migration(db):
        db.execute(
            "INSERT OR IGNORE INTO job_specs (job_id, version, data)"
            " SELECT id, COALESCE(json_extract(data, '$.Version'), 0), data FROM jobs"
        )
        db.execute(_JOBS_TABLE.format(name="jobs_v2"))
        db.execute(
            "INSERT INTO jobs_v2 (id, namespace, state, state_message, revision, version,"
            " create_time, modify_time, labels, size)"
            " SELECT id, namespace, state,"
            " json_quote(COALESCE(json_extract(data, '$.State.Message'), '')),"
            " revision, COALESCE(json_extract(data, '$.Version'), 0), create_time,"
            " modify_time, labels, size FROM jobs"
        )
        db.execute("DROP TABLE jobs")
        db.execute("ALTER TABLE jobs_v2 RENAME TO jobs")
        _fill_names(db)


def _migrate_names(db: sqlite3.Connection) -> bool:
    """Give ``jobs`` its ``name`` column (stores written before jobs were addressed by
    name have none), filled from each job's current spec. Whether it did."""
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(jobs)")}
    if "name" in columns:
        return False
    with _migration(db):
        db.execute("ALTER TABLE jobs ADD COLUMN name TEXT")
        _fill_names(db)
    return True


def _refill_names(db: sqlite3.Connection) -> None:
    """Fill the names again in a store of schema 0 that has them: a node of a layout before
    names (which did not refuse a newer store) may have written jobs without theirs since."""
    with _migration(db):
        # The index would refuse a name moving to a newer job before the older one drops it.
        db.execute("DROP INDEX IF EXISTS jobs_by_name")
        _fill_names(db)


def _fill_names(db: sqlite3.Connection) -> None:
    """Set every job's ``name`` from its current spec (NULL when it is the job's ID), in the
    caller's transaction.

    Before names were unique, submitting a name twice made two jobs. The name now stands
    for the most recently created of them, as a user who ran the same named job again
    means it; the older ones keep their IDs, by which they are still found."""
    db.execute(
        "UPDATE jobs SET name = (SELECT json_extract(s.data, '$.Name') FROM job_specs s"
        " WHERE s.job_id = jobs.id AND s.version = jobs.version)"
    )
    db.execute("UPDATE jobs SET name = NULL WHERE name = '' OR name = id")
    db.execute(
        "UPDATE jobs SET name = NULL WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER()"
        " OVER (PARTITION BY namespace, name ORDER BY create_time DESC, id DESC) AS rank"
        " FROM jobs WHERE name IS NOT NULL) WHERE rank > 1)"
    )
