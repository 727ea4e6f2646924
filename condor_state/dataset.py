"""The run's dataset, DIR/condor.db: finished samples and every critique/revision round, via sqlite-utils."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from condor_state.rundir import DB_NAME, round_rows_of, sample_row, shared_tokens
from condor_state.state import BatchState

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


class Dataset:
    """Finished samples; a call's samples are written once, with all their rounds, in one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite_utils.Database(self.path)
            self.db.execute("PRAGMA busy_timeout=60000")  # worker processes of one run write in turn
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._create_tables()
        except sqlite3.DatabaseError as exc:
            raise UnreadableDatabase(f"{self.path} is not a readable Condor database ({exc})") from None

    def _create_tables(self) -> None:
        samples = self.db.table("samples")
        if not samples.exists():
            samples.create(SAMPLE_COLUMNS, pk="id", not_null={"id", "status"})
            samples.create_index(["status"])
        rounds = self.db.table("rounds")
        if not rounds.exists():
            rounds.create(ROUND_COLUMNS, pk=("sample_id", "round"), foreign_keys=[("sample_id", "samples", "id")])
        calls = self.db.table("calls")
        if not calls.exists():
            calls.create(CALL_COLUMNS, pk="call_index")

    @classmethod
    def in_dir(cls, run_dir: str | Path) -> Dataset:
        return cls(Path(run_dir) / DB_NAME)

    def write_batch(self, state: BatchState) -> list[str]:
        """Store a finished call's new samples, their rounds and its questions in one transaction.

        A sample already stored is never replaced (a resumed or repeated call may bring it again); returns the ids
        of the samples this write added.
        """
        now = time.time()
        shared_in, shared_out = shared_tokens(state)
        samples = state.get("samples", [])
        with self.db.atomic():  # sqlite-utils 4 autocommits each statement unless told otherwise
            ids = [s["id"] for s in samples]
            stored = self._existing(ids)
            new = [s for s in samples if s["id"] not in stored]
            if new:
                rows = [sample_row(state, s, now, shared_in, shared_out) for s in new]
                self.db["samples"].insert_all(rows)  # type: ignore[union-attr]
                rounds = [r for s in new for r in round_rows_of(s)]
                if rounds:
                    self.db["rounds"].insert_all(rounds)  # type: ignore[union-attr]
            if "call_index" in state:
                self._record_call(state, now)
        return [s["id"] for s in new]

    def _existing(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        query = f"SELECT id FROM samples WHERE id IN ({','.join('?' * len(ids))})"
        return {row[0] for row in self.db.execute(query, ids)}

    def _record_call(self, state: BatchState, now: float) -> None:
        """The call's questions, merged with any stored before: a level's first text stays."""
        questions = {**state.get("questions", {}), **self.questions_of(state["call_index"])}
        self.db["calls"].upsert(  # type: ignore[union-attr]
            {
                "call_index": state["call_index"],
                "tag_path": " > ".join(state.get("tag_path", [])),
                "task_type": state.get("task_type", ""),
                "language": state.get("language", ""),
                "questions": json.dumps(questions, ensure_ascii=False),
                "created_at": now,
            },
            pk="call_index",
        )

    def questions_of(self, call_index: int) -> dict[str, str]:
        """Every question a stored call's writer gave, by difficulty (empty for a call never stored)."""
        row = self.db.execute("SELECT questions FROM calls WHERE call_index = ?", [call_index]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def stored_levels(self, call_index: int) -> list[str]:
        """The difficulties of a call's stored samples."""
        query = "SELECT difficulty FROM samples WHERE call_index = ? ORDER BY position"
        return [row[0] for row in self.db.execute(query, [call_index])]

    def record_run(self, row: dict[str, Any]) -> None:
        """One row per invocation of a run: what it did and its token counts."""
        with self.db.conn:
            self.db["runs"].insert(row, alter=True)  # type: ignore[union-attr]

    def stored_per_call(self) -> dict[int, int]:
        """Samples stored per question-writer call, counted by SQLite: resuming stays fast at any size."""
        return dict(self.db.execute("SELECT call_index, count(*) FROM samples GROUP BY call_index").fetchall())

    def ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM samples")}

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self.db["samples"].count
        return self.db.execute("SELECT count(*) FROM samples WHERE status = ?", [status]).fetchone()[0]

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
        where = f"id IN ({','.join('?' * len(ids))})"
        return list(self.db["samples"].rows_where(where, ids, order_by="position"))

    def rounds_of(self, sample_id: str) -> list[dict[str, Any]]:
        return list(self.db["rounds"].rows_where("sample_id = ?", [sample_id], order_by="round"))

    def close(self) -> None:
        self.db.close()
