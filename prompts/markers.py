"""Tolerant reading of marker-delimited model output.

Markers forgive case, spacing, plurals, full-width brackets and bold around them; the content between markers is
returned exactly as the model wrote it (only surrounding whitespace stripped), never rewritten or cut.
"""

from __future__ import annotations

import bisect
import re
from typing import cast

# Characters per token a grammar may assume: low enough for Chinese text, so constrained replies always fit.
CHARS_PER_TOKEN = 1.2

LEADING_THINK = re.compile(r"\A\s*<think(?:ing)?>", re.IGNORECASE)
CLOSING_THINK = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
THINK_TAG = re.compile(r"<(/?)think(?:ing)?>", re.IGNORECASE)
# What a model writes when it echoes the format instead of filling it in: "", "...", "…", "1. ...".
PLACEHOLDER = re.compile(r"\s*(?:(?:\d{1,2}\s*[.)、]\s*)?(?:\.{2,}|。{2,}|…+)|[.。]?)\s*")
EMPHASIS = (r"\*\*", "__")


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
    pattern = re.compile("|".join([*(f"{e}{bracketed(body)}{e}" for e in EMPHASIS), bracketed(body)]), re.IGNORECASE)
    _BODIES[pattern] = body
    return pattern


def bracketed(body: str) -> str:
    return r"[\[【]\s*" + body + r"\s*[\]】]"


_BODIES: dict[re.Pattern[str], str] = {}  # a marker's words, as `marker` made it


def any_of(*patterns: re.Pattern[str]) -> re.Pattern[str]:
    """One pattern matching any of the given markers (e.g. every section's start marker)."""
    either = re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.IGNORECASE)
    _PARTS[either] = tuple(part for p in patterns for part in _PARTS.get(p, (p,)))
    return either


_PARTS: dict[re.Pattern[str], tuple[re.Pattern[str], ...]] = {}  # the markers an `any_of` pattern is made of


class MarkerSet:
    """A format's markers tried together: one pass of one regex over a reply finds every place any of them begins,
    so reading every section does not search the reply again per marker. The markers are made by `marker` and no
    two of them match at the same place (true of distinct words)."""

    def __init__(self, *patterns: re.Pattern[str]) -> None:
        self.patterns = list(dict.fromkeys(part for p in patterns for part in _PARTS.get(p, (p,))))
        # Each marker in each form ends with an empty group: the match's last group says which marker it is, in
        # which form, and where it ends.
        forms = ["|".join(rf"{_BODIES[p]}\s*[\]】]{e}()" for p in self.patterns) for e in (*EMPHASIS, "")]
        self.anywhere = re.compile(
            "|".join(rf"{e}[\[【]\s*(?:{form})" for e, form in zip((*EMPHASIS, ""), forms, strict=True)),
            re.IGNORECASE,
        )
        self.emphasized = re.compile(
            "|".join(rf"{e}[\[【]\s*(?:{form})" for e, form in zip(EMPHASIS, forms[:2], strict=True)), re.IGNORECASE
        )
        # Keyed by id: a pattern's hash reads its whole compiled program each time.
        self._indexes = {id(p): frozenset(self.patterns.index(part) for part in _PARTS.get(p, (p,))) for p in patterns}

    def indexes(self, pattern: re.Pattern[str]) -> frozenset[int]:
        """The set's markers a pattern (a marker or an `any_of` of markers in the set) stands for."""
        return self._indexes[id(pattern)]

    def scan(self, text: str) -> MarkerScan:
        return MarkerScan(self, text)


class MarkerScan:
    """Every marker of a set found in one reply, in the order a search tries places: at each bracket, first the
    emphasis two characters before it, then the bracket itself (which is the order of where they begin)."""

    def __init__(self, markers: MarkerSet, text: str) -> None:
        self.markers, self.text = markers, text
        # The search finds markers that do not overlap; the only others begin inside an emphasized one: the bare
        # marker within it, and one whose emphasis is its closing ** (both added below).
        hits: set[tuple[int, int, int, int]] = set()  # (begin, end, its bracket, marker index)
        count = len(markers.patterns)
        for found in markers.anywhere.finditer(text):
            group = cast(int, found.lastindex)
            begin, end, index = found.start(), found.end(group), (group - 1) % count
            if group > 2 * count:
                hits.add((begin, end, begin, index))
                continue
            hits.add((begin, end, begin + 2, index))
            hits.add((begin + 2, end - 2, begin + 2, index))  # the bare marker inside the emphasis
            # "**[A]**[B]**" and "**[A]***[B]**": an emphasized [B] begins inside **[A]**.
            for bracket in (end, end + 1):
                emphasized = text[bracket : bracket + 1] in ("[", "【") and text[bracket - 2 : bracket] in ("**", "__")
                if emphasized and (inner := markers.emphasized.match(text, bracket - 2)):
                    last = cast(int, inner.lastindex)
                    hits.add((bracket - 2, inner.end(last), bracket, (last - 1) % count))
        self.hits = sorted(hits)
        self._kept: dict[int, tuple[list[int], list[tuple[int, int, int, int]]]] = {}  # by the pattern's id

    def _of(self, pattern: re.Pattern[str]) -> tuple[list[int], list[tuple[int, int, int, int]]]:
        """The pattern's hits and where each begins (for bisecting), kept per pattern id."""
        if (of := self._kept.get(id(pattern))) is None:
            wanted = self.markers.indexes(pattern)
            hits = [hit for hit in self.hits if hit[3] in wanted]
            of = self._kept[id(pattern)] = ([hit[0] for hit in hits], hits)
        return of

    def find(self, pattern: re.Pattern[str], pos: int = 0, endpos: int | None = None) -> tuple[int, int] | None:
        """The span `pattern.search(text, pos, endpos)` finds: the first marker of the pattern's beginning at `pos`
        or later with its bracket before `endpos`. One that ends by `endpos` is the one the search with `endpos`
        finds too; one running past it is matched again within the window."""
        endpos = len(self.text) if endpos is None else endpos
        begins, hits = self._of(pattern)
        for i in range(bisect.bisect_left(begins, pos), len(hits)):
            begin, end, bracket, index = hits[i]
            if bracket >= endpos:
                return None
            if end <= endpos:
                return begin, end
            if cut := self.markers.patterns[index].match(self.text, begin, endpos):
                return cut.span()
        return None

    def blocks(self, start: re.Pattern[str], end: re.Pattern[str], stop: re.Pattern[str]) -> list[str]:
        """`blocks` on this scan: each start marker opens a block, which its end marker closes, else the next stop
        marker or the end of the text. The starts and stops are bisected here: a reply's sections are read per
        request."""
        text = self.text
        starts, opened = self._of(start)
        stops, stopping = self._of(stop)
        found: list[str] = []
        i = 0
        while i < len(opened):
            content_at = opened[i][1]
            j = bisect.bisect_left(stops, content_at)
            limit_at = stopping[j][0] if j < len(stopping) else len(text)
            closed = self.find(end, content_at, limit_at)
            found.append(text[content_at : closed[0] if closed else limit_at].strip())
            i = bisect.bisect_left(starts, content_at, i + 1)
        return found


def marker_set(*patterns: re.Pattern[str]) -> MarkerSet:
    """The set of these markers, made once (keyed by id: a pattern's hash reads its whole compiled program)."""
    key = tuple(map(id, patterns))
    if (found := _SETS.get(key)) is None:
        found = _SETS[key] = MarkerSet(*patterns)
    return found


_SETS: dict[tuple[int, ...], MarkerSet] = {}


def blocks(
    text: str,
    start: re.Pattern[str],
    end: re.Pattern[str],
    stop: re.Pattern[str] | None = None,
    scan: MarkerScan | None = None,
) -> list[str]:
    """Every block's content in reply order, verbatim but stripped; the patterns are made by `marker` or `any_of`.

    A block runs from a start marker to its end marker; when the end marker is missing, to the next `stop` (by
    default the next start marker) or the end of the text. `scan`: the reply's markers, when a parser reads several
    sections of it.
    """
    stop = stop or start
    return (scan or marker_set(start, end, stop).scan(text)).blocks(start, end, stop)


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
