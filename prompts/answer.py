"""Responder prompt: the question as a plain user turn, as the paper does; the reply is the answer."""

from __future__ import annotations

import re

from prompts.markers import ParseError, clean

ROLE_PREFIX = re.compile(r"^\s*(assistant|助手)\s*[:：]\s*", re.IGNORECASE)


def build_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def parse_answer(text: str) -> str:
    """The reply without reasoning blocks or a leading role label; an empty reply is a ParseError."""
    answer = ROLE_PREFIX.sub("", clean(text)).strip()
    if len(answer) < 2:
        raise ParseError("the answer is empty")
    return answer
