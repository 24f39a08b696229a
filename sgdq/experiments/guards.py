"""Training guards: a non-finite loss, gradient or parameter stops a run with a message naming
the optimizer, seed and step, so it is never stored as a finished result."""

from __future__ import annotations

import math

import torch


class NonFiniteError(RuntimeError):
    """A loss, gradient or parameter became NaN or infinite during training."""


def check_finite_step(loss, params, *, optimizer: str, seed: int, step: int, stage: str) -> None:
    """Refuse a non-finite ``loss`` (a tensor or number) or, when ``params`` are given, a
    non-finite gradient (``stage="gradients"``) or parameter (``stage="parameters"``)."""
    where = f"optimizer {optimizer!r}, seed {seed}, step {step}"
    if loss is not None:
        value = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
        if not math.isfinite(value):
            raise NonFiniteError(f"the training loss is {value} at {where}; the run is stopped and not stored "
                                 "(lower the learning rate, or check the data for empty or corrupt rows)")
    if params is None:
        return
    tensors = [p.grad if stage == "gradients" else p for p in params]
    tensors = [t.detach() for t in tensors if t is not None]
    if tensors and not torch.isfinite(torch.stack(torch._foreach_norm(tensors))).all():
        bad = [i for i, t in enumerate(tensors) if not torch.isfinite(t).all()]
        raise NonFiniteError(f"{len(bad)} tensor(s) of {stage} hold NaN or inf at {where} (first: index {bad[0]}); "
                             "the run is stopped and not stored")
