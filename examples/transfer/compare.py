"""One table of several families' transfer results (``transfer.py`` runs with one protocol).

    python examples/transfer/compare.py --root out/transfer FractalDB-1k SVDFractal-1k ...

Reads ROOT/PRESET/results.json for every preset named and ROOT/wall-times.txt (lines
``PRESET SECONDS``, written by ``make transfer-compare``; the last line of a preset wins),
checks that every run used the same downstream and pre-training settings and the same
baseline, and writes ROOT/compare.md and ROOT/compare.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

# transfer.py arguments that must agree for the rows to be comparable
PROTOCOL = (
    "seeds",
    "subset",
    "large_subset",
    "large_seeds",
    "pretrain_epochs",
    "pretrain_batch",
    "pretrain_lr",
    "pretrain_scale",
    "finetune_steps",
    "finetune_batch",
    "finetune_lr",
)


def mean_sd(values: list[float]) -> str:
    arr = np.array(values)
    return f"{arr[0]:.2f}" if len(arr) == 1 else f"{arr.mean():.2f} +- {arr.std(ddof=1):.2f}"


def gain_cell(result: dict) -> str:
    """Pre-trained accuracy; the paired gain over the baseline +- its standard error (sample
    standard deviation of the per-seed gains / sqrt(seeds)); how many seeds are ahead."""
    gains = np.array([p - b for p, b in zip(result["pre"], result["base"], strict=True)])
    ahead = int((gains > 0).sum())
    error = f" +- {gains.std(ddof=1) / np.sqrt(len(gains)):.2f}" if len(gains) > 1 else ""
    return f"{mean_sd(result['pre'])} ({gains.mean():+.2f}{error}, {ahead}/{len(gains)})"


def wall_times(path: Path) -> dict[str, int]:
    times: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, seconds = line.partition(" ")
            if seconds.strip().isdigit():
                times[name] = int(seconds)
    return times


def minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder of the per-preset runs")
    parser.add_argument("presets", nargs="+")
    args = parser.parse_args()
    runs = {}
    for preset in args.presets:
        path = args.root / preset / "results.json"
        if not path.exists():
            raise SystemExit(f"{path}: missing; run make transfer PRESET={preset}")
        runs[preset] = json.loads(path.read_text())
    first_preset, first = next(iter(runs.items()))
    for preset, run in runs.items():
        for name in PROTOCOL:
            if run["args"][name] != first["args"][name]:
                raise SystemExit(
                    f"{preset}: --{name.replace('_', '-')} {run['args'][name]} differs from "
                    f"{first_preset}'s {first['args'][name]}; rerun with one protocol"
                )
        for what in ("finetune", "probe", "large"):
            if what in run and run[what]["base"] != first[what]["base"]:
                raise SystemExit(f"{preset}: its {what} baseline differs from {first_preset}'s")
    times = wall_times(args.root / "wall-times.txt")
    a = first["args"]
    small, large = a["subset"], a["large_subset"]
    header = (
        f"| pre-training data | pre-train loss | fine-tune, {small} images | "
        f"linear probe, {small} images | fine-tune, {large} images | wall time |"
    )
    rows = [header, "|---|---|---|---|---|---|"]
    rows.append(
        f"| none (scratch / random init) | | {mean_sd(first['finetune']['base'])} | "
        f"{mean_sd(first['probe']['base'])} | {mean_sd(first['large']['base'])} | |"
    )
    table = {"protocol": {n: a[n] for n in PROTOCOL}, "families": {}}
    for preset, run in runs.items():
        pretrain = run["pretrain"]["real"]
        loss = f"{pretrain['loss']:.2f} / {math.log(pretrain['classes']):.2f}"
        rows.append(
            f"| {preset} | {loss} | {gain_cell(run['finetune'])} | {gain_cell(run['probe'])} | "
            f"{gain_cell(run['large'])} | {minutes(times.get(preset))} |"
        )
        table["families"][preset] = {
            "pretrain": run["pretrain"]["real"],
            "shards": run.get("shards", {}),
            "wall_s": times.get(preset),
            **{what: run[what] for what in ("finetune", "probe", "large")},
        }
    text = "\n".join(rows) + "\n"
    print(text)
    (args.root / "compare.md").write_text(text)
    (args.root / "compare.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
