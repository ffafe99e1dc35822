"""Invariance measurement (docs/METHOD.md sections 3-4): ``measure(MeasureConfig(model=...))`` or
``python -m pipelines.measure``. Modules: model (feature extractors), features (clean views, statistics pass),
synthetic (the 18 transform families), realworld (multi-view folder layouts), realworld_measure, report, sharding
(splitting passes across torchrun processes), cache (the feature cache), driver."""

_LAZY = {"MeasureConfig": "driver", "Measurement": "driver", "measure": "driver", "load_extractor": "model"}


def __getattr__(name: str):
    # Lazy, so that importing a light submodule (features, from the training loop) does not import the driver.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"inv_kernels.measure.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'inv_kernels.measure' has no attribute {name!r}")


__all__ = list(_LAZY)
