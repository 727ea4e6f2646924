"""Prompt templates as data (English and Chinese), each with the parser of its output format."""

from __future__ import annotations

import hashlib
import json


def prompt_version() -> str:
    """A fingerprint of every text the models are prompted with: a run directory records it, so a resume with
    other prompts (which would mix two datasets) is refused. Re-ask wordings are left out: they only follow
    a reply that could not be used."""
    from condor_state import tasks
    from prompts import critique, questions, revision

    texts = [
        questions.INSTRUCTIONS, questions.EXAMPLES, questions.TASK_LINE, questions.EXAMPLE_HEADER, questions.YOUR_TURN,
        critique.INSTRUCTIONS, critique.EXAMPLE, critique.LABELS,
        revision.INSTRUCTIONS, revision.EXAMPLE, revision.LABELS,
        tasks.TASK_DESCRIPTIONS, tasks.TASK_NAMES_ZH,
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:12]
