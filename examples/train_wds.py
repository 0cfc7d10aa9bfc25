"""Minimal PyTorch training over fdgen shards with webdataset.

    python examples/train_wds.py out/shards --epochs 2 --workers 2

Reads the shard list and sample count from ``_info.json`` (written by ``fdgen render``), then:
shard shuffle -> split shards over nodes (torch.distributed ranks) and DataLoader workers ->
sample shuffle buffer -> decode PNG/JPEG to tensors -> batches. Each rank runs a fixed number
of batches per epoch (``with_epoch``), so ranks stay in step even when shards do not divide
evenly. For multi-node runs start it with torchrun; ranks get their shards from
``wds.split_by_node``. The model is a small CNN; swap in your own.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import webdataset as wds
from torch import nn


def shard_urls(root: Path, split: str = "train") -> tuple[list[str], int, int]:
    """Shard paths, sample count and class count of an fdgen shard folder."""
    info = json.loads((root / "_info.json").read_text())["splits"][split]
    manifest = root / "manifest.json"
    classes = json.loads(manifest.read_text())["categories"] if manifest.exists() else None
    return [str(root / name) for name in info["filenames"]], info["num_samples"], classes


def to_input(image: torch.Tensor, size: int) -> torch.Tensor:
    """C x H x W float in [0, 1] -> grey 1 x size x size, roughly zero mean, unit spread."""
    image = image.mean(0, keepdim=True)
    if image.shape[-1] != size:
        image = F.interpolate(image[None], size=(size, size), mode="area")[0]
    return (image - 0.25) / 0.25


def make_loader(args, urls: list[str], num_samples: int, world_size: int) -> wds.WebLoader:
    """webdataset pipeline + DataLoader workers; an epoch is num_samples / world_size samples."""
    dataset = (
        wds.WebDataset(
            urls,
            shardshuffle=len(urls),  # shuffle the shard order (buffer holding all shards)
            nodesplitter=wds.split_by_node,  # rank r takes every world_size-th shard
            workersplitter=wds.split_by_worker,  # then each DataLoader worker its share
            seed=args.seed,
            empty_check=False,  # a rank or worker may get no shard when shards are few
        )
        .shuffle(args.buffer)  # sample shuffle buffer inside each worker
        .decode("torchrgb")  # PNG/JPEG -> float tensor C x H x W in [0, 1]
        .to_tuple("png;jpg", "cls")
        .map_tuple(lambda im: to_input(im, args.size), int)
        .batched(args.batch, partial=False)
    )
    loader = wds.WebLoader(dataset, batch_size=None, num_workers=args.workers)
    # Mix batches across workers, then cut every rank's epoch to the same number of batches.
    loader = loader.unbatched().shuffle(args.batch * 4).batched(args.batch)
    return loader.with_epoch(num_samples // (args.batch * world_size))


def small_cnn(classes: int) -> nn.Module:
    layers, channels = [], 1
    for k, width in enumerate((32, 64, 128, 256)):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)]
        layers += [nn.ReLU(inplace=True)] + ([nn.MaxPool2d(2)] if k < 3 else [])
        channels = width
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a small CNN on fdgen shards.")
    parser.add_argument("shards", type=Path, help="fdgen shard folder (holds _info.json)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--buffer", type=int, default=2000, help="sample shuffle buffer")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--size", type=int, default=32, help="input size (images resized)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    parser.add_argument("--max-steps", type=int, default=0, help="stop early (0: full epochs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:  # started by torchrun: one process per GPU/node slot
        torch.distributed.init_process_group("gloo")
    world_size = torch.distributed.get_world_size() if distributed else 1
    rank = torch.distributed.get_rank() if distributed else 0

    urls, num_samples, classes = shard_urls(args.shards)
    loader = make_loader(args, urls, num_samples, world_size)
    model = small_cnn(classes)
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    step = 0
    for epoch in range(args.epochs):
        started, seen, correct, total_loss = time.perf_counter(), 0, 0, 0.0
        for images, labels in loader:
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            total_loss += loss.item() * len(labels)
            step += 1
            if args.max_steps and step >= args.max_steps:
                break
        rate = seen / (time.perf_counter() - started)
        if rank == 0:
            print(
                f"epoch {epoch}: {seen} samples, loss {total_loss / max(seen, 1):.3f}, "
                f"train acc {100 * correct / max(seen, 1):.1f}%, {rate:.0f} samples/s",
                flush=True,
            )
        if args.max_steps and step >= args.max_steps:
            break
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
