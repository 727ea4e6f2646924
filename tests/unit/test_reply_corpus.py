"""Every parser against a corpus of realistic replies: the stored content is exactly what the model wrote."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest

from prompts.answer import parse_answer
from prompts.critique import parse_critique
from prompts.markers import ParseError
from prompts.questions import parse_questions
from prompts.revision import parse_revision
from prompts.tags import parse_tags
from tests.unit.reply_corpus import CASES, Case

PARSERS: dict[str, Callable[[str], Any]] = {
    "questions": parse_questions,
    "critique": lambda text: dataclasses.asdict(parse_critique(text)),
    "revision": parse_revision,
    "answer": parse_answer,
    "tags": parse_tags,
}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("case", CASES, ids=[case.name.replace(" ", "_") for case in CASES])
def test_a_real_reply_parses_to_exactly_what_the_model_wrote(case: Case) -> None:
    parse = PARSERS[case.parser]
    if case.error is not None:
        with pytest.raises(ParseError, match=case.error) as raised:
            parse(case.reply)
        message = str(raised.value)
        assert "\n" not in message and len(message) <= 160, "a re-ask reason is one short line"
    else:
        assert parse(case.reply) == case.expected


def test_the_corpus_covers_every_parser_in_english_and_chinese() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES), "case names are test ids: they must be unique"
    for parser in PARSERS:
        replies = [case.reply for case in CASES if case.parser == parser]
        assert any(CJK.search(reply) for reply in replies), parser
        assert any(not CJK.search(reply) for reply in replies), parser


def test_every_case_expects_either_a_result_or_an_error() -> None:
    for case in CASES:
        assert (case.expected is None) != (case.error is None), case.name
        assert case.parser in PARSERS, case.name
