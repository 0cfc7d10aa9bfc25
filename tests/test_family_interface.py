"""The family interface: a family in one file plugs into search, render, verify, preview and
info without any other module knowing it; the registry; samples and their members."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import webdataset as wds
import yaml

import checker_family  # noqa: F401  (registers the type "checker")
from fdgen.errors import FdgenError
from fdgen.families import family_names, get_family
from fdgen.families.base import Group, Member, Sample
from tiny_shards import cli


def _read(folder):
    urls = sorted(str(p) for p in folder.glob("shard-*.tar"))
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("l8"))


def test_example_family_runs_through_the_cli(tmp_path):
    db, shards = tmp_path / "db", tmp_path / "shards"
    result = cli("search", "--type", "checker", "--categories", "4", "--seed", "3",
                 "--workers", "1", "--out", db)  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = yaml.safe_load((db / "db.yaml").read_text())
    cells = [int((db / "categories" / f"{k:05d}.txt").read_text()) for k in range(4)]
    assert meta["type"] == "checker" and all(c >= 2 for c in cells)
    assert meta["cells"] == [float(c) for c in cells]  # the family's score name in db.yaml
    # The first 4 candidates of seed 3 with at least 2 cells, drawn here independently.
    draws = [int(np.random.default_rng([3, k]).integers(1, 17)) for k in range(40)]
    assert cells == [c for c in draws if c >= 2][:4]

    result = cli("render", "--db", db, "--shards", shards, "--instances", "3", "--size", "32",
                 "--samples-per-shard", "5", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    samples = _read(shards)
    assert sorted(s["__key__"] for s in samples) == [
        f"c{c:06d}_i{i:06d}" for c in range(4) for i in range(3)
    ]
    for s in samples:
        c, shift = s["json"]["category"], s["json"]["shift"]
        assert int(s["cls"]) == c and s["json"]["file"] == f"{c:05d}.txt"
        y, x = np.indices((32, 32))
        want = (((y * cells[c]) // 32 + (x * cells[c]) // 32 + shift) % 2) * 255
        assert np.array_equal(s["png"], want)
    assert cli("verify", shards, "--decode").exit_code == 0
    # Worker processes find the family too (they import its module to unpickle it).
    two = tmp_path / "two"
    result = cli("render", "--db", db, "--shards", two, "--instances", "3", "--size", "32",
                 "--samples-per-shard", "5", "--workers", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    for shard in sorted(shards.glob("shard-*.tar")):
        assert (two / shard.name).read_bytes() == shard.read_bytes()
    info = cli("info", db)
    assert info.exit_code == 0 and "type        checker" in info.output
    sheet = tmp_path / "sheet.png"
    result = cli("preview", "--db", db, "--out", sheet, "--categories", "3", "--instances", "2")
    assert result.exit_code == 0 and sheet.stat().st_size > 0, result.output


def test_registry_lists_and_rejects_names():
    assert get_family("checker") is get_family("checker")
    assert {"fractal", "fractal3d", "rcdb", "visualatom", "segrcdb", "checker"} <= set(
        family_names()
    )
    with pytest.raises(FdgenError, match="unknown type 'nope'; choose from fractal, "):
        get_family("nope")


def test_importing_the_registry_compiles_nothing():
    heavy = ("numba", "cv2", "fdgen.families.fractal2d")
    code = f"import sys, fdgen.families; print(sorted(set(sys.modules) & set({heavy})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sample_members_in_tar_order_with_raw_values():
    image = np.zeros((4, 4), np.uint8)
    image[1, 2] = 127
    extra = {"seg.png": Member(image, lambda a: b"mask")}
    sample = Sample.build("k", {"png": Member(image, lambda a: b"img")}, {"b": 1, "a": 2}, 7, extra)
    assert list(sample.members) == ["png", "cls", "json", "seg.png"]
    assert sample.encoded() == {
        "png": b"img", "cls": b"7", "json": b'{"a": 2, "b": 1}', "seg.png": b"mask",
    }  # fmt: skip
    assert sample.payload is image and sample.value("seg.png") is image
    assert list(Sample.build("k", {"npy": Member(0, bytes)}, {}, None).members) == ["npy", "json"]


SMALL = {
    "fractal": dict(size=32, points=500, instances=4),
    "fractal3d": dict(size=16, points=300, models=1, instances=2),
    "rcdb": dict(size=32, instances=1),
    "segrcdb": dict(size=32, images=2, objects=2),
    "checker": dict(size=16),
}


@pytest.mark.parametrize(
    "type_, settings, fmt, members",
    [
        ("fractal", {}, "jpg", ("jpg", "cls", "json")),
        ("fractal3d", {"output": "pointcloud"}, "png", ("npy", "cls", "json")),
        ("fractal3d", {}, "png", ("png", "cls", "json")),
        ("rcdb", {}, "png", ("png", "cls", "json")),
        ("segrcdb", {}, "png", ("png", "json", "seg.png")),
        ("checker", {}, "png", ("png", "cls", "json")),
    ],
)
def test_declared_members_match_rendered_samples(type_, settings, fmt, members):
    family = get_family(type_)
    render = family.RenderSettings(**SMALL[type_], **settings)
    assert family.members(render, fmt) == members
    search = family.SearchSettings(categories=2)
    spec, _ = next(family.candidate_specs(search, 0, None, 3))
    params = [c.params for c in family.evaluate_candidates(search, spec)]
    unit_params = params if family.sample_unit == "image" else params[0]
    units, per_unit, group_size = family.plan_shape(render, len(params))
    assert units == (1 if family.sample_unit == "image" else 3)
    group = Group(0, 0, list(range(group_size)), unit_params, "00000" + family.category_suffix)
    samples = list(family.render_group(family.renderer(render), group, fmt))
    assert len(samples) == group_size
    for sample in samples:
        assert tuple(sample.encoded()) == members
        assert json.loads(sample.encoded()["json"]) == sample.meta
        assert sample.label == (None if family.sample_unit == "image" else 0)


def test_generic_modules_name_no_family_and_probe_nothing():
    """Outside families/ no module compares with a family's name or a member name of one
    family, nor probes an object for attributes (getattr/hasattr, except on os and signal)."""
    import ast
    from pathlib import Path

    import fdgen
    from fdgen.families import FAMILIES

    forbidden = {*FAMILIES, "seg.png", "SAMPLE_UNIT", "SCORE_KEY", "TYPE", "two_level_value"}
    found = []
    package = Path(fdgen.__file__).parent
    for path in sorted([*package.glob("*.py"), *package.glob("output/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in forbidden:
                found.append(f"{path.name}:{node.lineno} {node.value!r}")
            if isinstance(node, ast.Attribute) and node.attr in forbidden:
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
            called = (
                node.func.id
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                else ""
            )
            if called in ("getattr", "hasattr"):
                target = node.args[0]
                if not (isinstance(target, ast.Name) and target.id in ("os", "signal")):
                    found.append(f"{path.name}:{node.lineno} {called}")
    assert found == []


def test_info_and_preview_report_what_each_family_declares(tmp_path):
    from tiny_shards import make_db

    fractal = make_db(tmp_path / "fractal", 3)
    maps = sorted(len(p.read_text().splitlines()) for p in fractal.glob("*.csv"))
    counts = ", ".join(f"{n}:{maps.count(n)}" for n in sorted(set(maps)))
    info = cli("info", fractal)
    assert info.exit_code == 0 and f"  maps        {counts}\n" in info.output
    result = cli("preview", "--db", fractal, "--out", tmp_path / "f.png", "--instances", "4")
    assert result.exit_code == 0 and "3 categories, 4 instances of the first" in result.output
    seg = tmp_path / "seg"
    assert cli("search", "--type", "segrcdb", "--categories", "3", "--out", seg).exit_code == 0
    assert "maps" not in cli("info", seg).output
    result = cli("preview", "--db", seg, "--out", tmp_path / "s.png", "--categories", "4",
                 "--instances", "2", "--thumb", "32")  # fmt: skip
    assert result.exit_code == 0 and "4 images, masks of the first 2" in result.output


def test_verify_expects_the_members_the_family_declares(tmp_path):
    """A SegRCDB shard whose samples lost their seg.png mask (sidecar resealed to match) is
    reported: verify's schema is the family's declared members, not a fixed cls/json rule."""
    import hashlib
    import io
    import tarfile

    db = tmp_path / "db"
    assert cli("search", "--type", "segrcdb", "--categories", "3", "--out", db).exit_code == 0
    shards = tmp_path / "shards"
    result = cli("render", "--db", db, "--shards", shards, "--images", "4", "--objects", "2",
                 "--size", "32", "--samples-per-shard", "2", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert cli("verify", shards).exit_code == 0
    shard = shards / "shard-000000.tar"
    kept = io.BytesIO()
    with tarfile.open(shard) as src, tarfile.open(fileobj=kept, mode="w") as dst:
        for member in src:
            if not member.name.endswith(".seg.png"):
                dst.addfile(member, src.extractfile(member))
    stripped = sorted(
        {m.name.split(".")[0] for m in tarfile.open(fileobj=io.BytesIO(kept.getvalue()))}
    )
    shard.write_bytes(kept.getvalue())
    sidecar = shards / "shard-000000.json"
    record = json.loads(sidecar.read_text())
    record |= {
        "bytes": shard.stat().st_size,
        "sha256": hashlib.sha256(shard.read_bytes()).hexdigest(),
    }
    sidecar.write_text(json.dumps(record))
    result = cli("verify", shards)
    assert result.exit_code == 1
    for key in stripped:  # the shard's two images, whichever the plan put there
        assert f"sample {key}: no seg.png member" in result.output, result.output
    assert len(stripped) == 2


def test_verify_names_the_manifest_when_its_settings_do_not_fit_the_family(tmp_path):
    from tiny_shards import make_db, render_args

    db, out = make_db(tmp_path / "db"), tmp_path / "out"
    assert cli(*render_args(db, out)).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["identity"]["settings"]["size"] = 3  # outside RenderSettings' range
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = cli("verify", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {out / 'manifest.json'}: identity.settings do not fit type fractal" in (
        result.output
    )
