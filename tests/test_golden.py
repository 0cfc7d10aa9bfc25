"""Output bytes are pinned: fixed tiny searches and renders of every family hash to the committed
table (tests/golden.json; see tests/golden.py)."""

from __future__ import annotations

import pytest

import golden


def test_every_family_and_output_kind_has_golden_entries():
    table = golden.load()
    cases = {key.split("/")[0] for key in table}
    assert cases == set(golden.CASES), "table and cases differ: run tests/golden.py --update"
    for name, case in golden.CASES.items():
        suffix = ".tar" if "render" in case else (".csv", ".yaml")
        assert any(k.startswith(name + "/") and k.endswith(suffix) for k in table), name


def test_outputs_match_the_golden_table(tmp_path):
    if not golden.FIXTURE_CSVS.is_dir():
        pytest.fail(f"missing test fixtures at {golden.FIXTURE_CSVS}")
    expected = golden.load()
    actual = golden.compute(tmp_path)
    changed = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    missing = sorted(expected.keys() - actual.keys())
    new = sorted(actual.keys() - expected.keys())
    if changed or missing or new:
        jpeg = sorted({k.split("/")[0] for k in changed} & set(golden.JPEG_CASES))
        lines = [f"changed: {k}" for k in changed]
        lines += [f"no longer written: {k}" for k in missing]
        lines += [f"new: {k}" for k in new]
        if jpeg:
            lines.append(f"({', '.join(jpeg)}: JPEG bytes come from OpenCV's libjpeg)")
        pytest.fail(
            "output bytes differ from tests/golden.json:\n"
            + "\n".join(lines)
            + "\nIf the change is deliberate, run `PYTHONPATH=src python tests/golden.py "
            "--update` and add a README changelog line in the same commit.",
            pytrace=False,
        )
