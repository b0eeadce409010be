"""SSL objectives, one per file, each a transcription of its equation in the paper.

The supervised baselines (``AAMSoftmax``, ``supervised_contrastive``) take labels; the SSL
ones never do. The SSL functions take the embeddings of the whole (global) batch and return a scalar; they
never see indices or queues of positives (SSPS swaps positives before the call).
"""

from ssps.train.losses.aam_softmax import AAMSoftmax
from ssps.train.losses.dino import dino_loss, update_center
from ssps.train.losses.moco import moco_contrastive
from ssps.train.losses.nt_xent import nt_xent
from ssps.train.losses.supervised_contrastive import supervised_contrastive
from ssps.train.losses.swav import sinkhorn_knopp, swav_loss
from ssps.train.losses.vicreg import vicreg_loss

__all__ = [
    "AAMSoftmax",
    "dino_loss",
    "moco_contrastive",
    "nt_xent",
    "sinkhorn_knopp",
    "supervised_contrastive",
    "swav_loss",
    "update_center",
    "vicreg_loss",
]
