"""Tag-expansion prompt (World Knowledge Tree): root domains, then coarse-to-fine sub-tags of a tag path."""

from __future__ import annotations

import re
import unicodedata

from prompts.markers import CHARS_PER_TOKEN, ParseError, marker, without_reasoning

INSTRUCTIONS = {
    "en": """You build a knowledge tree of the topics real users ask an AI assistant about.
Given a path in the tree, list sub-topics of its last tag; given no path, list broad life scenarios (root domains).
Every tag must:
- be narrower than the path and clearly belong to it;
- be different from the other tags and from the tags listed as already present;
- be a short name (2 to 6 words), without numbering or explanations;
- be written in English.
Reply with exactly this format and nothing else, one tag per line:
[Tag Start]...[Tag End]
[Tag Start]...[Tag End]""",
    "zh": """你在构建一棵知识树，涵盖真实用户会向AI助手询问的话题。
给定树中的一条路径，列出其最后一个标签下的子话题；没有路径时，列出宽泛的生活场景（根领域）。
每个标签都必须：
- 比路径更具体，并且明确属于它；
- 与其他标签不同，也不同于列为已有的标签；
- 是简短的名称（2到12个字），不加编号，不加解释；
- 用中文书写。
严格按以下格式回复，每行一个标签，不要输出其他内容：
[Tag Start]...[Tag End]
[Tag Start]...[Tag End]""",
}

# (path, tags): the first example lists root domains (empty path), the others go coarse to fine.
EXAMPLES = {
    "en": [
        ((), ["Education", "Entertainment", "Health", "Technology"]),
        (("Entertainment",), ["Celebrity News", "Video Games", "Streaming Series", "Live Concerts"]),
        (
            ("Entertainment", "Celebrity News"),
            ["Award Ceremonies", "Celebrity Relationships", "Red Carpet Fashion", "Fan Culture"],
        ),
    ],
    "zh": [
        ((), ["教育", "娱乐", "健康", "科技"]),
        (("娱乐",), ["明星动态", "电子游戏", "网络剧集", "演唱会"]),
        (("娱乐", "明星动态"), ["颁奖典礼", "明星恋情", "红毯造型", "粉丝文化"]),
    ],
}

LABELS = {
    "en": {
        "example": "Example {n}",
        "path": "Path: {path}",
        "roots": "Path: (none: root domains)",
        "present": "Already present (do not repeat): {tags}",
        "count": "Tags ({n}):",
        "turn": "Now list the tags for this path.",
    },
    "zh": {
        "example": "示例{n}",
        "path": "路径：{path}",
        "roots": "路径：（无：根领域）",
        "present": "已有标签（不要重复）：{tags}",
        "count": "标签（{n}个）：",
        "turn": "现在请为下面的路径列出标签。",
    },
}
MAX_PRESENT = 40  # already-present tags shown to the model; the rest are still filtered after the reply
MAX_TAG_CHARS = 60


def _block(path: tuple[str, ...], language: str, n: int, present: list[str]) -> str:
    labels = LABELS[language]
    lines = [labels["path"].format(path=" > ".join(path)) if path else labels["roots"]]
    if present:
        sep = "、" if language == "zh" else ", "
        lines.append(labels["present"].format(tags=sep.join(present[:MAX_PRESENT])))
    lines.append(labels["count"].format(n=n))
    return "\n".join(lines)


def build_messages(
    path: list[str] | tuple[str, ...], language: str, n: int, present: list[str] | None = None
) -> list[dict[str, str]]:
    """Instructions, worked examples (roots, then two levels down), then the path to expand.

    An empty path asks for root domains. `present` lists tags the model should not repeat (siblings already in
    the tree); the caller still filters duplicates, since models ignore such lists.
    """
    labels = LABELS[language]
    parts = []
    for k, (example_path, tags) in enumerate(EXAMPLES[language], start=1):
        body = "\n".join(f"[Tag Start]{tag}[Tag End]" for tag in tags)
        parts.append(f"{labels['example'].format(n=k)}\n{_block(example_path, language, len(tags), [])}\n{body}")
    parts.append(f"{labels['turn']}\n{_block(tuple(path), language, n, list(present or []))}")
    return [
        {"role": "system", "content": INSTRUCTIONS[language]},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


# Characters a tag may start with and continue with: words, not list numbers, markup or half a marker.
NAME_CHARS = {
    "en": ("[A-Za-z]", "[A-Za-z0-9 &'/-]"),
    "zh": ("[\\u4e00-\\u9fff]", "[\\u4e00-\\u9fffA-Za-z0-9·]"),
}


def grammar(n: int, max_tokens: int, language: str = "en") -> str:
    """GBNF for exactly n tag lines, each short enough that all of them fit in max_tokens (even in Chinese)."""
    n = max(1, n)
    chars = max(4, min(MAX_TAG_CHARS, int((max_tokens / n - 10) * CHARS_PER_TOKEN)))
    first, rest = NAME_CHARS.get(language, NAME_CHARS["en"])
    items = ' "\\n" '.join(["item"] * n)
    return f'root ::= {items}\nitem ::= "[Tag Start]" name "[Tag End]"\nname ::= {first} {rest}{{1,{chars - 1}}}\n'


def example_keys(language: str) -> dict[str, tuple[str, ...]]:
    """Each example tag's key and the path it was listed under: a copied example is not a new tag elsewhere."""
    return {tag_key(tag): tuple(path) for path, tags in EXAMPLES[language] for tag in tags}


START = marker("Tag", "Start")
END = marker("Tag", "End")
ANY_TAG_MARKER = re.compile(r"[\[【]\s*tags?\s*(?:start|end)?\s*[\]】]", re.IGNORECASE)
LIST_PREFIX = re.compile(r"^\s*(?:[-*•·]|\d+\s*[.)、:：]|[a-zA-Z]\s*[.)]|[一二三四五六七八九十]+\s*[、.])\s*")


def parse_tags(text: str, complete: bool = True) -> list[str]:
    """Tag names in reply order, cleaned and unique (case-insensitively); raises ParseError when none is usable.

    Reads [Tag Start]…[Tag End] blocks, tolerating missing end markers; a reply without markers is read as a
    numbered, bulleted or comma-separated list. When the reply was cut at the token limit (complete=False) an
    unclosed last block is dropped: it may hold half a name.
    """
    text = without_reasoning(text)
    candidates: list[str] = []
    starts = list(START.finditer(text))
    if starts:
        for i, opened in enumerate(starts):
            segment = text[opened.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
            closed = END.search(segment)
            if not closed and not complete and i == len(starts) - 1:
                break
            segment = segment[: closed.start()] if closed else segment.split("\n", 1)[0]
            candidates.append(segment)
    else:
        for line in ANY_TAG_MARKER.sub("\n", text).splitlines():
            if line.strip().endswith((":", "：")):  # a heading such as "Here are the tags:"
                continue
            candidates.extend(re.split(r"[,，、;；]", line) if "," in line or "，" in line or "、" in line else [line])
    tags: list[str] = []
    seen: set[str] = set()
    for candidate in candidates:
        tag = clean_tag(candidate)
        if tag and (key := tag_key(tag)) not in seen:
            seen.add(key)
            tags.append(tag)
    if not tags:
        raise ParseError("no tag between [Tag Start] and [Tag End] markers")
    return tags


def clean_tag(text: str) -> str | None:
    """A usable tag name, or None: list numbering, quotes and trailing punctuation are dropped."""
    tag = ANY_TAG_MARKER.sub("", text)
    tag = LIST_PREFIX.sub("", tag.strip())
    tag = re.sub(r"\s+", " ", tag).strip(" \t\"'“”‘’`*_.。,，;；:：!！?？")
    if not tag or len(tag) > MAX_TAG_CHARS or any(c in tag for c in "[]【】>\n"):
        return None
    if not any(c.isalpha() for c in tag) or tag == "...":
        return None
    return tag


def tag_key(tag: str) -> str:
    """The form two tags are compared in: case, width, spacing and punctuation do not make a tag new."""
    text = unicodedata.normalize("NFKC", tag).casefold()
    return "".join(c for c in text if c.isalnum())
