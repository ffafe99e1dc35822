"""Transfer evaluation: ``python -m pipelines.transfer --models NAME=CKPT,... [--task NAME[:ROOT] ...]``.

Every model, and every fusion of two or more of them (``--fusion cat,add,mean,weighted``), is probed on every task
with the paper's cross-validated linear probes (logistic regression for classification, ridge for keypoints and
latents). Without --task it uses the built-in generated classification and latent-regression sets. Writes
transfer.json, transfer.csv, transfer.md and transfer.png under --out. Every setting, task folder and checkpoint is
checked (the checkpoints loaded) before any data is read or rendered, and --out is made only for the results.
"""

import argparse
import sys
from pathlib import Path

from inv_kernels.data.folders import describe_records
from inv_kernels.io import atomic_write_bytes, atomic_write_json, check_output_dir
from inv_kernels.models.checkpoint import TRUST_FLAG, TRUST_HELP
from inv_kernels.reporting import markdown_table, pyplot, write_csv, write_png
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
    parse_args,
    report,
    write_settings,
)

PROG = "python -m pipelines.transfer"


def parse_models(text: str) -> dict[str, str]:
    """ "a=path,b=random:resnet18" -> {"a": "path", "b": "random:resnet18"}; a bare spec is named by its file stem."""
    models = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, spec = part.partition("=")
        if sep and (not name.strip() or not spec.strip()):
            raise ValueError(f"--models: expected NAME=CHECKPOINT or NAME=random:<arch>, got {part!r}")
        if not sep:
            name, spec = Path(part).stem.split(".")[0] if not part.startswith("random:") else part, part
        if name in models:
            raise ValueError(f"model name {name!r} given twice")
        models[name] = spec
    if not models:
        raise ValueError("--models names no model")
    return models


def per_model(flag: str, text: str | None, models: dict[str, str]) -> str | dict[str, str] | None:
    """The value of --arch / --layer: one VALUE for every model, or NAME=VALUE,... as a dict (models not named get
    none); ValueError names a model that --models does not have."""
    if text is None or "=" not in text:
        return text
    values: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        if name not in models or not value:
            raise ValueError(f"{flag} {part!r}: expected NAME=VALUE with NAME one of {', '.join(models)}")
        values[name] = value
    return values


def plot(rows: list[dict], path: Path) -> Path:
    plt = pyplot()
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [r for r in rows if r["task"] == task]
        labels = [r["model"] + ("" if r["fusion"] == "single" else f" ({r['fusion']})") for r in mine]
        ax.barh(
            range(len(mine)),
            [r["test_score"] for r in mine],
            color=["tab:gray" if r["fusion"] == "single" else "tab:green" for r in mine],
        )
        ax.set_yticks(range(len(mine)), labels, fontsize=8)
        ax.set_title(f"{task} ({mine[0]['metric']})", fontsize=10)
    fig.tight_layout()
    return write_png(fig, path)


def markdown(rows: list[dict]) -> str:
    tasks = sorted({r["task"] for r in rows})
    models = list(dict.fromkeys((r["model"], r["fusion"]) for r in rows))
    score = {(r["model"], r["fusion"], r["task"]): r["test_score"] for r in rows}
    cells = {(m, f): [f"{score[(m, f, t)]:.3f}" if (m, f, t) in score else "-" for t in tasks] for m, f in models}
    return markdown_table(["model", "fusion", *tasks], [[m, f, *cells[(m, f)]] for m, f in models])


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--models", required=True, help="comma-separated NAME=CHECKPOINT (or random:<arch>)")
    parser.add_argument(
        "--task",
        action="append",
        default=[],
        help="NAME:ROOT, repeatable; names: folder, cifar10, "
        "caltech101, flowers, 300w, celeba, leeds_sports_pose, causal3dident, generated_classification, "
        "generated_latents (default: the built-in generated sets)",
    )
    parser.add_argument("--fusion", default="cat", help="comma-separated: cat, add, mean, weighted")
    parser.add_argument("--combos", default="all", help="all (every subset of 2+ models), none, or 'a+b,a+b+c'")
    parser.add_argument("--mode", default="paper", choices=("paper", "corrected"))
    parser.add_argument(
        "--image-size",
        type=integer(16),
        default=None,
        help="Resize + CenterCrop size (default: 224 as the paper, 64 for the built-in tasks)",
    )
    parser.add_argument("--folds", type=integer(2), default=5)
    parser.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:<i>")
    parser.add_argument("--batch-size", type=integer(1), default=64)
    parser.add_argument("--workers", type=integer(0), default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/transfer")
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    add_model_arguments(parser, per_model=True)
    add_config_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    from inv_kernels.transfer import (
        TransferConfig,
        build_tasks,
        evaluate_transfer,
        load_models,
        model_load_options,
        parse_tasks,
        task_image_size,
    )

    try:
        models = parse_models(args.models)
        size = task_image_size(args.task, args.image_size)
        config = TransferConfig(
            models=models,
            tasks=[],
            fusions=tuple(f.strip() for f in args.fusion.split(",") if f.strip()),
            combos=args.combos,
            mode=args.mode,
            folds=args.folds,
            device=args.device,
            batch_size=args.batch_size,
            workers=args.workers,
            seed=args.seed,
            trust_checkpoint=args.trust_checkpoint,
            load_options=model_load_options(
                models,
                image_size=size,
                arch=per_model("--arch", args.arch, models),
                layer=per_model("--layer", args.layer, models),
                mean=args.mean,
                std=args.std,
                precision=args.precision,
            ),
            call=command(PROG, argv),
        ).validate()
        parse_tasks(args.task)
        out = check_output_dir(args.out, "--out folder")
        extractors = load_models(config)  # every checkpoint is read before any data work
        for extractor in extractors.values():
            if extractor.info.load:
                print(extractor.info.load["summary"])
        config.tasks = build_tasks(args.task, args.mode, size, True)
        results = evaluate_transfer(config, extractors)
    except (*INPUT_ERRORS, RuntimeError, ImportError) as error:
        return report(PROG, error)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results, out / "transfer.json")
    write_settings(parser, args, out / CONFIG_FILE)  # replayable with --config
    write_csv(results["results"], out / "transfer.csv")
    table = markdown(results["results"])
    atomic_write_bytes((table + "\n").encode(), out / "transfer.md")
    plot(results["results"], out / "transfer.png")
    print(table)
    skipped = {
        f"{task} {split}": record
        for task, splits in results["skipped_images"].items()
        for split, record in splits.items()
    }
    for line in describe_records(skipped):
        print(line)
    print(f"\nwrote {out}/transfer.json, transfer.csv, transfer.md, transfer.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
