"""Writing measurement results: JSON (every number), CSV (one row per transform family or group set) and a plot of
invariance per family with the spatial and appearance families apart."""

from pathlib import Path

from inv_kernels.io import atomic_write_json
from inv_kernels.reporting import pyplot, write_csv, write_png


def plot_synthetic(rows: list[dict], path: Path, title: str) -> Path:
    """Bar charts of cosine invariance (higher: more invariant) and Mahalanobis distance per family, spatial
    families first, then appearance ones; a degenerate family has no bar and is labelled so."""
    plt = pyplot()
    ordered = sorted(rows, key=lambda r: (r["kind"] != "spatial", r["family"]))
    names = [r["family"] + (" (degenerate)" if r.get("degenerate") else "") for r in ordered]
    colours = ["tab:blue" if r["kind"] == "spatial" else "tab:orange" for r in ordered]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.55 * len(names) * 2), 4.2))
    for ax, key, label in (
        (axes[0], "cosine_mean", "whitened cosine (higher: more invariant)"),
        (axes[1], "distance_mean", "Mahalanobis distance (lower: more invariant)"),
    ):
        values = [float("nan") if r[key] is None else r[key] for r in ordered]  # a degenerate family: no bar
        ax.bar(range(len(names)), values, color=colours)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:blue", "tab:orange")]
    fig.legend(handles, ["spatial", "appearance"], loc="lower center", ncol=2, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return write_png(fig, path)


def write_results(results: dict, out: Path) -> dict[str, Path]:
    """results.json, synthetic.csv + synthetic.png, realworld.csv under ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": atomic_write_json(results, out / "results.json")}
    synthetic = results.get("synthetic", [])
    if synthetic:
        written["synthetic_csv"] = write_csv(synthetic, out / "synthetic.csv")
        title = (
            f"{results['model']['model_id']} ({results['settings']['mode']} mode, {synthetic[0]['num_images']} images)"
        )
        written["synthetic_png"] = plot_synthetic(synthetic, out / "synthetic.png", title)
    if results.get("realworld"):
        written["realworld_csv"] = write_csv(results["realworld"], out / "realworld.csv")
    return written
