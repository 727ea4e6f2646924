"""`python -m graphs.tree validate|stats|expand`: check, measure and grow World Knowledge Trees.

expand grows a tree the way the paper does: the model lists root domains (life scenarios) per language, then
sub-tags of each path, coarse to fine. Progress is saved after every expanded node in OUT.partial.json, so an
interrupted run continues where it stopped and never asks the model twice for a finished node.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from agents.tree_grower import (
    ExpandError,
    Growth,
    TagModels,
    expand,
    nested,
    save_partial,
    settings_key,
    start_growth,
)
from condor_state.context import Context
from condor_state.plan import LanguageMixError, parse_language_mix
from condor_state.tasks import LANGUAGES
from condor_state.tree import KnowledgeTree, TreeError, load_tree, tree_stats
from graphs.options import OneLineParser, add_context_flags, context_from, fail

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
    add_context_flags(
        e, ["languages", "base_url", "model", "temperature", "max_tokens", "timeout", "max_retries", "n_ctx", "seed"]
    )
    return p


# --- validate / stats --------------------------------------------------------------------------------------------


def stats_table(tree: KnowledgeTree) -> str:
    rows: list[tuple[str, ...]] = [("language", "roots", "sub-domains", "leaves", "tags", "depth")]
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


def expand_command(args: Any) -> int:
    context = context_from(PROG, args)
    # the run's language mix: growing takes every language it names (en,zh and en=0.5,zh=0.5 alike)
    named = [part.partition("=")[0].strip() for part in context.languages.split(",") if part.strip()]
    unknown = [lang for lang in named if lang not in LANGUAGES]
    if not named or unknown:
        fail(PROG, f"--languages: unknown language '{(unknown or [''])[0]}' (expected {', '.join(LANGUAGES)})", 2)
    try:
        languages = list(parse_language_mix(context.languages, LANGUAGES))
    except LanguageMixError as exc:
        fail(PROG, str(exc), 2)
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
        grown = load_tree(tmp)
    except TreeError as exc:  # a bug, not a user mistake: keep the partial file for inspection
        fail(PROG, f"the grown tree does not validate: {exc}")
    os.replace(tmp, out)
    partial.unlink(missing_ok=True)
    print(f"wrote {out}\n{stats_table(grown)}")
    return 0


def check_endpoint(context: Context) -> None:
    """The same fail-fast check as graphs.run: a dead endpoint or a missing model is one line, before any work."""
    from agents.models import ModelUnavailable, check_model

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
