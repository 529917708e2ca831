"""Fixtures for the migrate-local tests: Parlant's real JSON-file stores in a tmp PARLANT_HOME."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# RecordingLogger (a real Parlant Logger) lives next to the facade tests; tests are not packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "facade"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def anyio_backend() -> str:
    # Parlant's stores take aiorwlock locks, which need asyncio.
    return "asyncio"


@pytest.fixture
def parlant_home(tmp_path: Path) -> Path:
    home = tmp_path / "parlant-home"
    home.mkdir()
    return home
