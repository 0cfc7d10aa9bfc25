"""The library API: the same bytes as the CLI, silent, plain errors, no process-wide changes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import click
import pytest

import fdgen
from fdgen import FdgenError
from tiny_shards import cli, subprocess_env

SEARCH = {"categories": 3, "fill_rate": 0.1, "points": 5000, "size": 128}
RENDER = {"instances": 8, "size": 64, "points": 2000}


def _cli_args(options: dict) -> list[str]:
    return [a for k, v in options.items() for a in ("--" + k.replace("_", "-"), str(v))]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a folder by relative path; of those that hold timings, pids or the
    folder's absolute path only what does not (db.yaml without elapsed_s, the manifest's
    identity, the render lock's name)."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "db.yaml":
            data = b"\n".join(line for line in data.splitlines() if b"elapsed_s" not in line)
        elif path.name == "manifest.json":
            data = json.dumps(json.loads(data)["identity"]).encode()
        elif path.name == ".lock":  # "host H, pid P, since HH:MM:SS"
            data = b""
        files[str(path.relative_to(folder))] = data
    return files


def test_api_writes_the_bytes_of_the_cli_and_prints_nothing(tmp_path, capfd):
    by_cli, by_api = tmp_path / "cli", tmp_path / "api"
    searched = cli("search", "--out", by_cli / "db", "--workers", "1", *_cli_args(SEARCH))
    assert searched.exit_code == 0, searched.output
    rendered = cli(
        "render", "--db", by_cli / "db", "--shards", by_cli / "shards", "--workers", "1",
        "--samples-per-shard", "10", *_cli_args(RENDER),
    )  # fmt: skip
    assert rendered.exit_code == 0, rendered.output
    capfd.readouterr()

    found = fdgen.search(by_api / "db", workers=1, **SEARCH)
    done = fdgen.render(by_api / "db", by_api / "shards", workers=1, samples_per_shard=10, **RENDER)
    report = fdgen.verify(by_api / "shards", rerender="all")

    assert capfd.readouterr() == ("", "")
    assert found.meta["categories"] == 3 and not found.already_complete
    assert done.manifest["status"] == "complete" and done.manifest["num_samples"] == 24
    assert report.ok and report.samples == 24 and report.problems == []
    for part in ("db", "shards"):
        expected = _files(by_cli / part)
        assert len(expected) > 3, expected.keys()
        assert _files(by_api / part) == expected


def test_api_leaves_signal_handlers_and_warning_filters_alone(tmp_path):
    if not hasattr(signal, "SIGXFSZ"):
        pytest.fail("this test needs SIGXFSZ (POSIX)")
    before = signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    try:
        filters = list(warnings.filters)
        fdgen.search(tmp_path / "db", workers=2, **{**SEARCH, "categories": 2})
        fdgen.render(tmp_path / "db", tmp_path / "shards", workers=1, **RENDER)
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL
        assert list(warnings.filters) == filters
    finally:
        signal.signal(signal.SIGXFSZ, before)


def test_progress_goes_to_a_callback_when_asked(tmp_path, capfd):
    events = []
    fdgen.search(tmp_path / "db", workers=1, progress=events.append, **SEARCH)
    assert capfd.readouterr() == ("", "")
    assert {e.task for e in events} == {"search"}
    assert events[-1].done == events[-1].total == 3
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_import_fdgen_loads_no_kernels():
    code = "import fdgen, sys; print(sorted({'numba', 'numpy', 'cv2', 'click'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_api_names_are_functions_beside_the_modules_that_do_the_work():
    import fdgen.rendering
    import fdgen.searching  # noqa: F401

    assert callable(fdgen.search) and callable(fdgen.render) and callable(fdgen.verify)
    assert fdgen.search.__module__ == fdgen.render.__module__ == "fdgen.api"
    presets = fdgen.presets()
    assert presets["RCDB-1k"]["type"] == "rcdb" and presets["RCDB-1k"]["render"]["size"] == 512
    presets["RCDB-1k"]["render"]["size"] = 1  # a copy: the shipped preset stays as it is
    assert fdgen.presets()["RCDB-1k"]["render"]["size"] == 512


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda tmp: fdgen.search(tmp / "db", type="bogus"), "--type: unknown type 'bogus'"),
        (lambda tmp: fdgen.search(tmp / "db", type="rcdb", maps="2-5"), "--maps does not apply"),
        (lambda tmp: fdgen.search(tmp / "db", type="rcdb", fill_rate=0.3), "--fill-rate does not"),
        (lambda tmp: fdgen.search(tmp / "db", categories="3"), "--categories: expected int"),
        (lambda tmp: fdgen.search(tmp / "db", categories=0), "--categories: must be >= 1"),
        (lambda tmp: fdgen.search(tmp / "db", maps="x"), "--maps: expected MIN-MAX"),
        (lambda tmp: fdgen.search(tmp / "db", preset="bogus"), "--preset: unknown preset"),
        (lambda tmp: fdgen.search(tmp / "db", maps_min=3), "give both as maps=MIN-MAX"),
        (lambda tmp: fdgen.search(tmp / "db", workers=0), "--workers: expected a whole number"),
        (lambda tmp: fdgen.render(tmp / "db", format="gif"), "--format: 'gif': choose from"),
        (lambda tmp: fdgen.render(tmp / "db", samples_per_shard=0), "--samples-per-shard"),
        (lambda tmp: fdgen.render(tmp / "nowhere"), "no such database folder"),
        (lambda tmp: fdgen.render("bogus"), "--db: bogus is neither a folder nor a preset"),
        (lambda tmp: fdgen.verify(tmp / "nowhere"), "not an fdgen shard folder"),
        (lambda tmp: fdgen.verify(tmp, rerender=-1), "--rerender"),
        (lambda tmp: fdgen.load_database(tmp), "no category files found"),
    ],
)
def test_bad_input_raises_a_plain_fdgen_error(tmp_path, call, needle):
    with pytest.raises(FdgenError) as err:
        call(tmp_path)
    assert needle in err.value.message and needle in str(err.value)
    assert not isinstance(err.value, click.ClickException)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_render_options_are_checked_against_the_family(tmp_path):
    fdgen.search(tmp_path / "db", type="rcdb", categories=2, workers=1)
    for options, needle in [
        ({"draw": "patch_color"}, "--draw does not apply to type rcdb"),
        ({"instances": 0}, "--instances: must be >= 1"),
        ({"size": "64"}, "--size: expected int"),
        ({"bogus": 1}, "--bogus does not apply to type rcdb"),
        ({"preset": "FractalDB-1k"}, "--preset: FractalDB-1k is a fractal preset"),
    ]:
        with pytest.raises(FdgenError) as err:
            fdgen.render(tmp_path / "db", tmp_path / "shards", **options)
        assert needle in err.value.message
    assert not (tmp_path / "shards").exists()


def test_verify_reports_damage_without_raising(tmp_path):
    fdgen.search(tmp_path / "db", workers=1, **SEARCH)
    fdgen.render(tmp_path / "db", tmp_path / "shards", workers=1, samples_per_shard=10, **RENDER)
    shard = tmp_path / "shards" / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF  # inside the first member's bytes: the size stays, the hash changes
    shard.write_bytes(bytes(data))
    report = fdgen.verify(tmp_path / "shards")
    assert not report.ok
    assert [c.index for c in report.bad] == [1]
    assert report.problems and all(str(shard) in p for p in report.problems)
    assert "2 of 3 shards OK" in report.failure()


def test_a_one_worker_render_of_a_folder_imports_no_other_family_and_no_joblib(tmp_path):
    """Start-up: a one-worker FractalDB render loads only its own family (a name that is not a
    preset is not matched against parsed presets) and not joblib (0.2 s, only for workers)."""
    db = tmp_path / "db"
    db.mkdir()
    (db / "00000.csv").write_text("0.5,0,0,0.5,0,0,0.5\n0.5,0,0,0.5,0.5,0.5,0.5\n")
    code = (
        "import sys; from fdgen.cli import main\n"
        f"try: main(['render', '--db', {str(db)!r}, '--instances', '4', '--workers', '1', "
        f"'--shards', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m == 'joblib' or m.startswith('fdgen.families.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "shard-000000.tar").is_file(), out.stdout + out.stderr
    loaded = out.stdout.strip().splitlines()[-1]
    assert "joblib" not in loaded, loaded
    assert "svdfractal" not in loaded and "rcdb" not in loaded, loaded
