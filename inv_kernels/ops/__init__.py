"""The ops: one file each, holding the torch reference, the Triton kernels, the launchers and the registration."""

from inv_kernels.ops.row_cosine import row_cosine, row_cosine_ref

__all__ = ["row_cosine", "row_cosine_ref"]
