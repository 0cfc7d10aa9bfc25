"""Transfer experiment: does an fdgen dataset pre-train a CNN for real images?

Pre-trains a small CNN (4 conv + BN layers, 1 x 32 x 32 input) on the shards of any
single-label family written by ``fdgen render`` (FractalDB, SVD fractals, 1p-frac, RCDB,
VisualAtom, ...; read back with webdataset, converted to grey), then fine-tunes all layers on
a small balanced subset of Fashion-MNIST and evaluates on its full 10,000-image test set,
against the same network trained from random initialisation with the same schedule. Also: a
frozen-feature linear probe, a control pre-trained on the same images with shuffled labels,
and a larger subset. Prints a table, writes results.json, results.md and a PNG plot (OpenCV).

    python examples/transfer/transfer.py --shards out/transfer/FractalDB-1k/shards \
        --out out/transfer/FractalDB-1k --baseline out/transfer/baseline.json

The scratch and random-init runs do not depend on the pre-training data; ``--baseline FILE``
keeps them in FILE (keyed by the downstream protocol) so that runs on several families
compute them once. ``compare.py`` puts several families' results in one table.

See docs/training.md for the results and ``make transfer`` for the whole pipeline.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds
from torch import nn

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = 10
SIZE = 32
STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.0f} s] {message}", flush=True)


# --- data -----------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise SystemExit(f"{path}: not an idx file of unsigned bytes")
    shape = [int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion(folder: Path) -> dict[str, np.ndarray]:
    """Fashion-MNIST, images zero-padded from 28 x 28 to 32 x 32 (the background is 0)."""
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        out[f"{split}_x"] = np.pad(images, ((0, 0), (2, 2), (2, 2)))
        out[f"{split}_y"] = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return out


def load_shards(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every image and label of an fdgen shard folder (via its _info.json), resized to 32.
    Colour images are converted to grey (webdataset's ``l8``: ITU-R 601 luma)."""
    info = json.loads((folder / "_info.json").read_text())["splits"]["train"]
    urls = [str(folder / name) for name in info["filenames"]]
    with wds.WebDataset(urls[:1], shardshuffle=False) as first:
        sample = next(iter(first))
    if "cls" not in sample:
        found = ", ".join(sorted(k for k in sample if not k.startswith("__")))
        raise SystemExit(
            f"{folder}: samples carry no .cls label (found: {found}); the transfer experiment "
            "needs a single-label family (per-image families such as svdmulti and segrcdb "
            "are not applicable)"
        )
    pipeline = wds.WebDataset(urls, shardshuffle=False).decode("l8").to_tuple("png;jpg", "cls")
    images, labels = [], []
    for image, label in pipeline:
        if image.shape != (SIZE, SIZE):
            image = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        images.append(image)
        labels.append(int(label))
    if len(images) != info["num_samples"]:
        raise SystemExit(f"{folder}: read {len(images)} samples, _info.json lists more")
    return np.stack(images), np.array(labels, np.int64)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W -> float N x 1 x H x W, standardised per image set, channels-last."""
    x = torch.from_numpy(images).float().div_(255)
    x = (x - x.mean()) / x.std()
    return x[:, None].contiguous(memory_format=torch.channels_last)


def balanced_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` random indices of every class."""
    rng = np.random.default_rng([seed, per_class])
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


# --- model and training ---------------------------------------------------------------------


class Net(nn.Module):
    """4 x (conv 3x3, BN, ReLU), max-pooling after the first three, global average pool."""

    def __init__(self, classes: int, widths=(24, 48, 96, 192)):
        super().__init__()
        layers, channels = [], 1
        for k, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False)]
            layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if k < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, classes)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def augment(x: torch.Tensor, gen: torch.Generator, scale: tuple[float, float]) -> torch.Tensor:
    """Random resized crop (area fraction in ``scale``, aspect 3/4-4/3) + horizontal flip."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=gen)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[:, 1]
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1)
    tx = (1 - sx) * (2 * u[:, 2] - 1)
    ty = (1 - sy) * (2 * u[:, 3] - 1)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False).contiguous(memory_format=torch.channels_last)


def train(
    model: Net,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    scale: tuple[float, float],
    label: str = "",
) -> float:
    """SGD with momentum, cosine learning rate, weight decay 5e-4, fresh random batches;
    the final running (exponentially averaged) loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.15)
    model.train()
    order = torch.randperm(len(x), generator=gen)
    pos, running = 0, 0.0
    for step in range(steps):
        if pos + batch > len(order):
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos : pos + batch]
        pos += batch
        loss = F.cross_entropy(model(augment(x[idx], gen, scale)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if label and (step + 1) % max(1, steps // 5) == 0:
            log(f"  {label}: step {step + 1}/{steps}, loss {running:.3f}")
    return running


@torch.no_grad()
def features(model: Net, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model.features(x[k : k + batch]) for k in range(0, len(x), batch)])


def accuracy(model: Net, x: torch.Tensor, y: torch.Tensor) -> float:
    logits = model.head(features(model, x))
    return 100.0 * (logits.argmax(1) == y).float().mean().item()


def linear_probe(train_f, train_y, test_f, test_y, l2: float = 1e-2) -> float:
    """Multinomial logistic regression (L-BFGS, L2) on standardised frozen features."""
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6
    a, b = (train_f - mean) / std, (test_f - mean) / std
    w = torch.zeros(a.shape[1], CLASSES, requires_grad=True)
    bias = torch.zeros(CLASSES, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1, max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, train_y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return 100.0 * ((b @ w + bias).argmax(1) == test_y).float().mean().item()


# --- report ---------------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    """Mean +- sample standard deviation (a single value as is)."""
    arr = np.array(values)
    return f"{arr[0]:.2f}" if len(arr) == 1 else f"{arr.mean():.2f} +- {arr.std(ddof=1):.2f}"


def table(results: dict) -> str:
    seeds = results["seeds"]
    rows = ["| measurement | scratch / random init | pre-trained | gain | gain per seed | ahead |"]
    rows.append("|---|---|---|---|---|---|")
    for name, key in results["rows"]:
        base, pre = results[key]["base"], results[key]["pre"]
        gains = [p - b for p, b in zip(pre, base, strict=True)]
        per_seed = " ".join(f"{g:+.2f}" for g in gains)
        ahead = f"{sum(g > 0 for g in gains)}/{len(gains)}"
        rows.append(
            f"| {name} | {summary(base)} | {summary(pre)} | {np.mean(gains):+.2f} | "
            f"{per_seed} | {ahead} |"
        )
    control = results.get("control")
    if control:
        for name, key in (("fine-tune, 200", "finetune"), ("linear probe, 200", "probe")):
            base = results[key]["base"][: len(control[key])]
            gains = [c - b for c, b in zip(control[key], base, strict=True)]
            rows.append(
                f"| control (shuffled labels): {name} | {summary(base)} | "
                f"{summary(control[key])} | {np.mean(gains):+.2f} | "
                + " ".join(f"{g:+.2f}" for g in gains)
                + f" | {sum(g > 0 for g in gains)}/{len(gains)} |"
            )
    elapsed = results.get("elapsed_s", 0) / 60
    return "\n".join(rows) + (
        f"\n\nseeds: {seeds}; test set: 10,000 Fashion-MNIST images; wall time {elapsed:.1f} min\n"
    )


def plot(results: dict, path: Path) -> None:
    """Per-seed accuracies, scratch vs pre-trained, one panel per measurement (OpenCV)."""
    panels = [(name, results[key]) for name, key in results["rows"]]
    w, h, margin = 360, 300, 50
    img = np.full((h, w * len(panels), 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for p, (name, res) in enumerate(panels):
        x0 = p * w
        vals = res["base"] + res["pre"]
        lo, hi = math.floor(min(vals) - 1), math.ceil(max(vals) + 1)

        def ypix(v, lo=lo, hi=hi):
            return int(h - margin - (v - lo) / (hi - lo) * (h - 2 * margin))

        cv2.putText(img, name, (x0 + 10, 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for tick in np.linspace(lo, hi, 5):
            y = ypix(tick)
            cv2.line(img, (x0 + margin, y), (x0 + w - 15, y), (225, 225, 225), 1)
            cv2.putText(img, f"{tick:.1f}", (x0 + 5, y + 4), font, 0.35, (80, 80, 80), 1)
        xs = [x0 + margin + 40, x0 + w - 70]
        for a, b in zip(res["base"], res["pre"], strict=True):
            color = (60, 160, 60) if b > a else (60, 60, 200)
            cv2.line(img, (xs[0], ypix(a)), (xs[1], ypix(b)), color, 1, cv2.LINE_AA)
            cv2.circle(img, (xs[0], ypix(a)), 4, (120, 120, 120), -1, cv2.LINE_AA)
            cv2.circle(img, (xs[1], ypix(b)), 4, (200, 110, 30), -1, cv2.LINE_AA)
        names = ("random init" if "probe" in name else "scratch", "pre-trained")
        for x, text, v in zip(xs, names, (res["base"], res["pre"]), strict=True):
            cv2.putText(img, text, (x - 30, h - 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            mean = f"mean {np.mean(v):.2f}"
            cv2.putText(img, mean, (x - 30, h - 32), font, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.putText(img, "accuracy % (per seed)", (5, h - 2), font, 0.35, (80, 80, 80), 1)
    cv2.imwrite(str(path), img)


# --- experiment -----------------------------------------------------------------------------
# Work runs in ``--jobs`` processes of one torch thread each (both pre-trainings at once, then
# the fine-tuning runs): on a small shared CPU this beats multi-threaded kernels. Every task is
# seeded on its own, so the results do not depend on the number of processes.

DATA: dict = {}


def _init_worker(args) -> None:
    torch.set_num_threads(1)
    fashion = load_fashion(args.fashion)
    DATA["args"] = args
    DATA["train_x"], DATA["train_y"] = to_tensor(fashion["train_x"]), fashion["train_y"]
    DATA["test_x"], DATA["test_y"] = (
        to_tensor(fashion["test_x"]),
        torch.from_numpy(fashion["test_y"]),
    )


def _pretrain_task(label: str) -> dict:
    """Pre-train on the shards (``label`` "real" or "shuffled"): the state dict, the final
    running loss, the number of classes and the seconds it took."""
    args = DATA["args"]
    started = time.perf_counter()
    images, labels = load_shards(args.shards)
    x, y = to_tensor(images), torch.from_numpy(labels)
    if label == "shuffled":
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    classes = int(labels.max()) + 1
    torch.manual_seed(0)
    model = Net(classes)
    steps = int(args.pretrain_epochs * len(x)) // args.pretrain_batch
    log(f"pre-training ({label} labels): {len(x):,} images, {classes} classes, {steps} steps")
    loss = train(
        model, x, y, steps, args.pretrain_batch, args.pretrain_lr, 0, args.pretrain_scale, label
    )
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return {
        "state": state,
        "loss": loss,
        "classes": classes,
        "images": len(x),
        "seconds": time.perf_counter() - started,
    }


def _backbone(state: dict | None) -> Net:
    """A pre-trained backbone from a state dict, or (None) the fixed random one."""
    torch.manual_seed(12345)
    model = Net(state["head.weight"].shape[0] if state else CLASSES)
    if state is not None:
        model.load_state_dict(state)
    return model


def _subset(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.from_numpy(balanced_subset(DATA["train_y"], size // 10, seed))
    return DATA["train_x"][idx], torch.from_numpy(DATA["train_y"])[idx]


def _finetune_task(state: dict | None, size: int, seed: int) -> float:
    """Fine-tune all layers from ``state`` (None: from scratch); test accuracy in %."""
    args = DATA["args"]
    x, y = _subset(size, seed)
    torch.manual_seed(seed)
    model = Net(CLASSES)
    if state is not None:
        model.features.load_state_dict(
            {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        )
    train(model, x, y, args.finetune_steps, args.finetune_batch, args.finetune_lr, seed, (0.6, 1.0))
    return accuracy(model, DATA["test_x"], DATA["test_y"])


def _probe_task(name: str, state: dict | None, size: int, seed: int) -> float:
    """Linear probe on the frozen backbone ``state`` (None: random init); test accuracy in %."""
    key = ("test_features", name)
    model = _backbone(state)
    if key not in DATA:
        DATA[key] = features(model, DATA["test_x"])
    x, y = _subset(size, seed)
    return linear_probe(features(model, x), y, DATA[key], DATA["test_y"])


# --- baseline cache -------------------------------------------------------------------------
# Scratch fine-tuning and the random-init probe see no pre-training data: for one downstream
# protocol they are the same on every family, so a run on several families computes them once.

BASELINE_FIELDS = (
    "seeds",
    "subset",
    "large_subset",
    "large_seeds",
    "finetune_steps",
    "finetune_batch",
    "finetune_lr",
)


def baseline_key(args: argparse.Namespace) -> dict:
    """What the scratch and random-init results depend on."""
    key = {name: getattr(args, name) for name in BASELINE_FIELDS}
    key["torch"] = torch.__version__
    return key


def read_baseline(path: Path | None, key: dict) -> dict | None:
    """The cached baseline results for ``key``, or None (no file, or another protocol)."""
    if path is None or not path.exists():
        return None
    entries = json.loads(path.read_text())
    return next((e["results"] for e in entries if e["key"] == key), None)


def write_baseline(path: Path | None, key: dict, results: dict) -> None:
    if path is None:
        return
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if e["key"] != key] + [{"key": key, "results": results}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1))


def shard_summary(folder: Path) -> dict:
    """Family, preset, render settings and render speed of a shard folder (its manifest)."""
    path = folder / "manifest.json"
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text())
    identity = manifest.get("identity", {})
    return {
        "type": identity.get("type"),
        "preset": manifest.get("database_preset"),
        "settings": identity.get("settings"),
        "render_s": manifest.get("elapsed_s"),
        "images_per_s": manifest.get("images_per_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=Path, required=True, help="fdgen shard folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for results and plot")
    parser.add_argument("--fashion", type=Path, default=FASHION)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--subset", type=int, default=200, help="labelled fine-tuning images")
    parser.add_argument("--large-subset", type=int, default=1000, help="0 to skip")
    parser.add_argument("--large-seeds", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=float, default=15)
    parser.add_argument("--pretrain-batch", type=int, default=128)
    parser.add_argument("--pretrain-lr", type=float, default=0.1)
    parser.add_argument("--pretrain-scale", type=float, nargs=2, default=(0.35, 1.0))
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--finetune-batch", type=int, default=32)
    parser.add_argument("--finetune-lr", type=float, default=0.05)
    parser.add_argument("--no-control", action="store_true", help="skip the shuffled-label run")
    parser.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="JSON file that keeps the scratch and random-init results of this downstream "
        "protocol, so that runs on other families reuse them (computed if missing)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("t10k-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        if not (args.fashion / name).exists():
            raise SystemExit(
                f"{args.fashion / name}: missing; apt-get install dataset-fashion-mnist"
            )
    if not (args.shards / "_info.json").exists():
        raise SystemExit(f"{args.shards}: no _info.json; render the shards first (make transfer)")

    seeds = list(range(args.seeds))
    large_seeds = list(range(args.large_seeds if args.large_subset else 0))
    key = baseline_key(args)
    cached = read_baseline(args.baseline, key)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, context, _init_worker, (args,)) as pool:
        labels = ["real"] + ([] if args.no_control else ["shuffled"])
        pretraining = {label: pool.submit(_pretrain_task, label) for label in labels}
        jobs: dict = {}
        if cached is None:  # the baselines run next to the pre-training
            for seed in seeds:
                jobs["finetune", "base", seed] = pool.submit(
                    _finetune_task, None, args.subset, seed
                )
                jobs["probe", "base", seed] = pool.submit(
                    _probe_task, "base", None, args.subset, seed
                )
            for seed in large_seeds:
                jobs["large", "base", seed] = pool.submit(
                    _finetune_task, None, args.large_subset, seed
                )
        else:
            log(f"scratch and random-init results from {args.baseline}")
        runs = {label: future.result() for label, future in pretraining.items()}
        log("pre-training done; fine-tuning and probing")
        pre = runs["real"]["state"]
        control = runs["shuffled"]["state"] if "shuffled" in runs else None
        for seed in seeds:
            jobs["finetune", "pre", seed] = pool.submit(_finetune_task, pre, args.subset, seed)
            jobs["probe", "pre", seed] = pool.submit(_probe_task, "pre", pre, args.subset, seed)
        if control is not None:
            jobs["control", "finetune", 0] = pool.submit(_finetune_task, control, args.subset, 0)
            jobs["control", "probe", 0] = pool.submit(
                _probe_task, "control", control, args.subset, 0
            )
        for seed in large_seeds:
            jobs["large", "pre", seed] = pool.submit(_finetune_task, pre, args.large_subset, seed)
        done = {job: future.result() for job, future in jobs.items()}

    if cached is None:
        cached = {
            what: [done[what, "base", s] for s in (large_seeds if what == "large" else seeds)]
            for what in ("finetune", "probe", "large")
        }
        write_baseline(args.baseline, key, cached)
    results = {"seeds": seeds, "args": {k: str(v) for k, v in vars(args).items()}}
    results["shards"] = shard_summary(args.shards)
    results["pretrain"] = {
        label: {k: v for k, v in run.items() if k != "state"} for label, run in runs.items()
    }
    results["rows"] = [
        (f"fine-tune, {args.subset} images", "finetune"),
        (f"linear probe, {args.subset} images", "probe"),
    ]
    for what in ("finetune", "probe"):
        results[what] = {"base": cached[what], "pre": [done[what, "pre", s] for s in seeds]}
    if control is not None:
        results["control"] = {w: [done["control", w, 0]] for w in ("finetune", "probe")}
    if args.large_subset:
        results["rows"].append((f"fine-tune, {args.large_subset} images", "large"))
        results["large"] = {
            "base": cached["large"],
            "pre": [done["large", "pre", s] for s in large_seeds],
        }
    results["elapsed_s"] = round(time.perf_counter() - STARTED, 1)
    text = table(results)
    print("\n" + text)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "transfer.png")
    log(f"wrote {args.out / 'results.md'}, results.json and transfer.png")


if __name__ == "__main__":
    main()
