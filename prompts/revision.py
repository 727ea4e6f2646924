"""Reviser prompt: keep what worked, fix the weaknesses the critique names, return only the improved answer."""

from __future__ import annotations

from prompts.markers import ParseError, clean, marker, section

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

LABELS = {
    "en": ("Question", "Answer", "Strengths", "Weaknesses", "Suggestions", "Write the improved answer."),
    "zh": ("问题", "回答", "优点", "不足", "改进建议", "请写出改进后的回答。"),
}

GRAMMAR = r"""
root ::= "[Improved Answer Start]" text "[Improved Answer End]"
text ::= [^\[\]]{20,2400}
"""


def build_messages(
    question: str, answer: str, strengths: str, weaknesses: str, suggestions: str, language: str
) -> list[dict[str, str]]:
    """Instructions, then the question, the answer and the critique as feedback."""
    q, a, s, w, g, your_turn = LABELS[language]
    user = f"{q}:\n{question}\n\n{a}:\n{answer}\n\n{s}:\n{strengths}\n\n{w}:\n{weaknesses}\n\n{g}:\n{suggestions}\n\n{your_turn}"
    return [{"role": "system", "content": INSTRUCTIONS[language]}, {"role": "user", "content": user}]


START = marker("Improved", "Answer", "Start")
END = marker("Improved", "Answer", "End")


def parse_revision(text: str) -> str:
    """The improved answer between its markers; a missing start marker or empty answer is a ParseError."""
    improved = section(clean(text), START, END)
    if improved is None:
        raise ParseError("no [Improved Answer Start] marker before the improved answer")
    if len(improved) < 2:
        raise ParseError("the improved answer between the markers is empty")
    return improved
