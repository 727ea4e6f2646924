"""Marker parsers against the messy replies small models actually produce."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from prompts.answer import parse_answer
from prompts.critique import CritiqueVerdict, parse_critique
from prompts.markers import ParseError
from prompts.questions import parse_questions
from prompts.revision import parse_revision

Q_EASY = "How often should I water a snake plant kept indoors?"
Q_MEDIUM = "My snake plant's leaves are turning yellow and soft at the base. What is wrong?"
Q_HARD = "Design a watering plan for five succulents in a north-facing flat through a humid winter."


def block(level: str, question: str) -> str:
    return f"[{level}][Question Start]{question}[Question End]"


# --- parse_questions ---------------------------------------------------------------------------


def test_questions_well_formed() -> None:
    text = "\n".join([block("Easy", Q_EASY), block("Medium", Q_MEDIUM), block("Hard", Q_HARD)])
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM, "Hard": Q_HARD}


def test_questions_prose_before_and_after_blocks() -> None:
    text = (
        "Sure! Here are three questions of increasing difficulty:\n\n"
        f"{block('Easy', Q_EASY)}\n{block('Medium', Q_MEDIUM)}\n{block('Hard', Q_HARD)}\n\n"
        "I hope these help with your dataset. Let me know if you need more!"
    )
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM, "Hard": Q_HARD}


def test_questions_missing_end_markers_stop_at_next_label() -> None:
    text = f"[Easy][Question Start]{Q_EASY}\n[Medium][Question Start]{Q_MEDIUM}\n[Hard][Question Start]{Q_HARD}"
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM, "Hard": Q_HARD}


def test_a_level_given_twice_with_different_questions_is_ambiguous() -> None:
    text = "\n".join(
        [
            block("Easy", Q_EASY),
            block("Easy", "A second, different easy question: which one did the model mean?"),
            block("Medium", Q_MEDIUM),
            block("Hard", Q_HARD),
        ]
    )
    with pytest.raises(ParseError, match="ambiguous"):
        parse_questions(text)


def test_a_level_given_twice_with_the_same_question_is_fine() -> None:
    text = "\n".join([block("Easy", Q_EASY), block("Easy", Q_EASY), block("Hard", Q_HARD)])
    assert parse_questions(text) == {"Easy": Q_EASY, "Hard": Q_HARD}


def test_questions_doubled_label_empty_first_then_filled() -> None:
    """A model that writes the label, stutters, and writes it again: the first non-empty block counts."""
    text = f"[Easy]\n[Easy][Question Start]{Q_EASY}[Question End]\n[Medium][Question Start]...[Question End]"
    assert parse_questions(text) == {"Easy": Q_EASY}


def test_questions_without_labels_taken_in_order() -> None:
    text = "\n".join(f"[Question Start]{q}[Question End]" for q in (Q_EASY, Q_MEDIUM, Q_HARD))
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM, "Hard": Q_HARD}


def test_questions_without_labels_two_blocks_are_easy_and_medium() -> None:
    text = f"[Question Start]{Q_EASY}[Question End] [Question Start]{Q_MEDIUM}[Question End]"
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM}


def test_questions_without_labels_or_end_markers() -> None:
    text = "\n".join(f"[Question Start]{q}" for q in (Q_EASY, Q_MEDIUM, Q_HARD))
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM, "Hard": Q_HARD}


def test_questions_sloppy_marker_spelling() -> None:
    text = (
        f"[ easy ][ question start ]{Q_EASY}[ question end ]\n"
        f"[MEDIUM][Questions  Start]{Q_MEDIUM}[Questions End]\n"
        f"[Hard] [question   START] {Q_HARD} [QUESTION END]"
    )
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM, "Hard": Q_HARD}


def test_questions_full_width_brackets() -> None:
    text = f"【Easy】【Question Start】{Q_EASY}【Question End】\n【Hard】【Question Start】{Q_HARD}【Question End】"
    assert parse_questions(text) == {"Easy": Q_EASY, "Hard": Q_HARD}


def test_a_stuttered_question_start_marker_counts_once() -> None:
    text = f"[Easy][Question Start][Question Start]{Q_EASY}[Question End]\n[Medium] [question start]\n{Q_MEDIUM}"
    assert parse_questions(text) == {"Easy": Q_EASY, "Medium": Q_MEDIUM}


def test_template_words_inside_a_question_are_kept() -> None:
    question = "What goes between [Question] and [Answer] in this chat template, and why is [Easy] a label?"
    assert parse_questions(block("Medium", question)) == {"Medium": question}


def test_questions_keep_non_format_brackets() -> None:
    question = "In the table below, what does the column [unit price] mean for row [3]?"
    assert parse_questions(block("Easy", question)) == {"Easy": question}


def test_questions_think_block_ignored() -> None:
    text = (
        "<think>The user wants [Easy][Question Start]placeholder text here[Question End] questions. "
        "Let me think about plants.</think>\n" + block("Easy", Q_EASY) + "\n" + block("Hard", Q_HARD)
    )
    assert parse_questions(text) == {"Easy": Q_EASY, "Hard": Q_HARD}


def test_placeholders_are_dropped_but_short_questions_are_kept() -> None:
    text = "\n".join([block("Easy", "..."), block("Medium", "Why?"), block("Hard", Q_HARD)])
    assert parse_questions(text) == {"Medium": "Why?", "Hard": Q_HARD}


def test_questions_result_ordered_by_difficulty() -> None:
    text = "\n".join([block("Hard", Q_HARD), block("Easy", Q_EASY), block("Medium", Q_MEDIUM)])
    assert list(parse_questions(text)) == ["Easy", "Medium", "Hard"]


def test_questions_chinese() -> None:
    easy = "做麻婆豆腐时，豆腐为什么要先用淡盐水焯一下？"
    hard = "请为一家新开的川菜馆设计麻婆豆腐的标准化出品流程，并解释每一步的原理。"
    text = f"好的，以下是三个问题：\n【Easy】[Question Start]{easy}[Question End]\n[Hard][Question Start]{hard}"
    assert parse_questions(text) == {"Easy": easy, "Hard": hard}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "I'm sorry, I can't help with that.",
        "[Easy][Question Start][Question End]",
        "<think>[Easy][Question Start]" + Q_EASY + "[Question End]",  # unclosed reasoning swallows everything
    ],
)
def test_questions_nothing_usable_raises(text: str) -> None:
    with pytest.raises(ParseError):
        parse_questions(text)


# --- parse_critique ----------------------------------------------------------------------------

CRITIQUE = (
    "[Strength Start]1. Direct and correct.[Strength End]\n"
    "[Weakness Start]1. No watering quantities.\n2. Ignores season.[Weakness End]\n"
    "[Suggestion Start]1. Give millilitres per pot.[Suggestion End]\n"
    "[Score Start]6[Score End]"
)


def test_critique_well_formed() -> None:
    assert parse_critique(CRITIQUE) == CritiqueVerdict(
        strengths="1. Direct and correct.",
        weaknesses="1. No watering quantities.\n2. Ignores season.",
        suggestions="1. Give millilitres per pot.",
        score=6,
    )


def test_critique_prose_around_and_think_block() -> None:
    text = "<think>Score should be 2? No, maybe higher. Score: 3</think>Here is my review:\n" + CRITIQUE + "\nThanks!"
    verdict = parse_critique(text)
    assert verdict.score == 6
    assert verdict.strengths == "1. Direct and correct."


def test_critique_sloppy_plural_markers() -> None:
    text = (
        "[ strengths start ]1. Clear.[ strengths end ]\n"
        "[WEAKNESS START]1. Too short.[weakness end]\n"
        "[suggestions  start]1. Add an example.[Suggestions End]\n"
        "[ score start ] 7 [ score end ]"
    )
    verdict = parse_critique(text)
    assert (verdict.strengths, verdict.weaknesses, verdict.suggestions, verdict.score) == (
        "1. Clear.",
        "1. Too short.",
        "1. Add an example.",
        7,
    )


def test_critique_weaknesses_plural_marker() -> None:
    verdict = parse_critique("[Weaknesses Start]1. Too short.[Weaknesses End]\n[Score Start]3[Score End]")
    assert verdict.weaknesses == "1. Too short."


def test_critique_missing_end_markers_stop_at_next_section() -> None:
    text = (
        "[Strength Start]1. Clear.\n[Weakness Start]1. Too short.\n[Suggestion Start]1. Add an example.\n[Score Start]5"
    )
    verdict = parse_critique(text)
    assert (verdict.strengths, verdict.weaknesses, verdict.suggestions, verdict.score) == (
        "1. Clear.",
        "1. Too short.",
        "1. Add an example.",
        5,
    )


def test_a_score_outside_the_score_section_is_never_guessed() -> None:
    with pytest.raises(ParseError, match="no score"):
        parse_critique("[Weakness Start]1. Misses the point.[Weakness End]\nScore: 7/10")


def test_a_section_missing_from_the_critique_is_empty() -> None:
    verdict = parse_critique("[Weakness Start]1. Misses the point.[Weakness End]\n[Score Start]7/10[Score End]")
    assert (verdict.strengths, verdict.weaknesses, verdict.suggestions, verdict.score) == (
        "",
        "1. Misses the point.",
        "",
        7,
    )


def test_a_score_that_is_not_a_whole_number_is_refused() -> None:
    with pytest.raises(ParseError, match="whole number"):
        parse_critique("[Strength Start]1. Good.[Strength End]\n[Score Start] 8.5 [Score End]")


@pytest.mark.parametrize("raw", ["10", "10/10", " 10 / 10 "])
def test_critique_score_ten(raw: str) -> None:
    assert parse_critique(f"[Strength Start]1. Perfect.[Strength End]\n[Score Start]{raw}[Score End]").score == 10


def test_critique_score_one() -> None:
    assert parse_critique("[Weakness Start]1. Wrong.[Weakness End][Score Start]1[Score End]").score == 1


@pytest.mark.parametrize("raw", ["0", "85", "11", "twelve"])
def test_critique_out_of_range_marked_score_raises(raw: str) -> None:
    with pytest.raises(ParseError, match="score"):
        parse_critique(f"[Strength Start]1. Fine.[Strength End]\n[Score Start]{raw}[Score End]")


def test_critique_out_of_range_loose_score_raises() -> None:
    with pytest.raises(ParseError):
        parse_critique("[Strength Start]1. Fine.[Strength End]\nScore: 12")


def test_critique_missing_score_raises() -> None:
    text = CRITIQUE.split("[Score Start]")[0]
    with pytest.raises(ParseError, match="score"):
        parse_critique(text)


def test_critique_empty_sections_raise() -> None:
    with pytest.raises(ParseError, match="Strength"):
        parse_critique("[Strength Start][Strength End][Weakness Start]  [Weakness End]\n[Score Start]4[Score End]")


def test_critique_score_only_raises() -> None:
    with pytest.raises(ParseError):
        parse_critique("Score: 8/10")


@pytest.mark.parametrize("text", ["", "   ", "<think>hmm</think>"])
def test_critique_empty_raises(text: str) -> None:
    with pytest.raises(ParseError):
        parse_critique(text)


def test_critique_chinese() -> None:
    text = (
        "【Strength Start】1. 回答简短直接。【Strength End】\n"
        "[Weakness Start]1. 没有解释原理。\n2. 没有给出做法。[Weakness End]\n"
        "[Suggestion Start]1. 说明盐水的作用。[Suggestion End]\n"
        "[Score Start]评分：8/10[Score End]"
    )
    verdict = parse_critique(text)
    assert verdict.strengths == "1. 回答简短直接。"
    assert verdict.weaknesses == "1. 没有解释原理。\n2. 没有给出做法。"
    assert verdict.score == 8


def test_critique_satisfied_threshold() -> None:
    verdict = parse_critique(CRITIQUE)
    assert verdict.satisfied(6)
    assert not verdict.satisfied(7)


# --- parse_revision ----------------------------------------------------------------------------

IMPROVED = "Water a snake plant every two to three weeks, and let the soil dry out completely in between."


def test_revision_well_formed() -> None:
    assert parse_revision(f"[Improved Answer Start]{IMPROVED}[Improved Answer End]") == IMPROVED


def test_revision_prose_and_think_around() -> None:
    text = f"<think>fix it</think>Here it is:\n[Improved Answer Start]\n{IMPROVED}\n[Improved Answer End]\nDone."
    assert parse_revision(text) == IMPROVED


def test_revision_missing_end_marker_takes_rest() -> None:
    assert parse_revision(f"[improved answer start]  {IMPROVED}\n\n") == IMPROVED


def test_revision_sloppy_and_full_width_markers() -> None:
    assert parse_revision(f"[ IMPROVED  answer START ]{IMPROVED}[improved answer end]") == IMPROVED
    assert parse_revision(f"【Improved Answer Start】{IMPROVED}【Improved Answer End】") == IMPROVED


def test_revision_plural_answers_marker() -> None:
    assert parse_revision(f"[Improved Answers Start]{IMPROVED}[Improved Answers End]") == IMPROVED


def test_a_stuttered_revision_start_marker_counts_once_and_bracket_words_stay() -> None:
    text = f"[Improved Answer Start][Improved Answer Start]{IMPROVED} [Answer End][Improved Answer End]"
    assert parse_revision(text) == f"{IMPROVED} [Answer End]"


def test_revision_missing_start_marker_raises() -> None:
    with pytest.raises(ParseError, match="Start"):
        parse_revision(f"{IMPROVED}[Improved Answer End]")


@pytest.mark.parametrize("text", ["[Improved Answer Start][Improved Answer End]", "[Improved Answer Start] ... ", ""])
def test_revision_empty_raises(text: str) -> None:
    with pytest.raises(ParseError):
        parse_revision(text)


def test_revision_chinese() -> None:
    answer = "豆腐先用淡盐水焯一下，能让豆腐更紧实、不易碎，还能去掉豆腥味。"
    assert parse_revision(f"好的：\n[Improved Answer Start]{answer}") == answer


# --- parse_answer ------------------------------------------------------------------------------


def test_answer_plain() -> None:
    assert parse_answer("  Water it every two weeks.\n") == "Water it every two weeks."


@pytest.mark.parametrize("prefix", ["Assistant: ", "assistant:", "  ASSISTANT :  ", "助手：", "助手: "])
def test_answer_role_label_stripped(prefix: str) -> None:
    assert parse_answer(prefix + "Water it every two weeks.") == "Water it every two weeks."


def test_answer_role_label_only_at_start() -> None:
    text = "The chat log read:\nAssistant: hello"
    assert parse_answer(text) == text


def test_answer_think_block_removed() -> None:
    text = "<think>The user asks about watering.\nAssistant: maybe weekly?</think>\n\nAssistant: Every two weeks."
    assert parse_answer(text) == "Every two weeks."


def test_answer_keeps_markdown_and_brackets() -> None:
    text = "## Steps\n1. Check the soil [see note].\n2. Water."
    assert parse_answer(text) == text


@pytest.mark.parametrize("text", ["", "   \n ", "Assistant:", "<think>only thinking</think>"])
def test_answer_empty_raises(text: str) -> None:
    with pytest.raises(ParseError, match="empty"):
        parse_answer(text)


def test_an_unclosed_reasoning_block_is_no_answer() -> None:
    with pytest.raises(ParseError, match="reasoning"):
        parse_answer("<think>cut off")


def test_a_one_character_answer_is_an_answer() -> None:
    assert parse_answer("4") == "4"


def test_answer_chinese() -> None:
    assert parse_answer("助手：豆腐焯水可以去除豆腥味。") == "豆腐焯水可以去除豆腥味。"


# --- every parser: right type or ParseError, never anything else ---------------------------------

FRAGMENTS = [
    "[",
    "]",
    "【",
    "】",
    "[Easy]",
    "[Medium]",
    "[Hard]",
    "【Hard】",
    "[Question Start]",
    "[Question End]",
    "[question",
    "start]",
    "[Strength Start]",
    "[Weakness End]",
    "[Suggestions Start]",
    "[Score Start]",
    "[Score End]",
    "[Improved Answer Start]",
    "[Improved Answer End]",
    "<think>",
    "</think>",
    "Assistant:",
    "助手：",
    "Score: ",
    "评分：",
    "10",
    "7/10",
    "8.5",
    "0",
    "中文内容",
    "问题？",
    "\n",
    "\n\n",
    " ",
    "...",
    "。",
    "\\",
    "(",
    "*",
    ".*",
]


def _garbage(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 25)):
        roll = rng.random()
        if roll < 0.55:
            parts.append(rng.choice(FRAGMENTS))
        elif roll < 0.8:
            parts.append("".join(rng.choice("abcXYZ ?!.:/[]【】") for _ in range(rng.randint(1, 12))))
        else:
            parts.append("".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(1, 6))))
    return "".join(parts)


def _check_questions(value: Any) -> None:
    assert isinstance(value, dict) and value
    assert set(value) <= {"Easy", "Medium", "Hard"}
    assert all(isinstance(q, str) and q for q in value.values())


def _check_critique(value: Any) -> None:
    assert isinstance(value, CritiqueVerdict)
    assert 1 <= value.score <= 10
    assert value.strengths or value.weaknesses or value.suggestions


def _check_text(value: Any) -> None:
    assert isinstance(value, str) and value == value.strip() and value


PARSERS: list[tuple[Callable[[str], Any], Callable[[Any], None]]] = [
    (parse_questions, _check_questions),
    (parse_critique, _check_critique),
    (parse_revision, _check_text),
    (parse_answer, _check_text),
]


def test_parsers_on_random_garbage_return_value_or_parse_error() -> None:
    rng = random.Random(0)
    outcomes = {parser.__name__: [0, 0] for parser, _ in PARSERS}  # [parsed, ParseError]
    for _ in range(400):
        text = _garbage(rng)
        for parser, check in PARSERS:
            try:
                value = parser(text)
            except ParseError:
                outcomes[parser.__name__][1] += 1
            else:
                check(value)
                outcomes[parser.__name__][0] += 1
    # The generator must exercise both paths of every parser, or the test proves nothing.
    for name, (parsed, failed) in outcomes.items():
        assert parsed > 0, name
        assert failed > 0, name
