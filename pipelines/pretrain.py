"""MoCo v2 pretraining with a chosen augmentation recipe: ``python -m pipelines.pretrain``.

The official MoCo flags work as aliases (``-a``, ``-b``, ``-j``, ``--wd``, ``--moco-k``, ``--moco-m``, ``--moco-t``,
``--cos``); boolean flags work bare (``--amp``, ``--no-amp``) or with a value (``--amp false``); ``--config FILE.yaml``
reads settings, and ``<out>/config.yaml`` records the ones a run used.

Without ``--data`` it trains on the built-in generated scenes (rendered once into the cache). Writes
``<out>/checkpoint_last.pth.tar`` (official MoCo layout; read by ``python -m pipelines.export`` and the measurement
tools), ``<out>/log.jsonl`` (one JSON record per logged step and epoch) and ``<out>/summary.json``.
Several processes: ``torchrun --nproc_per_node N -m pipelines.pretrain ...`` (NCCL on GPUs, gloo on CPUs).
"""

import argparse
import sys

from inv_kernels.models.checkpoint import TRUST_FLAG, TRUST_HELP
from inv_kernels.train.config import BUILTIN_RECIPES, LOADERS, PRECISIONS, RESUME_MAY_CHANGE, PretrainConfig
from inv_kernels.train.factor_monitor import factor_sentence, factor_table
from pipelines._cli import (
    CONFIG_FILE,
    INPUT_ERRORS,
    ArgumentParser,
    BooleanFlag,
    DefaultsHelpFormatter,
    add_config_argument,
    parse_args,
    report,
    write_settings,
)

DEFAULTS = PretrainConfig()


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m pipelines.pretrain", description=__doc__, formatter_class=DefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        default=None,
        help="image folder with class subfolders, or a folder holding train/ "
        "and test/ ones (then train/ is used and test/ feeds the kNN monitor); default: built-in data",
    )
    data.add_argument(
        "--recipe",
        default=DEFAULTS.recipe,
        help=f"augmentations: {', '.join(BUILTIN_RECIPES)}, "
        "or a custom spec such as 'random_resized_crop:scale=0.2-1,grayscale:p=0.2'",
    )
    data.add_argument(
        "--image-size", type=int, default=None, help="view side in pixels (default 64 on the built-in data, else 224)"
    )
    data.add_argument(
        "--workers", "-j", type=int, default=DEFAULTS.workers, help="data loader processes (DALI: threads)"
    )
    data.add_argument(
        "--loader",
        default=DEFAULTS.loader,
        choices=LOADERS,
        help="dali: DALI decode (on the GPU "
        "when training on one) and both views of a batch in one fused_augment call; torchvision: PIL "
        "decode and per-image augmentation in DataLoader workers (the baseline); auto: dali when NVIDIA "
        "DALI is installed (pip install -e '.[dali]'), else torchvision",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--arch",
        "-a",
        default=DEFAULTS.arch,
        help="resnet18, resnet34, resnet50, resnet101, resnet50w3, or timm:<name>",
    )
    model.add_argument(
        "--cifar-stem",
        action=BooleanFlag,
        default=None,
        help="3x3 stem without max-pool (default: on for images of 32 px or less)",
    )
    model.add_argument("--objective", default=DEFAULTS.objective, choices=("moco", "simclr"))
    model.add_argument("--moco-dim", type=int, default=DEFAULTS.moco_dim, help="projection dimension")
    model.add_argument("--queue-size", "--moco-k", type=int, default=DEFAULTS.queue_size, help="MoCo queue length K")
    model.add_argument(
        "--moco-momentum", "--moco-m", type=float, default=DEFAULTS.moco_momentum, help="key encoder momentum"
    )
    model.add_argument("--temperature", "--moco-t", type=float, default=DEFAULTS.temperature)
    model.add_argument("--mlp", action=BooleanFlag, default=DEFAULTS.mlp, help="2-layer MLP head (MoCo v2)")
    model.add_argument(
        "--bn-splits",
        type=int,
        default=DEFAULTS.bn_splits,
        help="split-batch BN groups on one process (shuffle BN across processes under torchrun)",
    )
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    optim.add_argument("--batch-size", "-b", type=int, default=DEFAULTS.batch_size, help="total over all processes")
    optim.add_argument(
        "--lr", type=float, default=DEFAULTS.base_lr, help="learning rate at batch 256 (scaled linearly with the batch)"
    )
    optim.add_argument("--weight-decay", "--wd", type=float, default=DEFAULTS.weight_decay)
    optim.add_argument("--momentum", type=float, default=DEFAULTS.momentum)
    optim.add_argument(
        "--cosine", "--cos", action=BooleanFlag, default=DEFAULTS.cosine, help="cosine learning-rate schedule"
    )
    optim.add_argument(
        "--warmup-steps",
        type=int,
        default=DEFAULTS.warmup_steps,
        help="raise the learning rate linearly over this many first steps (0: none)",
    )
    optim.add_argument(
        "--max-steps", type=int, default=None, help="stop after this many steps in total (default: the epochs' steps)"
    )
    run = p.add_argument_group("run")
    run.add_argument("--out", default=DEFAULTS.out, help="output folder")
    run.add_argument(
        "--resume",
        default=None,
        help="'auto' (the output folder's last checkpoint, if any) or a path; "
        "every setting but " + ", ".join(RESUME_MAY_CHANGE) + " must be the checkpoint's",
    )
    run.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    run.add_argument("--seed", type=int, default=DEFAULTS.seed)
    run.add_argument("--device", default=DEFAULTS.device, help="auto, cpu, cuda or cuda:<i>")
    run.add_argument(
        "--amp", action=BooleanFlag, default=DEFAULTS.amp, help="false: float32 everywhere (whatever --precision says)"
    )
    run.add_argument(
        "--channels-last",
        action=BooleanFlag,
        default=DEFAULTS.channels_last,
        help="channels-last memory (CUDA and CPU)",
    )
    run.add_argument(
        "--precision",
        default=DEFAULTS.precision,
        choices=PRECISIONS,
        help="bf16: bfloat16 autocast; auto: bf16 on CUDA and on CPUs with bfloat16 instructions, else fp32",
    )
    run.add_argument("--threads", type=int, default=DEFAULTS.threads, help="torch threads (0: torch's default)")
    run.add_argument("--compile", action="store_true", help="torch.compile the model")
    run.add_argument("--save-every-steps", type=int, default=DEFAULTS.save_every_steps, help="0: each epoch end")
    run.add_argument("--log-every-steps", type=int, default=DEFAULTS.log_every_steps)
    monitor = p.add_argument_group("kNN monitor")
    monitor.add_argument(
        "--knn-every",
        type=int,
        default=DEFAULTS.knn_every,
        help="epochs between kNN evaluations (0: after the last epoch only; -1: never)",
    )
    monitor.add_argument(
        "--knn-data",
        default=None,
        help="folder with train/ and test/ class folders (default: --data's, or the built-in data's)",
    )
    monitor.add_argument("--knn-k", type=int, default=DEFAULTS.knn_k)
    monitor.add_argument("--knn-max-images", type=int, default=None, help="cap on train and test images (default: all)")
    monitor.add_argument(
        "--factor-monitor",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after the last epoch, probe what the network learned about the built-in scenes' factors (shape, hues, "
        "position, rotation, light) and measure its invariance to the recipe's augmentations, each against the "
        "untrained network (default: on for the built-in data; it needs their known factors)",
    )
    add_config_argument(p)
    return p


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    return PretrainConfig(
        data=args.data,
        out=args.out,
        recipe=args.recipe,
        arch=args.arch,
        cifar_stem=args.cifar_stem,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        base_lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        cosine=args.cosine,
        warmup_steps=args.warmup_steps,
        objective=args.objective,
        moco_dim=args.moco_dim,
        queue_size=args.queue_size,
        moco_momentum=args.moco_momentum,
        temperature=args.temperature,
        mlp=args.mlp,
        bn_splits=args.bn_splits,
        workers=args.workers,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        precision=args.precision,
        threads=args.threads,
        channels_last=args.channels_last,
        compile=args.compile,
        save_every_steps=args.save_every_steps,
        log_every_steps=args.log_every_steps,
        knn_every=args.knn_every,
        knn_data=args.knn_data,
        knn_k=args.knn_k,
        knn_max_images=args.knn_max_images,
        factor_monitor=args.factor_monitor,
        max_steps=args.max_steps,
        resume=args.resume,
        trust_checkpoint=args.trust_checkpoint,
        loader=args.loader,
    )


def print_summary(summary: dict) -> None:
    rows = [
        ("epochs done", summary["epochs_done"]),
        ("steps", summary["steps"]),
        ("images/s", f"{summary['images_per_s']:.1f}" if summary["images_per_s"] else "-"),
        (
            "time total / data wait / train step (s)",
            " / ".join(f"{summary['time_s'][k]:.1f}" for k in ("total", "data_wait", "train_step")),
        ),
        ("final kNN top-1", "-" if summary["final_knn_top1"] is None else f"{100 * summary['final_knn_top1']:.1f}%"),
        *([("kNN monitor failed", summary["knn_monitor_error"])] if summary["knn_monitor_error"] else []),
        ("loader", summary["loader"]),
        ("skipped images", summary["skipped_images"]),
        ("checkpoint", summary["checkpoint"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    knn = [(h["epoch"], h["knn_top1"]) for h in summary["history"] if h.get("knn_top1") is not None]
    if knn:
        print("kNN top-1 by epoch: " + ", ".join(f"{e}: {100 * v:.1f}%" for e, v in knn))
    print_factor_monitor(summary)


def print_factor_monitor(summary: dict) -> None:
    """The factor monitor's table and verdict (or its failure), where the run has one."""
    result, error = summary.get("factor_monitor"), summary.get("factor_monitor_error")
    if error:
        print(f"factor monitor failed: {error}")
    if result:
        scenes = result["settings"]["test_scenes"]
        print(f"\nwhat the network learned, against the untrained network ({scenes} held-out scenes):")
        print(factor_table(result))
        print(factor_sentence(result))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    from inv_kernels.distributed import leave_process_group
    from inv_kernels.train.trainer import Trainer

    try:
        trainer = Trainer(config_from_args(args))
    except (*INPUT_ERRORS, ImportError, RuntimeError) as error:
        return report("python -m pipelines.pretrain", error)
    if trainer.dist.is_main:  # the settings, replayable with --config
        write_settings(parser, args, trainer.out / CONFIG_FILE)
    summary = trainer.run()
    leave_process_group()
    if trainer.dist.is_main:
        print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
