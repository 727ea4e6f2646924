"""Responder prompt: the question as a plain user turn, as the paper does; the reply is the answer."""

from __future__ import annotations

import re

from prompts.markers import ParseError, without_reasoning

ROLE_PREFIX = re.compile(r"^\s*(assistant|助手)\s*[:：]\s*", re.IGNORECASE)


def build_messages(question: str) -> list[dict[str, str]]:
    """The question alone as the user turn: the answer is what a plain chat model says to it."""
    return [{"role": "user", "content": question}]


def parse_answer(text: str) -> str:
    """The reply verbatim without a leading reasoning block or role label; an empty reply is a ParseError.

    The role label ("Assistant:", "助手：") comes from the embedded base model continuing its transcript format.
    """
    answer = ROLE_PREFIX.sub("", without_reasoning(text), count=1).strip()
    if not answer:
        raise ParseError("the answer is empty")
    return answer
