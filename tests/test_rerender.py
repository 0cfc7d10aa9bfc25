"""``fdgen verify --rerender``: chosen samples rendered afresh and compared byte for byte, so a
shard whose wrong (but valid) pixels were sealed by a matching sidecar is caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fdgen.database import load_database
from fdgen.families import contour_base, fractal3d, get_family, segrcdb
from fdgen.rendering import render_dataset
from fdgen.searching import run_search
from test_scaleout import _members, _rewrite
from tiny_shards import cli, copy_folder, make_db, render_args, snapshot


def _keys(members) -> list[str]:
    return list(dict.fromkeys(name.split(".")[0] for name, _ in members))


def _swap(key: str, other: str, ext: str):
    """A transform giving sample ``key`` the ``.ext`` member of sample ``other`` (a valid
    payload of the right size and kind, only not the one fdgen renders for ``key``)."""

    def transform(members):
        theirs = dict(members)[f"{other}.{ext}"]
        return [(n, theirs if n == f"{key}.{ext}" else d) for n, d in members]

    return transform


def test_rerender_catches_a_sealed_wrong_image_and_the_advice_repairs_it(tiny, tmp_path):
    db, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    key, other = _keys(_members(out / "shard-000001.tar"))[:2]
    _rewrite(out, 1, _swap(key, other, "png"))
    for plain in (["verify", out], ["verify", out, "--decode"]):
        result = cli(*plain)
        assert result.exit_code == 0, result.output  # hashes, labels and image sizes agree
    result = cli("verify", out, "--rerender", "all")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "fresh render" in line]
    problem = f"sample {key}: member .png differs from a fresh render"
    assert lines[0] == f"{out}/shard-000001.tar: {problem}"
    assert len(lines) == 2  # the line above and the summary; the other 23 samples are identical
    assert "2 of 3 shards OK, 24 samples checked, 24 compared with a fresh render" in lines[1]
    assert "delete shard-000001.json before rerunning it" in lines[1]
    # The advice works: without the sidecar the same render redoes the shard, identically.
    (out / "shard-000001.json").unlink()
    assert cli(*render_args(db, out)).exit_code == 0
    assert cli("verify", out, "--rerender", "all").exit_code == 0
    assert snapshot(out) == snapshot(ref)


def _caught(tiny, root: Path, count: str, workers: int) -> set[str]:
    """The keys of shard 1 whose tampering ``verify --rerender count`` reports."""
    _, ref = tiny
    caught = set()
    keys = _keys(_members(ref / "shard-000001.tar"))
    for k, key in enumerate(keys):
        out = copy_folder(ref, root / f"{count}-{workers}-{k}")
        _rewrite(out, 1, _swap(key, keys[k - 1], "png"))
        result = cli("verify", out, "--rerender", count, "--workers", workers)
        if result.exit_code:
            assert f"shard-000001.tar: sample {key}: member .png differs" in result.output
            caught.add(key)
        else:
            compared = int(count) * 3 if count.isdigit() else 24
            assert f"{compared} compared with a fresh render" in result.output, result.output
        shutil.rmtree(out)
    return caught


def test_a_seeded_choice_checks_the_same_n_samples_on_every_run(tiny, tmp_path):
    caught = _caught(tiny, tmp_path, "2", 1)
    assert len(caught) == 2  # exactly the 2 chosen samples of the shard's 8 are compared
    assert _caught(tiny, tmp_path, "2", 2) == caught  # same choice, whatever the workers
    assert len(_caught(tiny, tmp_path, "all", 2)) == 8


def test_rerender_zero_compares_nothing(tiny):
    _, ref = tiny
    result = cli("verify", ref, "--rerender", "0")
    assert result.exit_code == 0 and "fresh render" not in result.output, result.output


def _contour_db(root: Path, type_: str, settings) -> Path:
    run_search(get_family(type_), settings, root / "db", workers=1, show_progress=False)
    return root / "db"


@pytest.mark.parametrize(
    "case",
    ["rcdb", "segrcdb", "fractal3d-pointcloud"],
)
def test_untouched_renders_pass_and_a_swapped_member_fails(tmp_path, case):
    if case == "rcdb":
        db = _contour_db(tmp_path, "rcdb", contour_base.SearchSettings(categories=2, seed=1))
        settings, ext = contour_base.RenderSettings(size=48, instances=3), "png"
    elif case == "segrcdb":
        db = _contour_db(tmp_path, "segrcdb", segrcdb.SearchSettings(categories=3, seed=1))
        settings, ext = segrcdb.RenderSettings(size=48, images=5, objects=3), "seg.png"
    else:
        db = tmp_path / "db3"
        search = fractal3d.SearchSettings(categories=2)
        run_search(get_family("fractal3d"), search, db, workers=1, show_progress=False)
        settings = fractal3d.RenderSettings(
            size=32, points=500, instances=12, models=1, output="pointcloud"
        )
        ext = "npy"
    out = tmp_path / "out"
    render_dataset(load_database(db), settings, out, samples_per_shard=4, workers=1)
    result = cli("verify", out, "--rerender", "all", "--workers", 2)
    assert result.exit_code == 0, result.output
    key, other = _keys(_members(out / "shard-000000.tar"))[:2]
    _rewrite(out, 0, _swap(key, other, ext))
    assert cli("verify", out).exit_code == 0
    result = cli("verify", out, "--rerender", "all")
    assert result.exit_code == 1
    assert f"shard-000000.tar: sample {key}: member .{ext} differs from a fresh render" in (
        result.output
    )


def test_moved_database_needs_db(tmp_path):
    db = make_db(tmp_path / "db")
    out = tmp_path / "out"
    assert cli(*render_args(db, out)).exit_code == 0
    moved = db.rename(tmp_path / "moved")
    result = cli("verify", out, "--rerender", 1)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: --rerender: cannot load the database these shards were rendered from "
        f"({db}: no such database folder); pass --db with its location if it moved"
    )
    result = cli("verify", out, "--rerender", 1, "--db", moved)
    assert result.exit_code == 0, result.output
    assert "3 of 3 shards OK, 24 samples checked, 3 compared with a fresh render" in result.output


def test_wrong_database_is_refused_naming_both_digests(tiny, tmp_path):
    _, ref = tiny
    other = make_db(tmp_path / "other", categories=4)
    recorded = json.loads((ref / "manifest.json").read_text())["identity"]["database_digest"]
    result = cli("verify", ref, "--rerender", "all", "--db", other)
    assert result.exit_code == 1
    assert type(result.exception) is SystemExit  # an Error line, no traceback
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: --db: {other} is not the database these shards were ")
    assert f"records identity.database_digest {recorded[:16]}..." in line
    assert f"its digest is {load_database(other).digest()[:16]}..." in line


@pytest.mark.parametrize("field", ["database", "plan"])
def test_manifest_without_the_record_is_a_clear_error(tiny, tmp_path, field):
    _, ref = tiny
    out = copy_folder(ref, tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest[field]
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = cli("verify", out, "--rerender", 3)
    assert result.exit_code == 1 and type(result.exception) is SystemExit
    assert result.output.splitlines() == [
        f"Error: --rerender: {out}/manifest.json does not record {field} (written by an older "
        "fdgen?); the samples cannot be rebuilt from it"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "somewhere"], "Error: --db applies only with --rerender N (N >= 1)"),
        (["--rerender", "-1"], "'-1': expected a whole number >= 0 or 'all'"),
        (["--rerender", "some"], "'some': expected a whole number >= 0 or 'all'"),
    ],
)
def test_rerender_option_errors(tiny, args, message):
    _, ref = tiny
    result = cli("verify", ref, *args)
    assert result.exit_code in (1, 2) and message in result.output, result.output
