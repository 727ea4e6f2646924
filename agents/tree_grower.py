"""Growing a World Knowledge Tree with the model, coarse to fine, as the paper does: root domains (life scenarios)
per language, then the sub-tags of each path. Progress is saved after every expanded node, so an interrupted run
continues where it stopped and never asks the model twice for a finished node."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.models import TRANSCRIPT_STOPS, ModelPool, embedded_model
from condor_state.context import Context
from condor_state.tree import KnowledgeTree
from prompts.markers import ParseError
from prompts.tags import build_messages, example_keys, grammar, parse_tags, tag_key


@dataclass
class Node:
    """A tag and its children; children is None until the node is expanded (or stays a leaf)."""

    path: tuple[str, ...]
    grow: int  # levels still to add below this node
    children: list[str] | None = None


@dataclass
class Growth:
    """The growing tree of every language, as a queue of nodes in breadth-first order (coarse to fine)."""

    settings: dict[str, Any]
    nodes: dict[str, list[Node]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "languages": {
                lang: [{"path": list(n.path), "grow": n.grow, "children": n.children} for n in nodes]
                for lang, nodes in self.nodes.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Growth:
        nodes = {
            lang: [Node(tuple(n["path"]), int(n["grow"]), n["children"]) for n in items]
            for lang, items in data["languages"].items()
        }
        return cls(settings=data["settings"], nodes=nodes)

    def expanded(self) -> int:
        return sum(1 for nodes in self.nodes.values() for n in nodes if n.grow > 0 and n.children is not None)


class ExpandError(RuntimeError):
    """Expansion cannot go on; the message is one line for the user."""


def start_growth(start: KnowledgeTree | None, languages: list[str], depth: int, settings: dict[str, Any]) -> Growth:
    """Nodes of the start tree (its leaves to grow `depth` levels), or an empty root per new language."""
    growth = Growth(settings=settings)
    kept = [lang for lang in (start.languages if start else ()) if lang not in languages]
    for language in [*languages, *kept]:  # languages of the start tree not asked for are kept as they are
        if start is not None and language in start.leaves:
            nodes: dict[tuple[str, ...], Node] = {(): Node((), 0, [])}
            for path in start.leaves[language]:
                for k in range(1, len(path) + 1):
                    prefix = path[:k]
                    if prefix not in nodes:
                        nodes[prefix] = Node(prefix, 0, [])
                        parent = nodes[prefix[:-1]]
                        assert parent.children is not None
                        parent.children.append(prefix[-1])
                if language in languages:
                    leaf = nodes[path]
                    leaf.grow, leaf.children = depth, None
            growth.nodes[language] = sorted(nodes.values(), key=lambda n: len(n.path))
        else:
            growth.nodes[language] = [Node((), depth)]  # its children are the new root domains
    return growth


def expand(growth: Growth, partial: Path, models: Any, children: int, roots: int, attempts: int) -> None:
    """Expand every unexpanded node in queue order, saving progress after each one."""
    for language, nodes in growth.nodes.items():
        known = {tag_key(name) for node in nodes for name in node.path}
        i = 0
        while i < len(nodes):
            node = nodes[i]
            i += 1
            if node.grow <= 0 or node.children is not None:
                continue
            wanted = roots if not node.path else children
            tags = ask_tags(models, node.path, language, wanted, attempts, known)
            if not node.path and not tags:
                raise ExpandError(f"the model listed no usable root domains for '{language}'")
            node.children = tags
            for tag in tags:
                known.add(tag_key(tag))
                nodes.append(Node((*node.path, tag), node.grow - 1))
            save_partial(partial, growth)
            where = " > ".join(node.path) or "(root domains)"
            print(
                f"[expand] {language}: {where}: {len(tags)} tags ({growth.expanded()} nodes expanded)", file=sys.stderr
            )


def ask_tags(
    models: Any, path: tuple[str, ...], language: str, wanted: int, attempts: int, known: set[str]
) -> list[str]:
    """Up to `wanted` tags new to the whole tree (case-insensitively), asking again while some are missing.

    A tag copied from the prompt's examples counts as new only under the example's own path.
    """
    examples = example_keys(language)
    tags: list[str] = []
    for _ in range(max(1, attempts)):
        missing = wanted - len(tags)
        messages = build_messages(path, language, missing, present=tags)
        try:
            reply = models.get(missing, language).invoke(messages)
        except Exception as exc:
            raise ExpandError(
                f"model request failed at '{' > '.join(path) or language + ' roots'}': "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        text = reply.content if isinstance(reply.content, str) else str(reply.content)
        complete = reply.response_metadata.get("finish_reason") != "length"
        try:
            found = parse_tags(text, complete=complete)
        except ParseError:
            found = []
        for tag in found:
            key = tag_key(tag)
            copied = key in examples and examples[key] != path
            if key and not copied and key not in known and key not in {tag_key(t) for t in tags}:
                tags.append(tag)
        if len(tags) >= wanted:
            break
    return tags[:wanted]


class TagModels:
    """The model per number of tags asked for: the embedded base model needs a grammar for that count."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.cache: dict[tuple[int, str], Any] = {}

    def get(self, n: int, language: str) -> Any:
        if (n, language) not in self.cache:
            self.cache[n, language] = self._build(n, language)
        return self.cache[n, language]

    def _build(self, n: int, language: str) -> Any:
        context = self.context
        if not context.embedded:
            return ModelPool().plain(context)  # used synchronously: no event loop, no shared HTTP pool
        from llama_cpp import LlamaGrammar

        return embedded_model(context.model, context.n_ctx).bind(
            grammar=LlamaGrammar.from_string(grammar(n, context.max_tokens, language), verbose=False),
            max_tokens=context.max_tokens,
            temperature=context.temperature,
            stop=TRANSCRIPT_STOPS,
        )


def nested(nodes: list[Node]) -> dict[str, Any]:
    """The file shape: a node whose children are all leaves becomes a list; roots without children are dropped."""
    by_path = {n.path: n for n in nodes}

    def sub(path: tuple[str, ...]) -> Any:
        kids = by_path[path].children or []
        if not kids:
            return None
        if all(not by_path[(*path, k)].children for k in kids):
            return list(kids)
        return {k: sub((*path, k)) for k in kids}

    top = by_path[()].children or []
    return {root: value for root in top if (value := sub((root,))) is not None}


def save_partial(partial: Path, growth: Growth) -> None:
    """Atomic: a kill between two writes leaves the previous complete state."""
    tmp = partial.with_name(partial.name + ".tmp")
    tmp.write_text(json.dumps(growth.to_json(), ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, partial)


def settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
