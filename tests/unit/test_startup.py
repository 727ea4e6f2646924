"""A command's start-up: its imports are made from a frame with room, with the collector paused meanwhile."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from graphs.startup import imported


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
