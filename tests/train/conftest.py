from pathlib import Path

import pytest

from inv_kernels.data import write_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Generated classification scenes at 32 px: train/<shape>/*.jpg (6 per class, 42 images) and 7 in test/."""
    return write_dataset("classification", tmp_path_factory.mktemp("data") / "scenes", size=32, count=6, progress=False)
