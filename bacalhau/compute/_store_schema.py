"""The execution store's file: its connection settings, its tables and the migration of
earlier layouts.

The tables: ``executions`` (one row per execution, its document written once), ``outbox``
(callbacks waiting for their requester), ``modules`` (inline modules kept once for every
execution that runs them), ``logs`` (the output of finished executions whose results
folder went to another execution) and ``kept_results`` (the files of small published
results, archived when downloaded). ``PRAGMA user_version`` records the layout.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bacalhau.errors import InternalError

__all__ = ["connect", "create_schema"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id               TEXT PRIMARY KEY,
    job_id           TEXT NOT NULL,
    requester_id     TEXT NOT NULL,
    state            TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    message          TEXT NOT NULL DEFAULT '',
    execution        TEXT NOT NULL,
    published_result TEXT,
    run_output       TEXT,
    create_time      INTEGER NOT NULL,
    modify_time      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_state ON executions (state);
CREATE INDEX IF NOT EXISTS executions_by_job ON executions (job_id);
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    requester_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    create_time  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_requester ON outbox (requester_id, seq);
CREATE TABLE IF NOT EXISTS modules (
    hash      TEXT PRIMARY KEY,
    data      TEXT NOT NULL,
    used_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    execution_id TEXT PRIMARY KEY,
    stdout       BLOB NOT NULL,
    stderr       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kept_results (
    execution_id TEXT PRIMARY KEY,
    data         BLOB NOT NULL
);
"""
#: 2: inline modules kept once in ``modules``, named by ``executions.module``.
#: 3: ``logs`` (a table of its own: older stores gain it with what their executions' outputs
#: hold, see ``_carry_logs``).
#: 4: ``kept_results`` (small published results, see ``publisher._kept``; gained empty).
_SCHEMA_VERSION = 4


def connect(path: Path) -> sqlite3.Connection:
    """Open the store's file: WAL, commits that do not wait for the disk, incremental vacuum."""
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    # Space freed by retention is given back in small steps (a new store only: an
    # existing one reuses its free pages, so its file stops growing all the same).
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    return db


def create_schema(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new store and migrate an older one (in the caller's
    transaction); refuse a store written by a newer node."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > _SCHEMA_VERSION:
        raise InternalError(
            f"execution store {path} has schema {version}, newer than this node "
            f"understands ({_SCHEMA_VERSION})",
            hint="run the newer version of the node, or move the data dir aside",
        )
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    _migrate_modules(db)
    if version < 3:
        _carry_logs(db)
    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")


def _carry_logs(db: sqlite3.Connection) -> None:
    """Keep in ``logs`` the output a store of before schema 3 has of its finished executions:
    the first bytes of each stream, in ``run_output``. Their results folders are gone when a
    node of that layout forgot them, and ``job logs`` would then show nothing at all; a
    folder still there is read first, whole."""
    db.execute(
        "INSERT OR IGNORE INTO logs (execution_id, stdout, stderr)"
        " SELECT id, CAST(COALESCE(json_extract(run_output, '$.Stdout'), '') AS BLOB),"
        # (Bacalhau's RunCommandResult spells it ``stderr``.)
        " CAST(COALESCE(json_extract(run_output, '$.stderr'), '') AS BLOB)"
        " FROM executions WHERE run_output IS NOT NULL AND json_valid(run_output)"
    )


def _migrate_modules(db: sqlite3.Connection) -> None:
    """Give ``executions`` its ``module`` column (stores of schema 1 kept every inline
    module in its execution's document, where it stays readable)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(executions)")}
    if "module" not in columns:
        db.execute("ALTER TABLE executions ADD COLUMN module TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS executions_by_module ON executions (module)")
