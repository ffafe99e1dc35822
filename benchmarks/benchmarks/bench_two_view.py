"""Two-view training batches from a folder of JPEGs: the DALI loader (inv_kernels/data/dali/two_view.py: DALI decode, then
one fused_augment call per batch, with fused_augment's backend as part of the parameter) against the baseline MoCo
itself uses, a torchvision DataLoader over ImageFolder with PIL TwoCropsTransform (the "default" recipe). Reported as
two-view images per second over one epoch (track_*, host clock, as a loader's throughput is wall time); the folder of
generated JPEGs is written once per run in setup_cache. Skipped where DALI, the loader or a kernel is missing."""

import importlib
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import inv_kernels

from ._augment import require_fused_backend
from ._common import cases

RECIPE = "default"
IMAGES = cases(256, 32)
BATCH = cases(64, 16)
THREADS = 2


def _write_folder(root: Path, count: int, seed: int = 0) -> None:
    """``count`` smooth random 320 x 240 JPEGs (quality 90) in two class folders: cheap to make, realistic to decode."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((320, 240), Image.BILINEAR)
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:05d}.jpg", quality=90)


class TwoViewLoader:
    params = (["dali:reference", "dali:cpu", "dali:triton", "dali:cuda", "torchvision"], cases([64, 224], [64]))
    param_names = ["loader", "out_size"]
    timeout = 600

    def setup_cache(self):
        root = Path("two_view_images").resolve()  # asv runs setup_cache in a temporary folder it deletes afterwards
        _write_folder(root, IMAGES)
        return str(root)

    def setup(self, root, loader, out_size):
        if loader == "torchvision":
            self.loader = self._torchvision(root, out_size)
            return
        backend = loader.split(":")[1]
        device = "cuda" if backend in ("triton", "cuda") else "cpu"
        require_fused_backend(backend, device)
        if not inv_kernels.HAS_DALI:
            raise NotImplementedError("NVIDIA DALI is not installed")
        try:
            module = importlib.import_module("inv_kernels.data.dali.two_view")
        except ImportError as error:
            raise NotImplementedError(f"inv_kernels.data.dali.two_view cannot be imported: {error}") from None
        self.loader = module.DaliTwoViewLoader(
            root,
            RECIPE,
            out_size,
            BATCH,
            device_id=0 if device == "cuda" else None,
            num_threads=THREADS,
            backend=backend,
        )

    @staticmethod
    def _torchvision(root, out_size):
        from torch.utils.data import DataLoader
        from torchvision.datasets import ImageFolder

        from inv_kernels.augment import TwoCropsTransform, torchvision_recipe_transform

        dataset = ImageFolder(root, TwoCropsTransform(torchvision_recipe_transform(RECIPE, out_size)))
        return DataLoader(dataset, batch_size=BATCH, num_workers=THREADS, drop_last=True, persistent_workers=False)

    def track_two_view_images_per_second(self, root, loader, out_size):
        images = 0
        start = time.perf_counter()
        for batch in self.loader:
            # DALI: {"views": (N, 2, 3, S, S), ...}; torchvision: ([q, k], labels) with q (N, 3, S, S)
            views = batch["views"] if isinstance(batch, dict) else batch[0][0]
            images += views.shape[0]
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return images / (time.perf_counter() - start)

    track_two_view_images_per_second.unit = "images/s"
