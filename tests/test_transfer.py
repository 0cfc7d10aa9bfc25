"""examples/transfer: reading any single-label family's shards, refusing per-image ones, the
scratch-baseline cache and the one-table comparison."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch extra is not installed")
pytest.importorskip("cv2")

from tiny_shards import cli  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "transfer"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"transfer_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


transfer = _module("transfer")
compare = _module("compare")


def _shards(tmp_path: Path, family: str, *render: str) -> Path:
    db, shards = tmp_path / f"{family}-db", tmp_path / f"{family}-shards"
    result = cli("search", "--type", family, "--categories", "3", "--workers", "1", "--out", db)
    assert result.exit_code == 0, result.output
    result = cli("render", "--db", db, "--shards", shards, "--workers", "1", *render)
    assert result.exit_code == 0, result.output
    return shards


def test_colour_shards_are_read_as_32_px_grey_with_their_categories(tmp_path):
    shards = _shards(tmp_path, "svdfractal", "--instances", "4", "--size", "48",
                     "--points", "2000", "--samples-per-shard", "5")  # fmt: skip
    images, labels = transfer.load_shards(shards)
    assert images.shape == (12, 32, 32) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert images.std() > 0  # not blank: the noise backgrounds and fractals came through
    assert transfer.shard_summary(shards)["type"] == "svdfractal"


def test_per_image_shards_are_refused_with_a_message(tmp_path):
    shards = _shards(tmp_path, "svdmulti", "--images", "4", "--size", "40",
                     "--points", "1000", "--samples-per-shard", "2")  # fmt: skip
    with pytest.raises(SystemExit) as error:
        transfer.load_shards(shards)
    message = str(error.value)
    assert "no .cls label" in message and "single-label" in message and str(shards) in message


def _args(**changes):
    values = {name: 1 for name in transfer.BASELINE_FIELDS} | changes
    return type("Args", (), values)()


def test_baseline_cache_is_keyed_by_the_downstream_protocol(tmp_path):
    path = tmp_path / "baseline.json"
    key, other = transfer.baseline_key(_args()), transfer.baseline_key(_args(finetune_steps=2))
    assert transfer.read_baseline(path, key) is None  # no file yet
    transfer.write_baseline(path, key, {"finetune": [70.0]})
    transfer.write_baseline(path, other, {"finetune": [60.0]})
    transfer.write_baseline(path, key, {"finetune": [71.0]})  # replaces, does not append
    assert transfer.read_baseline(path, key) == {"finetune": [71.0]}
    assert transfer.read_baseline(path, other) == {"finetune": [60.0]}
    assert len(json.loads(path.read_text())) == 2
    assert transfer.read_baseline(path, transfer.baseline_key(_args(seeds=3))) is None


def _results(root: Path, preset: str, pre: list[float], epochs: str = "15") -> None:
    args = {name: "1" for name in compare.PROTOCOL} | {"pretrain_epochs": epochs}
    base = [70.0, 72.0]
    run = {"args": args, "pretrain": {"real": {"loss": 1.5, "classes": 100}}}
    for what in ("finetune", "probe", "large"):
        run[what] = {"base": base, "pre": pre}
    (root / preset).mkdir(parents=True)
    (root / preset / "results.json").write_text(json.dumps(run))


def test_compare_writes_one_table_with_paired_gains(tmp_path, monkeypatch, capsys):
    _results(tmp_path, "A", [71.0, 74.0])
    _results(tmp_path, "B", [69.0, 71.0])
    (tmp_path / "wall-times.txt").write_text("A 600\nA 120\n")  # the last line wins
    monkeypatch.setattr(sys, "argv", ["compare.py", "--root", str(tmp_path), "A", "B"])
    compare.main()
    table = (tmp_path / "compare.md").read_text().splitlines()
    assert table[2].startswith("| none (scratch / random init) | | 71.00 +- 1.41 |")
    # gains +1, +2: mean +1.50, standard error 0.71 / sqrt(2) = 0.50, both ahead
    assert "72.50 +- 2.12 (+1.50 +- 0.50, 2/2)" in table[3] and "2.0 min" in table[3]
    assert "70.00 +- 1.41 (-1.00 +- 0.00, 0/2)" in table[4]
    assert json.loads((tmp_path / "compare.json").read_text())["families"]["A"]["wall_s"] == 120
    capsys.readouterr()


def test_compare_refuses_runs_of_another_protocol(tmp_path, monkeypatch):
    _results(tmp_path, "A", [71.0, 74.0])
    _results(tmp_path, "B", [69.0, 71.0], epochs="10")
    monkeypatch.setattr(sys, "argv", ["compare.py", "--root", str(tmp_path), "A", "B"])
    with pytest.raises(SystemExit, match="--pretrain-epochs 10 differs from A's 15"):
        compare.main()
