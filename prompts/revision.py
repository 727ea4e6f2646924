"""Reviser prompt: keep what worked, fix the weaknesses the critique names, return only the improved answer."""

from __future__ import annotations

from prompts.markers import CHARS_PER_TOKEN, ParseError, blocks, is_placeholder, marker, without_reasoning

INSTRUCTIONS = {
    "en": """You improve an AI assistant's answer using a reviewer's critique.
Keep everything the critique names as a strength, fix every weakness and apply the suggestions. The improved answer must answer the user's question directly, in the question's language, as a complete answer (not a description of changes).
Reply with exactly this format and nothing else:
[Improved Answer Start]...[Improved Answer End]""",
    "zh": """你根据评审意见改进AI助手的回答。
保留评审指出的优点，修正每一处不足，并落实改进建议。改进后的回答必须直接回答用户的问题，使用问题的语言，是一个完整的回答（而不是修改说明）。
严格按以下格式回复，不要输出其他内容：
[Improved Answer Start]...[Improved Answer End]""",
}

EXAMPLE = {
    "en": (
        "How often should I feed a sourdough starter that I keep on the kitchen counter?",
        "Feed it once a day.",
        "1. Gives a direct default frequency.",
        "1. Does not say how much to feed.\n2. Ignores temperature.",
        "1. State a feeding ratio.\n2. Explain how kitchen temperature changes the timing.",
        "Feed a counter-top starter once every 24 hours, and twice a day if your kitchen is warmer than about "
        "26 °C. At each feeding, discard all but one part of starter and mix it with one part flour and one part "
        "water by weight (1:1:1). A hungry starter has collapsed after rising and smells sharply sour; a cool "
        "kitchen (below 20 °C) slows it down, so once a day or even every 36 hours is enough.",
    ),
    "zh": (
        "做麻婆豆腐时，豆腐为什么要先用淡盐水焯一下？",
        "这样更好吃。",
        "1. 回答简短直接。",
        "1. 没有解释原理。\n2. 没有给出做法。",
        "1. 说明盐水的作用。\n2. 给出焯水的具体方法。",
        "豆腐先用淡盐水焯一下有三个好处：一是盐能让豆腐里的蛋白质稍微收紧，豆腐更紧实，翻炒时不容易碎；"
        "二是能去掉豆腥味；三是让豆腐提前带一点底味。做法是水开后加一小勺盐，放入切好的豆腐块，小火焯一到两分钟后捞出备用。",
    ),
}

LABELS = {
    "en": ("Question", "Answer", "Strengths", "Weaknesses", "Suggestions", "Write the improved answer."),
    "zh": ("问题", "回答", "优点", "不足", "改进建议", "请写出改进后的回答。"),
}


def grammar(max_tokens: int) -> str:
    """GBNF for one marked answer, short enough to close within max_tokens."""
    chars = max(40, int(max_tokens * CHARS_PER_TOKEN) - 40)
    return f'root ::= "[Improved Answer Start]" text "[Improved Answer End]"\ntext ::= [^\\[\\]]{{20,{chars}}}\n'


def build_messages(
    question: str, answer: str, strengths: str, weaknesses: str, suggestions: str, language: str
) -> list[dict[str, str]]:
    """Instructions, then the question, the answer and the critique as feedback."""
    example = "\n\n".join(
        [
            *_blocks(language, *EXAMPLE[language][:5]),
            f"[Improved Answer Start]{EXAMPLE[language][5]}[Improved Answer End]",
        ]
    )
    task = "\n\n".join(_blocks(language, question, answer, strengths, weaknesses, suggestions))
    user = f"{example}\n\n\n{task}"
    return [{"role": "system", "content": INSTRUCTIONS[language]}, {"role": "user", "content": user}]


def _blocks(language: str, *values: str) -> list[str]:
    *labels, your_turn = LABELS[language]
    return [f"{label}:\n{value}" for label, value in zip(labels, values, strict=True)] + [your_turn]


START = marker("Improved", "Answer", "Start")
END = marker("Improved", "Answer", "End")


def parse_revision(text: str) -> str:
    """The improved answer between its markers, verbatim; no start marker, no text or two answers is a ParseError.

    A missing end marker means the answer runs to the end of the reply; notes after the end marker are dropped.
    """
    found = blocks(without_reasoning(text), START, END)
    if not found:
        raise ParseError("no [Improved Answer Start] marker before the improved answer")
    answers = list(dict.fromkeys(answer for answer in found if not is_placeholder(answer)))
    if not answers:
        raise ParseError("the improved answer between the markers is empty")
    if len(answers) > 1:
        raise ParseError("ambiguous reply: two different improved answers; write exactly one")
    return answers[0]
