"""Multi-instance SVD fractals: multi-label json read back with webdataset, the object count
distribution, byte-identical shards whatever the worker count, the PyTorch target."""

from __future__ import annotations

import numpy as np
import webdataset as wds

from fdgen.families import get_family, svdmulti
from tiny_shards import cli

RENDER = ["--images", "7", "--size", "40", "--points", "1500", "--samples-per-shard", "3"]


def _search(tmp_path, categories=6):
    db = tmp_path / "db"
    result = cli("search", "--type", "svdmulti", "--categories", str(categories),
                 "--workers", "1", "--out", db)  # fmt: skip
    assert result.exit_code == 0, result.output
    return db


def _read(folder):
    urls = sorted(str(p) for p in folder.glob("shard-*.tar"))
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb8"))


def test_json_labels_read_back_with_webdataset(tmp_path):
    db = _search(tmp_path)
    shards = tmp_path / "shards"
    result = cli("render", "--db", db, "--shards", shards, "--workers", "1", *RENDER)
    assert result.exit_code == 0, result.output
    assert cli("verify", shards, "--decode").exit_code == 0
    samples = _read(shards)
    assert sorted(s["__key__"] for s in samples) == [f"img{k:08d}" for k in range(7)]
    for s in samples:
        labels = s["json"]["labels"]
        assert 1 <= len(labels) <= 5 and all(0 <= c < 6 for c in labels)
        assert s["labels.npy"].tolist() == labels  # the same list as an array member
        assert "cls" not in s and s["png"].shape == (40, 40, 3)
    assert len({tuple(s["json"]["labels"]) for s in samples}) > 1


def test_object_count_is_uniform_and_every_category_is_drawn():
    family = get_family("svdmulti")
    params = [c.params for c in family.evaluate_candidates(family.SearchSettings(), (0, 4))]
    renderer = svdmulti.Renderer(svdmulti.RenderSettings(size=16, points=50, draw="color"))
    labels = [renderer.render(params, k)[1] for k in range(1000)]
    counts = np.bincount([len(x) for x in labels], minlength=6)[1:]
    chi2 = float(((counts - 200) ** 2 / 200).sum())  # 4 degrees of freedom: p = 0.001 at 18.5
    assert counts.sum() == 1000 and chi2 < 18.5, counts
    drawn = np.bincount([c for x in labels for c in x], minlength=4)
    assert drawn.min() > 0.8 * drawn.sum() / 4  # every category, about evenly


def test_shards_are_identical_whatever_the_worker_count(tmp_path):
    db = _search(tmp_path, 3)
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        result = cli("render", "--db", db, "--shards", out, "--workers", workers, *RENDER)
        assert result.exit_code == 0, result.output
        outs.append({p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))})
    assert len(outs[0]) == 3 and outs[0] == outs[1]
