"""Several models side by side: ``python -m pipelines.compare RESULTS.json... [--out runs/compare]``.

Reads the results.json of several ``pipelines.measure`` runs (``NAME=PATH`` names a model; else its id) and writes
under --out: compare_heatmap.png (whitened cosine, models x transform families), compare_curves.png (per family, the
invariance against the transform parameter, with the spread over images), compare_groups.png (real-world group sets
as bars with error bars, when the runs measured any), compare.json, compare.csv and config.yaml (the settings, for
--config). Every file is read before --out is made.
"""

import argparse
import sys

from inv_kernels.io import check_output_dir
from inv_kernels.reporting import markdown_table
from inv_kernels.results import Comparison
from pipelines._cli import (
    CONFIG_FILE,
    INPUT_ERRORS,
    ArgumentParser,
    add_config_argument,
    parse_args,
    report,
    write_settings,
)

PROG = "python -m pipelines.compare"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", metavar="RESULTS.json", help="results.json files, or NAME=PATH")
    parser.add_argument("--names", default=None, help="comma-separated model names, one per file (default: NAME=)")
    parser.add_argument("--out", default="runs/compare", help="output folder (default: %(default)s)")
    add_config_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    try:
        out = check_output_dir(args.out, "--out folder")
        comparison = Comparison.load(args.results, names)
    except INPUT_ERRORS as error:
        return report(PROG, error)
    written = comparison.write(out)
    write_settings(parser, args, out / CONFIG_FILE)
    rows = comparison.rows()
    print(
        markdown_table(
            ["model", "measure", "kind", "cosine", "spread"],
            [
                [
                    r["model"],
                    r["measure"],
                    r["kind"],
                    "-" if r["cosine"] is None else f"{r['cosine']:.3f}",
                    "-" if r["spread"] is None else f"{r['spread']:.3f}",
                ]
                for r in rows
            ],
        )
    )
    print(f"\nwrote {', '.join(str(p) for p in written.values())}, {out / CONFIG_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
