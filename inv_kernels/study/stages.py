"""The study's stages as library calls, each cached by ``StageCache`` under ``<out>/<stage>/``:

    pretrain/<model>/seed<s>    MoCo v2 (inv_kernels.train.Trainer, resuming its own checkpoint), then the backbone
                                exported to backbone.pth.tar
    measure/<model>/seed<s>     synthetic invariance on the 18 families and real-world group invariance
                                (inv_kernels.measure.Measurement)
    latents/<model>/seed<s>     RBF kernel-ridge regression of the ten generated latents (docs/METHOD.md section 5)
    transfer/seed<s>/<task>     linear probes of every model and fusion (inv_kernels.transfer.evaluate_transfer)

A stage's settings hold everything its output depends on, including the identity (file name and SHA-256 prefix) of
the model it reads, so a re-trained model invalidates what was measured on the old one.
"""

from __future__ import annotations

from pathlib import Path

from inv_kernels.study.config import RANDOM, WIDE, StudyConfig
from inv_kernels.study.inputs import StudyInputs, task_identity
from inv_kernels.study.stagecache import StageCache

BACKBONE = "backbone.pth.tar"
RECIPES = {"default": "default", "spatial": "spatial", "appearance": "appearance", WIDE: "default"}
FUSIONS = ("default+spatial", "default+appearance", "spatial+appearance", "default+spatial+appearance")


def pretrain_config(cfg: StudyConfig, inputs: StudyInputs, model: str, seed: int, out: Path):
    """The PretrainConfig of one model and seed."""
    from inv_kernels.train import PretrainConfig

    arch = cfg.wide_arch_resolved if model == WIDE else cfg.arch
    return PretrainConfig(
        data=str(inputs.train_root),
        out=str(out),
        recipe=RECIPES[model],
        arch=arch,
        cifar_stem=cfg.cifar_stem,
        image_size=cfg.size,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        bn_splits=cfg.bn_splits,
        base_lr=cfg.base_lr,
        queue_size=cfg.queue_size,
        moco_momentum=cfg.moco_momentum,
        temperature=cfg.temperature,
        moco_dim=384 if arch == "resnet50w3" else 128,
        workers=cfg.workers,
        seed=seed,
        device=cfg.device,
        knn_every=0 if cfg.knn else -1,
        max_steps=cfg.max_steps,
        resume="auto",
        log_every_steps=1,  # every step's loss and pretext accuracy in log.jsonl: the health check reads them
    )


def _pretrain_settings(pcfg) -> dict:
    ignored = {
        "out",
        "resume",
        "workers",
        "device",
        "log_every_steps",
        "save_every_steps",
        "amp",
        "channels_last",
        "compile",
        "extra",
        "loader",
    }
    return {k: v for k, v in pcfg.to_dict().items() if k not in ignored}


def pretrain_stage(cache: StageCache, cfg: StudyConfig, inputs: StudyInputs, model: str, seed: int):
    """(stage name, PretrainConfig, stage settings) of one model and seed."""
    name = f"pretrain/{model}/seed{seed}"
    pcfg = pretrain_config(cfg, inputs, model, seed, cache.folder(name))
    return name, pcfg, _pretrain_settings(pcfg)


def train_here(pcfg, progress: bool) -> dict:
    """Runs (or resumes) one pretraining in this process; returns the trainer's summary."""
    from inv_kernels.train import Trainer

    return Trainer(pcfg, progress=progress).run()


def run_pretrain(
    cache: StageCache, cfg: StudyConfig, inputs: StudyInputs, model: str, seed: int, *, train=None
) -> dict:
    """Pretrains (or resumes, or reuses) one model; returns {"backbone": path, "model_id", "summary"}.

    ``train(pcfg) -> summary`` runs the pretraining (default: in this process, with progress bars as ``cfg`` says);
    ``inv_kernels.study.parallel`` passes one that runs it in a worker process.
    """
    name, pcfg, settings = pretrain_stage(cache, cfg, inputs, model, seed)

    def compute(folder: Path) -> dict:
        from inv_kernels.models.checkpoint import LAST
        from inv_kernels.models.load import export_backbone, file_digest

        summary = train(pcfg) if train is not None else train_here(pcfg, cfg.progress)
        backbone = export_backbone(folder / LAST, folder / BACKBONE)
        summary.pop("config", None)
        return {"backbone": str(backbone), "model_id": f"{BACKBONE}@{file_digest(backbone)}", "summary": summary}

    entry = cache.run(name, settings, compute, resumable=True)
    return {**entry, "backbone": str(cache.folder(name) / BACKBONE)}  # where it is now, should --out have moved


def model_spec(cfg: StudyConfig, model: str, seed: int, pretrained: dict[tuple[str, int], dict]) -> tuple[str, str]:
    """(spec for load_extractor, model identity) of a model of the study."""
    if model == RANDOM:
        return f"random:{cfg.arch}", f"random:{cfg.arch}:seed{seed}"
    entry = pretrained[(model, seed)]
    return entry["backbone"], entry["model_id"]


def run_measure(
    cache: StageCache, cfg: StudyConfig, inputs: StudyInputs, model: str, seed: int, spec: str, model_id: str
) -> dict:
    """Synthetic and real-world invariance of one model; returns the measurement's results dict (group sets named)."""
    name = f"measure/{model}/seed{seed}"
    settings = {
        "model_id": model_id,
        "data": str(inputs.train_root),
        "groups": [g.spec for g in inputs.group_sets],
        "size": cfg.size,
        "num_images": cfg.num_images,
        "stats_images": cfg.stats_images,
        "shrinkage": cfg.shrinkage,
        "mode": cfg.mode,
        "seed": seed,
    }

    def compute(folder: Path) -> dict:
        from inv_kernels.measure.driver import MeasureConfig, Measurement

        shrinkage = cfg.shrinkage if cfg.shrinkage in ("none", "ledoit_wolf") else float(cfg.shrinkage)
        results = Measurement(
            MeasureConfig(
                model=spec,
                data=str(inputs.train_root),
                stats_images=cfg.stats_images,
                num_images=cfg.num_images,
                mode=cfg.mode,
                groups=tuple(g.spec for g in inputs.group_sets),
                out=str(folder),
                device=cfg.device,
                batch_size=cfg.eval_batch_size,
                out_size=cfg.size,
                shrinkage=shrinkage,
                workers=cfg.workers,
                seed=seed,
                progress=cfg.progress,
            )
        ).run()
        for entry, group_set in zip(results["realworld"], inputs.group_sets):
            entry["set"], entry["factor"] = group_set.name, group_set.factor
            entry.pop("groups", None)  # per-group rows stay in the stage's own results.json
        return results

    return cache.run(name, settings, compute)


def run_latents(
    cache: StageCache, cfg: StudyConfig, inputs: StudyInputs, model: str, seed: int, spec: str, model_id: str
) -> dict:
    """Kernel-ridge R^2 of every generated latent from one model's features (test split); higher R^2 means the
    feature keeps the factor (less invariant to it)."""
    name = f"latents/{model}/seed{seed}"
    settings = {
        "model_id": model_id,
        "latents": str(inputs.latents_root),
        "size": cfg.size,
        "trainval": cfg.latent_trainval,
        "folds": cfg.folds,
        "seed": seed,
    }

    def compute(folder: Path) -> dict:
        from inv_kernels.distributed import resolve_device
        from inv_kernels.downstream import generated_latents_task, task_features
        from inv_kernels.measure.model import load_extractor
        from inv_kernels.probes import fit_kernel_ridge_cv

        task = generated_latents_task(
            inputs.latents_root,
            target="all",
            mode=cfg.mode,
            max_trainval=cfg.latent_trainval,
            out_size=cfg.size,
            resize_size=cfg.size,
        )
        extractor = load_extractor(spec, device=resolve_device(cfg.device), seed=seed)
        feats = task_features(extractor, task, batch_size=cfg.eval_batch_size, workers=0, progress=cfg.progress)
        result = fit_kernel_ridge_cv(
            feats.X_trainval.double(),
            feats.y_trainval.double(),
            folds=cfg.folds,
            X_test=feats.X_test.double(),
            Y_test=feats.y_test.double(),
            seed=seed,
            source=str(inputs.latents_root),
        )
        per_latent = {t: result.test_metrics[f"r2_{i}"] for i, t in enumerate(task.target_names)}
        return {
            "r2_mean": result.test_metrics["r2"],
            "r2": per_latent,
            "chosen": result.best_params,
            "cv_score": float(result.cv_scores[result.best_index]),
            "trainval": int(feats.X_trainval.shape[0]),
            "test": int(feats.X_test.shape[0]),
            "seconds": result.fit_time_s,
        }

    return cache.run(name, settings, compute)


def run_transfer(cache: StageCache, cfg: StudyConfig, task, seed: int, specs: dict[str, tuple[str, str]]) -> dict:
    """Every model and fusion of one seed probed on one task; returns pipelines.transfer's results dict."""
    name = f"transfer/seed{seed}/{task.name}"
    fusable = [m for m in ("default", "spatial", "appearance") if m in specs]
    combos = ",".join(c for c in FUSIONS if all(m in fusable for m in c.split("+"))) or "none"
    settings = {
        "models": {m: s[1] for m, s in specs.items()},
        "task": task_identity(task),
        "combos": combos,
        "folds": cfg.folds,
        "mode": cfg.mode,
        "seed": seed,
    }

    def compute(folder: Path) -> dict:
        from inv_kernels.transfer import TransferConfig, evaluate_transfer

        return evaluate_transfer(
            TransferConfig(
                models={m: s[0] for m, s in specs.items()},
                tasks=[task],
                fusions=("cat",),
                combos=combos,
                mode=cfg.mode,
                folds=cfg.folds,
                device=cfg.device,
                batch_size=cfg.eval_batch_size,
                workers=0,
                seed=seed,
                progress=cfg.progress,
            )
        )

    return cache.run(name, settings, compute)
