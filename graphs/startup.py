"""A command's start-up: its imports made once, with no work done twice (a resumed run waits on them)."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# CPython (3.11 to 3.13) keeps frames in 16 KiB chunks and frees a chunk as soon as the calls fall back below it:
# nested imports cross such a boundary back and forth ~17,000 times in a run's start-up, a mmap and a munmap each
# (0.3 s of the 1.8 s of CPU `python -m graphs.run --help` took here). A frame this big (8,300 slots, 65 KiB) gets
# a fresh 128 KiB chunk of its own, and the imports made from it run in the ~60 KiB left, with no boundary to cross.
ROOMY_FRAME_SLOTS = 8300


def _call(function: Callable[[], T]) -> T:
    return function()


# The same function with a larger value stack declared: the interpreter sizes the frame by it; nothing else changes.
_call_with_room = types.FunctionType(_call.__code__.replace(co_stacksize=ROOMY_FRAME_SLOTS), globals())


# Packages whose own __init__ imports far more than a run uses of them: langgraph.runtime imports one protocol from
# langgraph_sdk.auth.types, whose package __init__ pulls in the SDK's HTTP clients (httpx and 60 pydantic modules);
# langsmith.run_trees imports one enum from langsmith.types, whose __init__ builds every model of the LangSmith API.
# Together 0.35 s of the 1.8 s of CPU a start-up took here, and 337 of its 1,212 modules.
DEFERRED_PACKAGES = ("langgraph_sdk", "langsmith.types")


class DeferredPackage(types.ModuleType):
    """A package whose submodules import as usual while its own __init__ waits for the first name asked of it."""

    _loading = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        with DeferredPackage._loading:  # by class: another thread may have made this an ordinary module
            if type(self) is DeferredPackage:  # not run yet by another thread
                self.__class__ = types.ModuleType  # type: ignore[assignment]  # an ordinary module now: its __init__ runs once
                spec = self.__spec__
                assert spec is not None and spec.loader is not None
                spec.loader.exec_module(self)
        return getattr(self, name)


def defer(name: str) -> None:
    """Put `name` in sys.modules as a DeferredPackage, unless it is imported already or not installed."""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = DeferredPackage
    sys.modules[name] = module


def imported(name: str) -> types.ModuleType:
    """The module, imported (with all it imports) from a frame with room, the collector paused and the
    DEFERRED_PACKAGES' own __init__ left for later.

    The imports make over 100,000 objects that live as long as the process (`graphs.run` freezes them); collecting
    while they are made only walks them again and again, ~0.1 s of every start-up.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        for package in DEFERRED_PACKAGES:
            defer(package)
        module: types.ModuleType = _call_with_room(lambda: importlib.import_module(name))
        return module
    finally:
        if collecting:
            gc.enable()
