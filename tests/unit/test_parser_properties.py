"""Round trips: any content without the format's own markers, formatted canonically, parses back unchanged.

Content is drawn from alphabets full of what used to break the parsers: bracketed words, [Easy]-like labels, <think>
mentions, markdown, digits, newlines, CJK text and full-width brackets.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from condor_state.tasks import DIFFICULTIES, Difficulty
from prompts import critique, questions, revision
from prompts.answer import ROLE_PREFIX, parse_answer
from prompts.critique import parse_critique
from prompts.markers import MarkerSet, ParseError, is_placeholder, without_reasoning
from prompts.questions import parse_questions
from prompts.revision import parse_revision
from prompts.tags import parse_tags, tag_key

FAST = settings(max_examples=200, deadline=None)

FRAGMENTS = [
    *"[]【】()*_#:：.。?？!\n \t`<>/-",
    *"abcXYZ中文问题答案",
    "  ",
    "\n\n",
    "[Easy]",
    "[Medium]",
    "【Hard】",
    "[简单]",
    "**[Easy]**",
    "Easy:",
    "### Hard",
    "**",
    "__",
    "[1]",
    "arr[0]",
    "[TODO]",
    "[Answer]",
    "[Question]",
    "[Score]",
    "[Weakness]",
    "[Strengths]",
    "[Question Start",
    "Question End]",
    "[Score Start",
    "[Improved Answer",
    "Start]",
    "End]",
    "<think>",
    "</think>",
    "<thinking>",
    "Assistant:",
    "7",
    "10",
    "/10",
    "1-10",
    "Score: 3",
    "...",
    "…",
    "```",
    "1. ",
]
text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=30).map("".join)
PREAMBLES = st.sampled_from(["", "Sure! Here is my reply in the required format:\n\n", "好的，以下是回复：\n"])
NOTES = st.sampled_from(["", "\n\nHope this helps! Let me know if you need anything else.", "\n希望对你有帮助。"])
REASONING = st.sampled_from(
    ["", "<think>\nThe format uses [Score Start] and [Easy]. Fine.\n</think>\n\n", "</think>\n"]
)


def reasoning_safe(content: str) -> bool:
    """Content the reasoning rule leaves alone: it neither opens with a think tag nor closes one first."""
    try:
        return without_reasoning(content) == content
    except ParseError:
        return False


def free_of(*patterns: re.Pattern[str]) -> st.SearchStrategy[str]:
    """Non-placeholder content that holds none of the given markers and is safe from the reasoning rule."""
    return text.filter(lambda c: not is_placeholder(c) and reasoning_safe(c) and not any(p.search(c) for p in patterns))


question_text = free_of(questions.START, questions.END)
LABELS = st.sampled_from(["[{}]", "[{}]", "**[{}]**", "【{}】", "[ {} ] ", "{}:\n", "**{}**\n", "### {}\n"])
QUESTION_STARTS = st.sampled_from(
    ["[Question Start]", "[question start]", "【Question Start】", "**[Question Start]**"]
)
QUESTION_ENDS = st.sampled_from(["[Question End]", "[QUESTION END]", "【Question End】", "__[Question_End]__"])


@FAST
@given(
    levels=st.lists(st.sampled_from(DIFFICULTIES), min_size=1, max_size=3, unique=True),
    contents=st.lists(question_text, min_size=3, max_size=3),
    labelled=st.booleans(),
    label=LABELS,
    start=QUESTION_STARTS,
    end=QUESTION_ENDS,
    reasoning=REASONING,
    preamble=PREAMBLES,
    note=NOTES,
)
def test_questions_parse_back_to_exactly_what_was_written(
    levels: list[Difficulty],
    contents: list[str],
    labelled: bool,
    label: str,
    start: str,
    end: str,
    reasoning: str,
    preamble: str,
    note: str,
) -> None:
    if not labelled:  # unlabeled blocks are levels by position
        levels = list(DIFFICULTIES[: len(levels)])
    body = "\n".join(
        f"{label.format(level) if labelled else ''}{start}{content}{end}"
        for level, content in zip(levels, contents, strict=False)
    )
    expected = {level: content.strip() for level, content in zip(levels, contents, strict=False)}
    parsed = parse_questions(reasoning + preamble + body + note)
    assert parsed == {level: expected[level] for level in DIFFICULTIES if level in expected}


critique_text = free_of(
    critique.ANY_START, *(end for _, end in (critique.STRENGTH, critique.WEAKNESS, critique.SUGGESTION, critique.SCORE))
)
SCORE_FORMS = [
    "{n}",
    "**{n}**",
    "{n}.",
    "{n}/10",
    "{n} out of 10",
    "Score: {n}",
    "I'd give it {n}",
    "{n}分",
    "评分：{n}",
]


@FAST
@given(
    sections=st.lists(critique_text | st.just(""), min_size=3, max_size=3),
    score=st.integers(1, 10),
    form=st.sampled_from(SCORE_FORMS),
    reasoning=REASONING,
    preamble=PREAMBLES,
    note=NOTES,
)
def test_critique_sections_and_score_parse_back(
    sections: list[str], score: int, form: str, reasoning: str, preamble: str, note: str
) -> None:
    strengths, weaknesses, suggestions = sections
    reply = (
        f"[Strength Start]{strengths}[Strength End]\n[Weakness Start]{weaknesses}[Weakness End]\n"
        f"[Suggestion Start]{suggestions}[Suggestion End]\n[Score Start]{form.format(n=score)}[Score End]"
    )
    if not any(s.strip() for s in sections):
        return  # an empty critique is refused; covered by the corpus
    verdict = parse_critique(reasoning + preamble + reply + note)
    assert (verdict.strengths, verdict.weaknesses, verdict.suggestions) == tuple(s.strip() for s in sections)
    assert verdict.score == score


@FAST
@given(content=free_of(revision.START, revision.END), reasoning=REASONING, preamble=PREAMBLES, note=NOTES)
def test_a_revision_parses_back_to_exactly_what_was_written(
    content: str, reasoning: str, preamble: str, note: str
) -> None:
    reply = f"{reasoning}{preamble}[Improved Answer Start]{content}[Improved Answer End]{note}"
    assert parse_revision(reply) == content.strip()


@FAST
@given(
    content=free_of(ROLE_PREFIX).filter(lambda c: c.strip() != ""),
    reasoning=REASONING,
)
def test_an_answer_parses_back_to_exactly_what_was_written(content: str, reasoning: str) -> None:
    assert parse_answer(reasoning + content) == content.strip()


LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
word = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from([*LATIN, *"面包蛋糕甜点"]),
    st.text(alphabet=LATIN + "0123456789&-面包蛋糕甜点", max_size=7),
)
tag_name = st.lists(word, min_size=1, max_size=4).map(" ".join)


@FAST
@given(
    names=st.lists(tag_name, min_size=1, max_size=6, unique_by=tag_key),
    reasoning=REASONING,
    preamble=PREAMBLES,
    note=NOTES,
)
def test_tags_parse_back_to_exactly_the_names_written(
    names: list[str], reasoning: str, preamble: str, note: str
) -> None:
    body = "\n".join(f"[Tag Start]{name}[Tag End]" for name in names)
    assert parse_tags(reasoning + preamble + body + note) == names


ANY_PARSER = [parse_questions, parse_critique, parse_revision, parse_answer, parse_tags]


@FAST
@given(reply=text)
def test_any_reply_parses_or_raises_parse_error(reply: str) -> None:
    for parse in ANY_PARSER:
        try:
            parse(reply)
        except ParseError as problem:
            assert "\n" not in str(problem)


MARKER_PARTS = [
    *"[]【】*_ \n-x",
    "**",
    "__",
    "[Score Start]",
    "**[Score Start]**",
    "__[Score End]__",
    "[Strength Start]",
    "[ weakness_ends ]",
    "【Suggestion Start】",
    "[Improved Answer Start]",
    "**[Improved Answer End]",
    "[Score End]**",
    "[[Score Start]",
    "*[Score Start]*",
]
MARKER_PATTERNS = [*critique.STRENGTH, *critique.WEAKNESS, *critique.SUGGESTION, *critique.SCORE, critique.ANY_START,
                   revision.START, revision.END]  # fmt: skip


ALL_MARKERS = MarkerSet(*MARKER_PATTERNS)


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from(MARKER_PARTS), max_size=30).map("".join), cut=st.integers(0, 400))
def test_one_scan_of_a_replys_markers_finds_what_each_markers_regex_search_finds(text: str, cut: int) -> None:
    scan = ALL_MARKERS.scan(text)
    for pattern in MARKER_PATTERNS:
        for pos, endpos in ((0, len(text)), (min(cut, len(text)), len(text)), (0, min(cut, len(text)))):
            expected = pattern.search(text, pos, endpos)
            assert scan.find(pattern, pos, endpos) == (expected and expected.span())


def searched_blocks(text: str, start: re.Pattern[str], end: re.Pattern[str], stop: re.Pattern[str]) -> list[str]:
    """The block rule with each marker's own regex search: what reading blocks from a scan must give."""
    found: list[str] = []
    at = 0
    while opened := start.search(text, at):
        limit = stop.search(text, opened.end())
        limit_at = limit.start() if limit else len(text)
        closed = end.search(text, opened.end(), limit_at)
        found.append(text[opened.end() : closed.start() if closed else limit_at].strip())
        at = opened.end()
    return found


SECTIONS = [
    *((start, end, critique.ANY_START) for start, end in (critique.STRENGTH, critique.WEAKNESS, critique.SCORE)),
    (critique.SCORE[0], critique.SCORE[1], critique.SCORE[0]),
    (revision.START, revision.END, revision.START),
]


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from([*MARKER_PARTS, "text", "7", "\n"]), max_size=30).map("".join))
def test_blocks_read_from_one_scan_are_those_each_markers_regex_search_gives(text: str) -> None:
    scan = ALL_MARKERS.scan(text)
    for start, end, stop in SECTIONS:
        assert scan.blocks(start, end, stop) == searched_blocks(text, start, end, stop)
