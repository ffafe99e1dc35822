"""The study: pretrain the default, spatial and appearance models (with optional wide control and random
floor) over several seeds, measure their synthetic and real-world invariance and latent regression, probe their
transfer alone and fused, and report every number with its spread over seeds and a verdict on each of the paper's
claims. ``run_study(StudyConfig(...))`` or ``python -m pipelines.study``; docs/STUDY.md.

Modules: config (StudyConfig), inputs (data and tasks), stagecache (cached, resumable stages), stages (the library
calls), aggregate (mean ± std tables), claims (the checks), figures, report (Markdown + JSON), run (the driver).
"""

from inv_kernels.study.config import StudyConfig, parse_seeds

__all__ = ["StudyConfig", "parse_seeds", "run_study"]


def __getattr__(name: str):
    if name == "run_study":  # lazy: the driver imports torch-heavy modules
        from inv_kernels.study.run import run_study

        return run_study
    raise AttributeError(f"module 'inv_kernels.study' has no attribute {name!r}")
