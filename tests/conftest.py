"""What the unit and the integration tests share. Fixtures of one kind live in tests/unit/conftest.py and
tests/integration/conftest.py; the loopback stub server lives in benchmarks/openai_stub.py (the benchmarks use it
too, and never import from tests)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
