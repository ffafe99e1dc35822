"""The study's figures (matplotlib, Agg backend), each written atomically as PNG:

    invariance_heatmap   models x the 18 transform families, mean whitened cosine over seeds
    kind_scatter         each model's mean invariance to spatial vs appearance families (error bars: seed std)
    transfer_bars        one panel per task: every model and fusion, mean test score over seeds with std bars

The invariance-transfer correlation heat map is ``inv_kernels.correlation.heatmap``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inv_kernels.reporting import annotate_cells, pyplot, write_png
from inv_kernels.transforms import APPEARANCE_FAMILIES, SPATIAL_FAMILIES

COLOURS = {
    "default": "tab:blue",
    "spatial": "tab:orange",
    "appearance": "tab:purple",
    "wide": "tab:cyan",
    "random": "tab:gray",
}


def invariance_heatmap(synthetic: dict, path: Path, title: str) -> Path:
    """Heat map of ``synthetic`` (aggregate.synthetic_table): rows models, columns families (spatial first)."""
    plt = pyplot()
    models = list(synthetic)
    families = [f for f in (*SPATIAL_FAMILIES, *APPEARANCE_FAMILIES) if f in synthetic[models[0]]]
    grid = np.array([[synthetic[m][f]["cosine"]["mean"] for f in families] for m in models], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.8 + 0.62 * len(families)), 1.6 + 0.5 * len(models)))
    image = ax.imshow(grid, cmap="viridis", vmin=min(0.0, float(np.nanmin(grid))), vmax=1.0, aspect="auto")
    annotate_cells(ax, grid, "{:.2f}", white=lambda value: value < 0.6, missing="nan")
    split = sum(f in SPATIAL_FAMILIES for f in families) - 0.5
    ax.axvline(split, color="white", linewidth=2)
    ax.set_xticks(range(len(families)), families, rotation=55, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel("transform family (spatial | appearance)", fontsize=9)
    ax.set_ylabel("model")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="whitened cosine (higher: more invariant)")
    fig.tight_layout()
    return write_png(fig, path)


def kind_scatter(summary: dict, path: Path) -> Path:
    """Each model's mean invariance over spatial (x) and appearance (y) families, with seed-std error bars."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for model, row in summary.items():
        x, y = row["spatial"], row["appearance"]
        ax.errorbar(
            x["mean"],
            y["mean"],
            xerr=x["std"] or 0.0,
            yerr=y["std"] or 0.0,
            fmt="o",
            capsize=3,
            color=COLOURS.get(model, "black"),
            label=model,
        )
    ax.axhline(0.0, color="0.4", ls=":", lw=1, label="chance (unrelated images)")
    ax.axvline(0.0, color="0.4", ls=":", lw=1)
    ax.set_xlabel("mean invariance (whitened cosine), spatial families")
    ax.set_ylabel("mean invariance (whitened cosine), appearance families")
    ax.set_title("spatial vs appearance invariance (mean ± std over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return write_png(fig, path)


def transfer_bars(transfer: dict, path: Path) -> Path:
    """One horizontal bar panel per task: single models in their colours, fusions in green; std error bars."""
    plt = pyplot()
    tasks = list(transfer)
    cols = min(len(tasks), 3)
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(4.4 * cols, 0.5 + 0.32 * max(len(t["entries"]) for t in transfer.values()) * rows + 0.8 * rows),
        squeeze=False,
    )
    for ax, task in zip(axes.flat, tasks):
        entries = transfer[task]["entries"]
        names = list(entries)
        means = [entries[n]["mean"] for n in names]
        stds = [entries[n]["std"] or 0.0 for n in names]
        colours = [COLOURS.get(n, "tab:green") for n in names]
        ax.barh(range(len(names)), means, xerr=stds, color=colours, capsize=2)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        if "random" in entries:  # the untrained network: the floor a pretrained model should clear
            ax.axvline(entries["random"]["mean"], color="tab:gray", ls="--", lw=1)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel(f"test {transfer[task]['metric']} (mean ± std over seeds)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color="tab:blue"), plt.Rectangle((0, 0), 1, 1, color="tab:green")]
    handles.append(plt.Line2D([], [], color="tab:gray", ls="--", lw=1))
    labels = ["single model (its colour)", "fusion", "random network"]
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.4 / fig.get_size_inches()[1], 1, 1))
    return write_png(fig, path)
