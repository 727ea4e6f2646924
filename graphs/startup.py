"""A command's start-up: its imports made once, with no work done twice (a resumed run waits on them)."""

from __future__ import annotations

import gc
import importlib
import types
from collections.abc import Callable
from typing import TypeVar

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


def imported(name: str) -> types.ModuleType:
    """The module, imported (with all it imports) from a frame with room and the collector paused.

    The imports make over 100,000 objects that live as long as the process (`graphs.run` freezes them); collecting
    while they are made only walks them again and again, ~0.1 s of every start-up.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        module: types.ModuleType = _call_with_room(lambda: importlib.import_module(name))
        return module
    finally:
        if collecting:
            gc.enable()
