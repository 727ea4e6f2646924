"""Knowledge tree loading: the shipped tree, custom files, and errors that point at the file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from condor_state.tree import KnowledgeTree, TreeError, default_tree, load_tree

CUSTOM_YAML = """\
# a comment line
en:
  Cooking:
    Baking:
      - Sourdough starters
      - Laminated dough
    Knife Skills: [Julienne cuts]
  Travel:
    - Packing light
    - Visa applications
  Science:
    Physics:
      Mechanics:
        - Projectile motion
zh:
  烹饪:
    烘焙:
      - 酸面团
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, name: str = "tree.yaml") -> str:
    path = write(tmp_path, name, text)
    with pytest.raises(TreeError) as info:
        load_tree(path)
    message = str(info.value)
    assert str(path) in message
    return message


def line_of(message: str) -> int:
    match = re.search(r"\.(?:yaml|json):(\d+):", message)
    assert match, f"no line number in {message!r}"
    return int(match.group(1))


# --- default tree ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
def test_default_tree_size(language: str) -> None:
    stats = default_tree().stats()[language]
    assert stats["roots"] >= 40
    assert stats["leaves"] >= 1000
    assert stats["depth"] == 3
    assert stats["subdomains"] >= stats["roots"]


def test_load_tree_none_is_default_tree() -> None:
    tree = load_tree(None)
    assert tree == default_tree()
    assert tree.languages == ("en", "zh")
    assert tree.source == "<default tree>"


def test_default_tree_paths_unique_and_clean() -> None:
    tree = default_tree()
    for language, paths in tree.leaves.items():
        assert len(set(paths)) == len(paths), language
        for path in paths:
            assert all(name and name == name.strip() and "[" not in name for name in path)
        assert len(tree.roots(language)) == tree.stats()[language]["roots"]


# --- custom files ------------------------------------------------------------------------------


def test_custom_yaml_loads_lists_and_deeper_nesting(tmp_path: Path) -> None:
    tree = load_tree(write(tmp_path, "custom.yaml", CUSTOM_YAML))
    assert tree.languages == ("en", "zh")
    assert tree.leaves["en"] == (
        ("Cooking", "Baking", "Sourdough starters"),
        ("Cooking", "Baking", "Laminated dough"),
        ("Cooking", "Knife Skills", "Julienne cuts"),
        ("Travel", "Packing light"),
        ("Travel", "Visa applications"),
        ("Science", "Physics", "Mechanics", "Projectile motion"),
    )
    assert tree.leaves["zh"] == (("烹饪", "烘焙", "酸面团"),)
    assert tree.roots("en") == ("Cooking", "Travel", "Science")
    assert tree.stats()["en"] == {"roots": 3, "subdomains": 3, "leaves": 6, "depth": 4}
    assert tree.source.endswith("custom.yaml")


def test_custom_json_loads(tmp_path: Path) -> None:
    data = {"en": {"Cooking": {"Baking": ["Sourdough starters"]}, "Travel": ["Packing light", "Visa applications"]}}
    tree = load_tree(write(tmp_path, "custom.json", json.dumps(data, indent=2)))
    assert tree.leaves == {
        "en": (
            ("Cooking", "Baking", "Sourdough starters"),
            ("Travel", "Packing light"),
            ("Travel", "Visa applications"),
        )
    }


def test_same_content_same_fingerprint_different_content_differs(tmp_path: Path) -> None:
    a = load_tree(write(tmp_path, "a.yaml", CUSTOM_YAML))
    b = load_tree(write(tmp_path, "b.yaml", CUSTOM_YAML.replace("# a comment line", "# another comment")))
    c = load_tree(write(tmp_path, "c.yaml", CUSTOM_YAML.replace("Packing light", "Packing heavy")))
    assert a.fingerprint == b.fingerprint and a == b and hash(a) == hash(b)
    assert a.fingerprint != c.fingerprint and a != c


def test_to_dict_round_trips(tmp_path: Path) -> None:
    tree = load_tree(write(tmp_path, "custom.yaml", CUSTOM_YAML))
    data = tree.to_dict()
    assert data["en"]["Travel"] == ["Packing light", "Visa applications"]
    assert data["en"]["Science"] == {"Physics": {"Mechanics": ["Projectile motion"]}}
    again = KnowledgeTree.from_dict(data)
    assert again.leaves == tree.leaves
    assert again.fingerprint == tree.fingerprint


def test_default_tree_to_dict_round_trips() -> None:
    tree = default_tree()
    assert KnowledgeTree.from_dict(tree.to_dict()).fingerprint == tree.fingerprint


# --- errors ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(TreeError, match="not found") as info:
        load_tree(path)
    assert str(path) in str(info.value)


def test_invalid_yaml_syntax_names_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Sub: [a, b\n  Other: x\n")
    assert "invalid YAML" in message
    assert line_of(message) in (3, 4)


def test_tab_indentation_is_invalid_yaml(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n\tSub: [a]\n")
    assert "invalid YAML" in message
    assert line_of(message) == 3


@pytest.mark.parametrize("text", ["- en\n- zh\n", "just a string\n", "42\n"])
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    message = load_error(tmp_path, text)
    assert "top level must map language codes" in message
    assert line_of(message) == 1


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in load_error(tmp_path, "# nothing here\n")


def test_unknown_language_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Sub: [a]\nfr:\n  Racine:\n    Sous: [b]\n")
    assert "unknown language 'fr'" in message
    assert line_of(message) >= 1


def test_unknown_language_key_names_its_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Sub: [a]\nfr:\n  Racine:\n    Sous: [b]\n")
    assert line_of(message) == 4


def test_language_without_roots(tmp_path: Path) -> None:
    assert "no root domains" in load_error(tmp_path, "en:\n")


def test_empty_root_list(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Other:\n    Sub: [a, b]\n  Root: []\n")
    assert "root domain 'Root' is empty" in message
    assert line_of(message) == 4


def test_empty_root_null(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Other:\n    Sub: [a, b]\n  Root:\n")
    assert "Root" in message


def test_root_given_as_bare_list_item_is_empty(tmp_path: Path) -> None:
    assert "root domain 'Solo' is empty" in load_error(tmp_path, "en:\n  - Solo\n")


def test_empty_subdomain(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Good: [a]\n    Empty: {}\n")
    assert "'Root > Empty' is empty" in message
    assert line_of(message) == 4


def test_duplicate_key_in_mapping(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Sub: [a]\n    Other: [b]\n    Sub: [c]\n")
    assert "duplicate key 'Sub'" in message
    assert line_of(message) == 5


def test_duplicate_root_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Sub: [a]\n  Root:\n    Sub: [b]\n")
    assert "duplicate key 'Root'" in message
    assert line_of(message) == 4


def test_duplicate_tag_in_list(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Fine: [x]\n    Sub: [a, b, a]\n")
    assert "duplicate tag 'a' under 'Root > Sub'" in message
    assert line_of(message) == 4


@pytest.mark.parametrize(("tag", "problem"), [("''", "has no name"), ("'   '", "has no name"), ("'bad [x'", "[ ]")])
def test_bad_tag_names(tmp_path: Path, tag: str, problem: str) -> None:
    message = load_error(tmp_path, f"en:\n  Root:\n    Sub:\n      - ok\n      - {tag}\n")
    assert problem in message
    assert line_of(message) == 5


def test_bracket_in_key_name(tmp_path: Path) -> None:
    message = load_error(tmp_path, "en:\n  Root:\n    Sub]: [a]\n")
    assert "[ ]" in message
    assert line_of(message) == 3


@pytest.mark.parametrize(
    "text",
    [
        "en: &x\n  Root:\n    Sub: *x\n",
        "en:\n  Root: &x {b: *x}\n",
        "en:\n  Root:\n    Sub: &x\n      Deeper: *x\n",
    ],
)
def test_alias_cycle(tmp_path: Path, text: str) -> None:
    message = load_error(tmp_path, text)
    assert "refers back to itself" in message


def test_alias_reuse_without_cycle_is_fine(tmp_path: Path) -> None:
    text = "en:\n  A:\n    Sub: &tags [x, y]\n  B:\n    Sub: *tags\n"
    assert load_tree(write(tmp_path, "alias.yaml", text)).leaves["en"] == (
        ("A", "Sub", "x"),
        ("A", "Sub", "y"),
        ("B", "Sub", "x"),
        ("B", "Sub", "y"),
    )


def test_invalid_json_names_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, '{\n  "en": {\n    "Root": ["a",]\n  }\n}\n', name="tree.json")
    assert "invalid JSON" in message
    assert line_of(message) == 3


def test_json_uses_same_structural_checks(tmp_path: Path) -> None:
    message = load_error(tmp_path, '{"de": {"Root": ["a"]}}', name="tree.json")
    assert "unknown language 'de'" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("en:\n  Café:\n    Sub: [a]\n".encode("latin-1"))
    with pytest.raises(TreeError, match="cannot read") as info:
        load_tree(path)
    assert str(path) in str(info.value)
