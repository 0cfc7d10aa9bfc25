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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(database folder, reference shard folder): 3 categories x 8 instances rendered whole
    on the local backend, 3 shards of 8 (see ``tiny_shards``)."""
    from tiny_shards import cli, make_db, render_args

    root = tmp_path_factory.mktemp("tiny")
    db = make_db(root / "db")
    ref = root / "ref"
    result = cli(*render_args(db, ref))
    assert result.exit_code == 0, result.output
    return db, ref
