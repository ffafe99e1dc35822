"""Invariance measurement: ``python -m pipelines.measure --model CHECKPOINT [--data FOLDER] [--groups FOLDER ...]``.

Computes the model's feature statistics on an image folder, its whitened-cosine and Mahalanobis invariance to the
paper's synthetic transform families, and its invariance across real multi-view groups (COIL, ALOI, ALOT,
Flickr1024, RealBlur, ExposureErrors, DaLI layouts). Without folders it uses the built-in generated scenes. Writes
results.json (every number), synthetic.csv, synthetic.png, realworld.csv and feature_stats.pt under --out.

Runs on several processes or GPUs under torchrun (``torchrun --nproc_per_node N -m pipelines.measure ...``): the
images are split between the processes and the results equal a one-process run's; only the main process writes.
Features are cached on disk (--cache-dir), so a rerun of the same measurement reads them instead of recomputing.
"""

import argparse
import sys
from pathlib import Path

from inv_kernels.backend import BACKENDS
from inv_kernels.data.folders import describe_records
from inv_kernels.distributed import leave_process_group
from inv_kernels.measure.driver import MeasureConfig
from inv_kernels.models.checkpoint import TRUST_FLAG, TRUST_HELP
from inv_kernels.reporting import markdown_table
from pipelines._cli import (
    CONFIG_FILE,
    INPUT_ERRORS,
    ArgumentParser,
    DefaultsHelpFormatter,
    add_config_argument,
    add_model_arguments,
    command,
    device,
    integer,
    number,
    parse_args,
    report,
    write_settings,
)

PROG = "python -m pipelines.measure"


def shrinkage(text: str) -> str | float:
    """An argparse ``type``: none, ledoit_wolf, or a ridge (a finite number >= 0)."""
    if text in ("none", "ledoit_wolf"):
        return text
    try:
        return number(0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected none, ledoit_wolf or a finite ridge >= 0, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=DefaultsHelpFormatter)
    p.add_argument(
        "--model",
        required=True,
        help="checkpoint (pretraining, exported backbone, official MoCo v2/v3, solo-learn, lightly, the paper's, "
        "torchvision or timm state dict, .safetensors; docs/MEASURE.md) or random:<arch> for a random network",
    )
    add_model_arguments(p)
    p.set_defaults(precision="auto")
    p.add_argument("--data", default=None, help="image folder for statistics and synthetic views (default: built-in)")
    p.add_argument("--stats-data", default=None, help="folder for the statistics pass (default: --data)")
    p.add_argument("--stats-images", type=integer(1), default=None, help="cap on statistics images (default: all)")
    p.add_argument(
        "--num-images",
        type=integer(1),
        default=None,
        help="images per transform family (default: 1000, or 32 on the built-in data)",
    )
    p.add_argument("--transforms", default="all", help="comma-separated families, or all / spatial / appearance")
    p.add_argument("--mode", default="paper", choices=("paper", "corrected"), help="reference code's quirks or fixes")
    p.add_argument(
        "--same-images",
        action="store_true",
        help="both modes measure the same --num-images images, drawn "
        "without replacement (paper mode otherwise draws with replacement, as the reference code), so a "
        "paper and a corrected run can be compared",
    )
    p.add_argument(
        "--groups",
        action="append",
        default=[],
        help="multi-view folder as PATH or PATH:LAYOUT "
        "(repeatable; layouts: coil, aloi_viewpoint, aloi_illumination, aloi_temperature, alot_viewpoint, "
        "alot_illumination, alot_temperature, flickr1024, realblur, exposure_errors, dali, auto)",
    )
    p.add_argument("--out", default="runs/measure", help="output folder")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:<i>")
    p.add_argument("--batch-size", type=integer(1), default=256)
    p.add_argument(
        "--crop-size", type=integer(16), default=None, help="default: the checkpoint's training size, else 224"
    )
    p.add_argument("--resize-size", type=integer(16), default=None, help="default: crop size x 256 / 224")
    p.add_argument(
        "--shrinkage",
        type=shrinkage,
        default="none",
        help="covariance shrinkage: none (a ridge is added "
        "with a warning when singular), ledoit_wolf, or a ridge value >= 0",
    )
    p.add_argument("--stats-file", default=None, help="statistics file to reuse or write")
    p.add_argument("--backend", default="auto", choices=("auto", *BACKENDS), help="scoring kernels")
    p.add_argument("--workers", type=integer(0), default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache folder (default: $INV_KERNELS_CACHE/features, else ~/.cache/inv_kernels/features)",
    )
    p.add_argument("--no-cache", action="store_true", help="compute every feature; read and write no cache")
    p.add_argument(
        "--cache-precision",
        default="auto",
        choices=("auto", "float16", "float32"),
        help="dtype of "
        "cached features; auto: float16 unless the statistics are ill-conditioned (whitening amplifies "
        "fp16 rounding)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or cache messages")
    p.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    add_config_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    from inv_kernels.measure.driver import Measurement

    config = MeasureConfig(
        model=args.model,
        arch=args.arch,
        data=args.data,
        stats_data=args.stats_data,
        stats_images=args.stats_images,
        num_images=args.num_images,
        transforms=tuple(t.strip() for t in args.transforms.split(",") if t.strip()),
        same_images=args.same_images,
        mode=args.mode,
        groups=tuple(args.groups),
        out=args.out,
        device=args.device,
        batch_size=args.batch_size,
        out_size=args.crop_size,
        resize_size=args.resize_size,
        shrinkage=args.shrinkage,
        stats_file=args.stats_file,
        backend=args.backend,
        workers=args.workers,
        seed=args.seed,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        cache_precision=args.cache_precision,
        progress=not args.quiet,
        trust_checkpoint=args.trust_checkpoint,
        layer=args.layer,
        mean=args.mean,
        std=args.std,
        precision=args.precision,
        call=command(PROG, argv),
    )
    try:
        measurement = Measurement(config)
        results = measurement.run()
    except (*INPUT_ERRORS, RuntimeError, ImportError) as error:
        leave_process_group(synchronise=False)
        return report(PROG, error)
    leave_process_group()
    if not measurement.ctx.is_main:
        return 0
    write_settings(parser, args, Path(args.out) / CONFIG_FILE)  # replayable with --config
    if results["model"].get("load"):
        print(results["model"]["load"]["summary"])
    print(
        f"model {results['model']['model_id']} ({results['model']['arch']}), {results['settings']['mode']} mode, "
        f"{results['settings']['num_images']} images, statistics condition number "
        f"{results['statistics']['condition_number']:.3g}"
    )
    print(
        markdown_table(
            ["family", "kind", "k", "cosine", "distance"],
            [
                [r["family"], r["kind"], r["k"], f"{r['cosine_mean']:.3f}", f"{r['distance_mean']:.2f}"]
                if not r.get("degenerate")
                else [r["family"], r["kind"], r["k"], "degenerate", "-"]
                for r in results["synthetic"]
            ],
        )
    )
    if results["realworld"]:
        print()
        print(
            markdown_table(
                ["groups", "n", "cosine (paper)", "cosine (off-diag.)", "distance"],
                [
                    [
                        r["name"],
                        r["num_groups"],
                        f"{r['cosine_with_diagonal']:.3f}",
                        f"{r['cosine_off_diagonal']:.3f}",
                        f"{r['distance']:.2f}",
                    ]
                    for r in results["realworld"]
                ],
            )
        )
    for line in describe_records(results["skipped_images"]):
        print(line)
    print(f"\nwrote {', '.join(results['files'].values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
