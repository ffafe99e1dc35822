"""Two-view loader throughput on a real image folder, in one run: the DALI loader (DALI decode + one fused_augment
call per batch) against MoCo's torchvision DataLoader with PIL TwoCropsTransform using every CPU core.

    python benchmarks/loader_report.py --data ~/tiny-imagenet-100/train --size 64 --out docs/loader_report.md
    python benchmarks/loader_report.py --data FOLDER --size 224 --device cuda      # DALI "mixed" decode on the GPU

Each loader reads the same files (the first ``--images`` of the folder, linked into a temporary folder) for
``--epochs`` epochs after one warm-up epoch; the table gives two-view images per second (median over epochs) and the
ratio to the torchvision loader. Builds nothing; DALI must be installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from inv_kernels.data.folders import ImageFolderIndex
from inv_kernels.io import atomic_write_bytes, atomic_write_json
from inv_kernels.reporting import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/benchmarks (the asv suite), as gpu_report.py
from benchmarks.bench_two_view import TwoViewLoader  # noqa: E402


def _link_subset(source: Path, count: int, into: Path) -> int:
    """Links the first ``count`` images of ``source`` (classes in turn) into ``into``/<class>/; returns how many."""
    index = ImageFolderIndex(source)
    per_class: dict[int, list[int]] = {}
    for i, label in enumerate(index.labels):
        per_class.setdefault(label, []).append(i)
    chosen, queues = [], [list(v) for v in per_class.values()]
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    for i in chosen:
        path = Path(index.paths[i])
        folder = into / index.classes[index.labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / path.name).symlink_to(path.resolve())
    return len(chosen)


def _images_per_second(loader, epochs: int, set_epoch) -> list[float]:
    rates = []
    for epoch in range(epochs + 1):  # the first epoch warms up (workers, decoder, kernels)
        set_epoch(epoch)
        images, start = 0, time.perf_counter()
        for batch in loader:
            views = batch["views"] if isinstance(batch, dict) else batch[0][0]
            images += views.shape[0]
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if epoch:
            rates.append(images / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="image folder with class subfolders")
    parser.add_argument("--size", type=int, default=64, help="view side in pixels")
    parser.add_argument("--images", type=int, default=2000, help="images read per epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader workers and DALI threads")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="DALI decode and fused kernel")
    parser.add_argument("--backend", default="auto", help="fused_augment backend of the DALI loader")
    parser.add_argument("--out", default=None, help="Markdown file to write (a .json beside it)")
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder")
    from inv_kernels.data.dali.two_view import DaliTwoViewLoader

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        count = _link_subset(Path(args.data), args.images, root)
        batch = min(args.batch_size, count)
        torchvision = TwoViewLoader._torchvision(str(root), args.size)
        torchvision = type(torchvision)(
            torchvision.dataset,
            batch_size=batch,
            num_workers=args.workers,
            shuffle=True,
            drop_last=True,
            persistent_workers=args.workers > 0,
        )
        dali = DaliTwoViewLoader(
            root,
            "default",
            args.size,
            batch,
            num_threads=args.workers,
            backend=args.backend,
            device_id=0 if args.device == "cuda" else None,
        )
        rates = {
            "torchvision DataLoader + PIL TwoCropsTransform": _images_per_second(
                torchvision, args.epochs, lambda e: None
            ),
            f"DALI ({args.device}) + fused_augment [{args.backend}]": _images_per_second(
                dali, args.epochs, dali.set_epoch
            ),
        }
    base = statistics.median(next(iter(rates.values())))
    card = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    env = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "card": card,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "data": str(args.data),
        "images": count,
        "size": args.size,
        "batch": batch,
        "workers": args.workers,
    }
    lines = [
        f"Two-view loaders, {count} images of {args.data} at {args.size} px, batch {batch}, {args.workers} "
        f"workers/threads; {env['card']}, {env['cpus']} CPUs, torch {env['torch']}, {env['date']}",
        "",
    ]
    rows = [
        [
            name,
            f"{statistics.median(values):,.0f}",
            ", ".join(f"{v:,.0f}" for v in values),
            f"{statistics.median(values) / base:.2f}x",
        ]
        for name, values in rates.items()
    ]
    lines.append(markdown_table(["loader", "two-view images/s (median)", "epochs", "vs torchvision"], rows))
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_bytes((text + "\n").encode(), args.out)
        atomic_write_json({"env": env, "rates": rates}, Path(args.out).with_suffix(".json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
