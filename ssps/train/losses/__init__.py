"""SSL objectives, one per file, each a transcription of its equation in the paper.

The functions take the embeddings of the whole (global) batch and return a scalar; they
never see labels, indices or queues of positives (SSPS swaps positives before the call).
"""

from ssps.train.losses.moco import moco_contrastive
from ssps.train.losses.nt_xent import nt_xent

__all__ = ["moco_contrastive", "nt_xent"]
