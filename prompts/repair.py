"""The re-ask sent after a reply that did not parse: what was wrong, and the format again."""

from __future__ import annotations

REPAIR = {
    "en": "Your reply could not be used: {reason}. Reply again, following the required format exactly and nothing else.",
    "zh": "你的回复无法使用：{reason}。请重新回复，严格遵守要求的格式，不要输出其他内容。",
}
TRUNCATED = "the reply was cut off at the token limit"


def repair_messages(reply: str, reason: str, language: str) -> list[dict[str, str]]:
    """The bad reply as the assistant turn, then the correction as a user turn."""
    return [
        {"role": "assistant", "content": reply},
        {"role": "user", "content": REPAIR.get(language, REPAIR["en"]).format(reason=reason)},
    ]
