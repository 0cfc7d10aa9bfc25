"""The category search: evaluate candidates in parallel batches, keep the first N accepted.

Candidates are numbered; the result is the first ``categories`` accepted candidates in index
order, so it does not depend on the number of workers. Progress is saved after every batch,
so an interrupted search continues exactly where it stopped (``--resume``).
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from fdgen import __version__
from fdgen.atomic import write_atomic
from fdgen.database import (
    CATEGORY_DIR,
    META_FILE,
    PROGRESS_FILE,
    foreign_files,
    load_progress,
    read_meta,
    save_progress,
    written_by_search,
)
from fdgen.errors import FdgenError
from fdgen.progress import progress_bar
from fdgen.runners import default_workers

if TYPE_CHECKING:
    from fdgen.families.base import Family

BATCH = 128  # candidates per task: ~0.1 s of work, small against joblib's overhead


def _comparable(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "categories"}


def _searched_from(preset: str | None) -> str:
    return f"preset {preset}" if preset else "no preset"


def prepare_output(
    out: Path, type_: str, settings: dict, resume: bool, force: bool, preset: str | None = None
):
    """Check ``out`` against the requested search; return saved progress to continue from,
    None to start afresh, or "done" when the folder already holds this database.

    Writes nothing. Files fdgen did not write may be there: the search goes alongside them.
    """
    wanted = {"type": type_, **_preset_key(preset), **settings}
    if out.exists() and not out.is_dir():
        raise FdgenError(f"--out: {out} exists and is not a folder")
    if not out.is_dir():
        return None
    meta = read_meta(out)  # a db.yaml that is not fdgen's is refused, even with --force
    if force:
        return None
    progress = load_progress(out)
    if meta is None and progress is None:
        cats = out / CATEGORY_DIR
        if cats.is_dir() and any(written_by_search(p, True) for p in cats.iterdir()):
            raise FdgenError(
                f"--out: {cats} holds category files but {out} has no {META_FILE} or search "
                "progress, so their settings are unknown; use --force to replace them or "
                "choose another --out"
            )
        return None
    if meta is not None:
        held = {"type": meta["type"], **_preset_key(meta.get("preset")), **meta.get("settings", {})}
    else:
        held = progress["settings"]
    if held.get("preset") != preset:
        raise FdgenError(
            f"--out: {out} holds a database searched from {_searched_from(held.get('preset'))}, "
            f"this search is from {_searched_from(preset)}; use --force to replace it or "
            "choose another --out"
        )
    if _comparable(held) != _comparable(wanted):
        changed = sorted(k for k in set(held) | set(wanted) if held.get(k) != wanted.get(k))
        raise FdgenError(
            f"--out: {out} holds a database made with different settings "
            f"({', '.join(changed)}); use --force to replace it or choose another --out"
        )
    if meta is not None:
        if progress is not None and _comparable(progress["settings"]) != _comparable(held):
            progress = None  # left by a --force run killed before it removed db.yaml
        if meta["categories"] == settings["categories"]:
            return "done"
        if meta["categories"] > settings["categories"] or progress is None:
            raise FdgenError(
                f"--out: {out} holds {meta['categories']} categories, not "
                f"{settings['categories']}; use --force to replace it"
            )
        if not resume:
            raise FdgenError(
                f"--out: {out} holds {meta['categories']} of these categories; pass --resume "
                f"to extend it to {settings['categories']} or --force to start over"
            )
        return progress
    if not resume:
        raise FdgenError(
            f"--out: {out} holds an unfinished search with these settings; "
            "pass --resume to continue it or --force to start over"
        )
    return progress


def _remove_stale(out: Path, family: Family, accepted: int) -> None:
    """Delete the category files past the ``accepted`` ones of the saved progress (an
    interrupted batch, redone), those of other families and the temporaries of killed
    writes. Only names fdgen writes are touched."""
    for path in (out / CATEGORY_DIR).iterdir():
        if not written_by_search(path, in_categories=True):
            continue
        stem, _, suffix = path.name.partition(".")
        if path.name.startswith(".") or "." + suffix != family.category_suffix:
            path.unlink()
        elif int(stem) >= accepted:
            path.unlink()
    for path in out.glob(".*.tmp*"):
        if written_by_search(path, in_categories=False):
            path.unlink()


def _check_resumable(out: Path, family: Family, accepted: int, target: int) -> None:
    """The saved progress must fit the folder: its accepted categories on disk, no more than
    ``target`` of them (the search would never stop)."""
    path = out / PROGRESS_FILE
    if accepted > target:
        raise FdgenError(
            f"{path}: records {accepted} accepted categories, more than --categories {target}; "
            f"ask for at least {accepted} or use --force to start over"
        )
    names = (f"{k:05d}{family.category_suffix}" for k in range(accepted))
    lost = next((n for n in names if not (out / CATEGORY_DIR / n).is_file()), None)
    if lost is not None:
        raise FdgenError(
            f"{path}: records {accepted} accepted categories but {CATEGORY_DIR}/{lost} is "
            "missing; use --force to start over"
        )


def run_search(
    family: Family,
    settings,
    out: Path,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    show_progress: bool = True,
    preset: str | None = None,
) -> dict:
    """Search ``settings.categories`` categories into the database folder ``out``.

    ``preset``: the name of the preset ``settings`` come from (with any overrides); ``db.yaml``
    records it, so that a render of the folder uses the preset's render settings.
    Returns the metadata written to ``db.yaml`` (or already there, for a finished folder), plus
    ``left``: the files of ``out`` fdgen did not write, which it leaves alone.
    """
    out = Path(out)
    config = dataclasses.asdict(settings)
    state = prepare_output(out, family.type, config, resume, force, preset)
    if state == "done":
        return read_meta(out) | {"already_complete": True, "left": foreign_files(out)}
    try:
        (out / CATEGORY_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FdgenError(f"--out: cannot create {out / CATEGORY_DIR} ({exc.strerror})") from None
    if not os.access(out / CATEGORY_DIR, os.W_OK):
        raise FdgenError(f"--out: {out} is not writable")
    progress = state or {
        "settings": {"type": family.type, **_preset_key(preset), **config},
        "next_candidate": 0,
        "rng_state": None,
        "tried": 0,
        "diverged": 0,
        "fill_rates": [],
        "elapsed_s": 0.0,
    }
    if state is not None:  # checked before anything changes
        _check_resumable(out, family, len(progress["fill_rates"]), target=settings.categories)
    # Crash safety: before a category file changes, the folder must read as unfinished (a
    # progress file and no db.yaml), so that a kill at any instant leaves either a complete
    # database or one that `load_database` refuses and --resume completes. The saved settings
    # take the requested category count, which may grow.
    progress["settings"] = {"type": family.type, **_preset_key(preset), **config}
    if state is None:
        save_progress(out, progress)
    (out / META_FILE).unlink(missing_ok=True)  # extending, or replacing it with --force
    accepted = len(progress["fill_rates"])
    _remove_stale(out, family, accepted)
    target = settings.categories
    from joblib import Parallel, delayed  # deferred with the search: 0.2 s to import

    workers = workers or default_workers()
    started = time.perf_counter()
    elapsed_before = progress["elapsed_s"]
    pending: deque = deque()

    def tasks():
        for spec, rng_after in family.candidate_specs(
            settings, progress["next_candidate"], progress["rng_state"], BATCH
        ):
            pending.append(rng_after)
            yield delayed(family.evaluate_candidates)(settings, spec)

    last_index = progress["next_candidate"] - 1
    # catch_warnings: the filter below is scoped, a library call leaves the caller's as they were
    with progress_bar("search", target, "categories") as update, warnings.catch_warnings():
        update(accepted)
        results = Parallel(n_jobs=workers, return_as="generator", pre_dispatch="2*n_jobs")(tasks())
        warnings.filterwarnings("ignore", message=".*tasks which were still being processed")
        try:
            for batch in results:
                rng_after = pending.popleft()
                at_batch_start = {**progress, "fill_rates": list(progress["fill_rates"])}
                for cand in batch:
                    if accepted == target:
                        break
                    progress["tried"] += 1
                    progress["diverged"] += cand.diverged
                    last_index = cand.index
                    if cand.accepted:
                        name = f"{accepted:05d}{family.category_suffix}"
                        write_atomic(out / CATEGORY_DIR / name, family.format_category(cand.params))
                        score = cand.score  # None for families without a filter
                        progress["fill_rates"].append(None if score is None else round(score, 6))
                        accepted += 1
                        update(1)
                rate = accepted / max(progress["tried"], 1)
                update(0, f"tried {progress['tried']:,}  accepted {rate:.2%}")
                if accepted == target:
                    # Keep the state at this batch's start: a later, larger --resume redoes it.
                    save_progress(out, at_batch_start)
                    break
                progress["next_candidate"] = batch[-1].index + 1
                progress["rng_state"] = rng_after
                progress["elapsed_s"] = elapsed_before + time.perf_counter() - started
                save_progress(out, progress)
        finally:
            results.close()
    elapsed = elapsed_before + time.perf_counter() - started
    meta = {
        "type": family.type,
        **_preset_key(preset),
        "fdgen_version": __version__,
        "categories": target,
        "settings": config,
        "candidates_tried": last_index + 1,
        "diverged_candidates": progress["diverged"],
        "elapsed_s": round(elapsed, 3),
    }
    if family.score_name and any(score is not None for score in progress["fill_rates"]):
        # Each kept category's filter score, under the family's name for it.
        meta[family.score_name] = progress["fill_rates"]
    write_atomic(out / META_FILE, _dump_yaml(meta))
    return meta | {"left": foreign_files(out)}


def _preset_key(preset: str | None) -> dict:
    """``{"preset": name}``, or nothing for a search without a preset (db.yaml as before)."""
    return {"preset": preset} if preset else {}


def _dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
