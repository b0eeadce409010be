"""Losses run in float32 even inside the trainer's bf16/fp16 autocast.

Autocast would run the cosine matrices in bf16 (8 mantissa bits): a cosine error of ~1e-2,
divided by a temperature of 0.03, moves a logit by ~0.3, which is noise on the very
quantity contrastive losses compare. The encoders keep the fast low-precision path.
"""

from __future__ import annotations

import contextlib
import functools

import torch


def in_float32(loss):
    """Decorate a loss so that autocast is off while it runs (inputs are cast by the loss)."""

    @functools.wraps(loss)
    def float32_loss(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.autocast("cpu", enabled=False))
            if torch.cuda.is_available():
                stack.enter_context(torch.autocast("cuda", enabled=False))
            return loss(*args, **kwargs)

    return float32_loss
