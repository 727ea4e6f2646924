"""The paper's seven task types, three difficulties and the supported languages."""

from __future__ import annotations

from typing import Literal, get_args

TaskType = Literal[
    "Role Playing",
    "Daily Chat",
    "Domain QA",
    "Given Material Processing",
    "Response Format Control",
    "View",
    "Creation",
]
TASK_TYPES: tuple[TaskType, ...] = get_args(TaskType)

Difficulty = Literal["Easy", "Medium", "Hard"]
DIFFICULTIES: tuple[Difficulty, ...] = get_args(Difficulty)
QUESTIONS_PER_CALL = len(DIFFICULTIES)  # one question-writer call writes one question per difficulty

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = get_args(Language)

TASK_DESCRIPTIONS: dict[Language, dict[TaskType, str]] = {
    "en": {
        "Role Playing": "the user asks the assistant to play a character or professional in a scene",
        "Daily Chat": "a casual, everyday conversation opener or personal request",
        "Domain QA": "a knowledge question that needs expertise in the topic",
        "Given Material Processing": (
            "the question contains a short material (text, table, list or data) and asks to "
            "summarize, extract, rewrite or analyse it; the material is inside the question"
        ),
        "Response Format Control": "a request that fixes the form of the answer (length, list, JSON, table, style)",
        "View": "a request for an opinion, evaluation or stance on a debatable matter",
        "Creation": "a creative writing request: story, poem, slogan, plan, letter",
    },
    "zh": {
        "Role Playing": "用户请助手扮演某个角色或职业，在具体情境中对话",
        "Daily Chat": "日常闲聊或生活中的个人请求",
        "Domain QA": "需要该领域专业知识才能回答的问题",
        "Given Material Processing": (
            "问题中附带一段材料（文字、表格、列表或数据），要求总结、提取、改写或分析，材料写在问题里"
        ),
        "Response Format Control": "对回答形式有明确要求（字数、列表、JSON、表格、风格）的请求",
        "View": "就有争议的话题征求观点、评价或立场",
        "Creation": "创作类请求：故事、诗歌、口号、方案、书信",
    },
}

TASK_NAMES_ZH: dict[TaskType, str] = {
    "Role Playing": "角色扮演",
    "Daily Chat": "日常对话",
    "Domain QA": "领域问答",
    "Given Material Processing": "给定材料处理",
    "Response Format Control": "回复格式控制",
    "View": "观点",
    "Creation": "创作",
}
