"""Critic prompt (Condor Refine, with a score): strengths, weaknesses, suggestions and a 1–10 score."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prompts.markers import CHARS_PER_TOKEN, ParseError, clean, marker, section

INSTRUCTIONS = {
    "en": """You are a demanding reviewer of AI assistant answers.
Read the user's question and the assistant's answer. Judge helpfulness, correctness, depth, clarity and whether the answer does exactly what was asked.
Write numbered points in three sections — strengths, weaknesses, and concrete suggestions for improvement — then give the answer a score from 1 (useless) to 10 (could not be better).
Reply with exactly this format and nothing else:
[Strength Start]1. ...[Strength End]
[Weakness Start]1. ...[Weakness End]
[Suggestion Start]1. ...[Suggestion End]
[Score Start]N[Score End]""",
    "zh": """你是一位严格的AI助手回答评审员。
阅读用户的问题和助手的回答，从有用性、正确性、深度、清晰度以及是否完全满足要求等方面进行评判。
分三部分写出编号要点——优点、不足、具体的改进建议——然后给回答打分，1分（毫无用处）到10分（无可挑剔）。
严格按以下格式回复，不要输出其他内容：
[Strength Start]1. ...[Strength End]
[Weakness Start]1. ...[Weakness End]
[Suggestion Start]1. ...[Suggestion End]
[Score Start]N[Score End]""",
}

EXAMPLE = {
    "en": (
        "How often should I feed a sourdough starter that I keep on the kitchen counter?",
        "Feed it once a day.",
        "[Strength Start]1. Gives a direct, correct default frequency.[Strength End]\n"
        "[Weakness Start]1. Does not explain why or how much to feed.\n2. Ignores temperature, which changes the "
        "schedule.[Weakness End]\n"
        "[Suggestion Start]1. State a feeding ratio such as 1:1:1 starter, flour and water.\n2. Explain how warm "
        "or cool kitchens change the timing and the signs that the starter is hungry.[Suggestion End]\n"
        "[Score Start]4[Score End]",
    ),
    "zh": (
        "做麻婆豆腐时，豆腐为什么要先用淡盐水焯一下？",
        "这样更好吃。",
        "[Strength Start]1. 回答简短直接。[Strength End]\n"
        "[Weakness Start]1. 没有解释原理。\n2. 没有说明焯水的时间和盐的用量。[Weakness End]\n"
        "[Suggestion Start]1. 说明盐水能让豆腐更紧实、不易碎，并去除豆腥味。\n2. 给出具体做法，如水开后加少许盐，焯一到两分钟。[Suggestion End]\n"
        "[Score Start]3[Score End]",
    ),
}

LABELS = {
    "en": ("Example", "Question", "Answer", "Critique", "Now review this answer."),
    "zh": ("示例", "问题", "回答", "评审", "现在请评审下面的回答。"),
}


def grammar(max_tokens: int) -> str:
    """GBNF for the three sections (up to two points each) and the score, sized to fit in max_tokens."""
    chars = max(16, int(max_tokens * CHARS_PER_TOKEN / 6) - 20)
    return (
        'root ::= "[Strength Start]" items "[Strength End]\\n[Weakness Start]" items "[Weakness End]\\n'
        '[Suggestion Start]" items "[Suggestion End]\\n[Score Start]" score "[Score End]"\n'
        'items ::= item ("\\n" item)?\n'
        f'item ::= [1-2] ". " [^\\[\\]\\n]{{4,{chars}}}\n'
        'score ::= [1-9] | "10"\n'
    )


@dataclass(frozen=True)
class CritiqueVerdict:
    """A parsed critique; `satisfied` compares its score with the run's threshold."""

    strengths: str
    weaknesses: str
    suggestions: str
    score: int

    def satisfied(self, threshold: int) -> bool:
        return self.score >= threshold


def build_messages(question: str, answer: str, language: str) -> list[dict[str, str]]:
    """Instructions, one worked critique, then the question and answer to review."""
    example, q_label, a_label, c_label, your_turn = LABELS[language]
    ex_q, ex_a, ex_c = EXAMPLE[language]
    user = (
        f"{example}\n{q_label}: {ex_q}\n{a_label}: {ex_a}\n{c_label}:\n{ex_c}\n\n"
        f"{your_turn}\n{q_label}: {question}\n{a_label}: {answer}\n{c_label}:"
    )
    return [{"role": "system", "content": INSTRUCTIONS[language]}, {"role": "user", "content": user}]


STRENGTH = (marker("Strength", "Start"), marker("Strength", "End"))
WEAKNESS = (marker("Weakness", "Start"), marker("Weakness", "End"))
SUGGESTION = (marker("Suggestion", "Start"), marker("Suggestion", "End"))
SCORE = (marker("Score", "Start"), marker("Score", "End"))
NEXT_SECTION = re.compile(r"[\[【]\s*(strength|weakness|suggestion|score)", re.IGNORECASE)
SCORE_NUMBER = re.compile(r"(?<![\d.])(10|[1-9])(?:\.\d+)?(?:\s*/\s*10)?(?![\d])")
LOOSE_SCORE = re.compile(r"(?:score|rating|评分|得分|分数)\s*[:：=]?\s*(10|[1-9])(?![\d])", re.IGNORECASE)


def parse_critique(text: str) -> CritiqueVerdict:
    """The three sections and the score; a missing score or an empty critique is a ParseError."""
    text = clean(text)
    strengths, weaknesses, suggestions = (
        section(text, start, end, NEXT_SECTION) or "" for start, end in (STRENGTH, WEAKNESS, SUGGESTION)
    )
    score_text = section(text, *SCORE, stop=NEXT_SECTION)
    score: int | None = None
    if score_text is not None and (number := SCORE_NUMBER.search(score_text)):
        score = int(number.group(1))
    elif loose := LOOSE_SCORE.search(text):
        score = int(loose.group(1))
    if score is None:
        raise ParseError("no score between [Score Start] and [Score End] (a whole number from 1 to 10)")
    if not (weaknesses or suggestions or strengths):
        raise ParseError("no [Strength Start], [Weakness Start] or [Suggestion Start] section")
    return CritiqueVerdict(strengths=strengths, weaknesses=weaknesses, suggestions=suggestions, score=score)
