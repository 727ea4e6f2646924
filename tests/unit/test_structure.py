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
COMMANDS = {
    "graphs.run", "graphs.export", "graphs.report", "graphs.show", "graphs.tree", "graphs.browse", "graphs.pull",
    "graphs.cli",
}  # fmt: skip
CLUSTER_ONLY = ("psycopg", "psycopg_pool", "ray", "langgraph.checkpoint.postgres")  # never on one machine's path


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
    assert all(name in out for name in ("run", "export", "report", "show", "tree", "browse", "pull"))
    assert {module for module, _ in SUBCOMMANDS.values()} == COMMANDS - {"graphs.cli"}


def imports_on_load(path: Path) -> set[str]:
    """The modules a file imports when it is itself imported: module-level statements (also under if, try and
    with), not those inside functions or under `if TYPE_CHECKING`."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for part in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(part)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def test_a_single_machine_run_never_imports_psycopg_or_ray() -> None:
    """The cluster's libraries are imported inside the functions that need them: `graphs.run` and every project
    module it loads (followed transitively) import none of them when loaded."""
    modules = sources() | {package: ROOT / package / "__init__.py" for package in PACKAGES}
    seen: set[str] = set()
    todo = ["graphs.run"]
    offenders: dict[str, list[str]] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found = imports_on_load(modules[name])
        heavy = sorted(m for m in found if any(m == c or m.startswith(f"{c}.") for c in CLUSTER_ONLY))
        if heavy:
            offenders[name] = heavy
        for imported in found:
            parts = imported.split(".")
            todo += [".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in modules]
    assert "condor_state.dataset" in seen  # the walk did follow the run's imports
    assert offenders == {}
