"""The World Knowledge Tree: tag paths per language, loaded from YAML or JSON with precise errors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from condor_state.tasks import LANGUAGES

TagPath = tuple[str, ...]
DEFAULT_TREE_FILES = ("tree_en.yaml", "tree_zh.yaml")


class TreeError(ValueError):
    """A knowledge tree file that cannot be used; the message names the file and the place."""


@dataclass(frozen=True, eq=False)
class KnowledgeTree:
    """Leaf tag paths (root → … → leaf) for each language; the source of question diversity."""

    leaves: dict[str, tuple[TagPath, ...]]
    source: str = "<memory>"
    fingerprint: str = ""

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KnowledgeTree) and other.fingerprint == self.fingerprint

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>") -> KnowledgeTree:
        """Build from plain data of the file shape ({language: {root: {sub: [leaf, ...]}}})."""
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        return _from_yaml_text(text, source)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.leaves)

    def roots(self, language: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(path[0] for path in self.leaves[language]))

    def to_dict(self) -> dict[str, Any]:
        """Nested mappings, leaves as lists: the shape the loader reads back."""
        out: dict[str, Any] = {}
        for language, paths in self.leaves.items():
            top: dict[str, Any] = out.setdefault(language, {})
            for path in paths:
                node = top
                for name in path[:-2]:
                    node = node.setdefault(name, {})
                if len(path) == 1:
                    node[path[0]] = None
                else:
                    node.setdefault(path[-2], []).append(path[-1])
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        """Roots, sub-domains, leaves and depth per language."""
        result = {}
        for language, paths in self.leaves.items():
            result[language] = {
                "roots": len({p[0] for p in paths}),
                "subdomains": len({p[:2] for p in paths if len(p) > 2}),
                "leaves": len(paths),
                "depth": max(len(p) for p in paths),
            }
        return result


def load_tree(path: str | Path | None = None) -> KnowledgeTree:
    """Load a custom tree file, or the default tree shipped in the package when path is None."""
    if path is None:
        return default_tree()
    file = Path(path)
    if not file.is_file():
        raise TreeError(f"{file}: knowledge tree file not found")
    stat = file.stat()
    return _load_file(str(file.resolve()), str(file), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_file(resolved: str, shown: str, mtime_ns: int, size: int) -> KnowledgeTree:
    """Parsed once per process while the file is unchanged (a run reads its settings' tree several times)."""
    file = Path(resolved)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TreeError(f"{shown}: cannot read knowledge tree: {exc}") from None
    if file.suffix.lower() == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise TreeError(f"{shown}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    return _from_yaml_text(text, shown)


@lru_cache(maxsize=1)
def default_tree() -> KnowledgeTree:
    """The bilingual tree written for this project (condor_state/data)."""
    folder = resources.files("condor_state") / "data"
    text = "\n".join((folder / name).read_text(encoding="utf-8") for name in DEFAULT_TREE_FILES)
    return _from_yaml_text(text, "<default tree>")


def _from_yaml_text(text: str, source: str) -> KnowledgeTree:
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TreeError(f"{source}{where}: invalid YAML: {problem}") from None
    if root is None:
        raise TreeError(f"{source}: the knowledge tree is empty")
    if not isinstance(root, yaml.MappingNode):
        raise TreeError(f"{source}:{_line(root)}: top level must map language codes ({', '.join(LANGUAGES)}) to roots")
    leaves: dict[str, tuple[TagPath, ...]] = {}
    lines = {_name(key_node, source, ()): _line(key_node) for key_node, _ in root.value}
    for key, value in _mapping_items(root, source, ()):
        if key not in LANGUAGES:
            raise TreeError(
                f"{source}:{lines[key]}: unknown language '{key}' at the top level (expected {', '.join(LANGUAGES)})"
            )
        collected: list[TagPath] = []
        _walk_children(value, (), source, collected, stack=(), is_root_level=True, label=key)
        leaves[key] = tuple(collected)
    if not leaves:
        raise TreeError(f"{source}: the knowledge tree has no languages")
    canonical = json.dumps({k: [list(p) for p in v] for k, v in leaves.items()}, ensure_ascii=False)
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return KnowledgeTree(leaves=leaves, source=source, fingerprint=fingerprint)


def _walk_children(
    node: yaml.Node | None,
    path: TagPath,
    source: str,
    out: list[TagPath],
    stack: tuple[int, ...],
    is_root_level: bool = False,
    label: str = "",
) -> None:
    where = " > ".join(path) or label
    if _is_null(node):
        if is_root_level or not path:
            raise TreeError(f"{source}: '{where}' has no root domains")
        out.append(path)
        return
    if id(node) in stack:
        raise TreeError(f"{source}:{_line(node)}: '{where}' refers back to itself (cycle through an alias)")
    stack = (*stack, id(node))
    children: list[tuple[str, yaml.Node | None]] = []
    if isinstance(node, yaml.MappingNode):
        children = list(_mapping_items(node, source, path))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.ScalarNode):
                children.append((_name(item, source, path), None))
            elif isinstance(item, yaml.MappingNode):
                children.extend(_mapping_items(item, source, path))
            else:
                raise TreeError(f"{source}:{_line(item)}: under '{where}': a list item must be a tag name or a mapping")
    else:
        raise TreeError(f"{source}:{_line(node)}: under '{where}': expected a mapping or a list of tags, got a value")
    if not children:
        kind = "root domain" if len(path) == 1 else "node"
        raise TreeError(f"{source}:{_line(node)}: {kind} '{where}' is empty")
    seen: set[str] = set()
    for name, child in children:
        if name in seen:
            raise TreeError(f"{source}:{_line(node)}: duplicate tag '{name}' under '{where}'")
        seen.add(name)
        if is_root_level and _is_null(child):
            raise TreeError(f"{source}:{_line(node)}: root domain '{name}' is empty")
        _walk_children(child, (*path, name), source, out, stack)


def _mapping_items(node: yaml.MappingNode, source: str, path: TagPath) -> list[tuple[str, yaml.Node | None]]:
    items = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        name = _name(key_node, source, path)
        if name in seen:
            raise TreeError(
                f"{source}:{_line(key_node)}: duplicate key '{name}' under '{' > '.join(path) or 'top level'}'"
            )
        seen.add(name)
        items.append((name, value_node))
    return items


def _name(node: yaml.Node, source: str, path: TagPath) -> str:
    where = " > ".join(path) or "top level"
    if not isinstance(node, yaml.ScalarNode):
        raise TreeError(f"{source}:{_line(node)}: under '{where}': a tag name must be text")
    name = str(node.value).strip()
    if not name or node.tag.endswith(":null"):
        raise TreeError(f"{source}:{_line(node)}: under '{where}': a tag has no name")
    if "\n" in name or "[" in name or "]" in name:
        raise TreeError(f"{source}:{_line(node)}: under '{where}': tag '{name[:40]}' may not contain newlines or [ ]")
    return name


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"))


def _line(node: yaml.Node | None) -> int | str:
    return node.start_mark.line + 1 if node is not None else "?"


def tree_stats(tree: KnowledgeTree) -> dict[str, dict[str, int]]:
    """The loader's stats plus the number of distinct tags (every node, not just leaves), as the paper counts."""
    result = tree.stats()
    for language, paths in tree.leaves.items():
        result[language]["tags"] = len({path[:k] for path in paths for k in range(1, len(path) + 1)})
    return result
