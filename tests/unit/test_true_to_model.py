"""The stub server's realistic mode on its own, in process: replies like real instruct models write them (preambles,
reasoning blocks, markdown and full-width brackets around the markers, bracketed words and `<think>` mentions
inside content), each carrying exactly the content pieces it records, as a strict reference reader reads them.
The end-to-end comparison of condor.db with what the server sent is in tests/integration/test_true_to_model.py.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from benchmarks.openai_stub import FORMS, QUESTIONS, realistic_reply
from tests.stub_requests import chat

# A reference reader of the format, as strict about structure as a correct tolerant parser must be: a leading
# reasoning block is dropped, markers may use full-width brackets and markdown bold, content is what lies between
# a start marker and its own end marker, and a score is the number given, not the scale it is given on.
LEADING_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def _m(words: str) -> str:
    return r"\**[\[【]\s*" + words + r"\s*[\]】]\**"


QUESTION_BLOCK = re.compile(
    _m("(Easy|Medium|Hard)") + r"\s*" + _m("Question Start") + "(.*?)" + _m("Question End"), re.DOTALL
)
SECTION_WORDS = {"strengths": "Strength", "weaknesses": "Weakness", "suggestions": "Suggestion", "score": "Score"}
SECTIONS = {n: re.compile(_m(f"{w} Start") + "(.*?)" + _m(f"{w} End"), re.DOTALL) for n, w in SECTION_WORDS.items()}
IMPROVED = re.compile(_m("Improved Answer Start") + "(.*?)" + _m("Improved Answer End"), re.DOTALL)
SCALE = re.compile(r"1\s*-\s*10|(?:/|out of)\s*10")


def reference_read(role: str, raw: str) -> dict[str, Any] | None:
    """The content pieces of a reply, or None when it lacks what its format requires."""
    text = LEADING_THINK.sub("", raw, count=1)
    if role == "responder":
        return {"answer": text.strip()}
    if role == "question_writer":
        found: dict[str, str] = {}
        for block in QUESTION_BLOCK.finditer(text):
            found.setdefault(block.group(1), block.group(2).strip())
        return found or None
    if role == "reviser":
        improved = IMPROVED.search(text)
        return {"improved_answer": improved.group(1).strip()} if improved and improved.group(1).strip() else None
    parts = {name: pattern.search(text) for name, pattern in SECTIONS.items()}
    if not all(parts.values()):
        return None
    pieces: dict[str, Any] = {name: part.group(1).strip() for name, part in parts.items() if part}
    number = re.search(r"\d+", SCALE.sub("", pieces["score"]))
    return {**pieces, "score": int(number.group(0))} if number else None


def synthetic_requests(n: int) -> Iterator[list[dict[str, str]]]:
    """Requests of every role, in both languages, and the repair re-ask of each formatted one."""
    for i in range(n):
        zh = bool(i % 2)
        topic = f"话题：健康 > 睡眠 > 午睡{i}" if zh else f"Topic: Health > Sleep > Naps {i}"
        q = f"怎样睡好午觉{i}？" if zh else f"How long should a nap be, case {i}?"
        fix = [{"role": "assistant", "content": "bad"}, {"role": "user", "content": "Reply again in the format."}]
        first, revised = f"An answer {i}.", f"A better answer {i}. I hope this fuller version helps."
        for messages in (
            chat("question_writer", f"Example 1\nTopic: Food > Baking\n...\n\nNow write.\n{topic}", zh),
            [{"role": "user", "content": q}],
            chat("critic", f"Example ... [Score End]\n\nQuestion: {q}\nAnswer: {first}\nCritique:", zh),
            chat("critic", f"Example ... [Score End]\n\nQuestion: {q}\nAnswer: {revised}\nCritique:", zh),
            chat("reviser", f"Question:\n{q}\n\nAnswer:\n{first}\n\nStrengths:\n1. a", zh),
        ):
            yield messages
            if messages[0]["role"] == "system":
                yield [*messages, *fix]


def test_realistic_replies_cover_every_listed_form_and_carry_exactly_the_recorded_pieces() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    broken = eligible = 0
    for messages in synthetic_requests(300):
        sent = realistic_reply(messages)
        seen[sent["role"]].update(sent["forms"])
        assert realistic_reply(messages) == sent  # chosen from the request: a run is reproducible
        assert reference_read(sent["role"], sent["raw"]) == sent["pieces"], sent["raw"]
        if sent["role"] == "critic" and sent["pieces"]:
            assert (sent["pieces"]["score"] >= 8) == ("revised" in sent["forms"])  # one revision round
        if not sent["repair"] and sent["role"] != "responder":
            eligible += 1
            broken += sent["broken"]
        if sent["repair"]:
            assert not sent["broken"] and sent["raw"].lstrip().startswith("[")  # canonical format
    assert {role: FORMS[role] - seen[role] for role in FORMS} == {role: set() for role in FORMS}
    assert 0.02 <= broken / eligible <= 0.06
    assert ("short_zh", "怎样煮好米饭？") in QUESTIONS["zh"]  # 7 characters: a real question can be that short
