"""Generates the built-in datasets of rendered scenes, and a contact sheet to look at them.

    python -m pipelines.generate                                  # every set, into the cache
    python -m pipelines.generate --kinds coil aloi --size 128 --out data/generated
    python -m pipelines.generate --no-sets --contact-sheet docs/images/scenes_contact_sheet.png

The sets (docs/DATA.md): classification (ImageFolder of JPEGs, class = shape), coil (turntables, COIL-100 names),
aloi (light directions, light colour temperatures and turntables, ALOI names) and latents (Causal3DIdent layout:
images with the ten latents in .npy files). Each is written atomically and reused when complete. A JSON summary of
what was written goes to stdout (and to --json), with the settings, which go to OUT/generate_config.yaml too
(``--config`` replays them). Every argument and output path is checked before anything is
rendered or written; a folder at OUT/<kind> that this project did not write is never replaced.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

from inv_kernels.data.cache import cache_root, check_replaceable, read_manifest
from inv_kernels.data.generated import DEFAULT_COUNTS, DEFAULT_SIZE, KINDS, generated_dataset, write_dataset
from inv_kernels.data.scenes import MAX_SIZE, MIN_SIZE
from inv_kernels.io import atomic_write_bytes, atomic_write_json, check_output_dir, check_output_file
from pipelines._cli import (
    INPUT_ERRORS,
    ArgumentParser,
    add_config_argument,
    device,
    fail,
    integer,
    resolved_settings,
    write_settings,
)
from pipelines._cli import (
    parse_args as parse_with_config,
)

PROG = "python -m pipelines.generate"
SETTINGS_FILE = "generate_config.yaml"  # beside the sets in --out: the settings, replayable with --config


def kinds(text: str) -> list[str]:
    """An argparse ``type``: a comma list of set kinds."""
    chosen = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in KINDS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(KINDS)}, got {text!r}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Render the built-in generated datasets (3D scenes with known factors) and a contact sheet.",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        type=kinds,
        default=[list(KINDS)],
        help=f"which sets to generate, a comma list of {', '.join(KINDS)} (default: all)",
    )
    parser.add_argument(
        "--size",
        type=integer(MIN_SIZE, MAX_SIZE),
        default=DEFAULT_SIZE,
        help="image side in pixels, 16..512 (default: %(default)s)",
    )
    parser.add_argument(
        "--count",
        type=integer(1),
        default=None,
        help="training images per class (classification, latents; test gets count // 4) or objects "
        f"(coil, aloi); default per kind: {DEFAULT_COUNTS}",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every scene (default: %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the sets to OUT/<kind> instead of the cache "
        "($INV_KERNELS_CACHE, else $XDG_CACHE_HOME/inv_kernels, else ~/.cache/inv_kernels)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache folder to use instead of the default")
    parser.add_argument(
        "--device", type=device, default=None, help="render on this device (default: cuda when present, else cpu)"
    )
    parser.add_argument("--no-sets", action="store_true", help="generate no set (e.g. only the contact sheet)")
    parser.add_argument(
        "--contact-sheet",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write a contact-sheet PNG of examples and groups to PATH",
    )
    parser.add_argument(
        "--sheet-size",
        type=integer(MIN_SIZE, MAX_SIZE),
        default=96,
        help=f"thumbnail side on the contact sheet, {MIN_SIZE}..{MAX_SIZE} (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON summary to this file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_config_argument(parser)
    return parser


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The settings, --config read; --kinds as one list without repeats."""
    args = parse_with_config(parser or build_parser(), argv)
    args.kinds = list(dict.fromkeys(k for group in args.kinds for k in ([group] if isinstance(group, str) else group)))
    return args


def check_outputs(args: argparse.Namespace, kinds: list[str]) -> None:
    """Checks the device and every place the run writes to, creating nothing: OUT/<kind> must be free or a set this
    project wrote.

    Raises:
        ValueError (no GPU for --device cuda), NotADirectoryError, IsADirectoryError, PermissionError,
        FileExistsError: naming the flag or path.
    """
    if args.device is not None and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: no CUDA GPU is available")
    if args.out is not None:
        check_output_dir(args.out, "--out folder")
        for kind in kinds:
            check_replaceable(args.out / kind)
    elif kinds:
        check_output_dir(args.cache_dir or cache_root(), "--cache-dir folder" if args.cache_dir else "cache folder")
    for flag, path in (("--contact-sheet", args.contact_sheet), ("--json", args.json)):
        if path is not None:
            check_output_file(path, f"{flag} file")


def main(argv: list[str] | None = None) -> dict:
    """Runs the command line; returns the summary. Bad arguments or outputs exit with code 2 before any work."""
    parser = build_parser()
    args = parse_args(argv, parser)
    kinds = [] if args.no_sets else args.kinds
    try:
        check_outputs(args, kinds)
    except INPUT_ERRORS as error:
        fail(PROG, error)
    summary: dict = {"sets": {}, "contact_sheet": None, "settings": resolved_settings(parser, args)}
    render_device = None if args.device == "auto" else args.device
    for kind in kinds:
        start = time.perf_counter()
        options = dict(
            size=args.size, count=args.count, seed=args.seed, progress=not args.no_progress, device=render_device
        )
        if args.out is not None:
            folder = write_dataset(kind, args.out / kind, **options)
        else:
            folder = generated_dataset(kind, cache_dir=args.cache_dir, **options)
        manifest = read_manifest(folder)
        summary["sets"][kind] = {
            "path": str(folder),
            "counts": manifest["counts"],
            "config": manifest["config"],
            "seconds": round(time.perf_counter() - start, 2),
        }
        print(f"{kind:>14}: {folder}  {manifest['counts']}", file=sys.stderr)
    if args.contact_sheet is not None:
        from inv_kernels.data.contact_sheet import contact_sheet

        sheet = contact_sheet(size=args.sheet_size, seed=args.seed, device=render_device)
        png = io.BytesIO()
        sheet.save(png, format="PNG", optimize=True)
        atomic_write_bytes(png.getvalue(), args.contact_sheet)
        summary["contact_sheet"] = str(args.contact_sheet)
        print(f"{'contact sheet':>14}: {args.contact_sheet}  ({sheet.width}x{sheet.height})", file=sys.stderr)
    summary["cache_root"] = str(args.cache_dir or cache_root()) if args.out is None else None
    if args.out is not None:
        write_settings(parser, args, args.out / SETTINGS_FILE)
    if args.json is not None:
        atomic_write_json(summary, args.json)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
