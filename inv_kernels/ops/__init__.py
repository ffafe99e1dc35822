"""The ops: one file each, holding the torch reference, the launchers and the registration (the Triton kernels too,
unless the op has several: ``_<op>_triton.py``). Shared by all: ``_library.py`` (accumulation dtype, device guard,
torch.library registration of every backend); by the scoring ops: ``_whitening.py``."""

from inv_kernels.ops._whitening import IllConditionedWarning
from inv_kernels.ops.contrastive_modules import InfoNCELoss, KeyQueue, NTXentLoss
from inv_kernels.ops.fused_augment import fused_augment
from inv_kernels.ops.group_invariance import GroupInvariance, group_invariance, group_invariance_ref
from inv_kernels.ops.infonce import infonce_loss, infonce_loss_ref, ntxent_loss, ntxent_loss_ref
from inv_kernels.ops.invariance_scores import InvarianceScores, invariance_scores, invariance_scores_ref
from inv_kernels.ops.row_cosine import row_cosine, row_cosine_ref

__all__ = [
    "GroupInvariance",
    "IllConditionedWarning",
    "InfoNCELoss",
    "InvarianceScores",
    "KeyQueue",
    "NTXentLoss",
    "fused_augment",
    "group_invariance",
    "group_invariance_ref",
    "infonce_loss",
    "infonce_loss_ref",
    "invariance_scores",
    "invariance_scores_ref",
    "ntxent_loss",
    "ntxent_loss_ref",
    "row_cosine",
    "row_cosine_ref",
]
