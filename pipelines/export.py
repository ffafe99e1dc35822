"""Writes the backbone of a pretraining checkpoint alone (no head, key encoder or queue), for the measurement and
transfer tools: ``python -m pipelines.export CHECKPOINT OUT``."""

import argparse
import sys

from inv_kernels.models.checkpoint import export_backbone, load_backbone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.export", description=__doc__)
    parser.add_argument("checkpoint", help="a pretraining checkpoint (e.g. runs/pretrain/checkpoint_last.pth.tar)")
    parser.add_argument("out", help="where to write the backbone (.pth)")
    args = parser.parse_args(argv)
    try:
        path = export_backbone(args.checkpoint, args.out)
        loaded = load_backbone(path)
    except (FileNotFoundError, ValueError) as error:
        print(f"export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {loaded.arch} backbone (cifar_stem={loaded.cifar_stem}), {loaded.feature_dim}-d features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
