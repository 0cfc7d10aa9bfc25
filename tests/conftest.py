"""Shared test helpers: paths to the read-only fixtures beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
FRACTALDB_1K = FIXTURES / "fractaldb-1k-categories"
WEIGHTS = FIXTURES / "fractaldb-weights"


@pytest.fixture(scope="session")
def fractaldb_1k() -> Path:
    """Folder of the 1,000 published FractalDB-1k category CSVs."""
    if not FRACTALDB_1K.is_dir():
        pytest.fail(f"missing test fixtures at {FRACTALDB_1K}")
    return FRACTALDB_1K
