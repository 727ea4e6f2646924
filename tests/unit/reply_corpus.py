"""Realistic model replies (English and Chinese), each with exactly what its parser must return or refuse.

Shapes come from real instruct models (Qwen, Llama, DeepSeek-R1 distills): preambles, trailing notes, reasoning
blocks, markdown around markers, sloppy markers, and content full of bracketed words that must survive intact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    """One reply: `expected` is the parse result (a critique as a dict), or `error` a regex of the ParseError."""

    name: str
    parser: str  # questions | critique | revision | answer | tags
    reply: str
    expected: Any = None
    error: str | None = None


def critique(score: str, weaknesses: str = "1. No quantities.") -> str:
    """A well-formed critique around one Score section text, to vary only the score's phrasing."""
    return (
        "[Strength Start]1. Direct.[Strength End]\n"
        f"[Weakness Start]{weaknesses}[Weakness End]\n"
        "[Suggestion Start]1. Give millilitres.[Suggestion End]\n"
        f"[Score Start]{score}[Score End]"
    )


def verdict(score: int, weaknesses: str = "1. No quantities.") -> dict[str, Any]:
    """The parse of `critique(...)` with the given score."""
    return {"strengths": "1. Direct.", "weaknesses": weaknesses, "suggestions": "1. Give millilitres.", "score": score}


EASY = "How often should I water a snake plant kept indoors?"
MEDIUM = "My snake plant's leaves are turning yellow and soft at the base. What is wrong?"
HARD = "Design a watering plan for five succulents in a north-facing flat through a humid winter."
THREE = {"Easy": EASY, "Medium": MEDIUM, "Hard": HARD}
CANONICAL = (
    f"[Easy][Question Start]{EASY}[Question End]\n"
    f"[Medium][Question Start]{MEDIUM}[Question End]\n"
    f"[Hard][Question Start]{HARD}[Question End]"
)
CODE_QUESTION = (
    "Why does this print 1 and not [1, 2]?\n```python\narr = [1, 2]\nprint(arr[0])  # [TODO] explain\n```\n"
    "Explain what `arr[0]` returns."
)
IMPROVED = "Water a snake plant every two to three weeks, and let the soil dry out completely in between."
CODE_ANSWER = (
    "Use indexing:\n\n```python\nitems = ['a', 'b']\nfirst = items[0]  # [Answer] is just a comment\n```\n\n"
    "Reasoning models wrap their thoughts in a <think> tag, which you can strip before parsing [1]."
)

QUESTIONS = [
    Case("questions well formed", "questions", CANONICAL, THREE),
    Case(
        "questions with a preamble and a trailing note",
        "questions",
        f"Sure! Here are three questions of increasing difficulty:\n\n{CANONICAL}\n\nLet me know if you need more!",
        THREE,
    ),
    Case(
        "a question that mentions easy and hard labels is kept whole",
        "questions",
        "[Easy][Question Start]In a quiz app, what is the difference between the [Easy] and [Hard] modes?"
        "[Question End]\n"
        f"[Medium][Question Start]{MEDIUM}[Question End]\n[Hard][Question Start]{HARD}[Question End]",
        {
            "Easy": "In a quiz app, what is the difference between the [Easy] and [Hard] modes?",
            "Medium": MEDIUM,
            "Hard": HARD,
        },
    ),
    Case(
        "a leading think block that echoes the format is ignored",
        "questions",
        "<think>\nThe format is [Easy][Question Start]...[Question End]. Let me write about plants.\n</think>\n\n"
        + CANONICAL,
        THREE,
    ),
    Case(
        "an r1 reply that starts inside its reasoning is read after the closing tag",
        "questions",
        "Okay, the user wants three questions. [Easy][Question Start]draft[Question End] no, better:\n</think>\n\n"
        + CANONICAL,
        THREE,
    ),
    Case(
        "a think tag mentioned inside a question is content",
        "questions",
        "[Medium][Question Start]Why does DeepSeek-R1 wrap its reasoning in a <think> tag, and how do I hide it?"
        "[Question End]",
        {"Medium": "Why does DeepSeek-R1 wrap its reasoning in a <think> tag, and how do I hide it?"},
    ),
    Case(
        "an unclosed reasoning block is no reply",
        "questions",
        "<think>\nLet me think about [Easy][Question Start]",
        error="reasoning block",
    ),
    Case(
        "markdown bold around the markers is not part of the question",
        "questions",
        f"**[Easy]** **[Question Start]** {EASY} **[Question End]**\n"
        f"__[Medium]__[Question Start]{MEDIUM}[Question End]\n"
        "**[Hard]**\n**[Question Start]**\nIs **bottom watering** better for succulents?\n**[Question End]**",
        {"Easy": EASY, "Medium": MEDIUM, "Hard": "Is **bottom watering** better for succulents?"},
    ),
    Case(
        "bold around a label and its start marker together is markup",
        "questions",
        f"**[Easy][Question Start]** {EASY} **[Question End]**\n"
        "**[Medium]**[Question Start]**Why** do the leaves go soft?[Question End]",
        {"Easy": EASY, "Medium": "**Why** do the leaves go soft?"},
    ),
    Case(
        "bold text next to a marker survives",
        "questions",
        "[Easy][Question Start]**Why** does bread rise in a **warm** kitchen?**[Question End]",
        {"Easy": "**Why** does bread rise in a **warm** kitchen?**"},
    ),
    Case(
        "full width brackets and sloppy marker spelling",
        "questions",
        f"【Easy】【Question Start】{EASY}【Question End】\n"
        f"[ MEDIUM ][questions_start]{MEDIUM}[QUESTION-END]\n"
        f"[hard] [ question   START ] {HARD} [question end]",
        THREE,
    ),
    Case(
        "missing end markers end each question at the next block",
        "questions",
        f"[Easy][Question Start]{EASY}\n[Medium][Question Start]{MEDIUM}\n[Hard][Question Start]{HARD}\n",
        THREE,
    ),
    Case(
        "citations and template words inside questions are kept",
        "questions",
        "[Easy][Question Start]Is the claim in source [1] that snake plants clean the air true?[Question End]\n"
        "[Medium][Question Start]My chat template shows [Question] and [Answer] literally. Why?[Question End]\n"
        "[Hard][Question Start]Finish the plan where my notes say [TODO]: repotting, soil and light.[Question End]",
        {
            "Easy": "Is the claim in source [1] that snake plants clean the air true?",
            "Medium": "My chat template shows [Question] and [Answer] literally. Why?",
            "Hard": "Finish the plan where my notes say [TODO]: repotting, soil and light.",
        },
    ),
    Case(
        "a code block with brackets stays one question",
        "questions",
        f"[Hard][Question Start]\n{CODE_QUESTION}\n[Question End]",
        {"Hard": CODE_QUESTION},
    ),
    Case(
        "plain labels on the line before the block",
        "questions",
        f"Easy:\n[Question Start]{EASY}[Question End]\n\n**Medium**\n[Question Start]{MEDIUM}[Question End]\n\n"
        f"### Hard\n[Question Start]{HARD}[Question End]",
        THREE,
    ),
    Case(
        "a level label without a question start marker does not count",
        "questions",
        f"[Easy] is where I start.\n[Medium][Question Start]{MEDIUM}[Question End]",
        {"Medium": MEDIUM},
    ),
    Case(
        "blocks without labels are easy medium and hard in order",
        "questions",
        "\n".join(f"[Question Start]{q}[Question End]" for q in (EASY, MEDIUM, HARD)),
        THREE,
    ),
    Case(
        "four blocks without labels are ambiguous",
        "questions",
        "\n".join(f"[Question Start]{q}[Question End]" for q in (EASY, MEDIUM, HARD, "One more?")),
        error="ambiguous",
    ),
    Case(
        "a preamble that echoes the format is skipped",
        "questions",
        f"I will use the format [Easy][Question Start]...[Question End] for each level.\n\n{CANONICAL}",
        THREE,
    ),
    Case(
        "a level given twice with different questions is ambiguous",
        "questions",
        f"{CANONICAL}\n[Easy][Question Start]How much light does a snake plant need?[Question End]",
        error="ambiguous",
    ),
    Case(
        "a level given twice with the same question is fine",
        "questions",
        f"{CANONICAL}\n[Easy][Question Start]{EASY}[Question End]",
        THREE,
    ),
    Case(
        "an unlabeled block between matching labels takes its position",
        "questions",
        f"[Easy][Question Start]{EASY}[Question End]\n[Question Start]{MEDIUM}[Question End]\n"
        f"[Hard][Question Start]{HARD}[Question End]",
        THREE,
    ),
    Case(
        "unlabeled blocks are ignored when the labels do not match their positions",
        "questions",
        f"[Hard][Question Start]{HARD}[Question End]\n[Question Start]{MEDIUM}[Question End]\n"
        f"[Easy][Question Start]{EASY}[Question End]",
        {"Easy": EASY, "Hard": HARD},
    ),
    Case(
        "a refusal has no question",
        "questions",
        "I'm sorry, but I can't help with that request.",
        error="no question",
    ),
    Case(
        "only placeholders is no question",
        "questions",
        "[Easy][Question Start]...[Question End]\n[Medium][Question Start]…[Question End]\n"
        "[Hard][Question Start][Question End]",
        error="no question",
    ),
    Case(
        "a chinese question shorter than eight characters is kept",
        "questions",
        "好的，以下是三个问题：\n[简单][Question Start]怎样煮好米饭？[Question End]\n"
        "[中等][Question Start]米饭煮夹生了，该怎么补救？[Question End]\n"
        "[困难][Question Start]请设计一套适合高原地区的煮饭方案，并解释水的沸点对米饭口感的影响。[Question End]",
        {
            "Easy": "怎样煮好米饭？",
            "Medium": "米饭煮夹生了，该怎么补救？",
            "Hard": "请设计一套适合高原地区的煮饭方案，并解释水的沸点对米饭口感的影响。",
        },
    ),
    Case(
        "chinese questions with full width markers and a label inside a question",
        "questions",
        "以下是按难度排列的问题：\n【Easy】【Question Start】做麻婆豆腐时，【困难】模式指什么？【Question End】\n"
        "【Hard】【Question Start】请为川菜馆设计麻婆豆腐的标准化出品流程。【Question End】\n希望对你有帮助！",
        {"Easy": "做麻婆豆腐时，【困难】模式指什么？", "Hard": "请为川菜馆设计麻婆豆腐的标准化出品流程。"},
    ),
    Case(
        "chinese plain labels before the blocks",
        "questions",
        "简单：\n[Question Start]豆腐为什么要焯水？[Question End]\n"
        "**中等**\n[Question Start]郫县豆瓣何时下锅？[Question End]",
        {"Easy": "豆腐为什么要焯水？", "Medium": "郫县豆瓣何时下锅？"},
    ),
]

CRITIQUES = [
    Case("critique well formed", "critique", critique("7"), verdict(7)),
    Case(
        "critique with reasoning, a preamble and a trailing note",
        "critique",
        "<think>The score should be 3? No. [Score Start]2[Score End] is too harsh.</think>\nHere is my review:\n"
        + critique("6")
        + "\n\nNote: I would give it 9 after the fixes.",
        verdict(6),
    ),
    Case(
        "an r1 critique that starts inside its reasoning",
        "critique",
        "The answer lacks quantities, maybe Score: 2.\n</think>\n" + critique("5"),
        verdict(5),
    ),
    Case(
        "a number inside a weakness never wins over the score",
        "critique",
        critique("8", "1. Only covers 3 of the 10 steps.\n2. Says 7/10 people overwater."),
        verdict(8, "1. Only covers 3 of the 10 steps.\n2. Says 7/10 people overwater."),
    ),
    Case(
        "bracket words inside sections do not end them",
        "critique",
        "[Strength Start]1. Explains the [Score] and [Weakness] fields of the API.\n"
        "[Weakness Start]1. Misses [Suggestion] and [Strengths] keys; see [1].\n"
        "[Suggestion Start]1. Show arr[0] and the [Answer] template.\n"
        "[Score Start]6",
        {
            "strengths": "1. Explains the [Score] and [Weakness] fields of the API.",
            "weaknesses": "1. Misses [Suggestion] and [Strengths] keys; see [1].",
            "suggestions": "1. Show arr[0] and the [Answer] template.",
            "score": 6,
        },
    ),
    Case(
        "bold and underlined markers in any case",
        "critique",
        "**[strength start]** 1. **Clear** steps. **[STRENGTH END]**\n"
        "__[Weaknesses Start]__1. Too short.__[Weaknesses End]__\n"
        "[suggestion_start]1. Add an example.[suggestion-end]\n**[Score Start]** **7** **[Score End]**",
        {
            "strengths": "1. **Clear** steps.",
            "weaknesses": "1. Too short.",
            "suggestions": "1. Add an example.",
            "score": 7,
        },
    ),
    Case(
        "several score sections: the last one counts",
        "critique",
        critique("6") + "\n\nOn reflection the examples are good, so:\n[Score Start]7[Score End]",
        verdict(7),
    ),
    Case(
        "a repeated section: the last filled one counts",
        "critique",
        "Format: [Strength Start]1. ...[Strength End]\n" + critique("4"),
        verdict(4),
    ),
    Case(
        "a think tag mentioned in a weakness is content",
        "critique",
        critique("5", "1. Leaves the <think> tag in the output."),
        verdict(5, "1. Leaves the <think> tag in the output."),
    ),
    Case("score in bold", "critique", critique("**7**"), verdict(7)),
    Case("score with a full stop", "critique", critique("7."), verdict(7)),
    Case("score as n/10", "critique", critique("7/10"), verdict(7)),
    Case("score as n / 10 with spaces", "critique", critique(" 7 / 10 "), verdict(7)),
    Case("score as n out of 10", "critique", critique("7 out of 10"), verdict(7)),
    Case("score after a score label", "critique", critique("Score: 7"), verdict(7)),
    Case("score in a give phrase", "critique", critique("I'd give it 7"), verdict(7)),
    Case("score in a rate phrase", "critique", critique("I would rate this answer 7 out of 10"), verdict(7)),
    Case("a scale range is not the score", "critique", critique("On a scale of 1-10, I give it 6"), verdict(6)),
    Case("a bracketed scale range is not the score", "critique", critique("Score (1–10): 9"), verdict(9)),
    Case("a count is not the score", "critique", critique("covers 3 of the 4 points; 7"), verdict(7)),
    Case("score of ten", "critique", critique("10/10"), verdict(10)),
    Case("chinese score in fen", "critique", critique("7分"), verdict(7)),
    Case("chinese score after a label", "critique", critique("评分：7"), verdict(7)),
    Case("chinese full marks are not the score", "critique", critique("满分10分，我给7分"), verdict(7)),
    Case("chinese full width range is not the score", "critique", critique("1～10分，打 8 分"), verdict(8)),
    Case("a score that is not a whole number is refused", "critique", critique("7.5"), error="whole number"),
    Case("a score above ten is refused", "critique", critique("11"), error="whole number from 1 to 10, not 11"),
    Case("a score of zero is refused", "critique", critique("0/10"), error="not 0"),
    Case("two different scores are ambiguous", "critique", critique("6 or 7"), error="ambiguous score"),
    Case("a score in words has no number", "critique", critique("seven"), error="no number"),
    Case(
        "a score outside the score section is never guessed",
        "critique",
        "[Weakness Start]1. Misses the point.[Weakness End]\nScore: 7/10",
        error="no score",
    ),
    Case("a reply without any section", "critique", "I think it is a fine answer, 8/10.", error="no score"),
    Case(
        "a critique with only empty sections",
        "critique",
        "[Strength Start][Strength End]\n[Weakness Start] ... [Weakness End]\n[Score Start]4[Score End]",
        error="Strength",
    ),
    Case(
        "a chinese critique",
        "critique",
        "好的，评审如下：\n【Strength Start】1. 回答简短直接。【Strength End】\n"
        "【Weakness Start】1. 没有解释原理。\n2. 没有说明【火候】。【Weakness End】\n"
        "【Suggestion Start】1. 说明盐水的作用。【Suggestion End】\n【Score Start】评分：3/10【Score End】",
        {
            "strengths": "1. 回答简短直接。",
            "weaknesses": "1. 没有解释原理。\n2. 没有说明【火候】。",
            "suggestions": "1. 说明盐水的作用。",
            "score": 3,
        },
    ),
]

REVISIONS = [
    Case(
        "revision with a preamble and a trailing note that is not stored",
        "revision",
        f"Here is the improved answer:\n[Improved Answer Start]\n{IMPROVED}\n[Improved Answer End]\n\n"
        "I added the watering interval as suggested.",
        IMPROVED,
    ),
    Case(
        "a revision with code, citations and template words stays intact",
        "revision",
        f"[Improved Answer Start]{CODE_ANSWER}[Improved Answer End]",
        CODE_ANSWER,
    ),
    Case(
        "a revision without its end marker runs to the end",
        "revision",
        f"<think>Fix the interval.</think>[improved answer start] {IMPROVED}\n",
        IMPROVED,
    ),
    Case(
        "bold revision markers and bold content",
        "revision",
        "**[Improved Answer Start]**\n**Water** every two weeks.\n**[Improved Answer End]**",
        "**Water** every two weeks.",
    ),
    Case(
        "a revision after a format echo",
        "revision",
        f"Format: [Improved Answer Start]...[Improved Answer End]\n[Improved Answer Start]{IMPROVED}"
        "[Improved Answer End]",
        IMPROVED,
    ),
    Case(
        "two different revisions are ambiguous",
        "revision",
        f"[Improved Answer Start]{IMPROVED}[Improved Answer End]\n"
        "[Improved Answer Start]Water weekly.[Improved Answer End]",
        error="ambiguous",
    ),
    Case(
        "the same revision twice is fine",
        "revision",
        f"[Improved Answer Start]{IMPROVED}[Improved Answer End]\n"
        f"[Improved Answer Start]{IMPROVED}[Improved Answer End]",
        IMPROVED,
    ),
    Case("a revision without a start marker", "revision", f"{IMPROVED}\n[Improved Answer End]", error="Start"),
    Case("an empty revision", "revision", "[Improved Answer Start]\n\n[Improved Answer End]", error="empty"),
    Case(
        "a chinese revision with full width markers",
        "revision",
        "好的，改进后的回答如下：\n"
        "【Improved Answer Start】豆腐先用淡盐水焯一下【约1分钟】，能让豆腐更紧实。【Improved Answer End】",
        "豆腐先用淡盐水焯一下【约1分钟】，能让豆腐更紧实。",
    ),
]

ANSWERS = [
    Case("an answer with code and citations is kept verbatim", "answer", f"\n{CODE_ANSWER}\n", CODE_ANSWER),
    Case(
        "a leading reasoning block is removed from an answer",
        "answer",
        "<think>\nThe user asks about watering. Assistant: weekly?\n</think>\n\nEvery two weeks.",
        "Every two weeks.",
    ),
    Case(
        "a think tag mentioned later in an answer is content",
        "answer",
        "Models like R1 put reasoning between <think> and </think> tags; strip it before display.",
        "Models like R1 put reasoning between <think> and </think> tags; strip it before display.",
    ),
    Case(
        "an r1 answer that starts inside its reasoning",
        "answer",
        "The user wants a number.\n</think>\n\n42",
        "42",
    ),
    Case(
        "a thinking block is removed like a think block",
        "answer",
        "<thinking>short plan</thinking>Water it every two weeks.",
        "Water it every two weeks.",
    ),
    Case("an unclosed reasoning block is no answer", "answer", "<think>\nLet me think", error="reasoning block"),
    Case(
        "a leading role label is removed", "answer", "Assistant: Water it every two weeks.", "Water it every two weeks."
    ),
    Case("an empty answer", "answer", "<think>hmm</think>\n  ", error="empty"),
    Case(
        "a chinese answer with a role label",
        "answer",
        "助手：豆腐焯水可以去除豆腥味【见注1】。",
        "豆腐焯水可以去除豆腥味【见注1】。",
    ),
]

TAGS = [
    Case(
        "tags after reasoning and a preamble",
        "tags",
        "<think>Sub-topics of baking.</think>Sure! Here are the tags:\n[Tag Start]Bread Baking[Tag End]\n"
        "**[Tag Start]**Pastry**[Tag End]**\n[tag start]Cake Decorating[TAG END]\nHope this helps.",
        ["Bread Baking", "Pastry", "Cake Decorating"],
    ),
    Case(
        "chinese tags with full width markers",
        "tags",
        "好的：\n【Tag Start】颁奖典礼【Tag End】\n【Tag Start】红毯造型【Tag End】",
        ["颁奖典礼", "红毯造型"],
    ),
]

CASES: list[Case] = [*QUESTIONS, *CRITIQUES, *REVISIONS, *ANSWERS, *TAGS]
