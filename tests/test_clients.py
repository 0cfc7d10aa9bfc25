"""timm on fdgen shards, in the separate venv of `make test-clients` (marker ``clients``).

torchvision does not import beside the main venv's torch 2.13.0, so these run in
``.venv-clients`` (torch 2.14.1, torchvision 0.29.1, timm ``TIMM_VERSION`` of the Makefile,
fdgen installed from this checkout) and are deselected in `make test`.

* ``test_timm_library_trains_and_evaluates``: timm's own WebDataset reader
  (``create_dataset("wds/...")``), loader and model on fdgen shards, one epoch and an eval.
* ``test_timm_train_py_one_epoch``: timm's ``train.py`` itself, one epoch on the CPU. timm's
  wheel and sdist do not ship ``train.py`` (it lives only in timm's git repository), so this
  runs when ``TIMM_TRAIN_PY`` names a copy of the ``train.py`` of the installed timm version
  (e.g. ``git show v1.0.28:train.py`` in a clone) and is skipped, saying so, otherwise.
* ``test_torchvision_imagefolder_reads_the_files_writer``: ``torchvision.datasets.ImageFolder``
  on ``fdgen render --writer files``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.clients

CATEGORIES, INSTANCES, SIZE, PER_SHARD, BATCH = 10, 20, 32, 40, 20
TRAIN_SPLIT = "train"
# The validation split timm evaluates on (fdgen's held-out split), and the render options
# that write it.
VAL_SPLIT, VAL_OPTIONS, VAL_SAMPLES = "val", ["--val-instances", "4"], CATEGORIES * 4


def fdgen(*args: str) -> str:
    """Run this venv's ``fdgen`` command; its output."""
    command = [sys.executable, "-c", "from fdgen.cli import main; main()", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """A tiny FractalDB: the first 10 FractalDB-1k categories x 20 instances of 32 px, in
    shards of equal length (timm's wds reader splits samples evenly over shards)."""
    root = tmp_path_factory.mktemp("clients")
    db, out = root / "fractaldb", root / "fractaldb-shards"
    fdgen("search", "--preset", "FractalDB-1k", "--categories", CATEGORIES, "--out", db)
    fdgen(
        "render", "--db", db, "--instances", INSTANCES, "--size", SIZE,
        "--samples-per-shard", PER_SHARD, "--shards", out, *VAL_OPTIONS,
    )  # fmt: skip
    info = json.loads((out / "_info.json").read_text())["splits"]
    assert len(set(info[TRAIN_SPLIT]["shard_lengths"])) == 1
    return out


def test_timm_library_trains_and_evaluates(shards):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from timm.data import create_dataset, create_loader
    from timm.utils import accuracy

    cpu = torch.device("cpu")

    def loader(split: str, training: bool):
        dataset = create_dataset(
            "wds/fractaldb", root=str(shards), split=split, is_training=training,
            batch_size=BATCH,
        )  # fmt: skip
        return create_loader(
            dataset, input_size=(3, SIZE, SIZE), batch_size=BATCH, is_training=training,
            no_aug=True, num_workers=0, persistent_workers=False, device=cpu,
            use_prefetcher=False,
        )  # fmt: skip

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=CATEGORIES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    seen, losses = Counter(), []
    for images, targets in loader(TRAIN_SPLIT, True):
        assert images.shape[1:] == (3, SIZE, SIZE)
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen.update(targets.tolist())
        losses.append(loss.item())
    assert sum(seen.values()) == CATEGORIES * INSTANCES  # one epoch: every sample once
    assert set(seen) == set(range(CATEGORIES))

    model.eval()
    correct, labels = 0.0, Counter()
    with torch.no_grad():
        for images, targets in loader(VAL_SPLIT, False):
            top1 = accuracy(model(images), targets, topk=(1,))[0].item()
            correct += top1 * len(targets) / 100
            labels.update(targets.tolist())
    assert sum(labels.values()) == VAL_SAMPLES
    assert labels == Counter({k: VAL_SAMPLES // CATEGORIES for k in range(CATEGORIES)})
    top1 = 100 * correct / VAL_SAMPLES
    assert 0 <= top1 <= 100 and all(map(lambda x: x == x, losses))  # finite, not NaN
    print(f"timm library: {len(losses)} steps, last loss {losses[-1]:.3f}, eval top-1 {top1:.1f}")


def test_timm_train_py_one_epoch(shards, tmp_path):
    train_py = os.environ.get("TIMM_TRAIN_PY")
    if not train_py:
        pytest.skip(
            "TIMM_TRAIN_PY is not set: timm's train.py is not in its wheel or sdist; point it "
            "at the train.py of the installed timm version (docs/training.md)"
        )
    command = [
        sys.executable, train_py, "--dataset", "wds/fractaldb", "--data-dir", str(shards),
        "--train-split", TRAIN_SPLIT, "--val-split", VAL_SPLIT, "--model", "resnet10t",
        "--num-classes", str(CATEGORIES), "--img-size", str(SIZE), "--batch-size", str(BATCH),
        "--epochs", "1", "--workers", "1", "--device", "cpu", "--output", str(tmp_path),
        "--log-interval", "5",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    steps = CATEGORIES * INSTANCES // BATCH
    assert f"[{steps - 1:4d}/{steps} (100%)]" in output, output  # every training batch
    assert re.search(r"Test: \[.*Acc@1:", output), output
    stdout = done.stdout
    result = json.loads(stdout[stdout.index("--result") + len("--result") :].strip())
    assert 0 <= result[0]["validation"]["top1"] <= 100


def test_torchvision_imagefolder_reads_the_files_writer(shards, tmp_path):
    """The original FractalDB training scripts' loader on ``--writer files``: one class per
    category folder, numbered as fdgen's labels, the same pixels as the tar shards."""
    pytest.importorskip("torchvision")
    import numpy as np
    import webdataset as wds
    from torchvision import datasets

    db = shards.parent / "fractaldb"
    out = tmp_path / "files"
    fdgen(
        "render", "--db", db, "--instances", INSTANCES, "--size", SIZE,
        "--samples-per-shard", PER_SHARD, "--shards", out, "--writer", "files",
    )  # fmt: skip
    folder = datasets.ImageFolder(str(out))
    assert len(folder) == CATEGORIES * INSTANCES
    assert len(folder.classes) == CATEGORIES
    assert Counter(label for _, label in folder.samples) == Counter(
        {k: INSTANCES for k in range(CATEGORIES)}
    )
    tar_images = {}
    urls = [str(p) for p in sorted(shards.glob("shard-*.tar"))]
    for key, image, label in (
        wds.WebDataset(urls, shardshuffle=False).decode("l8").to_tuple("__key__", "png", "cls")
    ):
        tar_images[key] = (np.asarray(image), int(label))
    assert len(tar_images) == len(folder)
    for path, label in folder.samples:
        key = Path(path).stem
        pixels, tar_label = tar_images[key]
        assert label == tar_label, path
        assert np.array_equal(np.asarray(folder.loader(path).convert("L")), pixels), path
