"""What `python -m graphs.tree expand` asks and keeps, in process: the tag prompt, tolerant tag parsing, and
new tags deduplicated against siblings, the tree and the prompt's examples."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agents.tree_grower import ask_tags
from prompts.markers import ParseError
from prompts.tags import build_messages, parse_tags, tag_key

# --- the tag prompt and dedup --------------------------------------------------------------------------------------


def test_parse_tags_tolerates_real_output() -> None:
    assert parse_tags(
        "Sure!\n[Tag Start]Bread Baking[Tag End]\n[tag start] 2. bread baking. [TAG END]\n[Tag Start]Pastry"
    ) == [
        "Bread Baking",
        "Pastry",
    ]
    assert parse_tags("[Tag Start]Pastry[Tag End]\n[Tag Start]Croiss", complete=False) == ["Pastry"]
    assert parse_tags("Here are the tags:\n1. Croissants\n2) Brioche\n- Pain au chocolat") == [
        "Croissants",
        "Brioche",
        "Pain au chocolat",
    ]
    assert parse_tags("【Tag Start】颁奖典礼【Tag End】\n[Tag Start]红毯造型[Tag End]") == ["颁奖典礼", "红毯造型"]
    with pytest.raises(ParseError):
        parse_tags("[Tag Start]...[Tag End]\n[Tag Start]123[Tag End]")


def test_prompt_asks_for_the_path_and_count() -> None:
    messages = build_messages(("Entertainment", "Video Games"), "en", 4, present=["Speedrunning"])
    assert "[Tag Start]" in messages[0]["content"]
    user = messages[1]["content"]
    assert user.endswith("Path: Entertainment > Video Games\nAlready present (do not repeat): Speedrunning\nTags (4):")
    assert "路径：（无：根领域）" in build_messages((), "zh", 3)[1]["content"]


class ScriptedModel:
    """Returns the given replies in turn, whatever the tag count asked for."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls = 0

    def get(self, n: int, language: str) -> Any:
        return self

    def invoke(self, messages: list[dict[str, str]]) -> Any:
        self.calls += 1
        return SimpleNamespace(content=self.replies.pop(0), response_metadata={"finish_reason": "stop"})


def test_new_tags_are_deduplicated_against_siblings_the_tree_and_the_examples() -> None:
    known = {tag_key(t) for t in ("Cooking", "Baking", "Travel")}
    model = ScriptedModel(
        "[Tag Start]Sourdough[Tag End]\n[Tag Start]sourdough [Tag End]\n[Tag Start]BAKING[Tag End]",
        "[Tag Start]Celebrity News[Tag End]\n[Tag Start]Sour-dough[Tag End]\n[Tag Start]Pie Crusts[Tag End]",
    )
    tags = ask_tags(model, ("Cooking", "Baking"), "en", 3, attempts=2, known=known)
    # 'sourdough' repeats a sibling, 'BAKING' the tree, 'Celebrity News' is the prompt's example
    assert tags == ["Sourdough", "Pie Crusts"]
    assert model.calls == 2
    enough = ScriptedModel("[Tag Start]Rye[Tag End]\n[Tag Start]Spelt[Tag End]")
    assert ask_tags(enough, ("Cooking", "Baking"), "en", 2, attempts=3, known=known) == ["Rye", "Spelt"]
    assert enough.calls == 1  # no second call once the count is reached
