"""Tolerant reading of marker-delimited model output.

Markers forgive case, spacing, plurals, full-width brackets and bold around them; the content between markers is
returned exactly as the model wrote it (only surrounding whitespace stripped), never rewritten or cut.
"""

from __future__ import annotations

import re

# Characters per token a grammar may assume: low enough for Chinese text, so constrained replies always fit.
CHARS_PER_TOKEN = 1.2

LEADING_THINK = re.compile(r"\A\s*<think(?:ing)?>", re.IGNORECASE)
CLOSING_THINK = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
THINK_TAG = re.compile(r"<(/?)think(?:ing)?>", re.IGNORECASE)
# What a model writes when it echoes the format instead of filling it in: "", "...", "…", "1. ...".
PLACEHOLDER = re.compile(r"\s*(?:(?:\d{1,2}\s*[.)、]\s*)?(?:\.{2,}|。{2,}|…+)|[.。]?)\s*")
EMPHASIS = (r"\*\*", "__")
BRACKET = re.compile(r"[\[【]")  # where every marker's bracket is; its emphasis, if any, is the two characters before


class ParseError(ValueError):
    """A reply that does not follow its format; the message tells the model (and the user) what is wrong."""


def without_reasoning(text: str) -> str:
    """The reply after the reasoning block that opens it; a <think> tag mentioned later is content and stays.

    Also handles the DeepSeek-R1 template, whose opening tag is in the prompt: a reply whose first think tag is a
    closing one is reasoning up to that tag.
    """
    if opened := LEADING_THINK.match(text):
        closed = CLOSING_THINK.search(text, opened.end())
        if not closed:
            raise ParseError("the reply is only a reasoning block (no closing </think>)")
        return text[closed.end() :]
    first = THINK_TAG.search(text)
    if first and first.group(1):
        return text[first.end() :]
    return text


def marker(*words: str) -> re.Pattern[str]:
    """[Word Word] in any case, with extra or missing spaces (or _ and -), plurals, 【】 and symmetric ** or __."""
    body = r"[\s_-]*".join(re.escape(word) + "(?:e?s)?" for word in words)
    bare = r"[\[【]\s*" + body + r"\s*[\]】]"
    return re.compile("|".join([*(f"{e}{bare}{e}" for e in EMPHASIS), bare]), re.IGNORECASE)


def any_of(*patterns: re.Pattern[str]) -> re.Pattern[str]:
    """One pattern matching any of the given markers (e.g. every section's start marker)."""
    return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.IGNORECASE)


def blocks(text: str, start: re.Pattern[str], end: re.Pattern[str], stop: re.Pattern[str] | None = None) -> list[str]:
    """Every block's content in reply order, verbatim but stripped; the patterns are made by `marker` or `any_of`.

    A block runs from a start marker to its end marker; when the end marker is missing, to the next `stop` (by
    default the next start marker) or the end of the text.
    """
    stop = stop or start
    found: list[str] = []
    at = 0
    while opened := find(start, text, at):
        limit = find(stop, text, opened.end())
        limit_at = limit.start() if limit else len(text)
        closed = find(end, text, opened.end(), limit_at)
        found.append(text[opened.end() : closed.start() if closed else limit_at].strip())
        at = opened.end()
    return found


def find(pattern: re.Pattern[str], text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
    """`pattern.search(text, pos, endpos)` for a marker pattern, tried only where a marker can begin: at a bracket,
    or at the emphasis two characters before one. Brackets are rare in a reply, so this skips the case-insensitive
    alternation at every other position (several times faster on a long reply)."""
    endpos = len(text) if endpos is None else endpos
    for bracket in BRACKET.finditer(text, pos, endpos):
        for begin in (bracket.start() - 2, bracket.start()):
            if begin >= pos and (found := pattern.match(text, begin, endpos)):
                return found
    return None


def section(text: str, start: re.Pattern[str], end: re.Pattern[str], stop: re.Pattern[str] | None = None) -> str | None:
    """The first block's content (see `blocks`), or None when there is no start marker."""
    found = blocks(text, start, end, stop)
    return found[0] if found else None


def is_placeholder(text: str) -> bool:
    """True for a block the model left unfilled (empty, "...", "…", "1. ..."): an echo of the format, not content."""
    return PLACEHOLDER.fullmatch(text) is not None


def last_filled(found: list[str]) -> str:
    """The last non-placeholder block, or "" when every block is a placeholder: a model's second try wins."""
    return next((block for block in reversed(found) if not is_placeholder(block)), "")
