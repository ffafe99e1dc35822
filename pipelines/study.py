"""The whole study: ``python -m pipelines.study [--data FOLDER] [--seeds 0,1] [--epochs N] [--out DIR]``.

Pretrains the default, spatial and appearance MoCo v2 models (optionally a wide default as a capacity control; a
random network as the floor) for each seed, measures their invariance to the 18 synthetic transform families and
across real view groups (generated turntables and lighting, plus --groups folders), regresses the generated scenes'
latents, probes transfer of every model and fusion, and writes report.md (tables, figures, verdicts on the paper's
claims with the spread over seeds), report.json (every number) and figures/ under --out. Every stage is cached under
--out: rerunning skips finished stages and continues an interrupted one. Without --data it uses the built-in
generated scenes at 32 px with three seeds and 160 epochs per model, the smallest budget at which every model met
the training-health criteria: about 2 hours on 2 CPU cores (docs/STUDY.md); --quick is a one-seed first look in about
5 minutes, which gives no verdicts.
"""

import argparse
import sys
from pathlib import Path

from inv_kernels.study.config import QUICK, StudyConfig, parse_seeds
from pipelines._cli import (
    CONFIG_FILE,
    INPUT_ERRORS,
    ArgumentParser,
    DefaultsHelpFormatter,
    add_config_argument,
    device,
    integer,
    number,
    report,
    write_settings,
)
from pipelines._cli import parse_args as parse_with_config

PROG = "python -m pipelines.study"

DEFAULTS = StudyConfig()


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return parse_seeds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=DefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        default=None,
        help="folder with train/ and test/ (or val/) class folders, e.g. "
        "Tiny-ImageNet (default: the built-in generated scenes)",
    )
    data.add_argument(
        "--image-size",
        type=integer(16, 512),
        default=None,
        help="image side (default: 32 on the built-in data, 64 with --data)",
    )
    data.add_argument(
        "--groups",
        action="append",
        default=[],
        help="extra multi-view folder as PATH or PATH:LAYOUT (repeatable; layouts as pipelines.measure)",
    )
    data.add_argument(
        "--task",
        action="append",
        default=[],
        help="extra transfer task as NAME:ROOT (repeatable; names as pipelines.transfer)",
    )
    data.add_argument(
        "--train-count",
        type=integer(1),
        default=DEFAULTS.train_count,
        help="built-in pretraining images per class (7 classes)",
    )
    data.add_argument(
        "--transfer-count",
        type=integer(1),
        default=DEFAULTS.transfer_count,
        help="images per class of the generated transfer and latent sets",
    )
    data.add_argument(
        "--group-objects", type=integer(1), default=DEFAULTS.group_objects, help="objects per generated view-group set"
    )
    models = p.add_argument_group("models and pretraining")
    models.add_argument(
        "--seeds",
        type=_seeds,
        default=",".join(map(str, DEFAULTS.seeds)),
        help="comma-separated seeds; two or more give the spread over seeds",
    )
    models.add_argument("--arch", default=DEFAULTS.arch)
    models.add_argument(
        "--wide", action="store_true", help="also pretrain the default recipe on --wide-arch (the capacity control)"
    )
    models.add_argument("--wide-arch", default=None, help="default: resnet50 (resnet50w3 when --arch resnet50)")
    models.add_argument("--no-random", action="store_true", help="leave out the random-network floor")
    models.add_argument(
        "--epochs",
        type=integer(1),
        default=DEFAULTS.epochs,
        help="pretraining epochs per model; on the built-in data every model is healthy at 160, only spatial at 40 "
        "(docs/STUDY.md)",
    )
    models.add_argument("--batch-size", type=integer(1), default=DEFAULTS.batch_size)
    models.add_argument("--bn-splits", type=integer(1), default=DEFAULTS.bn_splits, help="split-batch BN groups")
    models.add_argument(
        "--lr", type=number(0, low_open=True), default=DEFAULTS.base_lr, help="learning rate at batch 256"
    )
    models.add_argument("--queue-size", type=integer(1), default=DEFAULTS.queue_size)
    models.add_argument("--moco-momentum", type=number(0, 1), default=DEFAULTS.moco_momentum)
    models.add_argument(
        "--max-steps",
        type=integer(1),
        default=None,
        help="cap on pretraining steps per model (default: the epochs' steps)",
    )
    models.add_argument("--no-knn", action="store_true", help="skip the kNN score after pretraining")
    measure = p.add_argument_group("measurement and probes")
    measure.add_argument(
        "--num-images", type=integer(1), default=DEFAULTS.num_images, help="images per synthetic family"
    )
    measure.add_argument(
        "--stats-images", type=integer(1), default=None, help="cap on statistics images (default: all)"
    )
    measure.add_argument("--shrinkage", default=DEFAULTS.shrinkage, help="none, ledoit_wolf or a ridge value")
    measure.add_argument("--mode", default=DEFAULTS.mode, choices=("paper", "corrected"))
    measure.add_argument(
        "--latent-trainval", type=integer(1), default=None, help="cap on kernel-ridge training images (default: all)"
    )
    measure.add_argument("--folds", type=integer(2), default=DEFAULTS.folds)
    run = p.add_argument_group("run")
    run.add_argument(
        "--quick",
        action="store_true",
        help="a first look in about 5 minutes: "
        + ", ".join(
            f"{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in QUICK.items()
        )
        + " (flags given explicitly win); one seed gives no verdicts",
    )
    run.add_argument("--out", default=DEFAULTS.out, help="output folder (stages are cached here)")
    run.add_argument("--device", type=device, default=DEFAULTS.device, help="auto, cpu, cuda or cuda:<i>")
    run.add_argument("--workers", type=integer(0), default=DEFAULTS.workers, help="data loader processes")
    run.add_argument(
        "--jobs",
        type=integer(0),
        default=DEFAULTS.jobs,
        help="pretrainings run at once, each in its own process with its share of the CPU cores "
        "(0: one per core, at most 4, on a CPU; 1 on a GPU)",
    )
    run.add_argument("--eval-batch-size", type=integer(1), default=DEFAULTS.eval_batch_size)
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_argument(p)
    return p


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The parsed command line; with --quick, the QUICK settings replace the defaults of the flags not given (on the
    command line or in the --config file)."""
    parser = parser or build_parser()
    args = parse_with_config(parser, argv)
    if args.quick:
        parser.set_defaults(**{k: ",".join(map(str, v)) if k == "seeds" else v for k, v in QUICK.items()})
        args = parse_with_config(parser, argv)
    return args


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    seeds = args.seeds if isinstance(args.seeds, tuple) else parse_seeds(args.seeds)
    return StudyConfig(
        data=args.data,
        out=args.out,
        seeds=seeds,
        wide=args.wide,
        random=not args.no_random,
        arch=args.arch,
        wide_arch=args.wide_arch,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        bn_splits=args.bn_splits,
        base_lr=args.lr,
        queue_size=args.queue_size,
        moco_momentum=args.moco_momentum,
        max_steps=args.max_steps,
        knn=not args.no_knn,
        train_count=args.train_count,
        transfer_count=args.transfer_count,
        group_objects=args.group_objects,
        num_images=args.num_images,
        stats_images=args.stats_images,
        shrinkage=args.shrinkage,
        mode=args.mode,
        groups=tuple(args.groups),
        latent_trainval=args.latent_trainval,
        tasks=tuple(args.task),
        folds=args.folds,
        device=args.device,
        workers=args.workers,
        jobs=args.jobs,
        eval_batch_size=args.eval_batch_size,
        progress=not args.quiet,
    )


def print_verdicts(report: dict) -> None:
    from inv_kernels.study.report import verdict_text

    health = report["health"]
    state = {True: "every model is healthy", False: "NOT every model is healthy", None: "not checkable"}
    print(f"training health: {state[health['healthy']]}" + "".join(f"\n  {line}" for line in health["failures"]))
    for claim in report["claims"]:
        distance = claim["verdict_distance"]
        also = f" (Mahalanobis distance: {verdict_text(distance)})" if distance else ""
        print(f"claim {claim['id']}: {verdict_text(claim['verdict'])}{also}: {claim['summary']}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(argv, parser)
    from inv_kernels.study.run import prepare, run_study

    try:
        config = config_from_args(args)
        prepare(config)  # every setting and input folder checked before any work
        study = run_study(config)
    except INPUT_ERRORS as error:
        return report(PROG, error)
    write_settings(parser, args, Path(config.out) / CONFIG_FILE)  # replayable with --config
    print_verdicts(study)
    print(
        f"\nstudy took {study['time_s']:.0f} s; wrote {study['files']['markdown']}, {study['files']['json']} "
        f"and {len(study['files']) - 2} figures"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
