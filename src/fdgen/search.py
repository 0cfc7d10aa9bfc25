"""The category search: evaluate candidates in parallel batches, keep the first N accepted.

Candidates are numbered; the result is the first ``categories`` accepted candidates in index
order, so it does not depend on the number of workers. Progress is saved after every batch,
so an interrupted search continues exactly where it stopped (``--resume``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import warnings
from collections import deque
from pathlib import Path
from types import ModuleType

import yaml
from joblib import Parallel, delayed

from fdgen import __version__
from fdgen.database import (
    CATEGORY_DIR,
    META_FILE,
    PROGRESS_FILE,
    load_progress,
    read_meta,
    save_progress,
    write_atomic,
)
from fdgen.errors import FdgenError
from fdgen.progress import progress_bar

BATCH = 128  # candidates per task: ~0.1 s of work, small against joblib's overhead


def default_workers() -> int:
    """All cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _comparable(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "categories"}


def prepare_output(out: Path, type_: str, settings: dict, resume: bool, force: bool):
    """Check ``out`` against the requested search; return saved progress to continue from,
    None to start afresh, or "done" when the folder already holds this database."""
    wanted = {"type": type_, **settings}
    if out.exists() and not out.is_dir():
        raise FdgenError(f"--out: {out} exists and is not a folder")
    if force and out.exists():
        shutil.rmtree(out / CATEGORY_DIR, ignore_errors=True)
        for name in (META_FILE, PROGRESS_FILE):
            (out / name).unlink(missing_ok=True)
    meta = read_meta(out) if out.exists() else None
    progress = load_progress(out) if out.exists() else None
    if meta is None and progress is None:
        if out.exists() and any(out.iterdir()):
            raise FdgenError(f"--out: {out} is not empty and holds no fdgen database; use --force")
        return None
    held = progress["settings"] if progress else {"type": meta["type"], **meta.get("settings", {})}
    if _comparable(held) != _comparable(wanted):
        changed = sorted(k for k in set(held) | set(wanted) if held.get(k) != wanted.get(k))
        raise FdgenError(
            f"--out: {out} holds a database made with different settings "
            f"({', '.join(changed)}); use --force to replace it or choose another --out"
        )
    if meta is not None:
        if meta["categories"] == settings["categories"]:
            return "done"
        if meta["categories"] > settings["categories"] or progress is None:
            raise FdgenError(
                f"--out: {out} holds {meta['categories']} categories, not "
                f"{settings['categories']}; use --force to replace it"
            )
    if not resume:
        raise FdgenError(
            f"--out: {out} holds an unfinished search with these settings; "
            "pass --resume to continue it or --force to start over"
        )
    return progress


def _check_resumable(out: Path, family: ModuleType, accepted: int, target: int) -> None:
    """The saved progress must fit the folder: its accepted categories on disk, no more than
    ``target`` of them (the search would never stop)."""
    path = out / PROGRESS_FILE
    if accepted > target:
        raise FdgenError(
            f"{path}: records {accepted} accepted categories, more than --categories {target}; "
            f"ask for at least {accepted} or use --force to start over"
        )
    names = (f"{k:05d}{family.CATEGORY_SUFFIX}" for k in range(accepted))
    lost = next((n for n in names if not (out / CATEGORY_DIR / n).is_file()), None)
    if lost is not None:
        raise FdgenError(
            f"{path}: records {accepted} accepted categories but {CATEGORY_DIR}/{lost} is "
            "missing; use --force to start over"
        )


def run_search(
    family: ModuleType,
    settings,
    out: Path,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    show_progress: bool = True,
) -> dict:
    """Search ``settings.categories`` categories into the database folder ``out``.

    Returns the metadata written to ``db.yaml`` (or already there, for a finished folder).
    """
    out = Path(out)
    config = dataclasses.asdict(settings)
    state = prepare_output(out, family.TYPE, config, resume, force)
    if state == "done":
        return read_meta(out) | {"already_complete": True}
    try:
        (out / CATEGORY_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FdgenError(f"--out: cannot create {out / CATEGORY_DIR} ({exc.strerror})") from None
    if not os.access(out / CATEGORY_DIR, os.W_OK):
        raise FdgenError(f"--out: {out} is not writable")
    progress = state or {
        "settings": {"type": family.TYPE, **config},
        "next_candidate": 0,
        "rng_state": None,
        "tried": 0,
        "diverged": 0,
        "fill_rates": [],
        "elapsed_s": 0.0,
    }
    accepted = len(progress["fill_rates"])
    if state is not None:
        _check_resumable(out, family, accepted, target=settings.categories)
    # Files past the last saved batch come from an interrupted batch; it is redone.
    for path in (out / CATEGORY_DIR).glob("*" + family.CATEGORY_SUFFIX):
        if not path.stem.isdigit() or int(path.stem) >= accepted:
            path.unlink()
    target = settings.categories
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
    with progress_bar("search", target, "categories") as update:
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
                        name = f"{accepted:05d}{family.CATEGORY_SUFFIX}"
                        write_atomic(out / CATEGORY_DIR / name, family.format_category(cand.params))
                        fill = cand.fill_rate  # None for families without a filter
                        progress["fill_rates"].append(None if fill is None else round(fill, 6))
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
        "type": family.TYPE,
        "fdgen_version": __version__,
        "categories": target,
        "settings": config,
        "candidates_tried": last_index + 1,
        "diverged_candidates": progress["diverged"],
        "elapsed_s": round(elapsed, 3),
    }
    if any(score is not None for score in progress["fill_rates"]):
        # Each kept category's filter score, under the family's name for it.
        meta[getattr(family, "SCORE_KEY", "fill_rates")] = progress["fill_rates"]
    write_atomic(out / META_FILE, _dump_yaml(meta))
    return meta


def _dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
