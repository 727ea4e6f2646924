"""A command's start-up: its imports are made from a frame with room, with the collector paused meanwhile."""

from __future__ import annotations

import gc
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from graphs.startup import DeferredPackage, defer, imported


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(where: Path, name: str, body: str) -> None:
    (where / f"{name}.py").write_text(body, encoding="utf-8")
    sys.modules.pop(name, None)


@pytest.mark.parametrize("collecting", [True, False])
def test_a_module_is_imported_with_the_collector_paused_then_as_it_was(module_dir: Path, collecting: bool) -> None:
    write_module(module_dir, "startup_probe", "import gc\ncollecting_during_import = gc.isenabled()\n")
    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        module = imported("startup_probe")
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
    assert module is sys.modules["startup_probe"] and module.collecting_during_import is False


def test_a_failing_import_raises_its_own_error_and_the_collector_comes_back(module_dir: Path) -> None:
    write_module(module_dir, "startup_broken", "raise RuntimeError('broken at import')\n")
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="broken at import"):
        imported("startup_broken")
    assert gc.isenabled()


def test_deep_imports_made_from_the_roomy_frame_load_every_module(module_dir: Path) -> None:
    """A chain of 60 modules, each importing the next, deeper than a 16 KiB frame chunk holds."""
    for i in range(60):
        write_module(module_dir, f"startup_chain{i}", f"import startup_chain{i + 1}\n" if i < 59 else "DEPTH = 60\n")
    assert imported("startup_chain0") is sys.modules["startup_chain0"]
    assert sys.modules["startup_chain59"].DEPTH == 60


def write_package(where: Path, name: str) -> None:
    """A package whose __init__ counts its runs in a module of its own and defines NAME; one plain submodule."""
    (where / name).mkdir()
    (where / name / "__init__.py").write_text(
        f"import {name}_runs\n{name}_runs.COUNT += 1\nNAME = 'from the init'\n", encoding="utf-8"
    )
    (where / name / "sub.py").write_text("VALUE = 42\n", encoding="utf-8")
    write_module(where, f"{name}_runs", "COUNT = 0\n")
    sys.modules.pop(name, None)
    sys.modules.pop(f"{name}.sub", None)


def test_a_deferred_packages_submodule_imports_without_its_init_which_runs_once_at_the_first_name_asked(
    module_dir: Path,
) -> None:
    write_package(module_dir, "deferred_pkg")
    try:
        defer("deferred_pkg")
        from deferred_pkg.sub import VALUE  # type: ignore[import-not-found]

        runs = importlib.import_module("deferred_pkg_runs")  # not imported by the init: it has not run
        assert VALUE == 42 and runs.COUNT == 0 and type(sys.modules["deferred_pkg"]) is DeferredPackage
        from deferred_pkg import NAME  # type: ignore[import-not-found]

        assert NAME == "from the init" and runs.COUNT == 1
        assert sys.modules["deferred_pkg"].NAME == NAME and sys.modules["deferred_pkg"].sub.VALUE == 42
        assert runs.COUNT == 1 and type(sys.modules["deferred_pkg"]) is type(sys)
        with pytest.raises(AttributeError):
            _ = sys.modules["deferred_pkg"].MISSING
    finally:
        for name in ("deferred_pkg", "deferred_pkg.sub", "deferred_pkg_runs"):
            sys.modules.pop(name, None)


def test_deferring_leaves_an_imported_or_missing_package_alone(module_dir: Path) -> None:
    defer("no_such_package_here")
    assert "no_such_package_here" not in sys.modules
    defer("json")
    assert type(sys.modules["json"]) is type(sys)


def test_the_engines_imports_leave_the_sdk_and_langsmiths_api_models_unloaded_yet_usable() -> None:
    """What the deferral saves holds for the installed langgraph and langsmith, and their names still resolve."""
    code = (
        "import sys\n"
        "from graphs.startup import imported\n"
        "imported('graphs.runner'); imported('agents.openai_chat')\n"
        "print(type(sys.modules['langgraph_sdk']).__name__, type(sys.modules['langsmith.types']).__name__,"
        " 'httpx' in sys.modules)\n"
        "from langgraph_sdk import get_client\n"
        "from langsmith.types import RunSelectField\n"
        "print(callable(get_client), RunSelectField is not None, 'httpx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["DeferredPackage DeferredPackage False", "True True True"]
