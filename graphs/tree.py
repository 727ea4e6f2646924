"""`python -m graphs.tree validate|stats|expand`: check, measure and grow World Knowledge Trees.

expand grows a tree the way the paper does: the model lists root domains (life scenarios) per language, then
sub-tags of each path, coarse to fine. Progress is saved after every expanded node in OUT.partial.json, so an
interrupted run continues where it stopped and never asks the model twice for a finished node.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from condor_state.context import Context
from condor_state.tasks import LANGUAGES
from condor_state.tree import KnowledgeTree, TreeError, load_tree
from graphs.cli import OneLineParser, add_context_flags, context_from, fail
from prompts.markers import ParseError
from prompts.tags import build_messages, example_keys, grammar, parse_tags, tag_key

PROG = "python -m graphs.tree"
PARTIAL_SUFFIX = ".partial.json"
HEADER = "# Knowledge tree grown by `python -m graphs.tree expand` (settings {key})\n"


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Validate, measure and grow Condor knowledge trees (YAML or JSON).")
    sub = p.add_subparsers(dest="command", required=True, metavar="{validate,stats,expand}")
    v = sub.add_parser("validate", help="check a tree file; errors name the file, line and path of the bad node")
    v.add_argument("file", help="tree file, YAML or JSON")
    s = sub.add_parser("stats", help="roots, sub-domains, leaves and depth per language")
    s.add_argument("file", nargs="?", default=None, help="tree file (default: the bundled tree)")
    s.add_argument("--json", action="store_true", help="print the numbers as JSON")
    e = sub.add_parser("expand", help="grow a tree with the model: root domains, then sub-tags, coarse to fine")
    e.add_argument("--out", required=True, help="YAML file to write (progress goes to OUT.partial.json)")
    e.add_argument("--from", dest="start", default=None, help="tree to grow (default: none, start from new roots)")
    e.add_argument("--languages", default="en,zh", help="languages to grow, comma-separated (default en,zh)")
    e.add_argument("--roots", type=int, default=12, help="root domains per new language (default 12)")
    e.add_argument("--children", type=int, default=5, help="sub-tags asked for per expanded node (default 5)")
    e.add_argument(
        "--depth",
        type=int,
        default=None,
        help="levels to grow: a new tree's roots count as the first (default 3: root > sub > leaf); "
        "with --from, levels added below every leaf (default 1)",
    )
    e.add_argument("--attempts", type=int, default=2, help="model calls per node while tags are missing (default 2)")
    add_context_flags(e, ["base_url", "model", "temperature", "max_tokens", "timeout", "max_retries", "n_ctx", "seed"])
    return p


# --- validate / stats --------------------------------------------------------------------------------------------


def tree_stats(tree: KnowledgeTree) -> dict[str, dict[str, int]]:
    """The loader's stats plus the number of distinct tags (every node, not just leaves), as the paper counts."""
    result = tree.stats()
    for language, paths in tree.leaves.items():
        result[language]["tags"] = len({path[:k] for path in paths for k in range(1, len(path) + 1)})
    return result


def stats_table(tree: KnowledgeTree) -> str:
    rows = [("language", "roots", "sub-domains", "leaves", "tags", "depth")]
    for language, s in tree_stats(tree).items():
        rows.append((language, *(str(s[k]) for k in ("roots", "subdomains", "leaves", "tags", "depth"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows
    )


def validate_command(file: str) -> int:
    try:
        tree = load_tree(file)
    except TreeError as exc:
        fail(PROG, str(exc))
    parts = [f"{lang}: {s['roots']} roots, {s['leaves']} leaves" for lang, s in tree.stats().items()]
    print(f"{file}: valid ({'; '.join(parts)})")
    return 0


def stats_command(file: str | None, as_json: bool) -> int:
    try:
        tree = load_tree(file)
    except TreeError as exc:
        fail(PROG, str(exc))
    if as_json:
        print(json.dumps(tree_stats(tree), ensure_ascii=False, indent=2))
    else:
        print(f"{tree.source}\n{stats_table(tree)}")
    return 0


# --- expand ------------------------------------------------------------------------------------------------------


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
        from graphs.models import TRANSCRIPT_STOPS, chat_model, embedded_model

        context = self.context
        if not context.embedded:
            # The factory's plain role (no grammar is ever attached to it), with the expand model pinned to it.
            context = replace(context, responder_model=context.model)
            return chat_model(context, "responder")
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


def expand_command(args: Any) -> int:
    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if not languages or unknown:
        fail(PROG, f"--languages: unknown language '{(unknown or [''])[0]}' (expected {', '.join(LANGUAGES)})", 2)
    context = context_from(PROG, args)
    if args.children < 1 or args.roots < 1 or args.attempts < 1 or context.max_tokens < 32:
        fail(PROG, "--children, --roots and --attempts must be at least 1, --max-tokens at least 32", 2)
    start = None
    if args.start:
        try:
            start = load_tree(args.start)
        except TreeError as exc:
            fail(PROG, str(exc))
    depth = args.depth if args.depth is not None else (1 if start else 3)
    fresh = [lang for lang in languages if start is None or lang not in start.leaves]
    if depth < 1 or (fresh and depth < 2):
        fail(PROG, "--depth must be at least 1, and at least 2 for a new tree (roots alone have no leaves)", 2)
    out = Path(args.out)
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    settings = {
        "from": start.fingerprint if start else None,
        "languages": languages,
        "roots": args.roots,
        "children": args.children,
        "depth": depth,
        "attempts": args.attempts,
        "model": context.model,
        "temperature": context.temperature,
        "max_tokens": context.max_tokens,
    }
    key = settings_key(settings)
    if partial.exists():
        try:
            growth = Growth.from_json(json.loads(partial.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            fail(PROG, f"{partial} is unreadable; delete it to start over")
        if growth.settings != settings:
            changed = [k for k in settings if growth.settings.get(k) != settings[k]]
            fail(
                PROG, f"{partial} was started with other settings ({', '.join(changed)}); rerun with those or delete it"
            )
        print(f"[expand] resuming from {partial} ({growth.expanded()} nodes already expanded)", file=sys.stderr)
    else:
        if out.exists():
            first = out.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
            if f"(settings {key})" in first:
                print(f"{out} is already complete for these settings; nothing to do")
                return 0
            if not (args.start and out.resolve() == Path(args.start).resolve()):
                fail(PROG, f"{out} exists; choose another --out or delete it")
        growth = start_growth(start, languages, depth, settings)
    check_endpoint(context)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not partial.exists():
            save_partial(partial, growth)
    except OSError as exc:
        fail(PROG, f"cannot write next to {out}: {exc.strerror or exc}")
    try:
        expand(growth, partial, TagModels(context), args.children, args.roots, args.attempts)
    except ExpandError as exc:
        fail(PROG, f"{exc}; progress is saved in {partial}, re-run the same command to continue")
    except KeyboardInterrupt:
        fail(PROG, f"interrupted; progress is saved in {partial}, re-run the same command to continue", 130)
    data = {lang: tree for lang, nodes in growth.nodes.items() if (tree := nested(nodes))}
    if not data:
        fail(PROG, "the model produced no usable tags; nothing written")
    text = HEADER.format(key=key) + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        tree = load_tree(tmp)
    except TreeError as exc:  # a bug, not a user mistake: keep the partial file for inspection
        fail(PROG, f"the grown tree does not validate: {exc}")
    os.replace(tmp, out)
    partial.unlink(missing_ok=True)
    print(f"wrote {out}\n{stats_table(tree)}")
    return 0


def check_endpoint(context: Context) -> None:
    """The same fail-fast check as graphs.run: a dead endpoint or a missing model is one line, before any work."""
    from graphs.models import ModelUnavailable
    from graphs.run import check_model

    try:
        check_model(context)
    except ModelUnavailable as exc:
        fail(PROG, str(exc))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "validate":
        return validate_command(args.file)
    if args.command == "stats":
        return stats_command(args.file, args.json)
    return expand_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
