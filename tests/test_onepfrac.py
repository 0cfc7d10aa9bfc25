"""1p-frac (Nakamura et al., ECCV 2024): the base system's constraints, the perturbation
bounds, the acceptance test against a plain-Python raster, reproducibility, the render."""

from __future__ import annotations

import numpy as np
import webdataset as wds
import yaml

from fdgen.families import onepfrac
from fdgen.kernels.rng import sample_state
from tiny_shards import cli

import slow_reference as ref

TINY = ["--points", "1500", "--size", "48", "--pad", "4"]


def _search(out, *args):
    result = cli("search", "--type", "onepfrac", "--workers", "1", "--out", out, *TINY, *args)
    assert result.exit_code == 0, result.output
    params = [np.loadtxt(p, delimiter=",") for p in sorted((out / "categories").glob("*.csv"))]
    return yaml.safe_load((out / "db.yaml").read_text()), params


def test_base_system_is_a_2_map_svd_system_with_the_sigma_factor():
    for seed, sigma in ((0, 3.5), (4, 4.0), (9, 2.0)):
        base = onepfrac.base_system(seed, sigma)
        sv = np.linalg.svd(base[:, :4].reshape(2, 2, 2), compute_uv=False)
        assert base.shape == (2, 7) and np.all(sv <= 1 + 1e-12)
        assert sigma - 0.1 <= (sv[:, 0] + 2 * sv[:, 1]).sum() <= sigma + 0.1
    assert not np.array_equal(onepfrac.base_system(0, 3.5), onepfrac.base_system(1, 3.5))


def test_every_class_perturbs_every_coefficient_within_d(tmp_path):
    meta, classes = _search(tmp_path / "db", "--categories", "60", "--delta", "0.2", "--seed", "3")
    base = onepfrac.base_system(3, 3.5)
    ratios = np.array([c[:, :6] / base[:, :6] for c in classes])
    assert ratios.shape == (60, 2, 6)
    assert np.all(ratios >= 0.8 - 1e-12) and np.all(ratios <= 1.2 + 1e-12)
    assert ratios.min() < 0.81 and ratios.max() > 1.19  # the whole range is used
    assert len({r.tobytes() for r in ratios}) == 60  # every class its own perturbation
    assert all(np.array_equal(c[:, 6], base[:, 6]) for c in classes)  # p of the base
    assert meta["type"] == "onepfrac"


def test_acceptance_matches_a_plain_python_raster(tmp_path):
    # A threshold that rejects some candidates: the kept ones are exactly the first whose
    # raster (drawn here independently of the kernels) has more than that fraction drawn.
    threshold, seed, delta = 0.085, 1, 0.1
    meta, classes = _search(
        tmp_path / "db", "--categories", "4", "--seed", str(seed), "--delta", str(delta),
        "--fill-rate", str(threshold),
    )  # fmt: skip
    base = onepfrac.base_system(seed, 3.5)
    accepted, rates = [], []
    for k in range(meta["candidates_tried"]):
        factors = np.random.default_rng([seed, k]).uniform(1 - delta, 1 + delta, (2, 6))
        state = int(sample_state(seed, onepfrac.ACCEPT_STREAM, k))
        params = np.column_stack([base[:, :6], base[:, 6]])
        image = ref.render_variant(params, factors, state, 1500, 48, 4)
        rate = np.count_nonzero(image) / image.size
        if rate > threshold:
            accepted.append(base[:, :6] * factors)
            rates.append(rate)
    assert meta["candidates_tried"] > 4, "the threshold should reject some candidates"
    assert len(accepted) == 4
    for got, want in zip(classes, accepted):
        assert np.allclose(got[:, :6], want, rtol=1e-15, atol=0)
    assert np.allclose(meta["fill_rates"], rates)
    assert all(r > threshold for r in meta["fill_rates"])


def test_same_seed_same_dataset_and_the_render_is_patch_gray(tmp_path):
    _, first = _search(tmp_path / "a", "--categories", "3")
    _, again = _search(tmp_path / "b", "--categories", "3")
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    shards = tmp_path / "shards"
    result = cli("render", "--db", tmp_path / "a", "--shards", shards, "--workers", "1",
                 "--size", "48", "--points", "1500")  # fmt: skip
    assert result.exit_code == 0, result.output
    urls = sorted(str(p) for p in shards.glob("shard-*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("l8"))
    assert sorted(s["__key__"] for s in samples) == [f"c{c:06d}_i000000" for c in range(3)]
    for s in samples:  # one image per class: weight row 0 of D = 0 (identity), flip 0 (y up)
        c = s["json"]["category"]
        params = np.loadtxt(tmp_path / "a" / "categories" / f"{c:05d}.csv", delimiter=",")
        state = int(sample_state(0, c, 0))
        want = ref.render_variant(params, np.ones(6), state, 1500, 48, 6)[::-1]
        assert np.array_equal(s["png"], want) and int(s["cls"]) == c


def test_sigma_out_of_range_is_one_error_line(tmp_path):
    result = cli("search", "--type", "onepfrac", "--sigma", "6.5", "--out", tmp_path / "db")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --sigma: must be in [0.1, 5.9]")
    assert "Traceback" not in result.output and not (tmp_path / "db").exists()
