"""Question-writer prompt (Condor Void): one tag path + one task type → Easy, Medium and Hard questions."""

from __future__ import annotations

import re

from condor_state.tasks import DIFFICULTIES, TASK_DESCRIPTIONS, TASK_NAMES_ZH, Difficulty
from prompts.markers import CHARS_PER_TOKEN, ParseError, is_placeholder, marker, without_reasoning

INSTRUCTIONS = {
    "en": """You write questions that real users would ask an AI assistant.
Given a topic (a path in a knowledge tree) and a task type, write three questions of different difficulty: Easy, Medium and Hard.
Every question must:
- carry enough context to stand on its own (never abrupt), and fit the topic and the task type;
- be genuinely harder from Easy to Medium to Hard (more constraints, more reasoning, more expertise);
- be imaginative and specific, and must not copy the examples;
- be written in English.
Reply with exactly this format and nothing else:
[Easy][Question Start]...[Question End]
[Medium][Question Start]...[Question End]
[Hard][Question Start]...[Question End]""",
    "zh": """你为AI助手编写真实用户会提出的问题。
给定一个话题（知识树中的一条路径）和一种任务类型，写出三个难度不同的问题：Easy（简单）、Medium（中等）、Hard（困难）。
每个问题都必须：
- 含有足够的背景信息，不突兀，并且切合话题和任务类型；
- 难度从简单到中等到困难确实逐级提高（更多约束、更多推理、更专业）；
- 富有想象力、具体，不照抄示例；
- 用中文书写。
严格按以下格式回复，不要输出其他内容：
[Easy][Question Start]...[Question End]
[Medium][Question Start]...[Question End]
[Hard][Question Start]...[Question End]""",
}

EXAMPLES = {
    "en": [
        (
            "Food & Cooking > Baking > Sourdough starter maintenance",
            "Domain QA",
            "How often should I feed a sourdough starter that I keep on the kitchen counter?",
            "My sourdough starter doubles in size but smells strongly of nail-polish remover after 12 hours. "
            "What is causing this, and how should I change my feeding ratio to fix it?",
            "I bake twice a week in a 28 °C apartment and want the same starter to peak reliably 8 hours after "
            "feeding. Design a feeding schedule (flour types, ratios, water temperature) and explain the "
            "microbiology behind each choice.",
        ),
        (
            "Careers & Workplace > Job Offers > Negotiating a first salary offer",
            "Role Playing",
            "Pretend you are a friendly HR manager and tell me, a new graduate, how salary talks usually go.",
            "Act as the recruiter of a mid-size software company. I just received an offer of $72,000 and have a "
            "competing offer of $78,000. Respond to my request for a higher salary in a realistic way.",
            "Play a hiring manager with a fixed budget who cannot raise the base salary. I will push for more pay; "
            "stay in character and negotiate other parts of the package (signing bonus, remote days, training "
            "budget) while protecting the company's interests.",
        ),
    ],
    "zh": [
        (
            "饮食与烹饪 > 地方菜系 > 川菜麻婆豆腐",
            "Domain QA",
            "做麻婆豆腐时，豆腐为什么要先用淡盐水焯一下？",
            "我做的麻婆豆腐总是不够麻也不够香，郫县豆瓣和花椒分别应该在什么时候下锅？火候怎么掌握？",
            "我要给一家新开的川菜馆设计麻婆豆腐的标准化出品流程，要求每份口味稳定、出餐时间不超过五分钟。"
            "请给出原料配比、预处理方法和操作步骤，并解释每一步背后的原理。",
        ),
        (
            "教育与升学 > 高考 > 新高考选科组合",
            "Role Playing",
            "请你扮演一位高中班主任，跟我聊聊新高考选科时最需要注意什么。",
            "你现在是一名升学规划师。我物理成绩中等、历史成绩很好，将来想学法律，请以规划师的身份帮我分析该选哪三门。",
            "请扮演一位经验丰富的高中校长，面对一群担心“物化生”组合太难而想改选文科的家长，"
            "在家长会上回应他们的顾虑，既要说明各组合对大学专业报考的影响，也要兼顾学生兴趣和学校师资的现实情况。",
        ),
    ],
}

TASK_LINE = {
    "en": "Topic: {tag_path}\nTask type: {task_type} ({description})",
    "zh": "话题：{tag_path}\n任务类型：{task_type}（{description}）",
}
EXAMPLE_HEADER = {"en": "Example {n}", "zh": "示例{n}"}
YOUR_TURN = {
    "en": "Now write the three questions for this topic and task type.",
    "zh": "现在请为下面的话题和任务类型写出三个问题。",
}


def grammar(max_tokens: int) -> str:
    """GBNF that forces the three blocks, each short enough that all fit in max_tokens (even in Chinese)."""
    chars = max(24, int(max_tokens * CHARS_PER_TOKEN / 3) - 30)
    return (
        'root ::= "[Easy][Question Start]" text "[Question End]\\n[Medium][Question Start]" text '
        '"[Question End]\\n[Hard][Question Start]" text "[Question End]"\n'
        f"text ::= [^\\[\\]]{{8,{chars}}}\n"
    )


def _task_name(task_type: str, language: str) -> str:
    return TASK_NAMES_ZH.get(task_type, task_type) if language == "zh" else task_type  # type: ignore[call-overload]


def _task_block(tag_path: list[str] | tuple[str, ...], task_type: str, language: str) -> str:
    return TASK_LINE[language].format(
        tag_path=" > ".join(tag_path),
        task_type=_task_name(task_type, language),
        description=TASK_DESCRIPTIONS[language].get(task_type, task_type),  # type: ignore[call-overload,index]
    )


def build_messages(tag_path: list[str] | tuple[str, ...], task_type: str, language: str) -> list[dict[str, str]]:
    """System instructions, two worked examples, then the tag path and task type to write for."""
    parts = []
    for n, (path, task, easy, medium, hard) in enumerate(EXAMPLES[language], start=1):
        parts.append(
            f"{EXAMPLE_HEADER[language].format(n=n)}\n{_task_block(path.split(' > '), task, language)}\n"
            f"[Easy][Question Start]{easy}[Question End]\n"
            f"[Medium][Question Start]{medium}[Question End]\n"
            f"[Hard][Question Start]{hard}[Question End]"
        )
    parts.append(f"{YOUR_TURN[language]}\n{_task_block(tag_path, task_type, language)}")
    return [
        {"role": "system", "content": INSTRUCTIONS[language]},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


LEVELS: dict[str, Difficulty] = {
    "easy": "Easy",
    "medium": "Medium",
    "hard": "Hard",
    "简单": "Easy",
    "中等": "Medium",
    "困难": "Hard",
}
LEVEL_WORD = re.compile("|".join(LEVELS), re.IGNORECASE)
_WORD = "(?:" + LEVEL_WORD.pattern + ")"
_BRACKETED = rf"[\[【]\s*{_WORD}\s*[\]】]"
# A label at the start of a line: "Easy:", "**Easy**", "### Easy", "1. **Easy question:**", "简单：".
_PLAIN = rf"^[ \t]*(?:[-*•][ \t]+|\d+[.)][ \t]*)?(?:#+[ \t]*)?(?:\*\*|__)?{_WORD}(?:[ \t]*(?:question|level|问题))?"
# A level label counts only right before [Question Start]: only whitespace, markdown or a colon between them.
LABEL = re.compile(
    rf"(?:\*\*{_BRACKETED}\*\*|__{_BRACKETED}__|{_BRACKETED}|{_PLAIN})[\s#*_:：]*\Z", re.IGNORECASE | re.MULTILINE
)
START = marker("Question", "Start")
END = marker("Question", "End")
START_RUN = re.compile(rf"(?:{START.pattern})(?:\s*(?:{START.pattern}))*", re.IGNORECASE)  # a stuttered start


def parse_questions(text: str) -> dict[Difficulty, str]:
    """Questions found per difficulty, verbatim; raises ParseError when none is usable or the reply is ambiguous.

    Levels missing from the reply are missing from the result: the caller re-asks for them.
    """
    found: dict[Difficulty, str] = {}
    for level, question in _levelled(_blocks(without_reasoning(text))):
        if found.setdefault(level, question) != question:
            raise ParseError(f"ambiguous reply: two different {level} questions; write one question per level")
    if not found:
        raise ParseError("no question between [Question Start] and [Question End] markers")
    return {level: found[level] for level in DIFFICULTIES if level in found}


def _blocks(text: str) -> list[tuple[Difficulty | None, str]]:
    """(label, question) per [Question Start] block, placeholders left out.

    A question ends at its own [Question End], else where the next block (its label or start marker) begins.
    """
    runs = list(START_RUN.finditer(text))
    openers: list[tuple[int, int, Difficulty | None]] = []  # (where the block begins, where its text begins, level)
    previous_end = 0
    for run in runs:
        label = LABEL.search(text, previous_end, run.start())
        openers.append(_opener(text, label, run, previous_end))
        previous_end = run.end()
    found: list[tuple[Difficulty | None, str]] = []
    for i, (_, content_at, level) in enumerate(openers):
        limit = openers[i + 1][0] if i + 1 < len(openers) else len(text)
        closed = END.search(text, content_at, limit)
        question = text[content_at : closed.start() if closed else limit].strip()
        if not is_placeholder(question):
            found.append((level, question))
    return found


def _opener(
    text: str, label: re.Match[str] | None, run: re.Match[str], floor: int
) -> tuple[int, int, Difficulty | None]:
    """Where a block begins and where its question begins, giving each ** or __ to the marker it wraps.

    "**[Easy][Question Start]**" is one wrapped unit; in "**[Easy]**[Question Start]**Why**" the shared ** closes
    the label, so the question keeps its opening **.
    """
    if label is None:
        return run.start(), run.end(), None
    begin, content_at = label.start(), run.end()
    wrap = text[max(floor, begin - 2) : begin]
    claimed = begin >= 3 and text[begin - 3] in "]】"  # the ** closes a marker before it: [Question End]**
    bare_label = wrap in ("**", "__") and not claimed and label.group()[0] in "[【"
    if bare_label and run.group()[-1] in "]】" and text.startswith(wrap, content_at):
        begin, content_at = begin - 2, content_at + 2
    elif bare_label and label.group()[-1] in "]】" and run.group().startswith(wrap) and run.group().endswith(wrap):
        begin, content_at = begin - 2, content_at - 2
    word = LEVEL_WORD.search(label.group())
    return begin, content_at, LEVELS[word.group().lower()] if word else None


def _levelled(found: list[tuple[Difficulty | None, str]]) -> list[tuple[Difficulty, str]]:
    """Each question with its level: its label, else its position when the blocks leave no doubt."""
    if not any(level for level, _ in found):
        if len(found) > len(DIFFICULTIES):
            raise ParseError(f"ambiguous reply: {len(found)} questions without [Easy], [Medium] or [Hard] labels")
        return [(level, question) for level, (_, question) in zip(DIFFICULTIES, found, strict=False)]
    if len(found) == len(DIFFICULTIES) and all(label in (None, DIFFICULTIES[i]) for i, (label, _) in enumerate(found)):
        return [(label or DIFFICULTIES[i], question) for i, (label, question) in enumerate(found)]
    return [(label, question) for label, question in found if label]
