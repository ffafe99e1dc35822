"""Writing measurement results: JSON (every number), CSV (one row per transform family or group set) and a plot of
invariance per family with the spatial and appearance families apart."""

from pathlib import Path

from inv_kernels.io import atomic_write_json
from inv_kernels.reporting import pyplot, write_csv, write_png


def plot_synthetic(rows: list[dict], path: Path, title: str, dim: int | None = None) -> Path:
    """Writes ``synthetic_figure(rows, title, dim)`` as a PNG to ``path``; returns ``path``."""
    return write_png(synthetic_figure(rows, title, dim), path)


def synthetic_figure(rows: list[dict], title: str, dim: int | None = None):
    """Bar charts of cosine invariance (higher: more invariant) and Mahalanobis distance per family, spatial
    families first, then appearance ones; a degenerate family has no bar and is labelled so. Dotted lines mark
    chance, the scores of unrelated images: a whitened cosine of 0 and, given the feature dimension ``dim``, a
    distance of about sqrt(2 dim) (whitened features of two unrelated images differ by 2 in variance per dimension)."""
    plt = pyplot()
    ordered = sorted(rows, key=lambda r: (r["kind"] != "spatial", r["family"]))
    names = [r["family"] + (" (degenerate)" if r.get("degenerate") else "") for r in ordered]
    colours = ["tab:blue" if r["kind"] == "spatial" else "tab:orange" for r in ordered]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.55 * len(names) * 2), 4.2))
    chance = {"cosine_mean": 0.0, "distance_mean": (2 * dim) ** 0.5 if dim else None}
    for ax, key, label in (
        (axes[0], "cosine_mean", "whitened cosine (higher: more invariant)"),
        (axes[1], "distance_mean", "Mahalanobis distance (lower: more invariant)"),
    ):
        values = [float("nan") if r[key] is None else r[key] for r in ordered]  # a degenerate family: no bar
        ax.bar(range(len(names)), values, color=colours)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("transform family")
        ax.set_ylabel(label.split(" (")[0])
        if chance[key] is not None:
            ax.axhline(chance[key], color="0.3", ls=":", lw=1)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:blue", "tab:orange")]
    handles.append(plt.Line2D([], [], color="0.3", ls=":", lw=1))
    labels = ["spatial", "appearance", "chance (unrelated images)"]
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


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
        dim = results["model"].get("feature_dim")
        written["synthetic_png"] = plot_synthetic(synthetic, out / "synthetic.png", title, dim)
    if results.get("realworld"):
        written["realworld_csv"] = write_csv(results["realworld"], out / "realworld.csv")
    return written
