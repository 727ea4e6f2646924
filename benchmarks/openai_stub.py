"""A tiny OpenAI-compatible chat server on loopback that answers each Condor role in format, deterministically.

It stands in for a served model where the model's content does not matter (crash safety, concurrency, routing
through the real HTTP client); `--latency` simulates a slow server and `max_in_flight` is measured here.
With `realistic=True` (`--realistic`) it answers the way real instruct models do (prose, reasoning blocks,
markdown, bracketed words inside content, a few broken replies) and records in `sent` (also `GET /sent`) the exact
content each reply carries, so a test can check that what a run stored is what the server sent.
Run: python -m benchmarks.openai_stub --port 0 [--latency 0.05] [--realistic]  (prints the port it listens on).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from typing import Any

from aiohttp import web

# The markers each role's prompt asks for; a refine prompt quotes the critique's, so they are tried in this order.
ROLE_MARKERS = (
    ("reviser", "[Improved Answer Start]"),
    ("critic", "[Strength Start]"),
    ("question_writer", "[Easy][Question Start]"),
    ("tags", "[Tag Start]"),
)


def role_of(messages: list[dict[str, Any]]) -> str:
    """Which role a request is for, told by its system prompt (Condor's responder has none); when a client's system
    prompt is generic and its instructions are in the user turn (OpenDCAI DataFlow's Condor operators), by those."""
    system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), None)
    user = str(messages[-1].get("content", "")) if messages else ""
    if system is None:
        return "responder"
    told = system if any(marker in system for _, marker in ROLE_MARKERS) else user
    return next((role for role, marker in ROLE_MARKERS if marker in told), "responder")


def reply_for(messages: list[dict[str, Any]]) -> str:
    """A well-formed reply for whichever role's prompt this is; first answers score 5, revised ones 9."""
    role = role_of(messages)
    user = messages[-1]["content"] if messages else ""
    digest = hashlib.sha256(user.encode()).hexdigest()[:8]
    if role == "question_writer":
        return "\n".join(
            f"[{level}][Question Start]A {level.lower()} question about topic {digest}?[Question End]"
            for level in ("Easy", "Medium", "Hard")
        )
    if role == "critic":
        score = 9 if "(revised)" in user.split("[Score End]")[-1] else 5
        return (
            f"[Strength Start]1. Clear.[Strength End]\n[Weakness Start]1. Too short.[Weakness End]\n"
            f"[Suggestion Start]1. Add detail.[Suggestion End]\n[Score Start]{score}[Score End]"
        )
    if role == "tags":  # graphs.tree expand: four sub-tags, unique per path
        return "\n".join(f"[Tag Start]Topic {digest} {i}[Tag End]" for i in range(1, 5))
    if role == "reviser":
        return f"[Improved Answer Start]A longer, better answer {digest} (revised).[Improved Answer End]"
    return f"An answer {digest}."


# ---------------------------------------------------------------------------------------------------------------
# Realistic mode: replies written the way served instruct models write them (Qwen, Llama, DeepSeek-R1 distills).
# The format's own markers are always where the format puts them, but around and inside them there is prose, a
# reasoning block, markdown, full-width brackets and bracketed words; a small share of replies is genuinely broken.
# Every reply is recorded with the exact content pieces it carries, so a test can check that what a run stored is
# exactly what the server sent.

LEVELS = ("Easy", "Medium", "Hard")
BROKEN_SHARE = 0.04  # of question-writer, critic and reviser replies (not repairs): a correct client re-asks
CJK = re.compile(r"[\u4e00-\u9fff]")
TOPIC = re.compile(r"^(?:Topic: |话题：)(.+)$", re.MULTILINE)
# The closing sentence of every improved answer: the critic recognises a revised answer by it and scores it >= 8.
REVISED = {"en": "I hope this fuller version helps.", "zh": "希望这个更完整的版本对你有帮助。"}

# (form, template): questions with bracketed words, tags and code inside their content; {leaf} is the topic.
QUESTIONS: dict[str, list[tuple[str, str]]] = {
    "en": [
        (
            "labels",
            "I'm building a quiz app about {leaf} that tags every item [Easy] or [Hard]. What makes a question "
            "about it belong under [Hard] rather than [Easy]?",
        ),
        (
            "arr",
            "I log {leaf} readings in a Python list where arr[0] is the oldest entry. Why does arr[-1] raise an "
            "IndexError before anything is logged, and how should I guard against it?",
        ),
        (
            "todo",
            "My notes on {leaf} still have a [TODO] next to the budget section. How do I turn that [TODO] into a "
            "concrete first-month plan?",
        ),
        (
            "template",
            "Write a flashcard about {leaf} in exactly this template: [Question] the most common beginner mistake "
            "[Answer] how to avoid it. Keep each part under 30 words.",
        ),
        (
            "citation",
            "An article about {leaf} cites a study as [1] and says it proves the method works for everyone. How can "
            "I tell whether source [1] really supports that claim?",
        ),
        (
            "think_tag",
            "When I ask a chatbot about {leaf}, its reply starts with a <think> tag. What is that tag for, and "
            "should my app hide it from users?",
        ),
        ("plain", "What is a sensible first step for someone who is completely new to {leaf}?"),
        (
            "plain",
            "Compare two common approaches to {leaf} and explain which one suits a busy parent with only 30 minutes "
            "a day.",
        ),
    ],
    "zh": [
        ("short_zh", "怎样煮好米饭？"),
        ("short_zh", "猫为什么怕水？"),
        ("short_zh", "如何戒掉熬夜？"),
        ("labels", "我在做一个关于{leaf}的题库，每道题都标成[Easy]或[Hard]。什么样的题应该标成[Hard]而不是[Easy]？"),
        ("arr", "我用Python记录{leaf}的数据，arr[0]是最早的一条。为什么还没有记录时访问arr[-1]会报错？该怎么防止？"),
        ("todo", "我的{leaf}笔记里预算那一节还标着[TODO]，怎样把这个[TODO]变成第一个月的具体计划？"),
        ("template", "请按这个模板写一张关于{leaf}的学习卡片：[Question] 初学者最常犯的错误 [Answer] 如何避免。"),
        (
            "citation",
            "一篇讲{leaf}的文章引用了文献[1]，说它证明这种方法对所有人都有效。我怎样判断[1]是否真的支持这个结论？",
        ),
        (
            "think_tag",
            "我问聊天机器人关于{leaf}的问题时，它的回复以<think>标签开头。这个标签是做什么的？要不要隐藏它？",
        ),
        ("plain", "对{leaf}完全零基础的人，第一步应该做什么？"),
    ],
}
PLAIN_QUESTIONS = {
    "en": (
        "What should a beginner know first about {leaf}?",
        "How would you plan a first month of practice in {leaf} with two hours a week?",
        "Design a complete three-month programme in {leaf} for a team of five with a small budget, and justify it.",
    ),
    "zh": (
        "初学{leaf}最先应该了解什么？",
        "每周只有两个小时，怎样安排学习{leaf}的第一个月？",
        "请为五人小团队设计一个为期三个月、预算有限的{leaf}学习方案，并说明理由。",
    ),
}
WRITER_TEXT = {
    "en": {
        "preamble": "Sure! Here are three questions of increasing difficulty:",
        "trailing": "Let me know if you need more!",
        "think": (
            "The user wants three questions about {leaf}, one per level. I will mark each with [Easy], [Medium] and "
            "[Hard] and wrap it in [Question Start] and [Question End].",
            "Three questions, each harder than the last. Keep them specific and self-contained.",
        ),
        "refusal": "I'm sorry, but I need a little more detail about the topic before I can write these.",
    },
    "zh": {
        "preamble": "好的，以下是三个问题：",
        "trailing": "如果需要更多问题，请告诉我！",
        "think": (
            "用户需要关于{leaf}的三个问题，分别用[Easy]、[Medium]、[Hard]标注，"
            "并放在[Question Start]和[Question End]之间。",
            "三个问题，难度逐级提高，要具体、完整。",
        ),
        "refusal": "抱歉，我需要更多关于这个话题的信息才能出题。",
    },
}

# (form, paragraph) of answers: citations, indexing, fenced code with brackets, a <think> tag explained, [TODO].
ANSWER_PARTS: dict[str, list[tuple[str, str]]] = {
    "en": [
        (
            "citation",
            "A 2021 review [1] found that beginners who practise in short daily sessions keep going far longer than "
            "those who cram once a week.\n\n[1] Lee, M. (2021). Habits of Successful Beginners. J. Practice 12(3).",
        ),
        (
            "arr",
            "If you track this in code, remember that arr[0] is the first element and arr[-1] the last; check "
            "`if arr:` before reading either.",
        ),
        (
            "code",
            "```python\nreadings: list[int] = []\nif readings:\n    print(readings[0], readings[-1])\n"
            'plan = {"week": [1, 2, 3], "goal": ["[TODO]"]}\n```',
        ),
        (
            "think_tag",
            "A side note, since it confuses many people: some models print a <think> tag before they reply. "
            "Everything from <think> to </think> is the model's scratch work, and the real answer starts after it.",
        ),
        (
            "think_tag",
            "If a tool shows a <think> tag in its output, treat what follows it as reasoning, not as the answer.",
        ),
        ("todo", "Mark anything you have not decided yet as [TODO] and come back to it after the first week."),
        ("plain", "Keep a simple log of what you did each day; after two weeks the pattern shows what to change."),
    ],
    "zh": [
        (
            "citation",
            "2021年的一篇综述[1]发现，每天短时间练习的初学者比每周集中突击的人坚持得更久。"
            "\n\n[1] 李明（2021）。《初学者的习惯》。",
        ),
        ("arr", "如果用代码记录，要记住arr[0]是第一个元素、arr[-1]是最后一个；读取之前先检查列表是否为空。"),
        (
            "code",
            '```python\ndata: list[int] = []\nif data:\n    print(data[0], data[-1])\nplan = {"周": [1, 2, 3]}\n```',
        ),
        (
            "think_tag",
            "顺便说明一下：有些模型在回答前会输出<think>标签，<think>和</think>之间是模型的草稿，真正的回答在它之后。",
        ),
        ("think_tag", "如果工具的输出里出现<think>标签，它后面的内容是推理过程，不是回答本身。"),
        ("todo", "还没想好的事项先标成[TODO]，第一周结束后再回来处理。"),
        ("plain", "每天简单记录做了什么，两周后就能看出该调整哪里。"),
    ],
}
ANSWER_OPENINGS = {
    "en": (
        "Good question. Here is a practical way to approach it.",
        "Short answer: start small and build a routine.",
        "There are three things to get right here.",
    ),
    "zh": ("好问题，下面是一个实用的思路。", "简单来说：从小处开始，养成习惯。", "这里有三件事要做好。"),
}
ANSWER_THINK = {
    "en": "The user wants practical advice. I should answer directly, give one example and keep it short.",
    "zh": "用户需要实用的建议。我应该直接回答，举一个例子，保持简洁。",
}

CRITIQUE_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "strengths": (
            "1. Covers 3 of the 4 points the question raises.\n2. The tone is friendly and direct.",
            "1. Correct on the main facts.\n2. Organised into 3 short, readable parts.",
            "1. Gives a concrete example in step 2.\n2. Uses plain language a beginner understands.",
        ),
        "weaknesses": (
            "1. It covers only 3 of the 4 points the question raises.\n2. It mentions a [Score] field but never says "
            "what range it uses.",
            "1. The step its own checklist labels [Weakness] is never explained.\n2. No source is given for the 30% "
            "figure.",
            "1. Only 2 sentences on the hardest part of the question.\n2. It ignores the empty case, where arr[0] "
            "would fail.",
        ),
        "suggestions": (
            "1. Add a 5-step checklist the reader can follow.\n2. Say what range the [Score] it mentions uses, "
            "e.g. 1-10.",
            "1. Give 2 worked examples.\n2. Cite a source such as [1] for the statistic.",
            "1. Cover the 4th point in one short paragraph.\n2. Replace the [TODO] with a concrete date.",
        ),
    },
    "zh": {
        "strengths": (
            "1. 覆盖了问题中4个要点里的3个。\n2. 语气友好、直接。",
            "1. 主要事实正确。\n2. 分成3个简短的部分，条理清楚。",
        ),
        "weaknesses": (
            "1. 只覆盖了4个要点中的3个。\n2. 提到了[Score]字段，却没有说明它的取值范围。",
            "1. 回答自己的清单里标为[Weakness]的那一步没有解释。\n2. 30%这个数字没有给出来源。",
        ),
        "suggestions": (
            "1. 增加一个5步清单。\n2. 说明[Score]的取值范围，例如1到10。",
            "1. 给出2个完整的例子。\n2. 为统计数字注明出处，例如[1]。",
        ),
    },
}
SCORE_FORMS: dict[str, str] = {
    "score_plain": "{s}",
    "score_slash": "{s}/10",
    "score_colon": "Score: {s}",
    "score_out_of": "I would rate this answer {s} out of 10.",
    "score_scale": "On a scale of 1-10, I give it {s}.",
    "score_bold": "**{s}**",
    "score_fen": "{s}分",
}
CRITIC_TEXT = {
    "en": {
        "preamble": "Here is my review of the answer:",
        "think": "Let me check the answer against the question point by point before I score it.",
        "broken": "Overall the answer is decent but could go deeper.",
    },
    "zh": {
        "preamble": "以下是我对这个回答的评审：",
        "think": "先逐条对照问题检查回答，再打分。",
        "broken": "总体来说回答还可以，但可以更深入。",
    },
}

IMPROVED_PARTS: dict[str, list[tuple[str, str]]] = {
    "en": [
        (
            "template",
            "To make it stick, turn the key point into a flashcard: [Question] What should I do first? [Answer] "
            "Start with a 10-minute daily routine.",
        ),
        ("citation", "The 10-minute figure comes from the review cited as [1], which followed 400 beginners."),
        ("plain", "Check your progress every Sunday and adjust one thing at a time."),
    ],
    "zh": [
        ("template", "为了记牢，可以把要点写成卡片：[Question] 第一步做什么？[Answer] 每天坚持10分钟。"),
        ("citation", "10分钟这个数字来自文献[1]，它跟踪了400名初学者。"),
        ("plain", "每周日检查一次进度，每次只调整一件事。"),
    ],
}
IMPROVED_OPENINGS = {
    "en": (
        "Start with a short daily routine: ten minutes a day beats two hours once a week.",
        "The most reliable approach has three steps: learn the basics, practise daily, review weekly.",
    ),
    "zh": ("先建立每天的短时练习：每天十分钟胜过每周一次两小时。", "最可靠的方法分三步：学基础、每天练、每周复盘。"),
}
REVISER_TEXT = {
    "en": {
        "preamble": "Here is the improved answer:",
        "trailing": "I kept the strengths, fixed both weaknesses and added the suggested example.",
        "think": "The critique asks for an example and a source. I will keep the structure and add both.",
    },
    "zh": {
        "preamble": "以下是改进后的回答：",
        "trailing": "（已保留优点，修正了不足，并补充了例子。）",
        "think": "评审要求补充例子和出处，保留原有结构并加上这两点。",
    },
}

# Every form the realistic mode produces, by role: a test checks that a run of replies covers them all.
FORMS: dict[str, set[str]] = {
    "question_writer": {"preamble", "think", "bold", "fullwidth", "newlines", "trailing", "zh", "broken", "repair"}
    | {form for pool in QUESTIONS.values() for form, _ in pool},
    "responder": {"think", "zh"} | {form for pool in ANSWER_PARTS.values() for form, _ in pool},
    "critic": {"preamble", "think", "newlines", "zh", "broken", "repair", "revised"} | set(SCORE_FORMS),
    "reviser": {"preamble", "think", "bold", "newlines", "trailing", "zh", "broken", "repair"}
    | {form for pool in IMPROVED_PARTS.values() for form, _ in pool},
}


def realistic_reply(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A reply as a real instruct model writes it, and the truth it carries.

    Returns {role, pieces, raw, forms, broken, repair}: `raw` is the reply text; `pieces` the exact content a
    correct parser reads from it (question writer {level: question}; responder {answer}; critic {strengths,
    weaknesses, suggestions, score}; reviser {improved_answer}), or None when the reply is broken. The choice is
    a pure function of the request, so a run is reproducible. A repair re-ask (the conversation ends with the bad
    reply and a correction) is answered in the role's canonical format.
    """
    role = role_of(messages)
    key = json.dumps([[m.get("role"), m.get("content")] for m in messages], ensure_ascii=False)
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    repair = any(m.get("role") == "assistant" for m in messages)
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    first_user = users[0] if users else ""
    system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), "")
    zh = bool(CJK.search(system if role != "responder" else first_user))
    lang = "zh" if zh else "en"
    forms: set[str] = {"zh"} if zh else set()
    if repair:
        forms.add("repair")
    broken = not repair and role != "responder" and rng.random() < BROKEN_SHARE
    if broken:
        forms.add("broken")
    if role == "question_writer":
        raw, pieces = _write_questions(rng, lang, first_user, repair, broken, forms)
    elif role == "critic":
        raw, pieces = _critique(rng, lang, first_user, repair, broken, forms)
    elif role == "reviser":
        raw, pieces = _improve(rng, lang, repair, broken, forms)
    elif role == "responder":
        raw, pieces = _answer(rng, lang, repair, forms)
    else:
        raw, pieces = reply_for(messages), None
    return {"role": role, "pieces": pieces, "raw": raw, "forms": sorted(forms), "broken": broken, "repair": repair}


def _wrap(rng: random.Random, lang: str, body: str, text: dict[str, Any], forms: set[str], **odds: float) -> str:
    """Optionally put a reasoning block and a preamble before the body and a note after it."""
    if rng.random() < odds.get("preamble", 0.0):
        forms.add("preamble")
        body = f"{text['preamble']}\n\n{body}"
    if rng.random() < odds.get("think", 0.0):
        forms.add("think")
        thought = text["think"]
        thought = rng.choice(thought) if isinstance(thought, tuple) else thought
        body = f"<think>\n{thought}\n</think>\n\n{body}"
    if rng.random() < odds.get("trailing", 0.0):
        forms.add("trailing")
        body = f"{body}\n\n{text['trailing']}"
    return body


def _write_questions(
    rng: random.Random, lang: str, user: str, repair: bool, broken: bool, forms: set[str]
) -> tuple[str, dict[str, str] | None]:
    topics = TOPIC.findall(user)
    leaf = topics[-1].split(" > ")[-1].strip() if topics else "this topic"
    text: dict[str, Any] = {k: v.format(leaf=leaf) if isinstance(v, str) else tuple(t.format(leaf=leaf) for t in v)
            for k, v in WRITER_TEXT[lang].items()}  # fmt: skip
    if broken:
        return _wrap(rng, lang, text["refusal"], text, forms, think=0.3), None
    if repair:
        questions = {level: q.format(leaf=leaf) for level, q in zip(LEVELS, PLAIN_QUESTIONS[lang], strict=True)}
        return "\n".join(f"[{lv}][Question Start]{q}[Question End]" for lv, q in questions.items()), questions
    picks = rng.sample(QUESTIONS[lang], 3)
    questions = {level: template.format(leaf=leaf) for level, (_, template) in zip(LEVELS, picks, strict=True)}
    forms.update(form for form, _ in picks)
    style = rng.choice(("plain", "plain", "newlines", "bold", "fullwidth"))
    if style != "plain":
        forms.add(style)
    blocks = []
    for level, question in questions.items():
        if style == "bold":
            blocks.append(f"**[{level}]** [Question Start]{question}[Question End]")
        elif style == "fullwidth":
            blocks.append(f"【{level}】【Question Start】{question}【Question End】")
        elif style == "newlines":
            blocks.append(f"[{level}]\n[Question Start]\n{question}\n[Question End]")
        else:
            blocks.append(f"[{level}][Question Start]{question}[Question End]")
    body = rng.choice(("\n", "\n\n")).join(blocks)
    return _wrap(rng, lang, body, text, forms, preamble=0.35, think=0.3, trailing=0.3), questions


def _answer(rng: random.Random, lang: str, repair: bool, forms: set[str]) -> tuple[str, dict[str, str]]:
    parts = rng.sample(ANSWER_PARTS[lang], 2)
    forms.update(form for form, _ in parts)
    answer = "\n\n".join([rng.choice(ANSWER_OPENINGS[lang]), *(p for _, p in parts)])
    raw = answer
    if not repair and rng.random() < 0.3:
        forms.add("think")
        raw = f"<think>\n{ANSWER_THINK[lang]}\n</think>\n\n{answer}"
    return raw, {"answer": answer}


def _critique(
    rng: random.Random, lang: str, user: str, repair: bool, broken: bool, forms: set[str]
) -> tuple[str, dict[str, Any] | None]:
    revised = REVISED["en"] in user or REVISED["zh"] in user
    if revised:
        forms.add("revised")
    score = rng.choice((8, 9, 10) if revised else (4, 5, 6, 7))
    pools = CRITIQUE_PARTS[lang]
    sections = {name: rng.choice(pool) for name, pool in pools.items()}
    markers = {"strengths": "Strength", "weaknesses": "Weakness", "suggestions": "Suggestion"}
    if repair:
        body = "\n".join(f"[{markers[n]} Start]{t}[{markers[n]} End]" for n, t in sections.items())
        return f"{body}\n[Score Start]{score}[Score End]", {**sections, "score": score}
    newlines = rng.random() < 0.5
    sep = "\n" if newlines else ""
    if newlines:
        forms.add("newlines")
    blocks = [f"[{markers[n]} Start]{sep}{t}{sep}[{markers[n]} End]" for n, t in sections.items()]
    if broken:
        blocks.append(CRITIC_TEXT[lang]["broken"])  # no score at all
    else:
        form = rng.choice(sorted(SCORE_FORMS))
        forms.add(form)
        blocks.append(f"[Score Start]{sep}{SCORE_FORMS[form].format(s=score)}{sep}[Score End]")
    body = rng.choice(("\n", "\n\n")).join(blocks)
    raw = _wrap(rng, lang, body, CRITIC_TEXT[lang], forms, preamble=0.3, think=0.3)
    return raw, None if broken else {**sections, "score": score}


def _improve(
    rng: random.Random, lang: str, repair: bool, broken: bool, forms: set[str]
) -> tuple[str, dict[str, str] | None]:
    parts = rng.sample(IMPROVED_PARTS[lang], 2)
    answer = "\n\n".join([rng.choice(IMPROVED_OPENINGS[lang]), *(p for _, p in parts), REVISED[lang]])
    if repair:
        return f"[Improved Answer Start]{answer}[Improved Answer End]", {"improved_answer": answer}
    if broken:
        return "[Improved Answer Start]\n\n[Improved Answer End]", None
    forms.update(form for form, _ in parts)
    style = rng.choice(("plain", "newlines", "bold"))
    if style != "plain":
        forms.add(style)
    if style == "bold":
        body = f"**[Improved Answer Start]**\n{answer}\n**[Improved Answer End]**"
    elif style == "newlines":
        body = f"[Improved Answer Start]\n{answer}\n[Improved Answer End]"
    else:
        body = f"[Improved Answer Start]{answer}[Improved Answer End]"
    return _wrap(rng, lang, body, REVISER_TEXT[lang], forms, preamble=0.35, think=0.2, trailing=0.35), {
        "improved_answer": answer
    }


FAULTS = ("429", "500", "timeout", "garbage", "truncated", "badjson")


class StubServer:
    """The server on its own asyncio loop in a background thread: latency is an `asyncio.sleep`, so thousands of
    requests can wait at once for little CPU, and the server is never what limits a benchmark."""

    def __init__(
        self,
        port: int = 0,
        latency: float = 0.0,
        faults: float = 0.0,
        hang: float = 5.0,
        realistic: bool = False,
        record: bool | None = None,
    ) -> None:
        self.latency = latency
        self.realistic = realistic  # answer like real instruct models (realistic_reply) instead of canonically
        # what was sent, with the request's messages: kept in realistic mode by default; canonical benchmarks send
        # thousands of requests and need none of it
        self.record = realistic if record is None else record
        self.sent: list[dict[str, Any]] = []
        self.faults = faults  # share of requests answered with one of FAULTS
        self.hang = hang  # seconds a "timeout" fault stalls before answering
        self.rng = random.Random(0)
        self.fault_counts: dict[str, int] = {}
        self.first_request_at: float | None = None
        self.last_response_at: float | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.bodies: Counter[bytes] = Counter()  # a digest of each request's messages: what was asked twice
        self.arrivals: list[float] = []  # time.monotonic() of each request: the rate a client kept to
        self.authorizations: set[str] = set()  # the Authorization headers seen: did the key reach every sender
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/reset", self._reset)
        app.router.add_get("/sent", self._sent)
        app.router.add_get("/{prefix:.*}models", self._models)
        app.router.add_post("/{prefix:.*}chat/completions", self._chat)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        self.loop.run_until_complete(site.start())
        self.server_address: tuple[str, int] = self.runner.addresses[0][:2]
        self.thread: threading.Thread | None = None

    @property
    def repeats(self) -> int:
        """Requests whose messages had been sent before: the work a crash or a lost node made the run redo."""
        return sum(n - 1 for n in self.bodies.values())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> StubServer:
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.loop.run_forever()

    def shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread:
            self.thread.join(timeout=10)

    def server_close(self) -> None:
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "max_in_flight": self.max_in_flight,
                "first_request_at": self.first_request_at,
                "last_response_at": self.last_response_at,
            }
        )

    async def _reset(self, _: web.Request) -> web.Response:
        self.requests = self.max_in_flight = 0
        self.first_request_at = self.last_response_at = None
        self.sent = []
        self.bodies.clear()
        self.arrivals.clear()
        self.authorizations.clear()
        return web.json_response({})

    async def _sent(self, _: web.Request) -> web.Response:
        return web.json_response(self.sent)

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "condor"}]})

    async def _chat(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw or b"{}")
        self.bodies[hashlib.blake2b(json.dumps(body.get("messages")).encode(), digest_size=16).digest()] += 1
        self.arrivals.append(time.monotonic())
        self.authorizations.add(request.headers.get("Authorization", ""))
        self.in_flight += 1
        self.requests += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.first_request_at is None:
            self.first_request_at = time.time()
        fault = self.rng.choice(FAULTS) if self.rng.random() < self.faults else None
        if fault:
            self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self._reply(body, fault)
        finally:
            self.in_flight -= 1
            self.last_response_at = time.time()

    async def _reply(self, body: dict[str, Any], fault: str | None) -> web.Response:
        messages = body.get("messages", [])
        record: dict[str, Any] = realistic_reply(messages) if self.realistic else {"raw": reply_for(messages)}
        content = record["raw"]
        finish_reason = "stop"
        if fault == "429":
            return web.json_response({"error": {"message": "rate limited"}}, status=429, headers={"Retry-After": "0.2"})
        if fault == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "timeout":
            await asyncio.sleep(self.hang)
        if fault == "badjson":
            return web.Response(body=b'{"id": "chatcmpl-stub", "choices": [', content_type="application/json")
        if fault == "garbage":
            content = "lorem ipsum [Question Sta dolor [Score] sit amet"
        if fault == "truncated":
            content, finish_reason = content[: len(content) // 2], "length"
        if self.record:
            if content != record["raw"]:  # a fault replaced the reply: it carries none of the intended pieces
                record.update(raw=content, pieces=None, broken=True)
            self.sent.append({"role": role_of(messages), **record, "fault": fault, "messages": messages})
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
        return web.json_response(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "stub"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": prompt_tokens + len(content) // 4,
                },
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--faults", type=float, default=0.0)
    parser.add_argument("--realistic", action="store_true", help="answer like real instruct models, not canonically")
    args = parser.parse_args()
    server = StubServer(args.port, args.latency, args.faults, realistic=args.realistic)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
