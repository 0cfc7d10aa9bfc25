"""PC-FractalDB (type pcfractal): FractalNoiseMix clouds against an independent pure-Python
reconstruction (point counts, per-part normalisation and centring, the seeded mix choice), the
original sharing mode, shards read back with webdataset, determinism across workers, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from fdgen.cli import main
from fdgen.database import load_database
from fdgen.errors import FdgenError
from fdgen.families import fractal3d as f3
from fdgen.families import get_family
from fdgen.families import pcfractal as pc
from fdgen.families.base import Group
from fdgen.rendering import render_dataset
from fdgen.searching import run_search
from test_fractal3d import splitmix_uniforms


@pytest.fixture(scope="module")
def pcdb(tmp_path_factory) -> Path:
    """A small searched PC database (4 categories, 2,000-point test clouds)."""
    out = tmp_path_factory.mktemp("pc") / "db"
    settings = f3.SearchSettings(categories=4, points=2000)
    run_search(get_family("pcfractal"), settings, out, workers=1, show_progress=False)
    return out


def stream(*key: int):
    state = int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0])
    return splitmix_uniforms(state)


def slow_part(params: np.ndarray, uniforms, points: int) -> np.ndarray:
    """``points`` orbit points from the origin, scaled into [-1, 1] by one min/max over all
    axes, then centred (plain Python/numpy)."""
    maps, cum = params[:, :12], np.cumsum(params[:, 12])
    x = y = z = 0.0
    cloud = []
    for _ in range(points):
        j = min(int(np.searchsorted(cum, next(uniforms), side="left")), len(maps) - 1)
        a, b, c, d, e, f, g, h, i, tj, tk, tl = maps[j].tolist()
        x, y, z = a * x + b * y + c * z + tj, d * x + e * y + f * z + tk, g * x + h * y + i * z + tl
        cloud.append((x, y, z))
    cloud = np.array(cloud)
    lo, hi = cloud.min(), cloud.max()
    cloud = (cloud - lo) / (hi - lo) * 2 - 1
    return cloud - cloud.mean(axis=0)


def slow_sample(params: list, seed: int, category: int, instance: int):
    """FractalNoiseMix as docs/pcfractal.md states it (mix="sample"): (cloud, mix category)."""
    main_part = slow_part(params[category], stream(seed, category, instance, 1), 8000)
    u = next(stream(seed, category, instance, 2))
    other = int(u * (len(params) - 1))
    mixed = other + (other >= category)
    mix_part = slow_part(params[mixed], stream(seed, category, instance, 3), 2001)
    cloud = np.concatenate([main_part, mix_part])
    return cloud - cloud.mean(axis=0), mixed


def clouds(db_path: Path, settings: pc.RenderSettings, category: int, instances: list[int]):
    db = load_database(db_path)
    family = get_family("pcfractal")
    group = Group(category, 0, instances, *family.unit_input(db, category))
    renderer = family.renderer(settings)
    return [(s.value("npy").copy(), s.meta) for s in family.render_group(renderer, group, "npy")]


def test_fractal_noise_mix_matches_independent_reconstruction(pcdb):
    db = load_database(pcdb)
    renderer = get_family("pcfractal").renderer(pc.RenderSettings())
    for category, instance in [(0, 0), (0, 1), (3, 7)]:
        cloud, fields = renderer.cloud(db.params, category, instance)
        expected, mixed = slow_sample(db.params, 0, category, instance)
        assert cloud.dtype == np.float32 and cloud.shape == (8000 + 2001, 3)
        assert (fields["main_points"], fields["mix_points"]) == (8000, 2001)
        assert fields["mix_category"] == mixed != category and not fields["diverged"]
        np.testing.assert_allclose(cloud, expected, rtol=1e-5, atol=2e-6)


def test_parts_normalised_and_centred_then_centred_together(pcdb):
    db = load_database(pcdb)
    renderer = get_family("pcfractal").renderer(pc.RenderSettings())
    cloud, _ = renderer.cloud(db.params, 2, 5)
    pts = cloud.astype(np.float64)
    np.testing.assert_allclose(pts.mean(axis=0), 0, atol=1e-6)
    main_part, mix_part = pts[:8000], pts[8000:]
    assert len(mix_part) == 2001
    # Each part was centred alone (true means), so both sit at the origin and the joint
    # centring only removes rounding.
    np.testing.assert_allclose(main_part.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(mix_part.mean(axis=0), 0, atol=1e-6)
    # Each part was scaled into [-1, 1] by one min/max over its three axes (the exact values
    # are checked against the reconstruction above): no axis extends beyond 2.
    for part in (main_part, mix_part):
        extent = part.max(axis=0) - part.min(axis=0)
        assert np.all(extent <= 2 + 1e-5) and extent.max() > 0.5


def test_original_mode_shares_main_points_and_the_mix_list(pcdb):
    settings = pc.RenderSettings(mix="original", instances=6)
    by_category = [clouds(pcdb, settings, c, list(range(6))) for c in range(4)]
    for samples in by_category:
        mains = [cloud[:8000] - cloud[:8000].mean(axis=0) for cloud, _ in samples]
        for other in mains[1:]:
            np.testing.assert_allclose(other, mains[0], atol=1e-5)
    # Instance j mixes with the same category in every category; the list is a permutation.
    lists = [[meta["mix_category"] for _, meta in samples] for samples in by_category]
    assert all(row == lists[0] for row in lists)
    assert sorted(lists[0][:4]) == [0, 1, 2, 3] and lists[0][4:] == lists[0][:2]
    # Per-sample seeding: every instance has its own main points.
    fresh = clouds(pcdb, pc.RenderSettings(), 0, [0, 1])
    assert not np.allclose(fresh[0][0][:8000], fresh[1][0][:8000], atol=1e-3)


def test_settings_errors():
    with pytest.raises(FdgenError, match="--main-points"):
        pc.RenderSettings(main_points=0)
    with pytest.raises(FdgenError, match="--mix"):
        pc.RenderSettings(mix="bogus")


def test_search_keeps_only_clouds_with_variance_on_every_axis(pcdb):
    db = load_database(pcdb)
    assert db.type == "pcfractal" and len(db) == 4
    for params, recorded in zip(db.params, db.meta["variances"], strict=True):
        # rerun each kept category's 2,000-point test cloud with a fresh stream: spread out
        cloud = slow_part(params, stream(99, 1), 2000)
        assert recorded > 0.05 and np.all(cloud.var(axis=0) > 0.02)


def _render(db_path: Path, out: Path, workers: int, **kw):
    settings = pc.RenderSettings(instances=5, main_points=400, mix_points=101, **kw)
    return render_dataset(load_database(db_path), settings, out, "png", 6, workers=workers)


def test_shards_deterministic_across_workers_and_read_back(pcdb, tmp_path):
    for mode in pc.MIX_MODES:
        a = _render(pcdb, tmp_path / f"a-{mode}", 1, mix=mode)
        b = _render(pcdb, tmp_path / f"b-{mode}", 2, mix=mode)
        assert a["num_samples"] == 20 and a["num_shards"] == b["num_shards"] == 4
        tars = sorted((tmp_path / f"a-{mode}").glob("shard-*.tar"))
        for tar in tars:
            assert tar.read_bytes() == (tmp_path / f"b-{mode}" / tar.name).read_bytes()
    tars = sorted((tmp_path / "a-sample").glob("shard-*.tar"))
    seen = set()
    for cloud, cls, meta in (
        wds.WebDataset([str(t) for t in tars], shardshuffle=False)
        .decode()
        .to_tuple("npy", "cls", "json")
    ):
        assert cloud.dtype == np.float32 and cloud.shape == (501, 3)
        assert int(cls) == meta["category"] and meta["mix_category"] != meta["category"]
        np.testing.assert_allclose(cloud.mean(axis=0), 0, atol=1e-6)
        seen.add((meta["category"], meta["instance"]))
    assert len(seen) == 20


def test_cli_render_verify_preview_and_preset(pcdb, tmp_path):
    def cli(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    out = tmp_path / "sh"
    small = ["--main-points", "300", "--mix-points", "50", "--instances", "3"]
    result = cli("render", "--db", pcdb, "--shards", out, "--workers", "1", *small)
    assert result.exit_code == 0, result.output
    result = cli("verify", out)
    assert result.exit_code == 0, result.output
    sample = next(iter(wds.WebDataset(str(out / "shard-000000.tar"), shardshuffle=False)))
    assert set(sample) - {"__key__", "__url__", "__local_path__"} == {"npy", "cls", "json"}
    assert json.loads(sample["json"])["main_points"] == 300
    result = cli("render", "--db", pcdb, "--shards", tmp_path / "x", "--size", "64")
    assert result.exit_code == 1 and "--size does not apply to type pcfractal" in result.output
    sheet = tmp_path / "sheet.png"
    result = cli("preview", "--db", pcdb, "--out", sheet, "--categories", "4", "--instances", "3")
    assert result.exit_code == 0 and sheet.stat().st_size > 0, result.output
    from fdgen.catalog import get_preset

    cfg = get_preset("PC-FractalDB-1k")
    render = pc.RenderSettings(**cfg["render"])
    assert cfg["type"] == "pcfractal" and f3.SearchSettings(**cfg["search"]).categories == 1000
    assert (render.main_points, render.mix_points, render.instances) == (8000, 2001, 1000)
