"""The re-ask sent after a reply that could not be used: what was wrong, and what to send instead."""

from __future__ import annotations

from prompts.markers import ParseError

FORMATTED = {
    "en": "Your reply could not be used: {reason}. Reply again, following the required format exactly and nothing else.",
    "zh": "你的回复无法使用：{reason}。请重新回复，严格遵守要求的格式，不要输出其他内容。",
}
PLAIN = {
    "en": "Your reply could not be used: {reason}. Please answer the question again.",
    "zh": "你的回复无法使用：{reason}。请重新回答这个问题。",
}
TRUNCATED = {
    "en": "Your reply was cut off at the length limit of {limit} tokens. Reply again, complete, in at most about {words} words{format}.",
    "zh": "你的回复超出了{limit}个token的长度上限，被截断了。请重新完整地回复，篇幅不超过约{chars}个字{format}。",
}
IN_FORMAT = {"en": ", following the required format", "zh": "，并严格遵守要求的格式"}
TRUNCATED_REASON = "the reply was cut off at the token limit"


class MissingParts(ParseError):
    """A reply that was partly usable: the re-ask asks only for the parts still missing."""

    def __init__(self, reason: str, request: dict[str, str]) -> None:
        super().__init__(reason)
        self.request = request  # the re-ask per language


def repair_messages(reply: str, problem: ParseError, language: str, formatted: bool = True) -> list[dict[str, str]]:
    """The unusable reply as the assistant turn, then the correction as a user turn."""
    language = language if language in FORMATTED else "en"
    if isinstance(problem, MissingParts):
        correction = problem.request.get(language, problem.request["en"])
    else:
        correction = (FORMATTED if formatted else PLAIN)[language].format(reason=problem)
    return [{"role": "assistant", "content": reply}, {"role": "user", "content": correction}]


def truncation_messages(reply: str, limit: int, language: str, formatted: bool = True) -> list[dict[str, str]]:
    """After a reply cut at the token limit: ask for a complete one with an explicit length budget."""
    language = language if language in TRUNCATED else "en"
    # half the limit in English words, 0.7 of it in Chinese characters: a complete reply fits with room to spare
    correction = TRUNCATED[language].format(
        limit=limit,
        words=max(20, limit // 2),
        chars=max(30, int(limit * 0.7)),
        format=IN_FORMAT[language] if formatted else "",
    )
    return [{"role": "assistant", "content": reply}, {"role": "user", "content": correction}]
