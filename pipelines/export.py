"""Writes the backbone of a checkpoint alone (no head, key encoder, queue or projector), for the measurement and
transfer tools: ``python -m pipelines.export CHECKPOINT OUT [--arch NAME]``. CHECKPOINT is any layout the measurement
reads (this project's pretraining checkpoints, official MoCo v2/v3, solo-learn, lightly, torchvision or timm state
dicts, .safetensors); the export records the architecture, so it loads without --arch."""

import sys
from pathlib import Path

from inv_kernels.io import check_output_file
from inv_kernels.models.checkpoint import TRUST_FLAG, TRUST_HELP
from inv_kernels.models.load import export_model, load_model
from pipelines._cli import INPUT_ERRORS, ArgumentParser, add_config_argument, add_model_arguments, parse_args, report


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m pipelines.export", description=__doc__)
    parser.add_argument("checkpoint", help="a checkpoint (e.g. runs/pretrain/checkpoint_last.pth.tar)")
    parser.add_argument("out", help="where to write the backbone (.pth)")
    add_model_arguments(parser, features=False)
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (refused otherwise)")
    add_config_argument(parser)
    args = parse_args(parser, argv)
    try:
        check_output_file(args.out, "output file")
        if Path(args.out).exists() and not args.overwrite:
            raise FileExistsError(f"output file {args.out} exists; pass --overwrite to replace it")
        module, loaded = load_model(args.checkpoint, args.arch, trust=args.trust_checkpoint)
        path = export_model(module, loaded, args.out, source=args.checkpoint)
    except (*INPUT_ERRORS, ImportError) as error:
        return report(parser.prog, error)
    print(loaded.summary())
    print(f"wrote {path}: {loaded.arch} backbone (cifar_stem={loaded.cifar_stem}), {loaded.feature_dim}-d features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
