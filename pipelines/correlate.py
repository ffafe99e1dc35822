"""Relates invariance to transfer: ``python -m pipelines.correlate --invariance NAME=results.json ... --transfer
transfer.json``. For each transform family (and real-world group set) and each task, the Spearman and Pearson
correlation across models between the invariance (whitened cosine) and the transfer score; a heat map and the
table as CSV, Markdown and JSON under --out, with config.yaml (the settings, for --config). With fewer than 3 models a correlation is undefined and left empty."""

import sys

from inv_kernels.correlation import correlate, heatmap, invariance_table, transfer_table
from inv_kernels.io import atomic_write_bytes, atomic_write_json, check_output_dir
from inv_kernels.reporting import markdown_table, write_csv
from pipelines._cli import (
    CONFIG_FILE,
    INPUT_ERRORS,
    ArgumentParser,
    add_config_argument,
    parse_args,
    report,
    write_settings,
)

PROG = "python -m pipelines.correlate"

__all__ = ["correlate", "heatmap", "invariance_table", "main", "transfer_table"]


def _signed(value: float | None) -> str:
    """ "+0.83", or "-" for an undefined correlation."""
    return "-" if value is None else f"{value:+.2f}"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument(
        "--invariance",
        action="append",
        required=True,
        help="NAME=PATH of a pipelines.measure "
        "results.json (repeat per model; NAME must match the model names of the transfer table)",
    )
    parser.add_argument("--transfer", required=True, help="the JSON written by pipelines.transfer")
    parser.add_argument("--out", default="runs/correlate", help="output folder")
    add_config_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        out = check_output_dir(args.out, "--out folder")
        rows = correlate(invariance_table(args.invariance), transfer_table(args.transfer))
    except INPUT_ERRORS as error:
        return report(PROG, error)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"rows": rows}, out / "correlation.json")
    write_csv(rows, out / "correlation.csv")
    heatmap(rows, "spearman", out / "correlation_spearman.png")
    table = markdown_table(
        ["invariance", "task", "models", "Spearman", "Pearson"],
        [[r["measure"], r["task"], r["models"], _signed(r["spearman"]), _signed(r["pearson"])] for r in rows],
    )
    atomic_write_bytes((table + "\n").encode(), out / "correlation.md")
    write_settings(parser, args, out / CONFIG_FILE)
    print(table)
    print(f"\nwrote {out}/correlation.json, .csv, .md and correlation_spearman.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
