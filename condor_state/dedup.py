"""Exact and near-duplicate questions: MinHash/LSH over character shingles, marked in condor.db.

Character shingles (not words) so Chinese, which has no spaces, is compared as well as English. LSH only
proposes candidates (at a lower threshold, so few true pairs are missed); a pair counts as duplicate when the
exact Jaccard similarity of its shingle sets reaches the threshold, so the result does not depend on hashing luck.
Everything is computed locally: nothing is downloaded.

The question-writer prompt's own few-shot example questions are seeded as the earliest originals (pseudo-ids like
`example:en:1:Easy`), so a sample question copied from the prompt is marked as a duplicate of that example.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from typing import Any

import sqlite_utils
from datasketch import MinHash, MinHashLSH

from condor_state.dataset import DB_NAME, Dataset
from condor_state.tasks import DIFFICULTIES
from prompts.questions import EXAMPLES

THRESHOLD = 0.8  # Jaccard similarity of character-shingle sets at which two questions are near-duplicates
SHINGLE = 3
CJK_SHINGLE = 2
NUM_PERM = 128
CANDIDATE_THRESHOLD = 0.6  # LSH band threshold: below THRESHOLD, so near-threshold pairs still become candidates
COLUMN = "duplicate_of"
EXAMPLE_PREFIX = "example:"


def normalize(text: str) -> str:
    """Text as compared: width, case, spacing and punctuation do not make a question different."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return "".join(c for c in folded if c.isalnum())


def shingles(normalized: str, k: int | None = None) -> set[str]:
    """Character k-grams: 3 for alphabetic text, 2 when most characters are CJK (one carries a word's weight)."""
    if k is None:
        cjk = sum(1 for c in normalized if c >= "\u2e80")
        k = CJK_SHINGLE if cjk * 2 > len(normalized) else SHINGLE
    if len(normalized) <= k:
        return {normalized} if normalized else set()
    return {normalized[i : i + k] for i in range(len(normalized) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def example_questions() -> dict[str, str]:
    """{pseudo-id: question} for the question-writer prompt's few-shot examples, e.g. `example:en:1:Easy`.

    Read from prompts.questions, so the seeds follow the prompt when its examples change.
    """
    questions = {}
    for language, examples in EXAMPLES.items():
        for n, (_path, _task, *levels) in enumerate(examples, start=1):
            for difficulty, question in zip(DIFFICULTIES, levels, strict=True):
                questions[f"{EXAMPLE_PREFIX}{language}:{n}:{difficulty}"] = question
    return questions


def is_example(duplicate_of: str | None) -> bool:
    """Whether a duplicate_of value names one of the prompt's examples rather than an earlier sample."""
    return bool(duplicate_of) and str(duplicate_of).startswith(EXAMPLE_PREFIX)


def find_duplicates(
    rows: Iterable[dict[str, Any]], threshold: float = THRESHOLD, seeds: Iterable[dict[str, Any]] = ()
) -> dict[str, str]:
    """{id: id of the earliest original it duplicates} for rows given in order (earliest first).

    Each row needs `id` and `question`; `seeds` (same shape) come before every row and are always originals.
    Rule for chains: a duplicate never becomes a target. A row is compared only with originals, so with A, B≈A and
    C≈B but C not ≈ A, C is an original (not a duplicate of B), and an exact copy of B points at A.
    A row matching several originals points at the earliest of them.
    """
    lsh = MinHashLSH(threshold=min(threshold, CANDIDATE_THRESHOLD), num_perm=NUM_PERM)
    template = MinHash(num_perm=NUM_PERM, seed=1)  # permutations drawn once, not per question
    original_by_text: dict[str, str] = {}  # normalized text -> the original it is, or duplicates
    sets: dict[str, set[str]] = {}  # originals only: the candidates a later row may point at
    order: dict[str, int] = {}
    duplicates: dict[str, str] = {}
    tagged = chain(((True, row) for row in seeds), ((False, row) for row in rows))
    for index, (is_seed, row) in enumerate(tagged):
        sample_id, text = row["id"], normalize(row.get("question") or "")
        if not text:
            continue
        if text in original_by_text and not is_seed:
            duplicates[sample_id] = original_by_text[text]
            continue
        grams = shingles(text)
        signature = MinHash(num_perm=NUM_PERM, seed=1, permutations=template.permutations, scheme=template.scheme)
        signature.update_batch([g.encode("utf-8") for g in grams])
        matches = [c for c in lsh.query(signature) if jaccard(grams, sets[c]) >= threshold]
        if matches and not is_seed:
            duplicates[sample_id] = original_by_text[text] = min(matches, key=order.__getitem__)
            continue
        original_by_text.setdefault(text, sample_id)
        order[sample_id] = index
        sets[sample_id] = grams
        lsh.insert(sample_id, signature)
    return duplicates


def mark_duplicates(target: str | Path | Dataset | sqlite_utils.Database, threshold: float = THRESHOLD) -> int:
    """Set samples.duplicate_of for done samples (NULL for the rest) and return how many are duplicates.

    A done sample repeating one of the prompt's few-shot examples counts as a duplicate of that example's pseudo-id.

    `target` is a run directory, a condor.db path, a Dataset or an open sqlite-utils Database. Recomputed from
    scratch on every call, so it is safe to call after each run, before export and before a report.
    """
    db, close = _database(target)
    try:
        table = db.table("samples")
        if COLUMN not in table.columns_dict:
            table.add_column(COLUMN, str)
        rows = db.execute("SELECT id, question FROM samples WHERE status = 'done' ORDER BY position, id").fetchall()
        seeds = [{"id": k, "question": q} for k, q in example_questions().items()]
        duplicates = find_duplicates(({"id": r[0], "question": r[1]} for r in rows), threshold, seeds)
        with db.conn:
            db.execute(f"UPDATE samples SET {COLUMN} = NULL WHERE {COLUMN} IS NOT NULL")
            db.conn.executemany(
                f"UPDATE samples SET {COLUMN} = ? WHERE id = ?", [(first, dup) for dup, first in duplicates.items()]
            )
        return len(duplicates)
    finally:
        if close:
            db.close()


def _database(target: str | Path | Dataset | sqlite_utils.Database) -> tuple[sqlite_utils.Database, bool]:
    if isinstance(target, Dataset):
        return target.db, False
    if isinstance(target, sqlite_utils.Database):
        return target, False
    path = Path(target)
    if path.is_dir():
        path = path / DB_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such database")
    return Dataset(path).db, True
