"""Writes the backbone of a pretraining checkpoint alone (no head, key encoder or queue), for the measurement and
transfer tools: ``python -m pipelines.export CHECKPOINT OUT``."""

import sys
from pathlib import Path

from inv_kernels.io import check_output_file
from inv_kernels.models.checkpoint import TRUST_FLAG, TRUST_HELP, export_backbone, load_backbone
from pipelines._cli import INPUT_ERRORS, ArgumentParser, report


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m pipelines.export", description=__doc__)
    parser.add_argument("checkpoint", help="a pretraining checkpoint (e.g. runs/pretrain/checkpoint_last.pth.tar)")
    parser.add_argument("out", help="where to write the backbone (.pth)")
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (refused otherwise)")
    args = parser.parse_args(argv)
    try:
        check_output_file(args.out, "output file")
        if Path(args.out).exists() and not args.overwrite:
            raise FileExistsError(f"output file {args.out} exists; pass --overwrite to replace it")
        path = export_backbone(args.checkpoint, args.out, trust=args.trust_checkpoint)
        loaded = load_backbone(path)
    except INPUT_ERRORS as error:
        return report(parser.prog, error)
    print(f"wrote {path}: {loaded.arch} backbone (cifar_stem={loaded.cifar_stem}), {loaded.feature_dim}-d features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
