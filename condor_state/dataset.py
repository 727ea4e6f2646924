"""The run's dataset, DIR/condor.db: finished samples, every critique/revision round, and each call's questions.

The run writes through the standard library's sqlite3 (a run's first request must not wait for sqlite-utils,
which imports pandas when it is installed: a second of start-up); the commands that read a run — export,
report, dedup — use sqlite-utils through `Dataset.db`, made on first use over the same connection."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condor_state.rundir import DB_NAME, round_rows_of, sample_row, shared_cost, shared_tokens
from condor_state.state import BatchState

if TYPE_CHECKING:
    import sqlite_utils

SAMPLE_COLUMNS = {
    "id": str,
    "position": int,
    "call_index": int,
    "tag_path": str,
    "root": str,
    "task_type": str,
    "difficulty": str,
    "language": str,
    "question": str,
    "void_answer": str,
    "refined_answer": str,
    "rounds": int,
    "first_score": int,
    "final_score": int,
    "status": str,
    "error": str,
    "repairs": int,
    "tokens_in": int,
    "tokens_out": int,
    "created_at": float,
    "cost": float,  # at the roles' prices; NULL when the run gave no price (added later: ALTERed into older files)
}
CALL_COLUMNS = {
    "call_index": int,
    "tag_path": str,
    "task_type": str,
    "language": str,
    "questions": str,  # JSON {difficulty: question}: every level the writer gave, kept or not
    "created_at": float,
}
ROUND_COLUMNS = {
    "sample_id": str,
    "round": int,
    "strengths": str,
    "weaknesses": str,
    "suggestions": str,
    "score": int,
    "critique": str,
    "revised_answer": str,
}


class UnreadableDatabase(RuntimeError):
    """A condor.db that SQLite cannot read (not a database, corrupt); the message is one line for the user."""


SQL_TYPES = {str: "TEXT", int: "INTEGER", bool: "INTEGER", float: "FLOAT"}  # as sqlite-utils names them
RUN_KINDS: dict[str, type] = {"cost": float}  # runs columns that may be NULL (no price): typed by name, not value


def _create(name: str, columns: dict[str, type], constraints: str) -> str:
    body = ", ".join(f"[{column}] {SQL_TYPES[kind]}" for column, kind in columns.items())
    return f"CREATE TABLE IF NOT EXISTS [{name}] ({body}, {constraints})"


SCHEMA = (
    _create("samples", SAMPLE_COLUMNS, "PRIMARY KEY ([id]), CHECK ([id] IS NOT NULL AND [status] IS NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS [idx_samples_status] ON [samples] ([status])",
    # a resume counts every call's stored samples (stored_per_call) from this index, not a scan and sort of the
    # table, and reads a call's levels (stored_levels) without a scan; as in the Postgres store
    "CREATE INDEX IF NOT EXISTS [idx_samples_call_index] ON [samples] ([call_index])",
    _create(
        "rounds",
        ROUND_COLUMNS,
        "PRIMARY KEY ([sample_id], [round]), FOREIGN KEY([sample_id]) REFERENCES [samples]([id])",
    ),
    _create("calls", CALL_COLUMNS, "PRIMARY KEY ([call_index])"),
)


class Dataset:
    """Finished samples; a call's samples are written once, with all their rounds, in one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            # autocommit: every transaction is explicit (BEGIN IMMEDIATE … COMMIT), as sqlite-utils expects too
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout=60000")  # worker processes of one run write in turn
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            for statement in SCHEMA:
                self.conn.execute(statement)
            self._add_new_columns()
        except sqlite3.DatabaseError as exc:
            raise UnreadableDatabase(f"{self.path} is not a readable Condor database ({exc})") from None

    def _add_new_columns(self) -> None:
        """Give a samples table written by an older version the columns added since (`cost`), once; checked
        again inside the transaction, as worker processes may open the file together."""
        if set(SAMPLE_COLUMNS) <= self._sample_columns():
            return
        with self._transaction():
            for column in (c for c in SAMPLE_COLUMNS if c not in self._sample_columns()):
                self.conn.execute(f"ALTER TABLE [samples] ADD COLUMN [{column}] {SQL_TYPES[SAMPLE_COLUMNS[column]]}")

    def _sample_columns(self) -> set[str]:
        return {info[1] for info in self.conn.execute("PRAGMA table_info([samples])")}

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over this connection, for the commands that read and annotate a run."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @classmethod
    def in_dir(cls, run_dir: str | Path) -> Dataset:
        return cls(Path(run_dir) / DB_NAME)

    def write_batch(self, state: BatchState) -> list[dict[str, Any]]:
        """Store a finished call's new samples, their rounds and its questions in one transaction.

        A sample already stored is never replaced (a resumed or repeated call may bring it again); returns the rows
        this write added, as stored.
        """
        now = time.time()
        shared_in, shared_out = shared_tokens(state)
        samples = state.get("samples", [])
        with self._transaction():
            stored = self._existing([s["id"] for s in samples])
            new = [s for s in samples if s["id"] not in stored]
            rows = [sample_row(state, s, now, shared_in, shared_out, shared_cost(state)) for s in new]
            _insert(self.conn, "samples", SAMPLE_COLUMNS, rows)
            _insert(self.conn, "rounds", ROUND_COLUMNS, [r for s in new for r in round_rows_of(s)])
            if "call_index" in state:
                self._record_call(state, now)
        return rows

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """All or nothing: a failing statement or a kill leaves no part of the write."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _existing(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        query = f"SELECT id FROM samples WHERE id IN ({','.join('?' * len(ids))})"
        return {row[0] for row in self.conn.execute(query, ids)}

    def _record_call(self, state: BatchState, now: float) -> None:
        """The call's questions, merged with any stored before: a level's first text stays."""
        questions = {**state.get("questions", {}), **self.questions_of(state["call_index"])}
        row = {
            "call_index": state["call_index"],
            "tag_path": " > ".join(state.get("tag_path", [])),
            "task_type": state.get("task_type", ""),
            "language": state.get("language", ""),
            "questions": json.dumps(questions, ensure_ascii=False),
            "created_at": now,
        }
        self.conn.execute("DELETE FROM calls WHERE call_index = ?", [row["call_index"]])
        _insert(self.conn, "calls", CALL_COLUMNS, [row])

    def questions_of(self, call_index: int) -> dict[str, str]:
        """Every question a stored call's writer gave, by difficulty (empty for a call never stored)."""
        row = self.conn.execute("SELECT questions FROM calls WHERE call_index = ?", [call_index]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def stored_levels(self, call_index: int) -> list[str]:
        """The difficulties of a call's stored samples."""
        query = "SELECT difficulty FROM samples WHERE call_index = ? ORDER BY position"
        return [row[0] for row in self.conn.execute(query, [call_index])]

    def record_run(self, row: dict[str, Any]) -> None:
        """One row per invocation of a run: what it did and its token counts. The table gains the columns a newer
        version adds, as sqlite-utils' insert(alter=True) would (not imported here: it costs a run ~0.8 s of CPU)."""
        with self._transaction():
            have = {info[1] for info in self.conn.execute("PRAGMA table_info([runs])")}
            kinds = {column: SQL_TYPES.get(RUN_KINDS.get(column, type(value)), "TEXT") for column, value in row.items()}
            if not have:
                self.conn.execute(f"CREATE TABLE [runs] ({', '.join(f'[{c}] {k}' for c, k in kinds.items())})")
            else:
                for column in (c for c in kinds if c not in have):
                    self.conn.execute(f"ALTER TABLE [runs] ADD COLUMN [{column}] {kinds[column]}")
            _insert(self.conn, "runs", kinds, [row])

    def stored_per_call(self) -> dict[int, int]:
        """Samples stored per question-writer call, counted by SQLite: resuming stays fast at any size."""
        return dict(self.conn.execute("SELECT call_index, count(*) FROM samples GROUP BY call_index").fetchall())

    def ids(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT id FROM samples")}

    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT count(*) FROM samples").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM samples WHERE status = ?", [status]).fetchone()[0])

    def samples(self, status: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
        where = None
        params: list[str] = []
        if status is not None:
            params = list(status)
            where = f"status IN ({','.join('?' * len(params))})"
        yield from self.db["samples"].rows_where(where, params, order_by="position")

    def samples_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        query = f"SELECT * FROM samples WHERE id IN ({','.join('?' * len(ids))}) ORDER BY position"
        return _rows(self.conn.execute(query, ids))

    def rounds_of(self, sample_id: str) -> list[dict[str, Any]]:
        return list(self.db["rounds"].rows_where("sample_id = ?", [sample_id], order_by="round"))

    def close(self) -> None:
        self.conn.close()


def _insert(conn: sqlite3.Connection, table: str, columns: Iterable[str], rows: list[dict[str, Any]]) -> None:
    if rows:
        names = ", ".join(f"[{c}]" for c in columns)
        marks = ", ".join(f":{c}" for c in columns)
        conn.executemany(f"INSERT INTO [{table}] ({names}) VALUES ({marks})", rows)


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
