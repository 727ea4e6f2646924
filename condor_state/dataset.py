"""The run's dataset, DIR/condor.db: finished samples and every critique/revision round, via sqlite-utils."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from condor_state.state import BatchState, Sample

DB_NAME = "condor.db"
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


class Dataset:
    """Finished samples; a sample is written once, with all its rounds, in one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = sqlite_utils.Database(self.path)
        self.db.execute("PRAGMA busy_timeout=60000")  # worker processes of one run write in turn
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        samples = self.db.table("samples")
        if not samples.exists():
            samples.create(SAMPLE_COLUMNS, pk="id", not_null={"id", "status"})  # type: ignore[union-attr]
            samples.create_index(["status"])  # type: ignore[union-attr]
        rounds = self.db.table("rounds")
        if not rounds.exists():
            rounds.create(ROUND_COLUMNS, pk=("sample_id", "round"), foreign_keys=[("sample_id", "samples", "id")])  # type: ignore[union-attr]

    @classmethod
    def in_dir(cls, run_dir: str | Path) -> Dataset:
        return cls(Path(run_dir) / DB_NAME)

    def write_batch(self, state: BatchState) -> list[str]:
        """Store a finished question-writer call's samples (idempotent: ids are primary keys)."""
        now = time.time()
        sample_rows, round_rows = [], []
        shared_in, shared_out = _shared_tokens(state)
        for sample in state.get("samples", []):
            sample_rows.append(sample_row(state, sample, now, shared_in, shared_out))
            round_rows.extend(round_rows_of(sample))
        with self.db.conn:
            ids = [row["id"] for row in sample_rows]
            if ids:
                self.db.execute(f"DELETE FROM rounds WHERE sample_id IN ({','.join('?' * len(ids))})", ids)
            self.db["samples"].insert_all(sample_rows, replace=True)  # type: ignore[union-attr]
            if round_rows:
                self.db["rounds"].insert_all(round_rows, replace=True)  # type: ignore[union-attr]
        return [row["id"] for row in sample_rows]

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
        yield from self.db["samples"].rows_where(where, params, order_by="position")  # type: ignore[union-attr]

    def samples_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        where = f"id IN ({','.join('?' * len(ids))})"
        return list(self.db["samples"].rows_where(where, ids, order_by="position"))  # type: ignore[union-attr]

    def rounds_of(self, sample_id: str) -> list[dict[str, Any]]:
        return list(self.db["rounds"].rows_where("sample_id = ?", [sample_id], order_by="round"))  # type: ignore[union-attr]

    def close(self) -> None:
        self.db.close()


def _shared_tokens(state: BatchState) -> tuple[int, int]:
    """The question-writer's tokens, split across the samples it produced."""
    n = max(1, len(state.get("samples", [])))
    return state.get("tokens_in", 0) // n, state.get("tokens_out", 0) // n


def sample_row(
    state: BatchState, sample: Sample, now: float, shared_in: int = 0, shared_out: int = 0
) -> dict[str, Any]:
    rounds = sample["rounds"]
    revised = [r for r in rounds if r["revised_answer"]]
    tag_path = list(state.get("tag_path", []))
    return {
        "id": sample["id"],
        "position": sample["position"],
        "call_index": state.get("call_index", -1),
        "tag_path": " > ".join(tag_path),
        "root": tag_path[0] if tag_path else "",
        "task_type": state.get("task_type", ""),
        "difficulty": sample["difficulty"],
        "language": state.get("language", ""),
        "question": sample["question"],
        "void_answer": sample["void_answer"],
        "refined_answer": sample["answer"] if sample["status"] == "done" else None,
        "rounds": len(revised),
        "first_score": rounds[0]["score"] if rounds else None,
        "final_score": rounds[-1]["score"] if rounds and not rounds[-1]["revised_answer"] else None,
        "status": "done" if sample["status"] == "done" else "failed",
        "error": sample["error"] if sample["status"] != "done" else None,
        "repairs": sample["repairs"],
        "tokens_in": sample["tokens_in"] + shared_in,
        "tokens_out": sample["tokens_out"] + shared_out,
        "created_at": now,
    }


def round_rows_of(sample: Sample) -> list[dict[str, Any]]:
    return [
        {
            "sample_id": sample["id"],
            "round": r["round"],
            "strengths": r["strengths"],
            "weaknesses": r["weaknesses"],
            "suggestions": r["suggestions"],
            "score": r["score"],
            "critique": r["critique"],
            "revised_answer": r["revised_answer"],
        }
        for r in sample["rounds"]
    ]
