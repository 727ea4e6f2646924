"""One house: each floor imports only from below, and each fact (a run-directory name, a setting, the thread-id
format) is written once in the source."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from condor_state.context import Context, flag

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("condor_state", "agents", "prompts", "graphs")
COMMANDS = {"graphs.run", "graphs.export", "graphs.report", "graphs.show", "graphs.tree", "graphs.cli"}


def sources() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): path
        for package in PACKAGES
        for path in sorted((ROOT / package).glob("*.py"))
    }


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_module_imports_a_command_module() -> None:
    offenders = {
        name: sorted(imports_of(path) & COMMANDS) for name, path in sources().items() if imports_of(path) & COMMANDS
    }
    assert offenders == {}


def test_each_floor_imports_only_from_below() -> None:
    above = {"condor_state": ("agents", "graphs"), "prompts": ("agents", "graphs"), "agents": ("graphs",)}
    offenders = {
        name: sorted(m for m in imports_of(path) if m.split(".")[0] in above[name.split(".")[0]])
        for name, path in sources().items()
        if name.split(".")[0] in above
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def literal_count(text: str) -> int:
    return sum(len(re.findall(re.escape(f'"{text}'), path.read_text(encoding="utf-8"))) for path in sources().values())


def test_each_run_directory_name_and_the_thread_id_format_are_written_once() -> None:
    counts = {text: literal_count(text) for text in ("condor.db", "checkpoints.db", "run.json", "run.lock", "condor-s")}
    assert counts == dict.fromkeys(counts, 1)


def test_no_command_declares_a_setting_flag_of_its_own() -> None:
    setting_flags = {flag(f.name) for f in fields(Context)}
    declared = {
        (name, literal.value)
        for name, path in sources().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
        for literal in node.args
        if isinstance(literal, ast.Constant) and literal.value in setting_flags
    }
    assert declared == set()  # they come from graphs.options.add_context_flags, with Context's defaults


def test_the_condor_command_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from graphs.cli import COMMANDS as SUBCOMMANDS
    from graphs.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("run", "export", "report", "show", "tree"))
    assert {module for module, _ in SUBCOMMANDS.values()} == COMMANDS - {"graphs.cli"}
