"""The shard plan (version 2): a keyed bijection of groups onto positions, its shard
lengths without the order table, and the refusal of folders written by the old plan."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from fdgen.output import ShardPlan
from tiny_shards import cli, render_args, snapshot

SHAPES = [
    (1, 1, 1, 1, 0),  # one group: the bijection on a domain of 1
    (1, 6, 1, 4, 0),
    (3, 10, 4, 6, 1),  # short last group of each category, groups of 4, one per shard
    (7, 9, 4, 8, 3),
    (5, 3, 4, 20, 9),  # fewer instances than a group
    (37, 13, 1, 10, 123),
    (1000, 7, 2, 9, 2**40),  # 4000 groups: the cycle walk crosses several bit widths
]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_group_lands_in_exactly_one_shard(shape):
    plan = ShardPlan(*shape)
    seen = [
        (category, group, tuple(instances))
        for j in range(plan.num_shards)
        for category, group, instances in plan.members(j)
    ]
    expected = [
        (c, g, tuple(range(g * plan.group_size, min((g + 1) * plan.group_size, plan.instances))))
        for c in range(plan.categories)
        for g in range(plan.groups_per_category)
    ]
    assert sorted(seen) == expected
    lengths = [sum(len(i) for _, _, i in plan.members(j)) for j in range(plan.num_shards)]
    assert plan.shard_lengths() == lengths


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_any_partition_of_the_shards_renders_every_sample_once(shape, count):
    """The ``--shard-index I --num-shards N`` split: shards j with j % N == I."""
    plan = ShardPlan(*shape)
    keys = [
        (c, i)
        for part in range(count)
        for j in range(part, plan.num_shards, count)
        for c, _, instances in plan.members(j)
        for i in instances
    ]
    assert sorted(keys) == [(c, i) for c in range(plan.categories) for i in range(plan.instances)]


def test_position_inverts_shuffle_and_the_order_depends_on_the_seed():
    plan = ShardPlan(50, 20, 4, 16, 7)
    positions = np.arange(plan.total_groups)
    order = plan.shuffle(positions)
    assert (plan.position(order) == positions).all()
    other = ShardPlan(50, 20, 4, 16, 8).shuffle(positions)
    assert (order != other).mean() > 0.9
    assert (order != positions).mean() > 0.9  # not the identity


def test_a_21k_plan_is_a_few_integers():
    """At RCDB-21k size (21M groups) the plan pickles small and a shard is cheap to list."""
    plan = ShardPlan(21000, 1000, 1, 500, 0)
    assert len(pickle.dumps(plan)) < 300
    members = plan.members(41999)
    assert len(members) == 500 and len({(c, g) for c, g, _ in members}) == 500
    assert all(0 <= c < 21000 and 0 <= g < 1000 for c, g, _ in members)
    assert plan.shard_lengths() == [500] * 42000
    assert len(pickle.dumps(plan)) < 300  # nothing cached on the way


def test_shard_lengths_at_scale_match_the_short_groups():
    """21,000 categories of 10 instances in groups of 4: the last group of each is short."""
    plan = ShardPlan(21000, 10, 4, 40, 5)
    lengths = plan.shard_lengths()
    assert sum(lengths) == 210000 and len(lengths) == plan.num_shards
    for j in (0, 1234, plan.num_shards - 1):
        assert lengths[j] == sum(len(i) for _, _, i in plan.members(j))


def _old_folder(ref, dest):
    """The folder as fdgen 0.x wrote it with the permutation plan (no plan version)."""
    shutil.copytree(ref, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["plan"].pop("version") == 2
    manifest["fdgen_version"] = "0.9.0"
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest


@pytest.mark.parametrize("command", ["status", "verify", "info"])
def test_a_folder_of_the_old_plan_is_refused_with_one_line(tiny, tmp_path, command):
    _, ref = tiny
    out = _old_folder(ref, tmp_path / "old")
    result = cli(command, out)
    assert result.exit_code == 1 and type(result.exception) is SystemExit
    assert result.output == (
        f"Error: {out / 'manifest.json'}: shard plan version 1, written by fdgen 0.9.0; this "
        "fdgen orders samples by plan version 2, so these shards cannot be resumed, checked or "
        "indexed by it: re-render into a new folder (or this one with --force)\n"
    )


def test_resuming_a_folder_of_the_old_plan_is_refused_and_force_re_renders(tiny, tmp_path):
    db, ref = tiny
    out = _old_folder(ref, tmp_path / "old")
    (out / "shard-000001.json").unlink()  # an unfinished render: resume would fill it in
    before = snapshot(out)
    result = cli(*render_args(db, out))
    assert result.exit_code == 1
    assert "shard plan version 1, written by fdgen 0.9.0" in result.output
    assert snapshot(out) == before
    result = cli(*render_args(db, out, "--force"))
    assert result.exit_code == 0, result.output
    assert snapshot(out) == snapshot(ref)


def test_status_and_a_partition_task_look_only_at_the_shards_listed(tiny, tmp_path, monkeypatch):
    """With 6 shard slots (one group of 4 flips each) and one rendered, status and the
    partition render read one sidecar, not one per slot (the cost of a 42,000-shard array
    task)."""
    from fdgen.output import ShardFolder, folder_status

    db, _ = tiny
    out = tmp_path / "one"
    small = ["--instances", "8", "--size", "64", "--points", "2000", "--samples-per-shard", "1"]
    reads: list[int] = []
    original = ShardFolder.read_sidecar
    monkeypatch.setattr(
        ShardFolder, "read_sidecar", lambda self, j: reads.append(j) or original(self, j)
    )
    args = render_args(db, out, "--num-shards", "6", "--shard-index", "5", tiny=small)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert reads == []  # nothing listed before, and 1 of 6 after: no sidecar read at all
    status = folder_status(out)
    assert status.complete == [5] and status.missing == [0, 1, 2, 3, 4]
    assert status.samples_done == 4
    assert reads == [5]


def test_dry_run_prints_the_plan_and_writes_nothing(tiny, tmp_path):
    db, _ = tiny
    out = tmp_path / "never"
    before = {p: p.read_bytes() for p in sorted(db.rglob("*")) if p.is_file()}
    small = ["--instances", "8", "--size", "64", "--points", "2000", "--samples-per-shard", "4"]
    result = cli(*render_args(db, out, "--dry-run", "--num-shards", "4", tiny=small))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "plan: 24 samples of 3 categories in 6 shards of up to 4 samples"
    assert lines[1].startswith("calibration: ") and " samples rendered in " in lines[1]
    assert lines[2].startswith("estimate: ") and " core-hours (" in lines[2]
    assert lines[3].startswith("array: --num-shards 4: 4 tasks of up to 2 shards, about ")
    assert lines[-1] == "dry run: nothing written"
    assert not out.exists()
    assert {p: p.read_bytes() for p in sorted(db.rglob("*")) if p.is_file()} == before


def test_dry_run_says_when_an_array_has_more_partitions_than_shards(tiny, tmp_path):
    db, _ = tiny
    small = ["--instances", "8", "--size", "64", "--points", "2000", "--samples-per-shard", "4"]
    result = cli(*render_args(db, tmp_path / "never", "--dry-run", "--num-shards", "9", tiny=small))
    assert result.exit_code == 0, result.output
    array = next(line for line in result.output.splitlines() if line.startswith("array: "))
    assert array.startswith("array: --num-shards 9: 6 tasks of up to 1 shards, about ")
    assert array.endswith("; partitions 6 to 8 have no shard to render (the plan has 6)")


def test_dry_run_size_estimate_is_the_size_of_the_render(tiny, tmp_path):
    """The calibration covers every group of the tiny dataset, so its size estimate is the
    shards' member bytes (header block plus padded data per member, read back by tarfile)."""
    import tarfile

    from fdgen.api import estimate

    db, _ = tiny
    est = estimate(db, samples_per_shard=4, instances=8, size=64, points=2000)
    out = tmp_path / "real"
    args = ["--instances", "8", "--size", "64", "--points", "2000", "--samples-per-shard", "4"]
    assert cli(*render_args(db, out, tiny=args)).exit_code == 0
    tars = sorted(out.glob("shard-*.tar"))
    assert est.num_shards == len(tars) == 6 and est.num_samples == 24
    members = 0
    for path in tars:
        with tarfile.open(path) as tar:
            members += sum(512 + -(-m.size // 512) * 512 for m in tar.getmembers())
    assert est.total_bytes == pytest.approx(members, rel=1e-12)
