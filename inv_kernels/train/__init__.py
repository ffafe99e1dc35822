"""Contrastive pretraining (MoCo v2, SimCLR as an option): ``PretrainConfig`` and ``pretrain`` / ``Trainer``."""

from inv_kernels.train.config import PretrainConfig
from inv_kernels.train.knn import knn_monitor, knn_top1
from inv_kernels.train.trainer import Trainer, pretrain

__all__ = ["PretrainConfig", "Trainer", "knn_monitor", "knn_top1", "pretrain"]
