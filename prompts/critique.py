"""Critic prompt (Condor Refine, with a score): strengths, weaknesses, suggestions and a 1–10 score."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from prompts.markers import (
    CHARS_PER_TOKEN,
    MarkerSet,
    ParseError,
    any_of,
    blocks,
    last_filled,
    marker,
    without_reasoning,
)

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
        """True when the answer is good enough to stop revising."""
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
# A section without its end marker stops at the next section's full start marker, never at a bracket word.
ANY_START = any_of(STRENGTH[0], WEAKNESS[0], SUGGESTION[0], SCORE[0])
CRITIQUE = MarkerSet(*STRENGTH, *WEAKNESS, *SUGGESTION, *SCORE, ANY_START)

_NUMBER = r"(?<![\d.])(\d+(?:\.\d+)?)(?!\.?\d)"
# Scale mentions are never the score: "1-10", "(1–10)", "1 to 10", "1～10", "满分10分", "10分制", "10-point".
SCALE = re.compile(
    r"(?<![\d.])(?:between\s+)?[01]\s*(?:-|–|—|~|to|and|至|到)\s*10(?!\.?\d)\s*分?"
    r"|满分\s*(?:为|是|:)?\s*10(?!\.?\d)\s*分?|(?<![\d.])10\s*(?:分制|-?\s*point)|scale\s+of\s+10(?!\.?\d)",
    re.IGNORECASE,
)
# Counts are never the score either: "3 of the 4 points", "2 of 5".
COUNT = re.compile(
    r"(?<![\d.])\d+\s+(?:out\s+)?of\s+(?:the\s+|its\s+|these\s+|those\s+|all\s+)?\d+(?!\.?\d)", re.IGNORECASE
)
EXPLICIT = re.compile(_NUMBER + r"\s*(?:/\s*10(?!\.?\d)(?:\s*分)?|out\s+of\s+10(?!\.?\d)|分(?![钟制]))", re.IGNORECASE)
PHRASE = re.compile(
    r"(?:\b(?:give|gives|gave|giving|rate|rates|rated|rating|score|scores|scored|scoring|grade|graded|overall|final)\b"
    r"|评分|打分|得分|分数|总分|打)[^\d]{0,40}?" + _NUMBER,
    re.IGNORECASE,
)
JUST_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[.。!！]?\s*")
NUMBER = re.compile(_NUMBER)
MARKDOWN = str.maketrans("", "", "*_`#")  # "**7**" is 7: emphasis is never part of a number
SCORE_HINT = "a whole number from 1 to 10"


def parse_critique(text: str) -> CritiqueVerdict:
    """The three sections verbatim and the score; no score or an empty critique is a ParseError.

    A section's last non-placeholder occurrence wins, and so does the last Score section with a number in it.
    """
    text = without_reasoning(text)
    scan = CRITIQUE.scan(text)
    scores = blocks(text, *SCORE, stop=ANY_START, scan=scan)
    if not scores:
        raise ParseError(f"no score between [Score Start] and [Score End] ({SCORE_HINT})")
    numbered = [s for s in scores if any(c.isdigit() for c in s)]
    if not numbered:
        raise ParseError(f"no number in the score between [Score Start] and [Score End] ({SCORE_HINT})")
    score = read_score(numbered[-1])
    strengths, weaknesses, suggestions = (
        last_filled(blocks(text, start, end, stop=ANY_START, scan=scan))
        for start, end in (STRENGTH, WEAKNESS, SUGGESTION)
    )
    if not (strengths or weaknesses or suggestions):
        raise ParseError("no text in the [Strength Start], [Weakness Start] or [Suggestion Start] sections")
    return CritiqueVerdict(strengths=strengths, weaknesses=weaknesses, suggestions=suggestions, score=score)


def read_score(text: str) -> int:
    """The score written in a Score section's text, in any common phrasing; ParseError when absent or ambiguous.

    Tried in order: "7/10", "7 out of 10", "7分"; "Score: 7", "I'd give it 7", "评分：7"; the number alone;
    else the only number from 1 to 10 left once scale ranges and counts ("3 of the 4 points") are removed.
    """
    text = SCALE.sub(" ", unicodedata.normalize("NFKC", text).translate(MARKDOWN))
    if explicit := EXPLICIT.findall(text):
        return _one_score(explicit)
    text = COUNT.sub(" ", text)
    if phrased := PHRASE.findall(text):
        return _one_score(phrased)
    if alone := JUST_NUMBER.fullmatch(text):
        return _one_score([alone.group(1)])
    numbers = NUMBER.findall(text)
    if not numbers:
        raise ParseError(f"no number in the score between [Score Start] and [Score End] ({SCORE_HINT})")
    return _one_score([n for n in numbers if 1 <= float(n) <= 10] or numbers)


def _one_score(candidates: list[str]) -> int:
    """The single score the candidates agree on; several different ones are ambiguous, never guessed between."""
    values = sorted({float(c) for c in candidates})
    if len(values) > 1:
        listed = ", ".join(f"{v:g}" for v in values)
        raise ParseError(f"ambiguous score: several numbers ({listed}) between [Score Start] and [Score End]")
    value = values[0]
    if not value.is_integer() or not 1 <= value <= 10:
        raise ParseError(f"the score must be {SCORE_HINT}, not {value:g}")
    return int(value)
