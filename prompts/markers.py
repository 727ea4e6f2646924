"""Tolerant reading of marker-delimited model output: case, spacing and plural slips are forgiven."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Characters per token a grammar may assume: low enough for Chinese text, so constrained replies always fit.
CHARS_PER_TOKEN = 1.2
THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
ANY_MARKER = re.compile(r"\[\s*[A-Za-z][A-Za-z ]{0,30}\]")


class ParseError(ValueError):
    """A reply that does not follow its format; the message tells the model (and the user) what is wrong."""


@dataclass(frozen=True)
class Reply:
    """A model reply as text plus whether the server cut it at the token limit."""

    text: str
    truncated: bool = False


def clean(text: str) -> str:
    """Drop reasoning blocks (<think>…</think>) that reasoning models put before their answer."""
    return THINK.sub("", text).strip()


def marker(*words: str) -> re.Pattern[str]:
    """A pattern for [Word Word] allowing any case, extra spaces, plurals and full-width brackets."""
    body = r"\s*".join(re.escape(w) + "(?:e?s)?" for w in words)
    return re.compile(r"[\[【]\s*" + body + r"\s*[\]】]", re.IGNORECASE)


def section(text: str, start: re.Pattern[str], end: re.Pattern[str], stop: re.Pattern[str] | None = None) -> str | None:
    """Content after the first start marker up to its end marker, else up to `stop`, else to the end of text."""
    opened = start.search(text)
    if not opened:
        return None
    rest = text[opened.end() :]
    closed = end.search(rest)
    if closed:
        rest = rest[: closed.start()]
    elif stop is not None and (cut := stop.search(rest)):
        rest = rest[: cut.start()]
    return strip_markers(rest)


def strip_markers(text: str) -> str:
    """Remove stray format markers a model repeated inside content."""
    return ANY_MARKER.sub(lambda m: "" if _is_format_marker(m.group(0)) else m.group(0), text).strip()


FORMAT_WORDS = {
    "easy",
    "medium",
    "hard",
    "question",
    "strength",
    "strengths",
    "weakness",
    "weaknesses",
    "suggestion",
    "suggestions",
    "score",
    "improved",
    "answer",
}


def _is_format_marker(text: str) -> bool:
    words = text.strip("[]【】 ").lower().split()
    if not words or words[0] not in FORMAT_WORDS:
        return False
    return len(words) == 1 or words[-1] in {"start", "end"}
